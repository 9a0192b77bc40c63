//! The sweeper: queues the deliveries the store says are due and no queue message carries.
//!
//! That covers retries (a failed attempt leaves its row due later), deferrals (an open breaker,
//! a busy endpoint), manual retries and redrives, and any queue message that was lost: a crash
//! between the processor's commit and its publish, a purged queue, a broker that forgot its
//! delayed messages. Claiming moves a row's due time a lease ahead, so each due row is queued
//! once per lease, by one sweeper, however many run.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::domain::delivery::outbox::QUEUED_LEASE;
use crate::domain::task::{Task, queues};
use crate::domain::time::Timestamp;
use crate::metrics::Metrics;
use crate::ports::{Deliveries, Outgoing, Queue, StoreError};

/// Rows claimed per round trip.
const CLAIM_BATCH: u32 = 1000;
/// Above this many forward messages waiting, the forwarders are behind: rows whose lease ran
/// out are most likely still in the queue, and queueing them again would only double the work.
const BACKLOG_LIMIT: u64 = 2000;
/// How often the dead-letter gauge is refreshed.
const GAUGE_EVERY: Duration = Duration::from_secs(5);

pub struct Sweeper {
    pub deliveries: Arc<dyn Deliveries>,
    pub queue: Arc<dyn Queue>,
    pub metrics: Metrics,
    pub interval: Duration,
    pub shutdown: CancellationToken,
}

impl Sweeper {
    pub async fn run(self) {
        let mut last_gauge = tokio::time::Instant::now() - GAUGE_EVERY;
        loop {
            if let Err(e) = self.sweep(Timestamp::now()).await {
                tracing::warn!(error = %e, "sweeper could not queue due deliveries; retrying");
            }
            if last_gauge.elapsed() >= GAUGE_EVERY {
                last_gauge = tokio::time::Instant::now();
                if let Ok(n) = self.deliveries.dead_count().await {
                    self.metrics
                        .forward
                        .dead_letters
                        .set(i64::try_from(n).unwrap_or(i64::MAX));
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = self.shutdown.cancelled() => return,
            }
        }
    }

    /// Queues every delivery due at `now`; returns how many.
    pub async fn sweep(&self, now: Timestamp) -> Result<usize, SweepError> {
        if self
            .queue
            .depth(queues::FORWARD)
            .await
            .is_ok_and(|n| n > BACKLOG_LIMIT)
        {
            return Ok(0);
        }
        let mut total = 0;
        loop {
            let ids = self
                .deliveries
                .claim_due(now, now.plus(QUEUED_LEASE), CLAIM_BATCH)
                .await?;
            if ids.is_empty() {
                return Ok(total);
            }
            let tasks: Vec<Outgoing> = Task::forward(ids.iter().map(|i| i.as_str()))
                .iter()
                .map(|t| Outgoing::new(t.encode(), 0))
                .collect();
            if let Err(e) = self.queue.publish(queues::FORWARD, &tasks).await {
                // The claim is handed back, so the rows go out on the first sweep after the
                // broker answers again, not a lease later (if this fails too, nothing is lost:
                // they come due when the lease ends).
                let _ = self.deliveries.defer(&ids, now).await;
                return Err(e.into());
            }
            total += ids.len();
            self.metrics.forward.swept.inc_by(ids.len() as u64);
            if ids.len() < CLAIM_BATCH as usize {
                return Ok(total);
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] crate::ports::QueueError),
}
