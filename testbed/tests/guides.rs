//! Every command of the user guides (`docs/guides/<kind>/tls.md`, then
//! `docs/guides/<kind>/reconfigure-tls.md`) runs unchanged against
//! `sandbox --keep`, as a reader would run them: the YAML files the guide shows are written to
//! a scratch directory under the names it gives them, then each `$ command` of its console
//! blocks runs there with the sandbox's kubeconfig and must exit 0. A command that reads what
//! the operators have not made yet is retried for a while (a reader would look again); a
//! `kubectl get -w` is ended once it shows the database Ready.
//!
//! Needs kubectl and openssl (`.ci/install-prerequisites`); skipped without them, except in CI.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a command that fails is retried.
const RETRY_FOR: Duration = Duration::from_secs(30);
/// How long a watch may take to show the database Ready.
const WATCH_FOR: Duration = Duration::from_secs(60);

fn guides_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/guides")
}

fn tools_present() -> bool {
    let present = |tool: &str| {
        Command::new(tool)
            .arg("version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    };
    let ok = present("kubectl") && present("openssl");
    assert!(
        ok || std::env::var_os("CI").is_none(),
        "kubectl and openssl are needed in CI (.ci/install-prerequisites installs them)"
    );
    ok
}

/// What a guide asks the reader to do, in order.
#[derive(Debug, PartialEq)]
enum Step {
    /// Write a file the guide shows.
    File { name: String, content: String },
    /// Run a command in the guide's directory.
    Run(String),
}

/// The steps of one guide: YAML blocks introduced by a line naming their file, and the `$ `
/// lines of console blocks.
fn steps(markdown: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut lines = markdown.lines().peekable();
    // The paragraph before a block: it names the file a YAML block is saved as.
    let mut paragraph = String::new();
    let mut blank = true;
    while let Some(line) = lines.next() {
        let Some(lang) = line.strip_prefix("```") else {
            if line.trim().is_empty() {
                blank = true;
            } else {
                if blank {
                    paragraph.clear();
                }
                paragraph.push_str(line);
                paragraph.push(' ');
                blank = false;
            }
            continue;
        };
        let mut block = Vec::new();
        for inner in lines.by_ref() {
            if inner.starts_with("```") {
                break;
            }
            block.push(inner);
        }
        match lang.trim() {
            "yaml" => {
                if let Some(name) = named_file(&paragraph) {
                    steps.push(Step::File {
                        name,
                        content: block.join("\n") + "\n",
                    });
                }
            }
            "console" => steps.extend(
                block
                    .iter()
                    .filter_map(|l| l.strip_prefix("$ "))
                    .map(|c| Step::Run(c.to_string())),
            ),
            _ => {}
        }
        paragraph.clear();
    }
    steps
}

/// The last `` `something.yaml` `` of a paragraph that ends with ':'.
fn named_file(line: &str) -> Option<String> {
    if !line.trim_end().ends_with(':') {
        return None;
    }
    line.split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| s.ends_with(".yaml"))
        .last()
        .map(str::to_string)
}

/// The sandbox binary with `--keep`, until dropped.
struct Sandbox {
    child: Child,
    kubeconfig: PathBuf,
}

impl Sandbox {
    fn start(dir: &Path) -> Sandbox {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sandbox"))
            .args(["--keep", "--dir"])
            .arg(dir)
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting the sandbox");
        let stdout = child.stdout.take().unwrap();
        let mut seen = String::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            seen.push_str(&line);
            seen.push('\n');
            if line.contains("Press Ctrl-C to stop") {
                return Sandbox {
                    child,
                    kubeconfig: dir.join("kubeconfig"),
                };
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the sandbox stopped before it was ready:\n{seen}");
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // SIGTERM, so that the sandbox stops the operators it started (a SIGKILL would orphan them).
        let terminated = Command::new("kill")
            .arg(self.child.id().to_string())
            .status()
            .is_ok_and(|s| s.success());
        if !terminated {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn shell(command: &str, dir: &Path, kubeconfig: &Path) -> Command {
    let mut cmd = Command::new("bash");
    cmd.args(["-o", "pipefail", "-c", command])
        .current_dir(dir)
        .env("KUBECONFIG", kubeconfig)
        .stdin(Stdio::null());
    cmd
}

/// Runs a `kubectl get ... -w` until it prints a line with `Ready`, then stops it.
fn watch_until_ready(command: &str, dir: &Path, kubeconfig: &Path) -> Result<(), String> {
    let mut child = shell(command, dir, kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| e.to_string())?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let until = Instant::now() + WATCH_FOR;
    let mut seen = Vec::new();
    let result = loop {
        match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
            Ok(line) if line.split_whitespace().any(|w| w == "Ready") => break Ok(()),
            Ok(line) => seen.push(line),
            Err(_) => {
                break Err(format!(
                    "not Ready within {WATCH_FOR:?}:\n{}",
                    seen.join("\n")
                ));
            }
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    result
}

fn run(command: &str, dir: &Path, kubeconfig: &Path) -> Result<(), String> {
    if command.contains(" -w") {
        return watch_until_ready(command, dir, kubeconfig);
    }
    let until = Instant::now() + RETRY_FOR;
    loop {
        let output = shell(command, dir, kubeconfig)
            .output()
            .map_err(|e| e.to_string())?;
        if output.status.success() {
            return Ok(());
        }
        if Instant::now() >= until {
            return Err(format!(
                "exit {:?}\nstdout:\n{}\nstderr:\n{}",
                output.status.code(),
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn guide_steps_are_read_in_order() {
    let markdown = "Intro\n\nThe Issuer, `issuer.yaml`:\n\n```yaml\nkind: Issuer\n```\n\n```console\n$ kubectl apply -f issuer.yaml\nissuer/x created\n\n$ kubectl get issuer\n```\n\n```sh\ncargo run\n```\n\nNot a file `x.yaml` here.\n\n```yaml\nkind: Other\n```\n\nA Secret (`s.yaml`; more words\non the next line):\n\n```yaml\nkind: Secret\n```\n";
    assert_eq!(
        steps(markdown),
        [
            Step::File {
                name: "issuer.yaml".into(),
                content: "kind: Issuer\n".into()
            },
            Step::Run("kubectl apply -f issuer.yaml".into()),
            Step::Run("kubectl get issuer".into()),
            Step::File {
                name: "s.yaml".into(),
                content: "kind: Secret\n".into()
            },
        ]
    );
}

#[test]
fn every_guide_command_runs_against_the_sandbox() {
    if !tools_present() {
        println!("kubectl or openssl not on PATH: skipping");
        return;
    }
    let scratch = std::env::temp_dir().join(format!("dbtls-guides-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).unwrap();
    let sandbox = Sandbox::start(&scratch.join("sandbox"));
    let mut kinds: Vec<PathBuf> = std::fs::read_dir(guides_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    kinds.sort();
    let guides_named = |file: &str| -> Vec<PathBuf> {
        kinds
            .iter()
            .map(|k| k.join(file))
            .filter(|p| p.exists())
            .collect()
    };
    let (tls, reconfigure) = (guides_named("tls.md"), guides_named("reconfigure-tls.md"));
    assert_eq!(tls.len(), 5, "one TLS guide per kind: {tls:?}");
    assert_eq!(
        reconfigure.len(),
        5,
        "one ReconfigureTLS guide per kind: {reconfigure:?}"
    );
    let guides: Vec<PathBuf> = tls.into_iter().chain(reconfigure).collect();
    let mut commands = 0;
    for guide in guides {
        let kind = guide
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .to_string();
        let file = guide.file_stem().unwrap().to_string_lossy().to_string();
        let dir = scratch.join(format!("{kind}-{file}"));
        std::fs::create_dir_all(&dir).unwrap();
        let steps = steps(&std::fs::read_to_string(&guide).unwrap());
        assert!(
            steps.iter().any(|s| matches!(s, Step::Run(_))),
            "{kind}: no commands"
        );
        for step in steps {
            match step {
                Step::File { name, content } => std::fs::write(dir.join(name), content).unwrap(),
                Step::Run(command) => {
                    commands += 1;
                    run(&command, &dir, &sandbox.kubeconfig)
                        .unwrap_or_else(|e| panic!("{kind}: `{command}` failed: {e}"));
                }
            }
        }
    }
    println!("guides: {commands} commands ran against the sandbox");
    drop(sandbox);
    let _ = std::fs::remove_dir_all(&scratch);
}
