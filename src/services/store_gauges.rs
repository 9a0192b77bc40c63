//! Keeps the gauges that are read from the store current: campaigns by state and pending
//! webhook deliveries. Read, not counted on each change, so the figures stay right however
//! many processes change the store (each reports the same store-wide figure).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::domain::campaign::CampaignState;
use crate::metrics::{Metrics, StateLabel};
use crate::ports::{Campaigns, Deliveries};

/// How often the store is read.
pub const EVERY: Duration = Duration::from_secs(5);

pub struct StoreGauges {
    pub campaigns: Arc<dyn Campaigns>,
    pub deliveries: Arc<dyn Deliveries>,
    pub metrics: Metrics,
}

impl StoreGauges {
    /// Reads both figures once; a store that does not answer leaves the last ones.
    pub async fn refresh(&self) {
        let m = &self.metrics.store_state;
        match self.campaigns.count_by_state().await {
            Ok(counts) => {
                for state in CampaignState::ALL {
                    let n = counts
                        .iter()
                        .find(|(s, _)| *s == state)
                        .map_or(0, |(_, n)| *n);
                    m.campaigns
                        .get_or_create(&StateLabel {
                            state: state.as_str(),
                        })
                        .set(i64::try_from(n).unwrap_or(i64::MAX));
                }
            }
            Err(e) => tracing::debug!(error = %e, "could not count campaigns for the metrics"),
        }
        match self.deliveries.pending_count().await {
            Ok(n) => {
                m.deliveries_pending
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
            Err(e) => {
                tracing::debug!(error = %e, "could not count pending deliveries for the metrics")
            }
        }
    }

    /// Refreshes at once, then every [`EVERY`], until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        loop {
            self.refresh().await;
            tokio::select! {
                _ = tokio::time::sleep(EVERY) => {}
                _ = stop.cancelled() => return,
            }
        }
    }
}
