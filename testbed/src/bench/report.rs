//! Renders one run's figures as Markdown, ready to paste into `docs/benchmarks.md`.
use std::fmt::Write as _;
use std::time::Duration;

use super::{BenchReport, OperatorFigures};

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

fn per_db(count: usize, databases: usize) -> f64 {
    count as f64 / databases.max(1) as f64
}

fn operator_rows(out: &mut String, report: &BenchReport, op: &OperatorFigures) {
    let n = report.options_databases;
    let c = &op.converge;
    let ratio = c.writes as f64 / op.minimum_writes.max(1) as f64;
    let (restart_writes, restart_reads, restart_took) = match &op.restart {
        Some((counts, _, took)) => (
            counts.all_writes().to_string(),
            format!("{:.1}", per_db(counts.reads, n)),
            format!("{:.1} s", took.as_secs_f64()),
        ),
        None => ("-".into(), "-".into(), "-".into()),
    };
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
    let _ = writeln!(
        out,
        "- one database on the idle system ({} samples): creation → workload created median **{}**, p99 {}; → converged median {}, p99 {}",
        report.single_workload.len(),
        ms(quantile(&report.single_workload, 0.5)),
        ms(quantile(&report.single_workload, 0.99)),
        ms(quantile(&report.single_converged, 0.5)),
        ms(quantile(&report.single_converged, 0.99)),
    );
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
        let writes: Vec<String> = op
            .converge
            .writes_by_target
            .iter()
            .map(|(t, c)| format!("{t} {:.2}", per_db(*c, n)))
            .collect();
        let reads: Vec<String> = op
            .converge
            .reads_by_target
            .iter()
            .map(|(t, c)| format!("{t} {:.2}", per_db(*c, n)))
            .collect();
        let _ = writeln!(
            out,
            "- {} writes/db by target: {}",
            op.name,
            writes.join(", ")
        );
        let _ = writeln!(
            out,
            "- {} reads/db by target: {}",
            op.name,
            reads.join(", ")
        );
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
    out
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
