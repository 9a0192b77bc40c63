//! Campaign metrics: sends by outcome, BSP request latency, recipients queued by the runner.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::forward::OutcomeLabel;
use super::latency_histogram;

/// Every outcome the sender counts, exported from the start at 0: `sent`, `failed`, `retry`
/// (refused for now: throttled, a 5xx with the BSP's error body, no connection), `skipped`,
/// `uncertain` (no answer: left `sending` for the BSP's webhook), `released` (handed back by a
/// pause or a shutdown), `cancelled`, `not_claimed` (already handled, or paused).
pub const SEND_OUTCOMES: [&str; 8] = [
    "sent",
    "failed",
    "retry",
    "skipped",
    "uncertain",
    "released",
    "cancelled",
    "not_claimed",
];

#[derive(Clone)]
pub struct SendMetrics {
    /// One of [`SEND_OUTCOMES`].
    pub sends: Family<OutcomeLabel, Counter>,
    pub request_seconds: Histogram,
    pub queued: Counter,
    pub in_flight: Gauge,
    pub repaired: Counter,
}

impl SendMetrics {
    pub(super) fn register(r: &mut Registry) -> SendMetrics {
        let m = SendMetrics {
            sends: Family::default(),
            request_seconds: latency_histogram(),
            queued: Counter::default(),
            in_flight: Gauge::default(),
            repaired: Counter::default(),
        };
        for outcome in SEND_OUTCOMES {
            drop(m.sends.get_or_create(&OutcomeLabel { outcome }));
        }
        r.register(
            "campaign_sends",
            "Campaign recipients handled by the sender, by outcome",
            m.sends.clone(),
        );
        r.register(
            "campaign_send_request_seconds",
            "BSP send request latency",
            m.request_seconds.clone(),
        );
        r.register(
            "campaign_recipients_queued",
            "Due recipients the campaign runner queued for the sender",
            m.queued.clone(),
        );
        r.register(
            "campaign_sends_in_flight",
            "BSP send requests in flight in this process",
            m.in_flight.clone(),
        );
        r.register(
            "campaign_recipients_repaired",
            "Recipients whose send was confirmed by a BSP webhook echoing their reference",
            m.repaired.clone(),
        );
        m
    }

    pub fn count(&self, outcome: &'static str, n: u64) {
        self.sends
            .get_or_create(&OutcomeLabel { outcome })
            .inc_by(n);
    }
}
