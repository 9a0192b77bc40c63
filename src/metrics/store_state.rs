//! Gauges read from the store, so that they are right whichever process changed it: campaigns
//! by state, and webhook deliveries still to be made.

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::StateLabel;

#[derive(Clone)]
pub struct StoreStateMetrics {
    /// Every state is present, at 0 when no campaign is in it.
    pub campaigns: Family<StateLabel, Gauge>,
    pub deliveries_pending: Gauge,
}

impl StoreStateMetrics {
    pub(super) fn register(r: &mut Registry) -> StoreStateMetrics {
        let m = StoreStateMetrics {
            campaigns: Family::default(),
            deliveries_pending: Gauge::default(),
        };
        r.register(
            "campaigns",
            "Campaigns in the store by state (read from the store every few seconds)",
            m.campaigns.clone(),
        );
        r.register(
            "deliveries_pending",
            "Webhook deliveries not yet delivered or dead: due now, retrying later or deferred",
            m.deliveries_pending.clone(),
        );
        m
    }
}
