//! `wagate bench forward`: post status events through ingress for E fresh projects, each with
//! one endpoint on an in-process receiver, and measure what comes out the other side: forwards
//! per second, ingress-to-delivery latency, and whether every delivery arrived once, signed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use serde::Serialize;
use tokio::task::JoinSet;

use super::ForwardArgs;
use super::api::Api;
use super::endpoints;
use super::model::{Item, Outbound};
use super::payload::{self, Ctx};
use super::receiver::{Counts, Receipts, Receiver};
use super::workload::Format;
use crate::domain::status::Status;

/// The one JSON line `wagate bench forward` prints.
#[derive(Debug, Clone, Serialize)]
pub struct ForwardSummary {
    pub target: String,
    pub seed: u64,
    pub events: u64,
    pub endpoints: usize,
    pub slow_endpoints: usize,
    pub concurrency: usize,
    pub batch: usize,
    /// `--rate`, events per second, when posting was paced.
    pub rate: Option<f64>,
    pub events_accepted: u64,
    pub requests_failed: u64,
    pub post_secs: f64,
    pub posted_per_sec: f64,
    /// Healthy endpoints' first receipts of accepted events.
    pub delivered: u64,
    /// `delivered` over the time from the first post to the last healthy receipt.
    pub forwards_per_sec: f64,
    /// Ingress-to-delivery, healthy endpoints only.
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub latency_max_ms: f64,
    pub duplicates: u64,
    pub missing: u64,
    pub bad_signatures: u64,
    /// Verified requests that were no expected delivery (wrong endpoint, unknown wamid, a
    /// second event id for one wamid).
    pub unexpected: u64,
    /// Hanging endpoints' first receipts, and their repeats (the gateway's retries after its
    /// timeout, legitimate there).
    pub slow_delivered: u64,
    pub slow_repeats: u64,
    /// Whether `--timeout-secs` passed before every healthy delivery arrived.
    pub timed_out: bool,
    pub server_rss_start_bytes: Option<u64>,
    pub server_rss_end_bytes: Option<u64>,
}

impl ForwardSummary {
    /// What makes the run a failure; empty when it passed.
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (name, n) in [
            ("missing", self.missing),
            ("duplicates", self.duplicates),
            ("bad_signatures", self.bad_signatures),
            ("unexpected", self.unexpected),
        ] {
            if n > 0 {
                out.push(format!("{name} {n}"));
            }
        }
        if self.events_accepted == 0 {
            out.push("the gateway accepted no event".to_owned());
        }
        out
    }
}

/// One request of the run, built before the clock starts.
struct Post {
    format: Format,
    body: Bytes,
    /// Its events, by index: consecutive, all for one project.
    events: Range<usize>,
}

/// Every event's wamid and endpoint (handed to the receiver before the run), and the requests
/// that carry them.
struct Plan {
    events: Vec<(String, u32)>,
    posts: Vec<Post>,
}

impl Plan {
    fn event_count(&self) -> usize {
        self.posts.last().map_or(0, |p| p.events.end)
    }
}

/// Builds the run's requests: request `r` goes to project `r mod E` and carries `batch` events
/// (fewer in the last), each event a new wamid with one status, so that the gateway must
/// forward every one.
fn plan(numbers: &[String], events: usize, batch: usize, meta_share: f64, seed: u64) -> Plan {
    let mut rng = StdRng::seed_from_u64(seed);
    let tag = rng.random::<u64>();
    let ids = |rng: &mut StdRng| format!("1{:014}", rng.random_range(0..100_000_000_000_000u64));
    let ctx_ids: Vec<(String, String)> = numbers
        .iter()
        .map(|_| (ids(&mut rng), ids(&mut rng)))
        .collect();
    let mut outbound = Vec::with_capacity(events);
    let mut statuses = Vec::with_capacity(events);
    for i in 0..events {
        let at = 1_750_000_000 + i as i64;
        outbound.push(Outbound {
            wamid: format!("wamid.FWD{tag:016x}{i:010}"),
            phone: format!(
                "91{}{:09}",
                rng.random_range(6..=9),
                rng.random_range(0..1_000_000_000u32)
            ),
            campaign_id: format!("cmp_fwd_{}", i % 5),
            at: [at, at + 1, at + 2, at + 3],
        });
        statuses.push([Status::Sent, Status::Delivered, Status::Read][rng.random_range(0..3)]);
    }
    let ctxs: Vec<Ctx> = numbers
        .iter()
        .zip(ctx_ids)
        .map(|(number, (waba_id, phone_number_id))| Ctx {
            business_number: number,
            waba_id,
            phone_number_id,
            outbound: &outbound,
            inbound: &[],
        })
        .collect();
    let mut plan = Plan {
        events: Vec::with_capacity(events),
        posts: Vec::new(),
    };
    let mut next = 0;
    while next < events {
        let project = plan.posts.len() % numbers.len();
        let range = next..(next + batch).min(events);
        next = range.end;
        let items: Vec<Item> = range
            .clone()
            .map(|i| Item::Status {
                message: i as u32,
                status: statuses[i],
            })
            .collect();
        let ctx = &ctxs[project];
        let format = if rng.random_bool(meta_share) {
            Format::Meta
        } else {
            Format::Datagen
        };
        let body = match format {
            Format::Meta => payload::meta(ctx, &items, &mut rng),
            Format::Datagen => payload::datagen(ctx, &items, &mut rng),
        };
        for i in range.clone() {
            plan.events
                .push((outbound[i].wamid.clone(), project as u32));
        }
        plan.posts.push(Post {
            format,
            body: Bytes::from(body),
            events: range,
        });
    }
    plan
}

pub async fn run_forward(args: ForwardArgs) -> anyhow::Result<ForwardSummary> {
    validate(&args)?;
    let api = Api::new(&args.target, args.concurrency)?;
    api.healthz().await?;
    let rss_start = api.server_rss().await;

    let mut os = rand::rng();
    let seed = args.seed.unwrap_or_else(|| os.random());
    let run = format!("fwd-{:010x}", os.random::<u64>() >> 24);
    // Fresh per run from the OS, not the seed: a business number belongs to one project.
    let base = os.random_range(0..1_000_000_000 - args.endpoints as u64);
    let numbers: Vec<String> = (0..args.endpoints as u64)
        .map(|e| format!("918{:09}", base + e))
        .collect();

    let started = Instant::now();
    let mut plan = {
        let (numbers, events, batch, share) =
            (numbers.clone(), args.events, args.batch, args.meta_share);
        tokio::task::spawn_blocking(move || plan(&numbers, events, batch, share, seed))
            .await
            .context("building the requests")?
    };
    let slow: Vec<bool> = (0..args.endpoints)
        .map(|e| e >= args.endpoints - args.slow_endpoints)
        .collect();
    let epoch = Instant::now();
    let events = plan.event_count();
    let receiver = Arc::new(Receiver::new(
        std::mem::take(&mut plan.events),
        &slow,
        Duration::from_secs(args.slow_hold_secs),
        epoch,
    ));
    let addr: SocketAddr = receiver
        .clone()
        .serve(args.receiver_listen)
        .await
        .with_context(|| format!("starting the receiver on {}", args.receiver_listen))?;
    eprintln!(
        "bench: {} events in {} requests built in {:.1}s; receiver on {addr}; seed {seed}",
        events,
        plan.posts.len(),
        started.elapsed().as_secs_f64()
    );

    let urls: Vec<String> = (0..args.endpoints)
        .map(|e| Receiver::url(addr, e))
        .collect();
    let secrets =
        endpoints::create_all(&api, args.admin_token.as_deref(), &run, &numbers, &urls).await?;
    for (e, secret) in secrets.into_iter().enumerate() {
        receiver.set_secret(e, secret);
    }
    eprintln!(
        "bench: {} projects `{run}-*` with one endpoint each ({} hanging)",
        args.endpoints, args.slow_endpoints
    );

    let plan = Arc::new(plan);
    let progress = Arc::new(Progress::default());
    let ticker = tokio::spawn(report_progress(
        progress.clone(),
        receiver.clone(),
        events as u64,
    ));
    let first_post = Instant::now();
    let posted = post_all(&api, &plan, &receiver, &progress, &args).await;
    let post_secs = first_post.elapsed().as_secs_f64();
    report_posting(&posted, post_secs);

    let expected = receiver.healthy_expected(&posted.accepted);
    progress.expected.store(expected, Relaxed);
    let timed_out = !wait(&receiver, &posted.accepted, expected, args.timeout_secs).await;
    ticker.abort();
    let counts = receiver.counts();
    let receipts = receiver.receipts(&posted.accepted);
    if let Some(p) = receiver.first_problem() {
        eprintln!("bench: first problem: {p}");
    }
    let rss_end = api.server_rss().await;

    let since_first = first_post.saturating_duration_since(epoch);
    Ok(summarize(Measured {
        args: &args,
        seed,
        posted: &posted,
        post_secs,
        counts,
        receipts: &receipts,
        since_first,
        timed_out,
        rss: (rss_start, rss_end),
    }))
}

fn validate(args: &ForwardArgs) -> anyhow::Result<()> {
    if args.events == 0 || args.endpoints == 0 || args.concurrency == 0 || args.batch == 0 {
        bail!("--events, --endpoints, --concurrency and --batch must be at least 1");
    }
    if args.slow_endpoints >= args.endpoints {
        bail!("--slow-endpoints must leave at least one healthy endpoint");
    }
    if args.endpoints > 100_000 {
        bail!("--endpoints is at most 100000 (one project each)");
    }
    if args.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
        bail!("--rate must be a positive number of events per second");
    }
    if !(0.0..=1.0).contains(&args.meta_share) {
        bail!("--meta-share must be between 0 and 1");
    }
    Ok(())
}

#[derive(Default)]
struct Progress {
    posted: AtomicU64,
    accepted: AtomicU64,
    failed: AtomicU64,
    /// Healthy deliveries to wait for, once posting is done (0 until then).
    expected: AtomicU64,
}

/// What posting observed.
#[derive(Debug, Default)]
struct Posted {
    /// Per event: did the gateway answer 200 to the request carrying it?
    accepted: Vec<bool>,
    events_accepted: u64,
    requests_failed: u64,
    errors: BTreeMap<String, u64>,
    first_error: Option<String>,
}

/// C workers take requests in order; with `--rate`, request `r` waits for its slot
/// (`first event index / rate` after the start) so the gateway sees a steady rate.
async fn post_all(
    api: &Api,
    plan: &Arc<Plan>,
    receiver: &Arc<Receiver>,
    progress: &Arc<Progress>,
    args: &ForwardArgs,
) -> Posted {
    let next = Arc::new(AtomicUsize::new(0));
    let urls = Arc::new([
        api.url(Format::Datagen.path()),
        api.url(Format::Meta.path()),
    ]);
    let start = tokio::time::Instant::now();
    let mut workers = JoinSet::new();
    for _ in 0..args.concurrency {
        let (api, plan, receiver, progress) = (
            api.clone(),
            plan.clone(),
            receiver.clone(),
            progress.clone(),
        );
        let (next, urls, rate) = (next.clone(), urls.clone(), args.rate);
        workers.spawn(async move {
            let mut out = Posted::default();
            let mut accepted = Vec::new();
            loop {
                let r = next.fetch_add(1, Relaxed);
                let Some(post) = plan.posts.get(r) else {
                    break;
                };
                if let Some(rate) = rate {
                    let due = Duration::from_secs_f64(post.events.start as f64 / rate);
                    tokio::time::sleep_until(start + due).await;
                }
                let url = &urls[usize::from(post.format == Format::Meta)];
                let now = Instant::now();
                for i in post.events.clone() {
                    receiver.mark_sent(i, now);
                }
                let n = post.events.len() as u64;
                match send(&api, url.clone(), post.body.clone()).await {
                    Ok(()) => {
                        accepted.push(r);
                        out.events_accepted += n;
                        progress.accepted.fetch_add(n, Relaxed);
                    }
                    Err((kind, detail)) => {
                        out.requests_failed += 1;
                        *out.errors.entry(kind).or_default() += 1;
                        out.first_error.get_or_insert(detail);
                        progress.failed.fetch_add(1, Relaxed);
                    }
                }
                progress.posted.fetch_add(n, Relaxed);
            }
            (out, accepted)
        });
    }
    let mut total = Posted {
        accepted: vec![false; plan.event_count()],
        ..Posted::default()
    };
    while let Some(joined) = workers.join_next().await {
        let Ok((out, accepted)) = joined else {
            eprintln!("bench: a posting worker died; its requests count as refused");
            continue;
        };
        for r in accepted {
            total.accepted[plan.posts[r].events.clone()].fill(true);
        }
        total.events_accepted += out.events_accepted;
        total.requests_failed += out.requests_failed;
        for (kind, n) in out.errors {
            *total.errors.entry(kind).or_default() += n;
        }
        total.first_error = total.first_error.or(out.first_error);
    }
    total
}

/// Posts one body; only a 200 counts (the gateway's promise that the events are durable).
async fn send(api: &Api, url: reqwest::Url, body: Bytes) -> Result<(), (String, String)> {
    let transport = |e: reqwest::Error| {
        let kind = if e.is_timeout() {
            "timeout"
        } else if e.is_connect() {
            "connect"
        } else {
            "transport"
        };
        (kind.to_owned(), e.to_string())
    };
    let resp = api.ingest(url, body).send().await.map_err(transport)?;
    let status = resp.status();
    // Reading the body lets the connection go back to the pool.
    let bytes = resp.bytes().await.map_err(transport)?;
    if status != StatusCode::OK {
        let text = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned();
        return Err((
            format!("HTTP {}", status.as_u16()),
            format!("{status}: {text}"),
        ));
    }
    Ok(())
}

fn report_posting(posted: &Posted, secs: f64) {
    eprintln!(
        "bench: posting done in {secs:.2}s: {} events accepted, {} requests failed",
        posted.events_accepted, posted.requests_failed
    );
    for (kind, n) in &posted.errors {
        eprintln!("bench:   {kind}: {n}");
    }
    if let Some(e) = &posted.first_error {
        eprintln!("bench:   first error: {e}");
    }
}

/// Waits until every accepted healthy event has arrived; false if `timeout_secs` passed first.
async fn wait(receiver: &Receiver, accepted: &[bool], expected: u64, timeout_secs: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(timeout_secs);
    loop {
        // The counter is cheap; the scan settles it (a delivery of an event whose POST failed
        // on our side counts in the first but is not expected).
        if receiver.counts().healthy_delivered >= expected
            && receiver.receipts(accepted).missing == 0
        {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn report_progress(progress: Arc<Progress>, receiver: Arc<Receiver>, total: u64) {
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let (mut last_posted, mut last_delivered) = (0, 0);
    loop {
        tick.tick().await;
        let posted = progress.posted.load(Relaxed);
        let c = receiver.counts();
        let expected = match progress.expected.load(Relaxed) {
            0 => "?".to_owned(),
            n => n.to_string(),
        };
        eprintln!(
            "[{:>4.0}s] posted {posted}/{total} ({}/s, {} accepted, {} requests failed)  \
             delivered {}/{expected} ({}/s)  hanging {}  dup {}  bad sig {}",
            start.elapsed().as_secs_f64(),
            posted - last_posted,
            progress.accepted.load(Relaxed),
            progress.failed.load(Relaxed),
            c.healthy_delivered,
            c.healthy_delivered - last_delivered,
            c.slow_delivered,
            c.duplicates,
            c.bad_signatures,
        );
        (last_posted, last_delivered) = (posted, c.healthy_delivered);
    }
}

/// Everything a run measured, gathered for its summary.
struct Measured<'a> {
    args: &'a ForwardArgs,
    seed: u64,
    posted: &'a Posted,
    post_secs: f64,
    counts: Counts,
    receipts: &'a Receipts,
    /// From the receiver's epoch to the first post.
    since_first: Duration,
    timed_out: bool,
    rss: (Option<u64>, Option<u64>),
}

fn summarize(m: Measured) -> ForwardSummary {
    let r = m.receipts;
    let delivered = r.latencies_us.len() as u64;
    let span = r
        .last_healthy
        .map(|last| last.saturating_sub(m.since_first));
    ForwardSummary {
        target: m.args.target.clone(),
        seed: m.seed,
        events: m.posted.accepted.len() as u64,
        endpoints: m.args.endpoints,
        slow_endpoints: m.args.slow_endpoints,
        concurrency: m.args.concurrency,
        batch: m.args.batch,
        rate: m.args.rate,
        events_accepted: m.posted.events_accepted,
        requests_failed: m.posted.requests_failed,
        post_secs: round3(m.post_secs),
        posted_per_sec: per_sec(m.posted.events_accepted, m.post_secs),
        delivered,
        forwards_per_sec: per_sec(delivered, span.map_or(0.0, |d| d.as_secs_f64())),
        latency_p50_ms: percentile_ms(&r.latencies_us, 0.50),
        latency_p99_ms: percentile_ms(&r.latencies_us, 0.99),
        latency_max_ms: percentile_ms(&r.latencies_us, 1.0),
        duplicates: m.counts.duplicates,
        missing: r.missing,
        bad_signatures: m.counts.bad_signatures,
        unexpected: m.counts.unexpected,
        slow_delivered: m.counts.slow_delivered,
        slow_repeats: m.counts.slow_repeats,
        timed_out: m.timed_out,
        server_rss_start_bytes: m.rss.0,
        server_rss_end_bytes: m.rss.1,
    }
}

/// Nearest-rank percentile of sorted microseconds, in milliseconds; 0 when there are none.
fn percentile_ms(sorted_us: &[u32], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted_us.len() as f64).ceil() as usize;
    round3(f64::from(sorted_us[rank.clamp(1, sorted_us.len()) - 1]) / 1000.0)
}

/// `n` per second over `secs`; 0 over no time at all.
fn per_sec(n: u64, secs: f64) -> f64 {
    if secs <= 0.0 {
        return 0.0;
    }
    round3(n as f64 / secs)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests;
