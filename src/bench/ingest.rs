//! `wagate bench ingest`: create a fresh project, post a seeded webhook workload at it, wait for
//! it to drain, verify nothing was lost or went backwards, and measure the HTTP ceiling.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rand::Rng;
use serde::Serialize;

use super::IngestArgs;
use super::api::Api;
use super::load::{self, LoadResult};
use super::verify::{self, Verdict};
use super::workload::{Expected, Spec, Workload};

/// The one JSON line `wagate bench ingest` prints. Verification fields are `null` when the
/// listing could not be read (`verify_error` says why).
#[derive(Debug, Clone, Serialize)]
pub struct IngestSummary {
    pub target: String,
    pub project_id: String,
    pub seed: u64,
    pub concurrency: usize,
    pub events_sent: u64,
    pub events_accepted: u64,
    /// Events the server itself reported quarantined in its replies: the workload should
    /// produce none.
    pub events_quarantined: u64,
    pub requests: u64,
    pub requests_failed: u64,
    pub duration_secs: f64,
    pub accepted_per_sec: f64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub latency_max_ms: f64,
    /// From the last accepted request until the stats showed everything applied; `null` if
    /// that did not happen within `--drain-timeout-secs`.
    pub drain_secs: Option<f64>,
    pub expected_history_events: u64,
    pub expected_inbound: u64,
    pub events_lost: Option<u64>,
    pub messages_missing: Option<u64>,
    pub backwards: Option<u64>,
    pub history_duplicates: Option<u64>,
    pub unexpected_events: Option<u64>,
    pub verify_error: Option<String>,
    pub healthz_per_sec: f64,
    /// The server's resident memory before the load and after the drain, from its
    /// `/metrics` (`null` if it exports none).
    pub server_rss_start_bytes: Option<u64>,
    pub server_rss_end_bytes: Option<u64>,
}

pub async fn run_ingest(args: IngestArgs) -> anyhow::Result<IngestSummary> {
    validate(&args)?;
    let api = Api::new(&args.target, args.concurrency)?;
    api.healthz().await?;
    let rss_start = api.server_rss().await;

    // Fresh per run from the OS, not the seed: a business number belongs to one project, so a
    // replayed seed must still get its own.
    let mut os = rand::rng();
    let project_id = format!("bench-{:012x}", os.random::<u64>() >> 16);
    let business_digits = format!("919{:09}", os.random_range(0..1_000_000_000u32));
    let seed = args.seed.unwrap_or_else(|| os.random());
    let project = api
        .create_project(
            args.admin_token.as_deref(),
            &project_id,
            &format!("+{business_digits}"),
        )
        .await?;
    eprintln!(
        "bench: project {} for +{business_digits}, seed {seed}",
        project.id
    );

    let spec = Spec {
        events: args.events,
        seed,
        duplicate_rate: args.duplicate_rate,
        meta_share: args.meta_share,
        inbound_share: args.inbound_share,
        business_number: business_digits,
    };
    let started = Instant::now();
    let workload = tokio::task::spawn_blocking(move || Workload::generate(&spec))
        .await
        .context("generating the workload")?;
    let workload = Arc::new(workload);
    eprintln!(
        "bench: {} events in {} requests ({} messages, {} inbound) built in {:.1}s",
        workload.events(),
        workload.requests.len(),
        workload.outbound.len(),
        workload.inbound.len(),
        started.elapsed().as_secs_f64()
    );

    let load = load::drive(&api, workload.clone(), args.concurrency).await;
    report_load(&load);
    let expected = workload.expected(&load.accepted);

    let since = load.last_accept.unwrap_or_else(Instant::now);
    let timeout = Duration::from_secs(args.drain_timeout_secs);
    let drain = verify::wait_for_drain(&api, &project.api_key, &expected, since, timeout).await;
    // Read again after the wait: more may have landed since the last poll before a timeout.
    let stats = api.stats(&project.api_key).await.ok().or(drain.stats);
    if let Some(s) = &stats {
        eprintln!(
            "bench: stats: {} messages (sent {}, failed {}, delivered {}, read {}), {} history events, {} inbound",
            s.messages.total,
            s.messages.sent,
            s.messages.failed,
            s.messages.delivered,
            s.messages.read,
            s.history_events,
            s.inbound_messages
        );
    }
    let inbound_seen = stats.as_ref().map_or(0, |s| s.inbound_messages);
    let verdict = verify::list_messages(&api, &project.api_key, expected.status.len())
        .await
        .map(|listed| verify::compare(&workload, &expected, &listed, inbound_seen));
    match &verdict {
        Ok(v) => eprintln!("bench: verification: {v:?}"),
        Err(e) => eprintln!("bench: verification failed: {e:#}"),
    }

    let rss_end = api.server_rss().await;
    if let (Some(a), Some(b)) = (rss_start, rss_end) {
        eprintln!(
            "bench: server resident memory {} MB -> {} MB",
            a >> 20,
            b >> 20
        );
    }
    let (healthz_per_sec, healthz_failed) =
        load::healthz(&api, args.concurrency, args.healthz_secs).await;
    if healthz_failed > 0 {
        eprintln!("bench: {healthz_failed} healthz requests failed");
    }

    let run = Run {
        project_id: project.id,
        seed,
        workload,
        load,
        expected,
        drain_secs: drain.secs,
        verdict,
        healthz_per_sec,
        rss: (rss_start, rss_end),
    };
    Ok(run.summary(&args))
}

fn validate(args: &IngestArgs) -> anyhow::Result<()> {
    if args.events == 0 || args.concurrency == 0 {
        bail!("--events and --concurrency must be at least 1");
    }
    for (name, v) in [
        ("--duplicate-rate", args.duplicate_rate),
        ("--meta-share", args.meta_share),
        ("--inbound-share", args.inbound_share),
    ] {
        if !(0.0..=1.0).contains(&v) {
            bail!("{name} must be between 0 and 1, got {v}");
        }
    }
    Ok(())
}

fn report_load(load: &LoadResult) {
    eprintln!(
        "bench: load done in {:.2}s: {} events accepted, {} requests failed",
        load.duration.as_secs_f64(),
        load.events_accepted,
        load.requests_failed
    );
    for (kind, n) in &load.errors {
        eprintln!("bench:   {kind}: {n}");
    }
    if let Some(e) = &load.first_error {
        eprintln!("bench:   first error: {e}");
    }
    if load.server_accepted != load.events_accepted || load.server_quarantined > 0 {
        eprintln!(
            "bench: the server reported {} accepted and {} quarantined (bench counted {} sent in accepted requests)",
            load.server_accepted, load.server_quarantined, load.events_accepted
        );
    }
}

/// Everything one run measured, gathered for its summary.
struct Run {
    project_id: String,
    seed: u64,
    workload: Arc<Workload>,
    load: LoadResult,
    expected: Expected,
    drain_secs: Option<f64>,
    verdict: anyhow::Result<Verdict>,
    healthz_per_sec: f64,
    rss: (Option<u64>, Option<u64>),
}

impl Run {
    fn summary(self, args: &IngestArgs) -> IngestSummary {
        let Run {
            project_id,
            seed,
            workload,
            load,
            expected,
            drain_secs,
            verdict,
            healthz_per_sec,
            rss,
        } = self;
        let secs = load.duration.as_secs_f64();
        let field = |f: fn(&Verdict) -> u64| verdict.as_ref().ok().map(f);
        IngestSummary {
            target: args.target.clone(),
            project_id,
            seed,
            concurrency: args.concurrency,
            events_sent: workload.events() as u64,
            events_accepted: load.events_accepted,
            events_quarantined: load.server_quarantined,
            requests: workload.requests.len() as u64,
            requests_failed: load.requests_failed,
            duration_secs: round3(secs),
            accepted_per_sec: round3(load.events_accepted as f64 / secs.max(1e-9)),
            latency_p50_ms: percentile_ms(&load.latencies_us, 0.50),
            latency_p99_ms: percentile_ms(&load.latencies_us, 0.99),
            latency_max_ms: percentile_ms(&load.latencies_us, 1.0),
            drain_secs: drain_secs.map(round3),
            expected_history_events: expected.history.len() as u64,
            expected_inbound: expected.inbound.len() as u64,
            events_lost: field(|v| v.events_lost),
            messages_missing: field(|v| v.messages_missing),
            backwards: field(|v| v.backwards),
            history_duplicates: field(|v| v.history_duplicates),
            unexpected_events: field(|v| v.unexpected_events),
            verify_error: verdict.as_ref().err().map(|e| format!("{e:#}")),
            healthz_per_sec: round3(healthz_per_sec),
            server_rss_start_bytes: rss.0,
            server_rss_end_bytes: rss.1,
        }
    }
}

/// Nearest-rank percentile of sorted microseconds, in milliseconds; 0 when nothing was accepted.
fn percentile_ms(sorted_us: &[u32], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted_us.len() as f64).ceil() as usize;
    let us = sorted_us[rank.clamp(1, sorted_us.len()) - 1];
    round3(f64::from(us) / 1000.0)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let us: Vec<u32> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile_ms(&us, 0.50), 50.0);
        assert_eq!(percentile_ms(&us, 0.99), 99.0);
        assert_eq!(percentile_ms(&us, 1.0), 100.0);
        assert_eq!(percentile_ms(&[1500], 0.5), 1.5);
        assert_eq!(percentile_ms(&[], 0.99), 0.0);
    }
}
