//! Raw provider payloads are kept for a while (audit, replay of what a BSP sent), then emptied;
//! the normalized history they produced stays for good. Settled webhook deliveries (their
//! bodies are copies of those payloads) and their attempts are deleted after the same time.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::domain::time::Timestamp;
use crate::ports::{Deliveries, Store, StoreError};

/// Rows emptied per statement: short write transactions, so webhooks never wait long behind one.
const BATCH: u32 = 2_000;

/// How often the background task looks for payloads past their retention.
const EVERY: Duration = Duration::from_secs(3600);

/// Empties every raw payload received before `before`, in batches; returns how many.
pub async fn prune_raw_payloads(store: &dyn Store, before: Timestamp) -> Result<u64, StoreError> {
    let mut total = 0;
    loop {
        let n = store.prune_raw(before, BATCH).await?;
        total += n;
        // Each call empties up to BATCH rows per table; fewer means both are done.
        if n < u64::from(BATCH) {
            return Ok(total);
        }
    }
}

/// Deletes every settled delivery created before `before`, in batches; returns how many.
pub async fn prune_deliveries(
    deliveries: &dyn Deliveries,
    before: Timestamp,
) -> Result<u64, StoreError> {
    let mut total = 0;
    loop {
        let n = deliveries.prune(before, BATCH).await?;
        total += n;
        if n < u64::from(BATCH) {
            return Ok(total);
        }
    }
}

/// Prunes payloads and settled deliveries older than `days` now and every hour until `stop`.
pub async fn run(
    store: Arc<dyn Store>,
    deliveries: Arc<dyn Deliveries>,
    days: u64,
    stop: CancellationToken,
) {
    let keep = Duration::from_secs(days * 86_400);
    loop {
        let cutoff = Timestamp::from_millis(
            Timestamp::now().millis() - i64::try_from(keep.as_millis()).unwrap_or(i64::MAX),
        );
        match prune_raw_payloads(&*store, cutoff).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, days, "emptied raw payloads past their retention"),
            Err(e) => tracing::warn!(error = %e, "pruning raw payloads failed; trying again later"),
        }
        match prune_deliveries(&*deliveries, cutoff).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                deliveries = n,
                days,
                "deleted deliveries past their retention"
            ),
            Err(e) => tracing::warn!(error = %e, "pruning deliveries failed; trying again later"),
        }
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = stop.cancelled() => return,
        }
    }
}
