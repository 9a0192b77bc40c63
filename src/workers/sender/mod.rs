//! The sender: queued recipient ids → the sender number's tokens and request slots → claimed
//! (`queued → sending`) → BSP requests at once → results recorded → ack.
//!
//! At most once (DESIGN principle 8). A recipient is requested only by the sender whose claim
//! moved it `queued → sending`; that claim is one conditional write (a row lock on PostgreSQL,
//! the one writer on SQLite), so of two senders, or a sender and a redelivered message, one
//! wins and the other finds the row no longer queued. Nothing but the claiming sender's own
//! record moves a `sending` row back to `queued`, and it does so only for a request that
//! provably never left (connect, DNS or TLS failure, nothing built, nothing requested) or that
//! the BSP answered "not now" (throttled, or a 5xx with the BSP's own error body). Leases, the
//! runner and a shutdown's hand-back move only `queued` rows' due times, so no interleaving of
//! senders, runners and sweepers reaches a row that is being sent. The one exception is the
//! customer's: `unknown_policy: resend` and `retry-unknown` queue a send that may have arrived.
//!
//! What a crash leaves uncertain is kept to what was truly in flight. Tokens and request slots
//! are taken before the claim, and the claim takes only as many recipients as go out right
//! after, so a `sending` row is one whose request was leaving. After a `kill -9` those wait for
//! the BSP's webhook (which echoes the recipient id as its reference) or the unknown timeout;
//! everything not yet claimed is still `queued`, and the broker gives the unacked message to a
//! survivor at once. On a graceful shutdown nothing is claimed any more: the recipients not
//! yet claimed are handed back due now (and logged), so a restart or a peer sends them at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::domain::campaign::params::render;
use crate::domain::campaign::{RecipientId, SendJob, SendResult};
use crate::domain::delivery::{TransportError, parse_retry_after};
use crate::domain::event::EventError;
use crate::domain::phone::PhoneNumber;
use crate::domain::project::{Project, ProjectId};
use crate::domain::providers::send::{
    self, CredentialRequired, ProviderSettings, SendOutcome, SendProvider, SendRequest,
};
use crate::domain::task::{Task, queues};
use crate::domain::text;
use crate::domain::time::Timestamp;
use crate::metrics::Metrics;
use crate::ports::Outbound;
use crate::ports::outbound::Sent;
use crate::ports::{Campaigns, Delivery, Queue, Store, StoreError};

mod record;
use crate::services::SendLimits;

/// A message whose recipients could not be claimed or recorded comes back after this.
const STORE_RETRY: Duration = Duration::from_secs(2);
/// How long project settings and numbers are reused before being read again.
const SETTINGS_TTL: Duration = Duration::from_secs(5);
/// Retries of a send refused for now back off from `SenderConfig::retry_backoff`, doubling,
/// up to this.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Characters of a BSP's error code and title kept with a failed recipient.
const ERROR_CODE_CHARS: usize = 100;
const ERROR_TITLE_CHARS: usize = 500;

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
    shutdown: CancellationToken,
}

/// What became of one claimed recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    Recorded(SendResult),
    /// No request went out for a reason not the recipient's (its project's settings could not
    /// be read): queued again without using an attempt.
    Released,
    /// No answer, or one that does not say whether the BSP took it: left `sending` for the
    /// webhook or the unknown timeout.
    Uncertain,
}

impl Sender {
    pub fn new(parts: SenderParts, config: SenderConfig, shutdown: CancellationToken) -> Sender {
        Sender {
            slots: Arc::new(Semaphore::new(config.concurrency.max(1))),
            parts,
            config,
            resolved: Mutex::default(),
            shutdown,
        }
    }

    /// Consumes the send queue until shutdown (see `workers::consume::serve`).
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

/// A sender number and its campaign's own rate: recipients sharing one share tokens.
type SendLane = (PhoneNumber, Option<u32>);

/// Where one run of [`Sender::handle`] over a sender number stopped.
enum Lane<'a> {
    Done,
    /// Shutting down: these were not claimed.
    Stopped(&'a [RecipientId]),
}

impl Sender {
    /// Sends these recipients: grouped by sender number, each group in claims as large as
    /// what the number may send in a tenth of a second (and the free request slots allow),
    /// each claim made only after its tokens and slots are held, so its recipients are
    /// requested at once. On shutdown the recipients not yet claimed are handed back.
    pub async fn handle(&self, ids: &[RecipientId]) -> Result<Vec<Handled>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        let m = &self.parts.metrics.send;
        // The lanes are a read: the claims and records are the writes, and on SQLite each
        // write waits its turn at the one writer.
        let lanes = self.parts.campaigns.lanes(ids).await?;
        let mut groups: Vec<(SendLane, Vec<RecipientId>)> = Vec::new();
        for id in ids {
            let Some((_, number, rate)) = lanes.iter().find(|(r, _, _)| r == id) else {
                m.count("not_claimed", 1);
                continue;
            };
            match groups
                .iter_mut()
                .find(|((n, r), _)| n == number && r == rate)
            {
                Some((_, g)) => g.push(id.clone()),
                None => groups.push(((number.clone(), *rate), vec![id.clone()])),
            }
        }
        for (i, ((number, rate), group)) in groups.iter().enumerate() {
            if let Lane::Stopped(unsent) = self.send_lane(number, *rate, group, &mut out).await? {
                let mut rest = unsent.to_vec();
                rest.extend(groups[i + 1..].iter().flat_map(|(_, g)| g.iter().cloned()));
                self.hand_back(&rest).await;
                return Ok(out);
            }
        }
        Ok(out)
    }

    async fn send_lane<'a>(
        &self,
        number: &PhoneNumber,
        rate: Option<u32>,
        ids: &'a [RecipientId],
        out: &mut Vec<Handled>,
    ) -> Result<Lane<'a>, StoreError> {
        let mut rest = ids;
        let per_claim = (self.parts.limits.rate_for(number, rate) / 10).clamp(1, 50) as usize;
        let per_claim = per_claim.min(self.config.concurrency.max(1));
        while !rest.is_empty() {
            if self.shutdown.is_cancelled() {
                return Ok(Lane::Stopped(rest));
            }
            let (now, later) = rest.split_at(per_claim.min(rest.len()));
            if !self
                .parts
                .limits
                .acquire(number, rate, now.len() as u32, &self.shutdown)
                .await
            {
                return Ok(Lane::Stopped(rest));
            }
            let slots = tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => return Ok(Lane::Stopped(rest)),
                s = self.slots.clone().acquire_many_owned(now.len() as u32) => {
                    s.expect("never closed")
                }
            };
            let jobs = self.parts.campaigns.claim(now, Timestamp::now()).await?;
            rest = later;
            self.parts
                .metrics
                .send
                .count("not_claimed", (now.len() - jobs.len()) as u64);
            let mut slots = Some(slots);
            let sends = jobs.into_iter().map(|j| {
                let slot = slots.as_mut().and_then(|s| s.split(1));
                self.send_one(j, slot)
            });
            let handled: Vec<(RecipientId, Handled)> = futures_util::future::join_all(sends).await;
            drop(slots);
            self.record_all(&handled).await?;
            out.extend(handled.into_iter().map(|(_, h)| h));
        }
        Ok(Lane::Done)
    }

    /// Makes the recipients a shutdown caught before their claim due now, so that a restart
    /// or another sender takes them at once rather than when their lease ends. Best effort:
    /// if the store cannot take it, the lease still brings them back.
    async fn hand_back(&self, ids: &[RecipientId]) {
        if ids.is_empty() {
            return;
        }
        match self.parts.campaigns.release(ids, Timestamp::now()).await {
            Ok(n) => tracing::info!(
                recipients = ids.len(),
                due_now = n,
                "shutting down: handed back recipients not yet claimed, due now"
            ),
            Err(e) => tracing::warn!(
                error = %e,
                recipients = ids.len(),
                "shutting down: could not hand back recipients; they come due when their lease ends"
            ),
        }
    }

    /// Sends one claimed recipient, holding one request slot.
    async fn send_one(
        &self,
        job: SendJob,
        _slot: Option<OwnedSemaphorePermit>,
    ) -> (RecipientId, Handled) {
        let id = job.recipient.clone();
        let handled = self.try_send(&job).await;
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

    async fn try_send(&self, job: &SendJob) -> Handled {
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
            // Nothing was sent, and not for the recipient's sake: again, without an attempt.
            Err(_) => return Handled::Released,
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
            // An id with control characters could never be matched to a webhook (nor stored
            // on PostgreSQL, if a NUL): kept without it, the echoed reference attaches it.
            SendOutcome::Accepted { id } => Handled::Recorded(SendResult::Sent {
                provider_message_id: id.filter(|i| text::is_clean(i)),
            }),
            SendOutcome::Throttled { retry_after } => {
                self.parts.limits.throttled(&job.sender);
                Handled::Recorded(self.retry_later(job, retry_after))
            }
            SendOutcome::Retry { .. } => Handled::Recorded(self.retry_later(job, None)),
            // The BSP may have processed it (a gateway's 502/504, a 5xx that is not its own
            // error): only its webhook can tell, never a blind resend.
            SendOutcome::Uncertain { .. } => Handled::Uncertain,
            // What a BSP wrote goes into a text column: no NUL, no control characters.
            SendOutcome::Rejected { code, title } => Handled::Recorded(SendResult::Failed {
                error: EventError {
                    code: Some(text::clean(&code, ERROR_CODE_CHARS)),
                    message: Some(text::clean(&title, ERROR_TITLE_CHARS)),
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
        Handled::Recorded(SendResult::Released { .. }) => "released",
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
