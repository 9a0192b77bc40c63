//! Batches the forwarder's attempt records into few store transactions.
//!
//! Every attempt must be durable before its queue message is acked, but one transaction per
//! attempt would cap forwarding at what the store commits one row at a time (~1,700/s on
//! PostgreSQL here). Attempts finishing at about the same time, from any queue message, are
//! written together: the first waits at most `window` for company. A record the store refuses
//! never fails its batch-mates (see `record_isolated`).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::task::TaskTracker;

use crate::domain::endpoint::WebhookDeliveryId;
use crate::ports::deliveries::AttemptRecord;
use crate::ports::{Deliveries, StoreError};

type Reply = oneshot::Sender<Result<bool, StoreError>>;

/// What a refused record's error becomes: the store would not take what the receiver said.
pub const REFUSED: &str = "REFUSED: the store would not keep the receiver's answer";

/// A handle to the recording task; the task ends when the last handle is dropped, after
/// writing what it was given.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<(AttemptRecord, Reply)>,
}

impl Recorder {
    pub fn spawn(
        deliveries: Arc<dyn Deliveries>,
        tracker: &TaskTracker,
        max_batch: usize,
        window: Duration,
    ) -> Recorder {
        let (tx, rx) = mpsc::channel(max_batch * 4);
        tracker.spawn(run(deliveries, rx, max_batch.max(1), window));
        Recorder { tx }
    }

    /// Returns once the record is committed: `Ok(true)` if it moved the delivery, `Ok(false)`
    /// if another attempt was recorded first (the row had moved on).
    pub async fn record(&self, record: AttemptRecord) -> Result<bool, StoreError> {
        let (reply, done) = oneshot::channel();
        self.tx
            .send((record, reply))
            .await
            .map_err(|_| StoreError::Unavailable("the attempt recorder has stopped".into()))?;
        done.await
            .map_err(|_| StoreError::Unavailable("the attempt recorder has stopped".into()))?
    }
}

async fn run(
    deliveries: Arc<dyn Deliveries>,
    mut rx: mpsc::Receiver<(AttemptRecord, Reply)>,
    max_batch: usize,
    window: Duration,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + window;
        while batch.len() < max_batch {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(next)) => batch.push(next),
                Ok(None) | Err(_) => break,
            }
        }
        let (records, replies): (Vec<AttemptRecord>, Vec<Reply>) = batch.into_iter().unzip();
        let told = record_isolated(&*deliveries, &records).await;
        for (reply, result) in replies.into_iter().zip(told) {
            let _ = reply.send(result);
        }
    }
}

/// Records `records` and says, for each, what its waiter is told. A batch the store refuses
/// (a value it will not take, not an outage) is split in halves until the refused record
/// stands alone, so its batch-mates, often other projects' attempts, are recorded all the
/// same; that one is rewritten without the receiver's words and tried once more, and if the
/// store refuses even that, only its own waiter gets the error.
async fn record_isolated(
    deliveries: &dyn Deliveries,
    records: &[AttemptRecord],
) -> Vec<Result<bool, StoreError>> {
    let mut told: Vec<Option<Result<bool, StoreError>>> = vec![None; records.len()];
    // (start, end) ranges of `records` still to write, last first.
    let mut pending = vec![(0, records.len())];
    while let Some((start, end)) = pending.pop() {
        let slice = &records[start..end];
        let result = match deliveries.record(slice).await {
            Err(e @ (StoreError::Rejected(_) | StoreError::Conflict(_))) if slice.len() > 1 => {
                tracing::debug!(error = %e, records = slice.len(), "the store refused a batch of attempt records; splitting it");
                let mid = start + slice.len() / 2;
                // Later ranges first on the stack, so a delivery's records keep their order.
                pending.push((mid, end));
                pending.push((start, mid));
                continue;
            }
            Err(e @ (StoreError::Rejected(_) | StoreError::Conflict(_))) => {
                let plain = refused(&slice[0], &e);
                deliveries.record(std::slice::from_ref(&plain)).await.inspect_err(|e| {
                    tracing::error!(delivery = %plain.delivery, error = %e, "the store refused an attempt record even without the receiver's words");
                })
            }
            other => other,
        };
        match result {
            Ok(moved) => {
                let moved: HashSet<&WebhookDeliveryId> = moved.iter().collect();
                for (slot, r) in told[start..end].iter_mut().zip(slice) {
                    *slot = Some(Ok(moved.contains(&r.delivery)));
                }
            }
            Err(e) => {
                for slot in &mut told[start..end] {
                    *slot = Some(Err(e.clone()));
                }
            }
        }
    }
    told.into_iter()
        .map(|t| t.expect("every range is answered"))
        .collect()
}

/// `record` without anything that came from the receiver: its error and snippet give way to
/// a short note, so the attempt and its follow-up are still recorded.
fn refused(record: &AttemptRecord, why: &StoreError) -> AttemptRecord {
    tracing::warn!(delivery = %record.delivery, error = %why, "the store refused an attempt record; recording it without the receiver's words");
    AttemptRecord {
        error: Some(REFUSED.to_owned()),
        response_snippet: None,
        ..record.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::time::Timestamp;
    use crate::ports::deliveries::FollowUp;

    #[test]
    fn a_refused_record_keeps_its_outcome_and_loses_the_receivers_words() {
        let r = AttemptRecord {
            delivery: WebhookDeliveryId::generate(),
            attempt: 3,
            status_code: Some(500),
            latency_ms: Some(7),
            error: Some("HTTP 500 \0".into()),
            response_snippet: Some("\0".into()),
            attempted_at: Timestamp::from_millis(1),
            follow_up: FollowUp::Dead,
        };
        let plain = refused(&r, &StoreError::Rejected("NUL".into()));
        assert_eq!(plain.error.as_deref(), Some(REFUSED));
        assert_eq!(plain.response_snippet, None);
        assert_eq!((plain.attempt, plain.status_code), (3, Some(500)));
        assert_eq!(plain.follow_up, FollowUp::Dead);
    }
}
