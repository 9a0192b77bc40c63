//! Quarantine replay: items that can now be applied go back on the events queue.
//!
//! An event is quarantined as `unknown_business_number` when it arrives before its project is
//! registered; once the number is, replaying puts the event through the processor again.
//! Replay claims items with a token, queues them (durably), then deletes the ones it still
//! holds: an event the processor quarantines again meanwhile loses the claim and stays. A
//! crash between queueing and deleting replays the item twice later, which the processor's
//! unique keys make harmless.

use std::sync::Arc;

use crate::domain::event::{Event, Provider};
use crate::domain::providers;
use crate::domain::task::{Task, queues};
use crate::ports::store::{QuarantineFilter, QuarantineView};
use crate::ports::{Outgoing, Queue, QueueError, Store, StoreError};

/// Items claimed and queued per round trip.
const BATCH: u32 = 500;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Items queued again (and removed from quarantine).
    pub replayed: u64,
    /// Items left in quarantine because they still cannot be read as events.
    pub unreadable: u64,
}

pub struct Replayer {
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn Queue>,
}

impl Replayer {
    /// Replays up to `max` matching items, oldest first.
    pub async fn replay(
        &self,
        mut filter: QuarantineFilter,
        max: u64,
    ) -> Result<ReplayReport, ReplayError> {
        let token = uuid::Uuid::now_v7().to_string();
        let mut report = ReplayReport::default();
        let mut seen = 0u64;
        while seen < max {
            let limit = BATCH.min(u32::try_from(max - seen).unwrap_or(BATCH));
            let items = self.store.claim_quarantined(&filter, &token, limit).await?;
            let Some(last) = items.last() else { break };
            filter.after_id = last.id;
            seen += items.len() as u64;
            let mut outgoing = Vec::with_capacity(items.len());
            let mut ids = Vec::with_capacity(items.len());
            for item in &items {
                let events = events_of(item);
                if events.is_empty() {
                    report.unreadable += 1;
                    continue;
                }
                let priority = events.iter().map(Event::priority).max().unwrap_or(0);
                let task = Task::EventsV1 {
                    received_at: item.received_at,
                    events,
                };
                outgoing.push(Outgoing::new(task.encode(), priority));
                ids.push(item.id);
            }
            if !outgoing.is_empty() {
                self.queue.publish(queues::EVENTS, &outgoing).await?;
            }
            report.replayed += self.store.release_quarantined(&ids, &token).await?;
            if items.len() < limit as usize {
                break;
            }
        }
        if report.replayed > 0 {
            tracing::info!(
                replayed = report.replayed,
                unreadable = report.unreadable,
                "replayed quarantined events"
            );
        }
        Ok(report)
    }

    /// Replays the events that waited for these business numbers to be registered.
    pub async fn numbers_registered(&self, numbers: &[String]) -> ReplayReport {
        let filter = QuarantineFilter {
            reason: Some("unknown_business_number".into()),
            business_numbers: numbers.to_vec(),
            ..QuarantineFilter::default()
        };
        match self.replay(filter, u64::MAX).await {
            Ok(r) => r,
            Err(e) => {
                // The project exists either way; what is left waits for a manual replay.
                tracing::warn!(error = %e, "replaying quarantined events for new numbers failed; POST /v1/admin/quarantine/replay retries");
                ReplayReport::default()
            }
        }
    }
}

/// The events an item holds: its normalized event when the processor kept one, else what the
/// provider's parser reads in its body today (a body quarantined at ingress, perhaps by an
/// older version).
fn events_of(item: &QuarantineView) -> Vec<Event> {
    if let Some(json) = &item.event
        && let Ok(event) = serde_json::from_str::<Event>(json)
    {
        return vec![event];
    }
    let Ok(raw) = providers::raw_json(item.body.as_bytes()) else {
        return Vec::new();
    };
    match Provider::parse(&item.provider) {
        Some(Provider::Datagen) => providers::datagen::parse(&raw).events,
        Some(Provider::Meta) => providers::meta::parse(&raw).events,
        None => Vec::new(),
    }
}
