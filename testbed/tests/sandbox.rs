//! The README's first command, `cargo run -p testbed --bin sandbox`, as a user runs it: every
//! example database converges and the process exits 0.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};

#[test]
fn the_sandbox_converges_every_example_and_exits_0() {
    let dir = std::env::temp_dir().join(format!("dbtls-sandbox-test-{}", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_sandbox"))
        .arg("--dir")
        .arg(&dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("running the sandbox");
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the sandbox exited with {}:\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("5 of 5 databases converged"), "{stdout}");
    // A SingleStore cluster is shown with both of its workloads.
    assert!(stdout.contains("-aggregator "), "{stdout}");
    assert!(stdout.contains("-leaf "), "{stdout}");
    assert!(!stdout.contains("(not created)"), "{stdout}");
}
