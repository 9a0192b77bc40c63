//! The receive loop the forwarder and the sender share: keep a consumer open on the queue,
//! hold up to `prefetch` messages, handle each in its own task, and ack each (or hand it back)
//! as soon as its task reports.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::metrics::{Metrics, QueueLabel};
use crate::ports::{Consumer, Delivery, Queue, QueueError};

/// What a queue worker does with one message: `true` when done with it (it is acked),
/// `false` when its store writes failed and it must come back after the retry delay.
#[async_trait::async_trait]
pub trait Handler: Send + Sync + 'static {
    async fn handle_message(&self, d: &Delivery) -> bool;
}

/// How long the loop waits for new messages before acking finished ones.
const ACK_TICK: Duration = Duration::from_millis(20);

/// Consumes `queue_name` with [`consume`] until `shutdown`, opening the consumer again
/// whenever it cannot be opened (after a backoff that doubles from 200 ms to 6.4 s) or fails
/// (after a second). `role` names the worker in logs.
#[allow(clippy::too_many_arguments)]
pub async fn serve<H: Handler>(
    queue: &dyn Queue,
    queue_name: &'static str,
    prefetch: u16,
    retry_after: Duration,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
    role: &'static str,
    handler: Arc<H>,
) {
    let mut failures = 0u32;
    while !shutdown.is_cancelled() {
        let mut consumer = match queue.consumer(queue_name, prefetch).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, role, "cannot consume the queue; retrying");
                failures = (failures + 1).min(6);
                pause(Duration::from_millis(100 << failures), shutdown).await;
                continue;
            }
        };
        failures = 0;
        match consume(
            consumer.as_mut(),
            usize::from(prefetch),
            retry_after,
            shutdown,
            tracker,
            &handler,
        )
        .await
        {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(error = %e, role, "lost the queue consumer; reconnecting");
                pause(Duration::from_secs(1), shutdown).await;
            }
        }
    }
    tracing::debug!(role, "queue worker stopped");
}

async fn pause(d: Duration, shutdown: &CancellationToken) {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = shutdown.cancelled() => {}
    }
}

/// Runs until `shutdown`, then stops receiving and waits for the tasks it started: one per
/// message, acked or handed back after `retry_after` as its handler says.
async fn consume<H: Handler>(
    consumer: &mut dyn Consumer,
    prefetch: usize,
    retry_after: Duration,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
    handler: &Arc<H>,
) -> Result<(), QueueError> {
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(Delivery, bool)>();
    let mut outstanding = 0usize;
    loop {
        let stopping = shutdown.is_cancelled();
        if stopping && outstanding == 0 {
            return Ok(());
        }
        if !stopping && outstanding < prefetch {
            let got = tokio::select! {
                r = consumer.receive(prefetch - outstanding, Some(ACK_TICK)) => r?,
                _ = shutdown.cancelled() => Vec::new(),
            };
            for d in got {
                outstanding += 1;
                let done = done_tx.clone();
                let handler = handler.clone();
                tracker.spawn(async move {
                    let ok = handler.handle_message(&d).await;
                    let _ = done.send((d, ok));
                });
            }
        } else if let Some(first) = done_rx.recv().await {
            outstanding -= 1;
            finish(consumer, first, retry_after).await?;
        }
        while let Ok(next) = done_rx.try_recv() {
            outstanding -= 1;
            finish(consumer, next, retry_after).await?;
        }
    }
}

async fn finish(
    consumer: &mut dyn Consumer,
    (d, ok): (Delivery, bool),
    retry_after: Duration,
) -> Result<(), QueueError> {
    if ok {
        consumer.ack(&[d.id]).await
    } else {
        consumer.retry(&d, retry_after).await
    }
}

/// A message on `queue` that no version of its task decodes: dropped, since the rows it may
/// have named are still in the store, where the sweeper or runner finds them again; counted
/// as dead-lettered.
pub fn drop_undecodable(metrics: &Metrics, queue: &'static str) {
    tracing::error!(queue, "undecodable message; dropping it");
    metrics
        .dead_lettered
        .get_or_create(&QueueLabel { queue })
        .inc();
}
