//! Batches the forwarder's attempt records into few store transactions.
//!
//! Every attempt must be durable before its queue message is acked, but one transaction per
//! attempt would cap forwarding at what the store commits one row at a time (~1,700/s on
//! PostgreSQL here). Attempts finishing at about the same time, from any queue message, are
//! written together: the first waits at most `window` for company.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::task::TaskTracker;

use crate::domain::endpoint::WebhookDeliveryId;
use crate::ports::deliveries::AttemptRecord;
use crate::ports::{Deliveries, StoreError};

type Reply = oneshot::Sender<Result<bool, StoreError>>;

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
        match deliveries.record(&records).await {
            Ok(moved) => {
                let moved: std::collections::HashSet<&WebhookDeliveryId> = moved.iter().collect();
                for (r, reply) in records.iter().zip(replies) {
                    let _ = reply.send(Ok(moved.contains(&r.delivery)));
                }
            }
            Err(e) => {
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}
