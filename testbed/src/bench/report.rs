//! Renders one run's figures as Markdown, ready to paste into `docs/benchmarks.md`.
use std::fmt::Write as _;
use std::time::Duration;

use super::process::ProcessSample;
use super::requests::RequestCounts;
use super::{BenchReport, OperatorFigures, RenewalFigures};

/// The `q`-quantile (0..=1) by nearest rank; None for no samples.
pub fn quantile(samples: &[Duration], q: f64) -> Option<Duration> {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1));
    sorted.get(rank - 1).copied()
}

fn ms(d: Option<Duration>) -> String {
    d.map(|d| format!("{:.0} ms", d.as_secs_f64() * 1000.0))
        .unwrap_or_else(|| "-".into())
}

pub(super) fn per_db(count: usize, databases: usize) -> f64 {
    count as f64 / databases.max(1) as f64
}

/// `target count/db, ...`.
fn by_target(counts: &std::collections::BTreeMap<String, usize>, databases: usize) -> String {
    counts
        .iter()
        .map(|(t, c)| format!("{t} {:.2}", per_db(*c, databases)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The latency line of the databases created one at a time.
pub(super) fn single_line(out: &mut String, workload: &[Duration], converged: &[Duration]) {
    let _ = writeln!(
        out,
        "- one database on the idle system ({} samples): creation → workload created median **{}**, p99 {}; → converged median {}, p99 {}",
        workload.len(),
        ms(quantile(workload, 0.5)),
        ms(quantile(workload, 0.99)),
        ms(quantile(converged, 0.5)),
        ms(quantile(converged, 0.99)),
    );
}

/// The `- <operator> writes/db by target: ...` and `reads/db` lines.
pub(super) fn target_lines(out: &mut String, name: &str, counts: &RequestCounts, n: usize) {
    let _ = writeln!(
        out,
        "- {name} writes/db by target: {}",
        by_target(&counts.writes_by_target, n)
    );
    let _ = writeln!(
        out,
        "- {name} reads/db by target: {}",
        by_target(&counts.reads_by_target, n)
    );
}

/// The restart columns: writes, reads per database, time until quiet (`-`: not restarted).
pub(super) fn restart_cells(
    restart: &Option<(RequestCounts, ProcessSample, Duration)>,
    n: usize,
) -> (String, String, String) {
    match restart {
        Some((counts, _, took)) => (
            counts.all_writes().to_string(),
            format!("{:.1}", per_db(counts.reads, n)),
            format!("{:.1} s", took.as_secs_f64()),
        ),
        None => ("-".into(), "-".into(), "-".into()),
    }
}

fn operator_rows(out: &mut String, report: &BenchReport, op: &OperatorFigures) {
    let n = report.options_databases;
    let c = &op.converge;
    let ratio = c.writes as f64 / op.minimum_writes.max(1) as f64;
    let (restart_writes, restart_reads, restart_took) = restart_cells(&op.restart, n);
    let _ = writeln!(
        out,
        "| {} | {:.2} | {:.2} | {:.2} ({}) | {:.2} | {} | {:.2} | {} | {} | {} | {} / {} | {:.1} | {:.1} | {:.1} |",
        op.name,
        per_db(c.reads, n),
        per_db(c.writes, n),
        per_db(op.minimum_writes, n),
        format_args!("{ratio:.2}x"),
        per_db(c.events, n),
        c.noop_writes,
        per_db(c.watches, 1),
        c.errors,
        op.idle_writes,
        restart_writes,
        restart_reads,
        restart_took,
        op.converge_cpu.as_secs_f64(),
        op.after_idle.cpu.as_secs_f64(),
        op.after_idle.peak_rss_mib(),
    );
}

/// The report as Markdown.
pub fn render(report: &BenchReport) -> String {
    let mut out = String::new();
    let n = report.options_databases;
    let _ = writeln!(
        out,
        "### N = {n} databases ({} namespaces, {} unrelated Secrets)\n",
        report.namespaces, report.unrelated_secrets
    );
    let _ = writeln!(
        out,
        "- creates sent in {:.1} s; all converged (workload + CertificatesReady + TLSSecretsReady) after **{:.1} s**; all Ready after {:.1} s ({:.0} databases/s)",
        report.create_send.as_secs_f64(),
        report.converge_all.as_secs_f64(),
        report.ready_all.as_secs_f64(),
        n as f64 / report.ready_all.as_secs_f64().max(0.001),
    );
    single_line(&mut out, &report.single_workload, &report.single_converged);
    let (issued, span) = report.issued;
    let _ = writeln!(
        out,
        "- the cert-manager stand-in ({}) issued {issued} Certificates in {:.1} s: **{:.1} Certificates/s**",
        match report.issuance_rate {
            Some(rate) => format!("limited to {rate} Certificates/s"),
            None => "unlimited".to_string(),
        },
        span.as_secs_f64(),
        issued as f64 / span.as_secs_f64().max(0.001),
    );
    let idle: Vec<String> = report
        .idle_writes_all
        .iter()
        .map(|(u, c)| format!("{u}: {c}"))
        .collect();
    let _ = writeln!(
        out,
        "- writes in the {} s after convergence, every client: {}",
        report.idle.as_secs(),
        if idle.is_empty() {
            "**none**".to_string()
        } else {
            idle.join(", ")
        }
    );
    let _ = writeln!(
        out,
        "- testbed process (API server + stand-ins + bench watches): {:.1} CPU s, peak RSS {:.0} MiB; {} API requests during convergence\n",
        report.testbed.cpu.as_secs_f64(),
        report.testbed.peak_rss_mib(),
        report.total_requests
    );
    let _ = writeln!(
        out,
        "| operator | reads/db | writes/db | minimum/db (ratio) | events/db | no-op writes | watches | errors | idle writes | restart: writes / reads/db | restart quiet after | CPU s (converge) | CPU s (total) | peak RSS MiB |"
    );
    let _ = writeln!(
        out,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for op in &report.operators {
        operator_rows(&mut out, report, op);
    }
    let _ = writeln!(out);
    for op in &report.operators {
        target_lines(&mut out, &op.name, &op.converge, n);
        if let Some((_, sample, _)) = &op.restart {
            let _ = writeln!(
                out,
                "- {} after restart: peak RSS {:.1} MiB, CPU {:.1} s",
                op.name,
                sample.peak_rss_mib(),
                sample.cpu.as_secs_f64()
            );
        }
    }
    if let Some(renewal) = &report.renewal {
        renewal_rows(&mut out, report, renewal);
    }
    out
}

/// Day 2: every certificate renewed at once.
fn renewal_rows(out: &mut String, report: &BenchReport, renewal: &RenewalFigures) {
    let n = report.options_databases;
    let (issued, span) = renewal.issued;
    let _ = writeln!(
        out,
        "\n**Renewal of every certificate at once** ({} Certificates, sent in {:.1} s; the stand-in issued {issued} in {:.1} s): every pod of a database serves the new serial after median **{}**, p95 {}, all after **{}**\n",
        renewal.certificates,
        renewal.send.as_secs_f64(),
        span.as_secs_f64(),
        ms(quantile(&renewal.served, 0.5)),
        ms(quantile(&renewal.served, 0.95)),
        ms(renewal.served.iter().max().copied()),
    );
    let _ = writeln!(
        out,
        "| operator | writes/db | events/db | reads/db | errors | peak requests/s (renewal) | peak requests/s (convergence) |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    for ((name, counts), (renewing, converging)) in report
        .operators
        .iter()
        .map(|o| &o.name)
        .zip(&renewal.requests)
        .zip(&renewal.peak_per_second)
    {
        let _ = writeln!(
            out,
            "| {name} | {:.2} | {:.2} | {:.2} | {} | {renewing} | {converging} |",
            per_db(counts.writes, n),
            per_db(counts.events, n),
            per_db(counts.reads, n),
            counts.errors,
        );
    }
    for (name, counts) in report
        .operators
        .iter()
        .map(|o| &o.name)
        .zip(&renewal.requests)
    {
        let _ = writeln!(
            out,
            "- {name} renewal writes/db by target: {}",
            by_target(&counts.writes_by_target, n)
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let samples: Vec<Duration> = (1..=20).map(Duration::from_millis).collect();
        assert_eq!(quantile(&samples, 0.5), Some(Duration::from_millis(10)));
        assert_eq!(quantile(&samples, 0.99), Some(Duration::from_millis(20)));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
