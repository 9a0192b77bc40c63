//! Forwarding metrics: the outbox, attempts and their outcomes, retries, the dead letters.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::latency_histogram;

/// What became of an attempt (or of a delivery that was not attempted now).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// `delivered`, `retry`, `dead`, `disabled`; or, not attempted: `deferred_breaker`,
    /// `deferred_busy`, `skipped`.
    pub outcome: &'static str,
}

/// Every outcome the forwarder counts: each is exported from the start at 0, so a rate or a
/// ratio over them has data before the first delivery (and alerts can tell 0 from absent).
pub const FORWARD_OUTCOMES: [&str; 8] = [
    "delivered",
    "retry",
    "dead",
    "disabled",
    "deferred_breaker",
    "deferred_busy",
    "deferred_slots",
    "skipped",
];

#[derive(Clone)]
pub struct ForwardMetrics {
    pub outbox_deliveries: Counter,
    pub deliveries: Family<OutcomeLabel, Counter>,
    pub attempt_seconds: Histogram,
    pub retries_scheduled: Counter,
    pub dead_letters: Gauge,
    pub swept: Counter,
    pub in_flight: Gauge,
}

impl ForwardMetrics {
    pub(super) fn register(r: &mut Registry) -> ForwardMetrics {
        let m = ForwardMetrics {
            outbox_deliveries: Counter::default(),
            deliveries: Family::default(),
            attempt_seconds: latency_histogram(),
            retries_scheduled: Counter::default(),
            dead_letters: Gauge::default(),
            swept: Counter::default(),
            in_flight: Gauge::default(),
        };
        for outcome in FORWARD_OUTCOMES {
            drop(m.deliveries.get_or_create(&OutcomeLabel { outcome }));
        }
        r.register(
            "outbox_deliveries",
            "Deliveries the processor wrote with new events and queued for the forwarder",
            m.outbox_deliveries.clone(),
        );
        r.register(
            "forward_deliveries",
            "Deliveries handled by the forwarder, by outcome",
            m.deliveries.clone(),
        );
        r.register(
            "forward_attempt_seconds",
            "Webhook request latency, connect to response read",
            m.attempt_seconds.clone(),
        );
        r.register(
            "forward_retries_scheduled",
            "Failed attempts given another try by the retry schedule",
            m.retries_scheduled.clone(),
        );
        r.register(
            "forward_dead_letters",
            "Deliveries dead-lettered (all endpoints), as last read from the store",
            m.dead_letters.clone(),
        );
        r.register(
            "forward_swept",
            "Due deliveries the sweeper queued (retries, lost queue messages, redrives)",
            m.swept.clone(),
        );
        r.register(
            "forward_in_flight",
            "Webhook requests in flight in this process",
            m.in_flight.clone(),
        );
        m
    }

    pub fn count(&self, outcome: &'static str) {
        self.deliveries
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }
}
