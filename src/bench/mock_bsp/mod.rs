//! `wagate mock-bsp`: a closed-loop stand-in for the four BSP send APIs. It accepts template
//! sends as Meta's Cloud API, AiSensy-direct, Karix (Datagen) and AiSensy do, returns their ids,
//! then posts each provider's own status webhooks (sent → delivered → read, or failed) back to
//! the gateway, echoing the per-recipient reference; and it counts any recipient sent twice.
//!
//! Paths, relative to [`MockBsp::base_url`] (set as the provider's base URL):
//! - Meta: `POST /{version}/{phone_number_id}/messages`, `Authorization: Bearer …`.
//! - AiSensy-direct: `POST /aisensy-direct/{version}/{phone_number_id}/messages` (base URL
//!   `<mock>/aisensy-direct`), a bearer token or an API-key header.
//! - Karix: `POST /services/rcm/sendMessage`, `Authentication: Bearer …`.
//! - AiSensy: `POST /campaign/t1/api/v2` (or `/campaign/t1/api`), `apiKey` in the body.
//! - `GET /mock/stats` ([`MockStats`]) and `GET /mock/sends` ([`SendRecord`]s).
//!
//! Webhooks go to `{target}/v1/ingest/meta` (Meta and AiSensy-direct, Cloud API shape),
//! `{target}/datagen-webhook` (Karix delivery events, arrays when batched), and AiSensy's path
//! (default `/v1/ingest/meta`; AiSensy's own format is not public, so the Cloud API shape with
//! `id` = its `submitted_message_id` and `biz_opaque_callback_data` = `attributes.wagate_ref`).
//!
//! Files: `config` (options), `fate` (what happens to each send, pure), `state` (counters and
//! recorded sends), `server` (routes, shared handling) with `cloud_api`, `karix`, `aisensy` (one
//! per API), `bodies` (the webhooks' JSON) and `webhooks` (the posters).

mod aisensy;
mod bodies;
mod cloud_api;
mod config;
mod fate;
mod karix;
mod server;
mod state;
#[cfg(test)]
mod tests;
mod webhooks;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::{ConfigError, DEFAULT_AISENSY_WEBHOOK_PATH, MockBspArgs, MockConfig, mappings};
pub use fate::Final;
pub use state::{MockStats, PerProvider, SendRecord};

use server::Mock;
use state::State;

/// A running mock. Dropping it stops it (the server and the posters); [`MockBsp::shutdown`]
/// also waits for them.
pub struct MockBsp {
    addr: SocketAddr,
    state: Arc<State>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

/// Binds `config.listen` and starts serving and posting webhooks.
pub async fn start(config: MockConfig) -> anyhow::Result<MockBsp> {
    config.validate()?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let state = Arc::new(State::new());
    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    let webhooks = match &config.webhook_target {
        Some(target) => Some(webhooks::spawn(
            &config,
            target,
            state.clone(),
            &tasks,
            shutdown.clone(),
        )?),
        None => None,
    };
    let app = server::router(Arc::new(Mock::new(config, state.clone(), webhooks)));
    let stop = shutdown.clone();
    tasks.spawn(async move {
        // Errors here are accept errors after a successful bind; the handle's users see them as
        // refused connections.
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
    });
    tasks.close();
    Ok(MockBsp {
        addr,
        state,
        shutdown,
        tasks,
    })
}

impl MockBsp {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn stats(&self) -> MockStats {
        self.state.stats()
    }

    /// Every accepted send so far, in arrival order.
    pub fn sends(&self) -> Vec<SendRecord> {
        self.state.sends()
    }

    /// Waits until every due status webhook was posted (or given up on); false if `timeout`
    /// passed first.
    pub async fn wait_webhooks(&self, timeout: Duration) -> bool {
        let pending = || self.state.counters.webhook_statuses_pending.load(Relaxed);
        tokio::time::timeout(timeout, async {
            while pending() > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .is_ok()
    }

    /// Cancelling it stops the mock, as dropping the handle does.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops the server and the posters (webhooks not yet posted are abandoned) and waits.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.tasks.wait().await;
    }
}

impl Drop for MockBsp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// `wagate mock-bsp`: runs until SIGINT/SIGTERM, reporting on stderr, then prints the final
/// [`MockStats`] as one JSON line on stdout.
pub async fn run(args: MockBspArgs) -> anyhow::Result<()> {
    let config = args.into_config()?;
    let target = config.webhook_target.clone();
    let seed = config.seed;
    let mock = start(config).await?;
    eprintln!(
        "mock-bsp listening on {} (seed {seed}); webhooks to {}",
        mock.base_url(),
        target.as_deref().unwrap_or("nowhere (--no-webhooks)")
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing a SIGTERM handler")?;
    let mut report = tokio::time::interval(Duration::from_secs(5));
    let mut last = MockStats::default();
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            _ = report.tick() => {
                let now = mock.stats();
                if now != last {
                    eprintln!("{}", serde_json::to_string(&now)?);
                    last = now;
                }
            }
        }
    }
    let stats = mock.stats();
    mock.shutdown().await;
    println!("{}", serde_json::to_string(&stats)?);
    Ok(())
}
