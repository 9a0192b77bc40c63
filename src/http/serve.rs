//! Serves the router over HTTP/1.1 with hyper directly, for the two things `axum::serve` does not
//! offer: a header-read timeout, and a drain that is cut off at a deadline.

use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Accepts connections until `shutdown` fires, then stops accepting (the listener is closed)
/// and returns the connections still open. Each of them, told by the same token, finishes the
/// request it is on and closes instead of waiting for another.
pub async fn accept(
    listener: TcpListener,
    router: Router,
    header_timeout: Duration,
    shutdown: CancellationToken,
) -> Connections {
    let mut open = JoinSet::new();
    loop {
        // Reap finished connections so the set holds only live ones.
        while open.try_join_next().is_some() {}
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Usually out of file descriptors: pause rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let stop = shutdown.clone();
        open.spawn(async move {
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    Connections { open }
}

/// The connections open when shutdown began.
pub struct Connections {
    open: JoinSet<()>,
}

impl Connections {
    /// Waits for the connections to finish until `deadline`, then drops the rest; returns how
    /// many were cut off.
    pub async fn drain(mut self, deadline: Instant) -> usize {
        let all_closed = async { while self.open.join_next().await.is_some() {} };
        if tokio::time::timeout_at(deadline, all_closed).await.is_ok() {
            return 0;
        }
        let cut = self.open.len();
        self.open.shutdown().await;
        cut
    }
}
