//! Process accounting from `/proc`: peak resident memory (`VmHWM`) and CPU time (utime +
//! stime), the figures the benchmark reports per operator and for the bench process itself.
use std::time::Duration;

/// CPU time and memory of one process at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessSample {
    /// User + system CPU time so far.
    pub cpu: Duration,
    /// Peak resident set size so far (`VmHWM`), in bytes.
    pub peak_rss: u64,
    /// Current resident set size (`VmRSS`), in bytes.
    pub rss: u64,
}

impl ProcessSample {
    pub fn peak_rss_mib(&self) -> f64 {
        self.peak_rss as f64 / (1024.0 * 1024.0)
    }
    pub fn rss_mib(&self) -> f64 {
        self.rss as f64 / (1024.0 * 1024.0)
    }
}

/// Clock ticks per second of `/proc/<pid>/stat` times; 100 on every Linux the operators target
/// (USER_HZ is fixed in the kernel ABI), read from `getconf` when available.
fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// `kB` value of a `/proc/<pid>/status` line such as `VmHWM: 12345 kB`, in bytes.
fn status_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kib| kib * 1024)
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line, in ticks. The command name
/// (field 2) may hold spaces, so fields are counted after its closing parenthesis.
fn stat_ticks(stat: &str) -> Option<u64> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // after_comm starts at field 3 (state): utime is field 14 -> index 11.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Samples `pid` ("self" for this process); None when the process is gone.
pub fn sample(pid: &str) -> Option<ProcessSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ticks = stat_ticks(&stat)?;
    let per_second = clock_ticks();
    Some(ProcessSample {
        cpu: Duration::from_millis(ticks * 1000 / per_second),
        peak_rss: status_kib(&status, "VmHWM")?,
        rss: status_kib(&status, "VmRSS").unwrap_or(0),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_fields() {
        let status = "Name:\tprovisioner\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(status_kib(status, "VmHWM"), Some(20480 * 1024));
        assert_eq!(status_kib(status, "VmRSS"), Some(10240 * 1024));
        assert_eq!(status_kib(status, "VmSwap"), None);
        let stat = "42 (ops manager) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0";
        assert_eq!(stat_ticks(stat), Some(300));
    }

    #[test]
    fn samples_this_process() {
        let me = sample("self").unwrap();
        assert!(me.peak_rss >= me.rss && me.rss > 0);
    }
}
