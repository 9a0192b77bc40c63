//! The campaign runner: starts scheduled campaigns when their time comes, queues due
//! recipients for the sender, marks long-silent sends `unknown`, and finishes campaigns with
//! nothing left to send.
//!
//! Everything it does is read from the store and written back conditionally, so any number
//! of runners (one per sender process) can share a database, and a restart resumes exactly
//! where the store says: a scheduled campaign still starts, a running one goes on.
//!
//! The store is the truth and a queue message only a hint: a recipient handed to the queue is
//! leased for [`QUEUED_LEASE`], and if the message is lost (a process killed between the lease
//! and the publish, a broker that forgot it) the next round after the lease finds the row due
//! and queues it again. A sender killed mid-message leaves its message unacked, so the broker
//! gives it to a survivor at once; a lease is only the last resort, short enough that a
//! survivor sends what was queued within half a minute.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::domain::campaign::{CampaignState, Transition};
use crate::domain::task::{SEND_CHUNK, Task, queues};
use crate::domain::time::Timestamp;
use crate::metrics::Metrics;
use crate::ports::{Campaigns, Outgoing, Queue, QueueError, StoreError};

/// How long a queued recipient handed to the queue is left alone before it is queued again
/// (its message lost, or its holder killed before it could hand it back). Short, so that a
/// lost message delays its recipients by seconds, not minutes; a row still waiting in a slow
/// queue when its lease ends is queued a second time, which costs a claim that finds it no
/// longer queued (the claim is conditional), never a second send.
pub const QUEUED_LEASE: Duration = Duration::from_secs(20);
/// Send messages kept waiting at most: enough to keep every sender busy, few enough that
/// pausing or cancelling leaves little in the queue.
const BACKLOG: u64 = 200;
/// Campaigns looked at per state and round.
const PER_ROUND: u32 = 500;
/// How often running campaigns are checked for being finished (a count per campaign).
const FINISH_EVERY: Duration = Duration::from_secs(2);

pub struct CampaignRunner {
    pub campaigns: Arc<dyn Campaigns>,
    pub queue: Arc<dyn Queue>,
    pub metrics: Metrics,
    pub interval: Duration,
    /// A recipient `sending` this long becomes `unknown` (or is queued again under the
    /// `resend` policy).
    pub unknown_after: Duration,
    /// Claims a `resend` recipient may have had before it is left `unknown`.
    pub max_attempts: u32,
    pub shutdown: CancellationToken,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// What one round did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Round {
    pub launched: usize,
    pub queued: usize,
    pub expired: u64,
    /// `resend` recipients queued again by the unknown timeout.
    pub resent: u64,
    pub finished: usize,
}

impl CampaignRunner {
    pub async fn run(self) {
        let mut last_finish = tokio::time::Instant::now();
        loop {
            let check_finished = last_finish.elapsed() >= FINISH_EVERY;
            if check_finished {
                last_finish = tokio::time::Instant::now();
            }
            let busy = match self.round(Timestamp::now(), check_finished).await {
                Ok(r) => r.queued > 0,
                Err(e) => {
                    tracing::warn!(error = %e, "campaign runner round failed; retrying");
                    false
                }
            };
            // While recipients are flowing, come back soon: the backlog bound, not the
            // interval, should pace a large campaign.
            let nap = if busy {
                self.interval.min(Duration::from_millis(50))
            } else {
                self.interval
            };
            tokio::select! {
                _ = tokio::time::sleep(nap) => {}
                _ = self.shutdown.cancelled() => return,
            }
        }
    }

    /// One pass over every duty; `check_finished` also finishes campaigns with nothing left.
    pub async fn round(&self, now: Timestamp, check_finished: bool) -> Result<Round, RunError> {
        let mut round = Round {
            launched: self.launch_due(now).await?,
            ..Round::default()
        };
        let expired = self
            .campaigns
            .expire_sending(
                Timestamp::from_millis(now.millis() - millis(self.unknown_after)),
                10_000,
                self.max_attempts,
            )
            .await?;
        if expired.unknown + expired.resent > 0 {
            tracing::info!(
                unknown = expired.unknown,
                resent = expired.resent,
                after = ?self.unknown_after,
                "sends without an answer or a webhook settled"
            );
        }
        (round.expired, round.resent) = (expired.unknown, expired.resent);
        round.queued = self.queue_due(now).await?;
        if check_finished {
            round.finished = self.finish_done(now).await?;
        }
        Ok(round)
    }

    /// Starts the scheduled campaigns whose time has come, found by start time (an indexed
    /// look), whatever number are scheduled for later.
    async fn launch_due(&self, now: Timestamp) -> Result<usize, RunError> {
        let mut launched = 0;
        for id in self.campaigns.due_scheduled(now, PER_ROUND).await? {
            let to = CampaignState::Scheduled
                .after(Transition::Launch)
                .expect("scheduled campaigns launch");
            if self
                .campaigns
                .transition(&id, &[CampaignState::Scheduled], to, now)
                .await?
            {
                self.campaigns.make_due(&id, now).await?;
                tracing::info!(campaign = %id, "scheduled campaign started");
                launched += 1;
            }
        }
        Ok(launched)
    }

    /// Queues due recipients of running campaigns, up to the backlog bound.
    async fn queue_due(&self, now: Timestamp) -> Result<usize, RunError> {
        let waiting = self.queue.depth(queues::SEND).await.unwrap_or(0);
        let room = BACKLOG.saturating_sub(waiting) as usize * SEND_CHUNK;
        if room == 0 {
            return Ok(0);
        }
        let ids = self
            .campaigns
            .claim_due(now, QUEUED_LEASE, u32::try_from(room).unwrap_or(u32::MAX))
            .await?;
        if ids.is_empty() {
            return Ok(0);
        }
        let tasks: Vec<Outgoing> = Task::send(ids.iter().map(|i| i.as_str()))
            .iter()
            .map(|t| Outgoing::new(t.encode(), 0))
            .collect();
        if let Err(e) = self.queue.publish(queues::SEND, &tasks).await {
            // The lease is handed back, so the rows go out on the first round after the broker
            // answers again, not a lease later (if this fails too, nothing is lost: they come
            // due when the lease ends).
            let _ = self.campaigns.release(&ids, now).await;
            return Err(e.into());
        }
        self.metrics.send.queued.inc_by(ids.len() as u64);
        Ok(ids.len())
    }

    /// Running campaigns with no recipient queued or sending are finished: one statement,
    /// whose look and move are one condition, however many campaigns run.
    async fn finish_done(&self, now: Timestamp) -> Result<usize, RunError> {
        let finished = self.campaigns.finish_done(now, PER_ROUND).await?;
        for id in &finished {
            tracing::info!(campaign = %id, "campaign finished");
        }
        Ok(finished.len())
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
