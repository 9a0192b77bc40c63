//! The sender: queued recipient ids → claimed (`queued → sending`) → BSP requests within the
//! sender number's rate → results recorded → ack.
//!
//! The recipient row is the truth and its claim is conditional, so a redelivered message, a
//! second sender or a sweep after a lease ran out cannot send anyone twice. A request that got
//! no answer may still have been accepted: its recipient is left `sending`, for the BSP's
//! webhook (which echoes the recipient id as its reference) to settle it, or for the unknown
//! timeout to mark it `unknown`. Only a request that provably never reached the BSP (connect,
//! DNS or TLS failure) or that the BSP refused for now (throttled, 5xx) is tried again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::domain::campaign::params::render;
use crate::domain::campaign::{
    CampaignId, CampaignState, RecipientId, SendJob, SendRecord, SendResult,
};
use crate::domain::delivery::{TransportError, parse_retry_after};
use crate::domain::event::EventError;
use crate::domain::phone::PhoneNumber;
use crate::domain::project::{Project, ProjectId};
use crate::domain::providers::send::{
    self, CredentialRequired, ProviderSettings, SendOutcome, SendProvider, SendRequest,
};
use crate::domain::task::{Task, queues};
use crate::domain::time::Timestamp;
use crate::metrics::Metrics;
use crate::ports::Outbound;
use crate::ports::outbound::Sent;
use crate::ports::{Campaigns, Delivery, Queue, Store, StoreError};
use crate::services::SendLimits;

/// A message whose recipients could not be claimed or recorded comes back after this.
const STORE_RETRY: Duration = Duration::from_secs(2);
/// How long project settings and numbers are reused before being read again.
const SETTINGS_TTL: Duration = Duration::from_secs(5);
/// Retries of a send refused for now back off from `SenderConfig::retry_backoff`, doubling,
/// up to this.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How long a campaign's state is trusted before it is read again: a pause or a cancel stops
/// the sends waiting for their rate within this.
const STATE_TTL: Duration = Duration::from_millis(200);

#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Queue messages held at once.
    pub prefetch: u16,
    /// Attempts before a send refused for now fails for good.
    pub max_attempts: u32,
    /// The first retry's delay (then doubling), when the BSP did not say how long to wait.
    pub retry_backoff: Duration,
}

pub struct SenderParts {
    pub campaigns: Arc<dyn Campaigns>,
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn Queue>,
    pub client: Arc<dyn Outbound>,
    pub limits: Arc<SendLimits>,
    /// The server-wide settings per provider (a project's own override them).
    pub defaults: HashMap<SendProvider, ProviderSettings>,
    pub metrics: Metrics,
}

type Cached<T> = Mutex<HashMap<T, (Instant, Arc<Resolved>)>>;

/// A project's settings for one provider and its numbers, as one send needs them.
struct Resolved {
    /// Refused when they would send the server's credential to the project's URL.
    settings: Result<ProviderSettings, CredentialRequired>,
    project: Option<Project>,
}

pub struct Sender {
    parts: SenderParts,
    config: SenderConfig,
    slots: Arc<Semaphore>,
    resolved: Cached<(ProjectId, SendProvider)>,
    states: Mutex<HashMap<CampaignId, (Instant, CampaignState)>>,
    shutdown: CancellationToken,
}

/// What became of one claimed recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    Recorded(SendResult),
    /// Not sent: its campaign was paused while it waited for its rate. Queued again.
    Released,
    /// No answer: left `sending` for the webhook or the unknown timeout.
    Uncertain,
}

impl Sender {
    pub fn new(parts: SenderParts, config: SenderConfig, shutdown: CancellationToken) -> Sender {
        Sender {
            slots: Arc::new(Semaphore::new(config.concurrency.max(1))),
            parts,
            config,
            resolved: Mutex::default(),
            states: Mutex::default(),
            shutdown,
        }
    }

    /// Consumes the send queue until shutdown (see [`super::consume::serve`]).
    pub fn spawn(self: Arc<Self>, tracker: &TaskTracker) {
        let inner = tracker.clone();
        tracker.spawn(async move {
            super::consume::serve(
                self.parts.queue.as_ref(),
                queues::SEND,
                self.config.prefetch,
                STORE_RETRY,
                &self.shutdown,
                &inner,
                "sender",
                self.clone(),
            )
            .await
        });
    }
}

#[async_trait::async_trait]
impl super::consume::Handler for Sender {
    /// `false` when the store failed and the message must come back.
    async fn handle_message(&self, d: &Delivery) -> bool {
        let ids = match Task::decode(&d.payload) {
            Ok(Task::SendV1 { recipients }) => recipients
                .iter()
                .filter_map(|id| RecipientId::parse(id).ok())
                .collect::<Vec<_>>(),
            // The recipients it might have named are still queued in the store, where the
            // runner finds them again.
            Ok(_) | Err(_) => {
                super::consume::drop_undecodable(&self.parts.metrics, queues::SEND);
                return true;
            }
        };
        match self.handle(&ids).await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %e, recipients = ids.len(), "store failed while sending; the message comes back");
                false
            }
        }
    }
}

impl Sender {
    /// Claims these recipients, sends each claimed one, and records every answer.
    ///
    /// Claims follow the sender number's rate: a claimed recipient is `sending`, and one a
    /// crash catches there becomes `unknown`, so recipients are claimed only once their
    /// number may send them. The first recipient's campaign tells which number and rate (a
    /// read: the claims and records are the writes, and on SQLite each write waits its turn
    /// at the one writer); then each claim takes what the number may send in a tenth of a
    /// second, after taking that many tokens. Should that read find nothing, the first claim
    /// takes one recipient and learns the lane from it.
    pub async fn handle(&self, ids: &[RecipientId]) -> Result<Vec<Handled>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        let mut rest = ids;
        let mut lane: Option<(PhoneNumber, Option<u32>)> = match ids.first() {
            Some(first) => self.parts.campaigns.lane(first).await?,
            None => None,
        };
        while !rest.is_empty() {
            let k = match &lane {
                None => 1,
                Some((n, r)) => (self.parts.limits.rate_for(n, *r) / 10).clamp(1, 50) as usize,
            };
            let (now, later) = rest.split_at(k.min(rest.len()));
            rest = later;
            if let Some((number, rate)) = &lane
                && !self
                    .parts
                    .limits
                    .acquire(number, *rate, now.len() as u32, &self.shutdown)
                    .await
            {
                // Shutting down: the rest stay queued, and come back with their lease.
                return Ok(out);
            }
            let jobs = self.parts.campaigns.claim(now, Timestamp::now()).await?;
            let m = &self.parts.metrics.send;
            m.count("not_claimed", (now.len() - jobs.len()) as u64);
            let paid = lane.clone();
            if lane.is_none()
                && let Some(j) = jobs.first()
            {
                lane = Some((j.sender.clone(), j.rate_limit_per_second));
            }
            let handled: Vec<(RecipientId, Handled)> =
                futures_util::future::join_all(jobs.into_iter().map(|j| {
                    let prepaid = paid.as_ref().is_some_and(|(n, _)| *n == j.sender);
                    self.send_one(j, prepaid)
                }))
                .await;
            self.record_all(&handled).await?;
            out.extend(handled.into_iter().map(|(_, h)| h));
        }
        Ok(out)
    }

    /// Records what these sends learned, in one transaction.
    async fn record_all(&self, handled: &[(RecipientId, Handled)]) -> Result<(), StoreError> {
        let now = Timestamp::now();
        let records: Vec<SendRecord> = handled
            .iter()
            .filter_map(|(id, h)| match h {
                Handled::Recorded(result) => Some(SendRecord {
                    recipient: id.clone(),
                    result: result.clone(),
                    at: now,
                }),
                Handled::Released => Some(SendRecord {
                    recipient: id.clone(),
                    result: SendResult::Retry { at: now },
                    at: now,
                }),
                Handled::Uncertain => None,
            })
            .collect();
        // A record that fails leaves the recipients `sending`; the message comes back, finds
        // them not queued, and leaves them to the webhook or the unknown timeout. Retrying the
        // write here first keeps that rare.
        let mut tries = 0;
        loop {
            match self.parts.campaigns.record(&records).await {
                Ok(_) => break,
                Err(e) if e.is_transient() && tries < 5 && !self.shutdown.is_cancelled() => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(200 * tries)).await;
                }
                Err(e) => return Err(e),
            }
        }
        let m = &self.parts.metrics.send;
        for (_, h) in handled {
            m.count(outcome_label(h), 1);
        }
        Ok(())
    }

    /// Sends one claimed recipient; `prepaid` when its token was taken before the claim.
    async fn send_one(&self, job: SendJob, prepaid: bool) -> (RecipientId, Handled) {
        let id = job.recipient.clone();
        let handled = self.try_send(&job, prepaid).await;
        let handled = match handled {
            Handled::Recorded(SendResult::Retry { .. })
                if job.attempts >= self.config.max_attempts =>
            {
                Handled::Recorded(SendResult::Failed {
                    error: EventError {
                        code: Some("retries_exhausted".into()),
                        message: Some(format!(
                            "the BSP refused the send for now {} times",
                            job.attempts
                        )),
                    },
                })
            }
            h => h,
        };
        (id, handled)
    }

    async fn try_send(&self, job: &SendJob, prepaid: bool) -> Handled {
        let params = match render(&job.params, &job.variables) {
            Ok(p) => p,
            Err(missing) => {
                return Handled::Recorded(SendResult::Skipped {
                    reason: missing.to_string(),
                });
            }
        };
        let resolved = match self.resolve(&job.project_id, job.provider).await {
            Ok(r) => r,
            // Nothing was sent: try again later.
            Err(_) => return Handled::Recorded(self.retry_later(job, None)),
        };
        let from_meta_id = resolved.project.as_ref().and_then(|p| {
            p.numbers
                .iter()
                .find(|n| n.number == job.sender)
                .and_then(|n| n.meta_phone_number_id.as_deref())
        });
        let request = SendRequest {
            from: &job.sender,
            from_meta_id,
            to: &job.phone,
            template: &job.template_id,
            language: &job.language,
            params: &params,
            media: job.media.as_ref(),
            user_name: job.variables.get("name").map(String::as_str),
            reference: job.recipient.as_str(),
        };
        let settings = match &resolved.settings {
            Ok(s) => s,
            Err(e) => {
                return Handled::Recorded(SendResult::Failed {
                    error: EventError {
                        code: Some("credential_required".into()),
                        message: Some(e.to_string()),
                    },
                });
            }
        };
        let call = match send::build(job.provider, settings, &request) {
            Ok(c) => c,
            Err(e) => {
                return Handled::Recorded(SendResult::Failed {
                    error: EventError {
                        code: Some("provider_not_configured".into()),
                        message: Some(e.to_string()),
                    },
                });
            }
        };
        if !prepaid
            && !self
                .parts
                .limits
                .acquire(&job.sender, job.rate_limit_per_second, 1, &self.shutdown)
                .await
        {
            // Shutting down before the request went out: back to the queue, unsent.
            return Handled::Recorded(SendResult::Retry {
                at: Timestamp::now(),
            });
        }
        match self.campaign_state(job).await {
            CampaignState::Running => {}
            CampaignState::Cancelled => return Handled::Recorded(SendResult::Cancelled),
            _ => return Handled::Released,
        }
        let _slot = self.slots.acquire().await.expect("never closed");
        let m = &self.parts.metrics.send;
        m.in_flight.inc();
        let sent = self
            .parts
            .client
            .post_with(&call.url, &call.headers, Bytes::from(call.body))
            .await;
        m.in_flight.dec();
        m.request_seconds.observe(sent.latency.as_secs_f64());
        self.interpret(job, sent)
    }

    fn interpret(&self, job: &SendJob, sent: Sent) -> Handled {
        let Some(status) = sent.status else {
            return match sent.error.map(|(kind, _)| kind) {
                // The request never reached the BSP.
                Some(
                    TransportError::Connect
                    | TransportError::Dns
                    | TransportError::Tls
                    | TransportError::NotAllowed,
                ) => Handled::Recorded(self.retry_later(job, None)),
                // It may have arrived: only the BSP's webhook can tell.
                _ => Handled::Uncertain,
            };
        };
        let retry_after = sent
            .retry_after
            .as_deref()
            .and_then(|v| parse_retry_after(v, Timestamp::now()));
        match send::classify(job.provider, status, retry_after, &sent.body) {
            SendOutcome::Accepted { id } => Handled::Recorded(SendResult::Sent {
                provider_message_id: id,
            }),
            SendOutcome::Throttled { retry_after } => {
                self.parts.limits.throttled(&job.sender);
                Handled::Recorded(self.retry_later(job, retry_after))
            }
            SendOutcome::Retry { .. } => Handled::Recorded(self.retry_later(job, None)),
            SendOutcome::Rejected { code, title } => Handled::Recorded(SendResult::Failed {
                error: EventError {
                    code: Some(code),
                    message: Some(title),
                },
            }),
        }
    }

    /// Queued again: after `after` when the BSP said, else after an exponential backoff.
    fn retry_later(&self, job: &SendJob, after: Option<Duration>) -> SendResult {
        let delay = after.unwrap_or_else(|| backoff(self.config.retry_backoff, job.attempts));
        SendResult::Retry {
            at: Timestamp::now().plus(delay.min(MAX_BACKOFF * 10)),
        }
    }

    /// The job's campaign's state (read at most every [`STATE_TTL`]); a store that cannot
    /// answer counts as running, since the claim a moment ago said so.
    async fn campaign_state(&self, job: &SendJob) -> CampaignState {
        if let Some((at, st)) = self.states.lock().expect("not poisoned").get(&job.campaign)
            && at.elapsed() < STATE_TTL
        {
            return *st;
        }
        let state = match self
            .parts
            .campaigns
            .get(&job.project_id, &job.campaign)
            .await
        {
            Ok(Some(c)) => c.state,
            Ok(None) => CampaignState::Cancelled,
            Err(_) => return CampaignState::Running,
        };
        keep_fresh(
            &mut self.states.lock().expect("not poisoned"),
            job.campaign.clone(),
            state,
            STATE_TTL,
        );
        state
    }

    /// The project's settings for `provider` over the server's, and its numbers.
    async fn resolve(
        &self,
        project: &ProjectId,
        provider: SendProvider,
    ) -> Result<Arc<Resolved>, StoreError> {
        let key = (project.clone(), provider);
        if let Some((at, r)) = self.resolved.lock().expect("not poisoned").get(&key)
            && at.elapsed() < SETTINGS_TTL
        {
            return Ok(r.clone());
        }
        let own = self
            .parts
            .campaigns
            .provider_settings(project, provider)
            .await?
            .unwrap_or_default();
        let server = self
            .parts
            .defaults
            .get(&provider)
            .cloned()
            .unwrap_or_default();
        let settings = send::for_project(provider, &server, &own);
        let project_row = self.parts.store.project(project).await?;
        let r = Arc::new(Resolved {
            settings,
            project: project_row,
        });
        keep_fresh(
            &mut self.resolved.lock().expect("not poisoned"),
            key,
            r.clone(),
            SETTINGS_TTL,
        );
        Ok(r)
    }
}

/// Entries a read-through map holds before its stale ones are dropped: the maps stay as large
/// as the campaigns and projects sending right now, however many have sent before.
const FRESH_MAP_PRUNE_AT: usize = 256;

fn keep_fresh<K: std::hash::Hash + Eq, V>(
    map: &mut HashMap<K, (Instant, V)>,
    key: K,
    value: V,
    ttl: Duration,
) {
    if map.len() >= FRESH_MAP_PRUNE_AT {
        map.retain(|_, (at, _)| at.elapsed() < ttl);
    }
    map.insert(key, (Instant::now(), value));
}

/// `first`, twice that, four times, ... up to a minute, each spread ±20% so a throttled burst
/// does not come back as one.
fn backoff(first: Duration, attempts: u32) -> Duration {
    let base = first
        .saturating_mul(1 << attempts.saturating_sub(1).min(6))
        .min(MAX_BACKOFF);
    base.mul_f64(rand::random_range(0.8..1.2))
}

fn outcome_label(h: &Handled) -> &'static str {
    match h {
        Handled::Uncertain => "uncertain",
        Handled::Released => "released",
        Handled::Recorded(SendResult::Sent { .. }) => "sent",
        Handled::Recorded(SendResult::Failed { .. }) => "failed",
        Handled::Recorded(SendResult::Retry { .. }) => "retry",
        Handled::Recorded(SendResult::Skipped { .. }) => "skipped",
        Handled::Recorded(SendResult::Cancelled) => "cancelled",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_minute_with_jitter() {
        for (attempts, base) in [(1, 1.0), (2, 2.0), (3, 4.0), (7, 60.0), (30, 60.0)] {
            let d = backoff(Duration::from_secs(1), attempts).as_secs_f64();
            assert!(
                d >= base * 0.8 && d <= base * 1.2,
                "attempt {attempts}: {d}"
            );
        }
    }
}
