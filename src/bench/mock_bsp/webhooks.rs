//! Status webhooks back to the gateway: the poster tasks that batch them (bodies from
//! `bodies`) and retry while the gateway is down.
//!
//! Sends hand their statuses to a bounded channel and return; a few posters take whatever is
//! queued (up to `batch` messages) and post it stage by stage: every message's first status,
//! then every second one, so one message's statuses go out in their planned order.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{Mutex, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::bodies::{Due, ROUTES, Route, datagen_body, meta_body};
use super::config::MockConfig;
use super::fate::Word;
use super::state::State;
use crate::domain::signing::hmac_sha256_hex;

/// Messages queued for posting at most. Far above what posters lag behind by in a run, so
/// sends wait on it only if the gateway stays down long enough to fill it.
const QUEUE: usize = 1 << 20;

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Why one attempt failed, and whether trying again can help.
enum Failure {
    Later(String),
    Never(String),
}

/// Posts webhooks for the queue's messages; shared by the poster tasks.
struct Poster {
    client: reqwest::Client,
    /// Full URLs, by route.
    urls: [String; 3],
    meta_secret: Option<Vec<u8>>,
    delay: Duration,
    retry_for: Duration,
    batch: usize,
    state: Arc<State>,
}

/// Starts `config.posters` tasks posting to `target`, and returns the queue they read.
pub fn spawn(
    config: &MockConfig,
    target: &str,
    state: Arc<State>,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) -> anyhow::Result<mpsc::Sender<Due>> {
    let base = target.trim_end_matches('/');
    let aisensy_path = config.aisensy_webhook_path.trim_start_matches('/');
    let poster = Arc::new(Poster {
        client: crate::adapters::outbound::client_builder()
            .timeout(Duration::from_secs(10))
            .build()?,
        urls: [
            format!("{base}/v1/ingest/meta"),
            format!("{base}/{aisensy_path}"),
            format!("{base}/datagen-webhook"),
        ],
        meta_secret: config.meta_app_secret.clone().map(String::into_bytes),
        delay: config.delay,
        retry_for: config.retry_for,
        batch: config.batch,
        state,
    });
    let (tx, rx) = mpsc::channel(QUEUE);
    let rx = Arc::new(Mutex::new(rx));
    for _ in 0..config.posters {
        tracker.spawn(poster.clone().run(rx.clone(), shutdown.clone()));
    }
    Ok(tx)
}

impl Poster {
    async fn run(
        self: Arc<Self>,
        rx: Arc<Mutex<mpsc::Receiver<Due>>>,
        shutdown: CancellationToken,
    ) {
        let mut chunk = Vec::with_capacity(self.batch);
        loop {
            chunk.clear();
            let got = {
                let mut rx = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    rx = rx.lock() => rx,
                };
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    n = rx.recv_many(&mut chunk, self.batch) => n,
                }
            };
            if got == 0 {
                return;
            }
            self.post_chunk(&chunk, &shutdown).await;
        }
    }

    async fn post_chunk(&self, chunk: &[Due], shutdown: &CancellationToken) {
        let stages = chunk.iter().map(|d| d.statuses.len()).max().unwrap_or(0);
        for stage in 0..stages {
            for route in ROUTES {
                let items: Vec<(&Due, Word)> = chunk
                    .iter()
                    .filter(|d| d.route == route)
                    .filter_map(|d| d.statuses.get(stage).map(|&w| (d, w)))
                    .collect();
                if items.is_empty() {
                    continue;
                }
                let body = match route {
                    Route::Meta | Route::Aisensy => meta_body(&items),
                    Route::Datagen => datagen_body(&items),
                };
                if !self
                    .deliver(route, Bytes::from(body), items.len() as u64, shutdown)
                    .await
                {
                    return;
                }
            }
        }
    }

    /// Posts one body until it is taken, refused for good, or the deadline passes. False when
    /// shutdown interrupted it.
    async fn deliver(
        &self,
        route: Route,
        body: Bytes,
        statuses: u64,
        shutdown: &CancellationToken,
    ) -> bool {
        let counters = &self.state.counters;
        let settle = |posted: bool| {
            let done = if posted {
                counters.webhook_posts.fetch_add(1, Relaxed);
                &counters.webhook_statuses
            } else {
                &counters.webhook_statuses_dropped
            };
            done.fetch_add(statuses, Relaxed);
            counters
                .webhook_statuses_pending
                .fetch_sub(statuses, Relaxed);
        };
        if !self.delay.is_zero() && !pause(self.delay, shutdown).await {
            return false;
        }
        let deadline = Instant::now() + self.retry_for;
        let mut backoff = FIRST_BACKOFF;
        loop {
            match self.post_once(route, body.clone()).await {
                Ok(()) => {
                    settle(true);
                    return true;
                }
                Err(Failure::Never(why)) => {
                    self.state.webhook_failed(why);
                    settle(false);
                    return true;
                }
                Err(Failure::Later(why)) => {
                    self.state.webhook_failed(why);
                    if Instant::now() + backoff > deadline {
                        settle(false);
                        return true;
                    }
                    if !pause(backoff, shutdown).await {
                        return false;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    async fn post_once(&self, route: Route, body: Bytes) -> Result<(), Failure> {
        let url = &self.urls[ROUTES.iter().position(|&r| r == route).unwrap_or(0)];
        let mut request = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        if let (Some(secret), Route::Meta | Route::Aisensy) = (&self.meta_secret, route) {
            let signature = format!("sha256={}", hmac_sha256_hex(secret, &body));
            request = request.header("x-hub-signature-256", signature);
        }
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|e| Failure::Later(format!("POST {url}: {e}")))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let why = format!("POST {url}: HTTP {status}");
        match status.as_u16() {
            408 | 429 | 500..=599 => Err(Failure::Later(why)),
            _ => Err(Failure::Never(why)),
        }
    }
}

/// Sleeps unless shutdown comes first; false then.
async fn pause(d: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}
