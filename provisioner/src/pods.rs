//! Why a replica is not ready, in kubelet's own words: the workload's pods, kept in the cache
//! with only their status, summarised for the WorkloadReady condition (a crashing server shows
//! its last log line there instead of a bare CrashLoopBackOff).
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

/// The last two non-empty lines of a container's termination message that report an error
/// (or, when none does, the last two lines). Kubelet fills the message with the tail of the log
/// when the container sets `terminationMessagePolicy: FallbackToLogsOnError`; two, because a
/// server's last error is often only "Aborting"; errors first, because a server's background
/// threads may log notes between the cause and the abort.
fn last_lines(message: &str) -> Option<String> {
    let lines = || {
        message
            .lines()
            .rev()
            .map(str::trim)
            .filter(|l| !l.is_empty())
    };
    let says_error = |line: &&str| {
        let lower = line.to_ascii_lowercase();
        ["error", "fatal", "panic"]
            .iter()
            .any(|w| lower.contains(w))
    };
    let mut picked: Vec<&str> = lines().filter(says_error).take(2).collect();
    if picked.is_empty() {
        picked = lines().take(2).collect();
    }
    picked.reverse();
    (!picked.is_empty()).then(|| picked.join(" | "))
}

/// Why `container` keeps the pod from being ready, if it does.
fn container_problem(c: &ContainerStatus) -> Option<String> {
    if c.ready {
        return None;
    }
    let waiting = c.state.as_ref().and_then(|s| s.waiting.as_ref());
    let last_exit = c
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .map(|t| {
            let line = t.message.as_deref().and_then(last_lines);
            match line {
                Some(line) => format!("last exit {}: {line}", t.exit_code),
                None => format!("last exit {}", t.exit_code),
            }
        });
    let mut parts = Vec::new();
    if let Some(w) = waiting {
        let reason = w.reason.as_deref().unwrap_or("Waiting");
        match w.message.as_deref().filter(|m| !m.is_empty()) {
            Some(message) if reason != "CrashLoopBackOff" => {
                parts.push(format!("{reason}: {message}"))
            }
            _ => parts.push(reason.to_string()),
        }
    } else if c.state.as_ref().and_then(|s| s.running.as_ref()).is_some() {
        parts.push("running, not ready yet".to_string());
    }
    if c.restart_count > 0 {
        parts.push(format!("{} restarts", c.restart_count));
    }
    parts.extend(last_exit);
    (!parts.is_empty()).then(|| format!("container {}: {}", c.name, parts.join(", ")))
}

/// Why `pod` is not ready, or None when it is.
pub fn problem(pod: &Pod) -> Option<String> {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let status = pod.status.as_ref()?;
    let condition = |type_: &str| {
        status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == type_)
    };
    if condition("Ready").is_some_and(|c| c.status == "True") {
        return None;
    }
    if let Some(unscheduled) = condition("PodScheduled").filter(|c| c.status == "False") {
        let why = unscheduled.message.as_deref().unwrap_or("not scheduled");
        return Some(format!("pod {name}: not scheduled: {why}"));
    }
    let containers: Vec<String> = status
        .init_container_statuses
        .iter()
        .chain(status.container_statuses.iter())
        .flatten()
        .filter_map(container_problem)
        .collect();
    Some(if containers.is_empty() {
        format!(
            "pod {name}: {}",
            status.phase.as_deref().unwrap_or("Pending")
        )
    } else {
        format!("pod {name}: {}", containers.join("; "))
    })
}

/// Why the workloads' pods are not ready: one entry per pod that is not, in the order given
/// (None: the pod does not exist yet).
pub fn problems(pods: &[(String, Option<Pod>)]) -> Vec<String> {
    pods.iter()
        .filter_map(|(name, pod)| match pod {
            Some(pod) => problem(pod),
            None => Some(format!("pod {name}: not created yet")),
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use dbtls_runtime::pods::trim;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "db-0", "managedFields": [{"manager": "kubelet"}]},
            "spec": {"containers": [{"name": "mysql", "image": "mysql:8.4.3"}]},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn a_ready_pod_has_no_problem_and_trimming_keeps_what_says_so() {
        let mut ready = pod(serde_json::json!({
            "phase": "Running", "podIP": "10.244.0.5", "hostIP": "10.0.0.1",
            "conditions": [{"type": "Ready", "status": "True"}],
        }));
        trim(&mut ready);
        assert!(ready.spec.is_none() && ready.metadata.managed_fields.is_none());
        assert_eq!(
            ready.status.as_ref().unwrap().pod_ip.as_deref(),
            Some("10.244.0.5")
        );
        assert_eq!(ready.status.as_ref().unwrap().host_ip, None);
        assert_eq!(problem(&ready), None);
    }

    #[test]
    fn a_crashing_server_is_named_with_its_last_log_line() {
        let crashing = pod(serde_json::json!({
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "False"}],
            "containerStatuses": [{
                "name": "mysql", "ready": false, "restartCount": 3, "image": "i", "imageID": "",
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container"}},
                "lastState": {"terminated": {"exitCode": 1, "message": "starting\n[ERROR] SSL error: Unable to get private key\n[ERROR] Aborting\n\n"}},
            }],
        }));
        assert_eq!(
            problem(&crashing).unwrap(),
            "pod db-0: container mysql: CrashLoopBackOff, 3 restarts, last exit 1: [ERROR] SSL error: Unable to get private key | [ERROR] Aborting"
        );
    }

    #[test]
    fn the_lines_kept_from_a_crash_log() {
        let cases = [
            ("nothing at all", "\n \n", None),
            ("no error: the last two lines", "a\nb\nc\n", Some("b | c")),
            (
                "a note between the cause and the abort",
                "[ERROR] SSL error: Failed to set ciphers\n[Note] InnoDB: Buffer pool(s) load completed\n[ERROR] Aborting\n",
                Some("[ERROR] SSL error: Failed to set ciphers | [ERROR] Aborting"),
            ),
            (
                "one error and notes after it",
                "starting\nFATAL: no key\n[Note] shutting down\n",
                Some("FATAL: no key"),
            ),
        ];
        for (case, message, expected) in cases {
            assert_eq!(last_lines(message).as_deref(), expected, "{case}");
        }
    }

    #[test]
    fn kubelets_own_words_for_a_missing_secret_and_scheduling() {
        let missing = pod(serde_json::json!({
            "phase": "Pending",
            "conditions": [{"type": "Ready", "status": "False"}, {"type": "PodScheduled", "status": "True"}],
            "containerStatuses": [{
                "name": "mysql", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
                "state": {"waiting": {"reason": "CreateContainerConfigError", "message": "secret \"creds\" not found"}},
            }],
        }));
        assert_eq!(
            problem(&missing).unwrap(),
            "pod db-0: container mysql: CreateContainerConfigError: secret \"creds\" not found"
        );
        let unscheduled = pod(serde_json::json!({
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False", "message": "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims."}],
        }));
        assert!(
            problem(&unscheduled)
                .unwrap()
                .contains("unbound immediate PersistentVolumeClaims")
        );
        assert_eq!(
            problems(&[("db-0".to_string(), None)]),
            ["pod db-0: not created yet".to_string()]
        );
    }
}
