//! The two load phases: C workers posting the pre-built webhook bodies, then C workers hitting
//! `GET /healthz` to measure the HTTP stack's own ceiling on the same machine.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use tokio::task::JoinSet;

use super::api::Api;
use super::workload::{Format, Workload};

/// What the ingest phase observed.
#[derive(Debug, Default)]
pub struct LoadResult {
    /// Per request: did the server answer 200 (events durable)?
    pub accepted: Vec<bool>,
    /// Latency of each accepted request, microseconds, sorted.
    pub latencies_us: Vec<u32>,
    pub requests_failed: u64,
    pub events_accepted: u64,
    /// Sums of the server's own `accepted` / `quarantined` counts in its replies.
    pub server_accepted: u64,
    pub server_quarantined: u64,
    pub duration: Duration,
    /// When the last 200 arrived: the drain clock starts here.
    pub last_accept: Option<Instant>,
    /// Failures by kind (`HTTP 503`, `timeout`, `connect`, ...).
    pub errors: BTreeMap<String, u64>,
    /// The first failure's detail, to show the user what went wrong.
    pub first_error: Option<String>,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    events_accepted: AtomicU64,
    failed: AtomicU64,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Reply {
    accepted: u64,
    quarantined: u64,
}

struct Failure {
    kind: String,
    detail: String,
}

pub async fn drive(api: &Api, workload: Arc<Workload>, concurrency: usize) -> LoadResult {
    let next = Arc::new(AtomicUsize::new(0));
    let counters = Arc::new(Counters::default());
    let urls = Arc::new((
        api.url(Format::Datagen.path()),
        api.url(Format::Meta.path()),
    ));
    let start = Instant::now();
    let progress = tokio::spawn(progress(
        counters.clone(),
        workload.requests.len() as u64,
        start,
    ));
    let mut workers = JoinSet::new();
    for _ in 0..concurrency {
        let (api, workload) = (api.clone(), workload.clone());
        let (next, counters, urls) = (next.clone(), counters.clone(), urls.clone());
        workers.spawn(async move {
            let mut out = LoadResult::default();
            let mut accepted = Vec::new();
            loop {
                let i = next.fetch_add(1, Relaxed);
                let Some(req) = workload.requests.get(i) else {
                    break;
                };
                let url = match req.format {
                    Format::Datagen => &urls.0,
                    Format::Meta => &urls.1,
                };
                let t0 = Instant::now();
                match post(&api, url.clone(), req.body.clone()).await {
                    Ok(reply) => {
                        let now = Instant::now();
                        let us = (now - t0).as_micros();
                        out.latencies_us.push(u32::try_from(us).unwrap_or(u32::MAX));
                        out.last_accept = out.last_accept.max(Some(now));
                        out.events_accepted += req.items.len() as u64;
                        out.server_accepted += reply.accepted;
                        out.server_quarantined += reply.quarantined;
                        counters
                            .events_accepted
                            .fetch_add(req.items.len() as u64, Relaxed);
                        accepted.push(i);
                    }
                    Err(f) => {
                        out.requests_failed += 1;
                        *out.errors.entry(f.kind).or_default() += 1;
                        out.first_error.get_or_insert(f.detail);
                        counters.failed.fetch_add(1, Relaxed);
                    }
                }
                counters.requests.fetch_add(1, Relaxed);
            }
            (out, accepted)
        });
    }

    let mut total = LoadResult {
        accepted: vec![false; workload.requests.len()],
        ..LoadResult::default()
    };
    while let Some(joined) = workers.join_next().await {
        let (out, accepted) = match joined {
            Ok(done) => done,
            // A worker cannot panic on a server's answer; if it does anyway, the requests it
            // had claimed stay counted as not accepted.
            Err(e) => {
                eprintln!("bench: a load worker died: {e}");
                continue;
            }
        };
        for i in accepted {
            total.accepted[i] = true;
        }
        total.latencies_us.extend(out.latencies_us);
        total.requests_failed += out.requests_failed;
        total.events_accepted += out.events_accepted;
        total.server_accepted += out.server_accepted;
        total.server_quarantined += out.server_quarantined;
        total.last_accept = total.last_accept.max(out.last_accept);
        for (kind, n) in out.errors {
            *total.errors.entry(kind).or_default() += n;
        }
        total.first_error = total.first_error.or(out.first_error);
    }
    total.duration = start.elapsed();
    progress.abort();
    total.latencies_us.sort_unstable();
    total
}

/// Posts one body. Only a 200 counts: it is the server's promise that the events are durable.
async fn post(api: &Api, url: Url, body: Bytes) -> Result<Reply, Failure> {
    let resp = api.ingest(url, body).send().await.map_err(transport)?;
    let status = resp.status();
    // Reading the whole body lets the connection go back to the pool.
    let bytes = resp.bytes().await.map_err(transport)?;
    if status != StatusCode::OK {
        let text = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned();
        return Err(Failure {
            kind: format!("HTTP {}", status.as_u16()),
            detail: format!("{status}: {text}"),
        });
    }
    // The 200 is what matters; a reply without counts is still an acceptance.
    Ok(serde_json::from_slice(&bytes).unwrap_or_default())
}

fn transport(e: reqwest::Error) -> Failure {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else {
        "transport"
    };
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        source = s.source();
    }
    Failure {
        kind: kind.to_owned(),
        detail,
    }
}

async fn progress(counters: Arc<Counters>, total: u64, start: Instant) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let mut last = 0;
    loop {
        tick.tick().await;
        let accepted = counters.events_accepted.load(Relaxed);
        eprintln!(
            "[{:>4.0}s] requests {}/{}  events accepted {} ({}/s)  errors {}",
            start.elapsed().as_secs_f64(),
            counters.requests.load(Relaxed),
            total,
            accepted,
            accepted - last,
            counters.failed.load(Relaxed),
        );
        last = accepted;
    }
}

/// Requests per second `GET /healthz` sustains at this concurrency: the ceiling of the HTTP
/// stack, against which the ingest rate is read.
pub async fn healthz(api: &Api, concurrency: usize, secs: u64) -> (f64, u64) {
    if secs == 0 {
        return (0.0, 0);
    }
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let url = api.url("/healthz");
    let mut workers = JoinSet::new();
    for _ in 0..concurrency {
        let (api, url) = (api.clone(), url.clone());
        workers.spawn(async move {
            let (mut ok, mut failed) = (0u64, 0u64);
            while Instant::now() < deadline {
                let sent = api.client().get(url.clone()).send().await;
                let fine = match sent {
                    Ok(resp) => resp.status().is_success() && resp.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if fine { ok += 1 } else { failed += 1 }
            }
            (ok, failed)
        });
    }
    let (mut ok, mut failed) = (0, 0);
    while let Some(joined) = workers.join_next().await {
        if let Ok((o, f)) = joined {
            ok += o;
            failed += f;
        }
    }
    (ok as f64 / start.elapsed().as_secs_f64(), failed)
}
