//! Every metric wagate exports, its name, help and labels, in one typed place.

pub mod forward;
pub mod http;
pub mod process;
pub mod send;
pub mod store_state;

use std::sync::Arc;

use crate::domain::task::queues;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

pub use http::{HttpLabel, RouteLabel};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabel {
    pub provider: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub provider: &'static str,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabel {
    pub queue: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AppliedLabel {
    pub kind: &'static str,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LayerLabel {
    pub layer: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabel {
    pub cache: &'static str,
    pub layer: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheResultLabel {
    pub cache: &'static str,
    pub layer: &'static str,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ToLabel {
    pub to: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabel {
    pub op: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.1 ms to ~6.5 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 17))
}

/// The process's metrics. Cloning shares them.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    /// Process readings and in-process cache sizes, taken at each scrape.
    pub sizes: process::Sizes,
    pub ingress_accepted: Family<ProviderLabel, Counter>,
    pub ingress_rejected: Family<ReasonLabel, Counter>,
    pub quarantined: Family<ReasonLabel, Counter>,
    pub ingress_publish_events: Histogram,
    pub ingress_publish_seconds: Histogram,
    pub queue_depth: Family<QueueLabel, Gauge>,
    pub queue_dead: Family<QueueLabel, Gauge>,
    /// Seconds the oldest ready message has waited, by queue (see `Queue::oldest_ready`).
    pub queue_oldest_ready: Family<QueueLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub dead_lettered: Family<QueueLabel, Counter>,
    pub processing_lag_seconds: Histogram,
    pub processor_batch_events: Histogram,
    pub processor_applied: Family<AppliedLabel, Counter>,
    pub processor_retries: Counter,
    pub dedupe_hits: Family<LayerLabel, Counter>,
    pub cache_lookups: Family<CacheResultLabel, Counter>,
    pub cache_hit_ratio: Family<CacheLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub store_seconds: HistogramFamily<OpLabel>,
    pub forward: forward::ForwardMetrics,
    pub send: send::SendMetrics,
    pub http: http::HttpMetrics,
    pub store_state: store_state::StoreStateMetrics,
    /// Per-URL breakers this process tracks, by state (a count, never a label per URL).
    pub forward_breakers: Family<StateLabel, Gauge>,
    /// Breakers this process opened or closed, by the state they went to.
    pub breaker_transitions: Family<ToLabel, Counter>,
    /// Endpoint config lookups answered, by the layer that answered.
    pub endpoint_cache_lookups: Family<LayerLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut root = Registry::default();
        let sizes = process::Sizes::default();
        root.register_collector(Box::new(sizes.clone()));
        let r = root.sub_registry_with_prefix("wagate");
        let forward = forward::ForwardMetrics::register(r);
        let send = send::SendMetrics::register(r);
        let http = http::HttpMetrics::register(r);
        let store_state = store_state::StoreStateMetrics::register(r);
        let m = Metrics {
            registry: Arc::new(Registry::default()),
            sizes: process::Sizes::default(),
            ingress_accepted: Family::default(),
            ingress_rejected: Family::default(),
            quarantined: Family::default(),
            ingress_publish_events: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            ingress_publish_seconds: latency_histogram(),
            queue_depth: Family::default(),
            queue_dead: Family::default(),
            queue_oldest_ready: Family::default(),
            dead_lettered: Family::default(),
            processing_lag_seconds: latency_histogram(),
            processor_batch_events: Histogram::new(exponential_buckets(1.0, 2.0, 14)),
            processor_applied: Family::default(),
            processor_retries: Counter::default(),
            dedupe_hits: Family::default(),
            cache_lookups: Family::default(),
            cache_hit_ratio: Family::default(),
            store_seconds: Family::new_with_constructor(latency_histogram),
            forward,
            send,
            http,
            store_state,
            forward_breakers: Family::default(),
            breaker_transitions: Family::default(),
            endpoint_cache_lookups: Family::default(),
        };
        r.register(
            "ingress_events_accepted",
            "Events durably enqueued by ingress",
            m.ingress_accepted.clone(),
        );
        r.register("ingress_rejected", "Requests or events ingress refused (invalid JSON, bad signature, too large, queue unavailable)", m.ingress_rejected.clone());
        r.register(
            "quarantined",
            "Payloads or events kept in quarantine because they could not be interpreted",
            m.quarantined.clone(),
        );
        r.register(
            "ingress_publish_events",
            "Events carried by one queue message (ingress micro-batching)",
            m.ingress_publish_events.clone(),
        );
        r.register(
            "ingress_publish_seconds",
            "Time to make one micro-batch durable",
            m.ingress_publish_seconds.clone(),
        );
        r.register(
            "queue_depth",
            "Messages ready or in flight in a queue",
            m.queue_depth.clone(),
        );
        r.register(
            "queue_oldest_ready_seconds",
            "How long the oldest message ready for a consumer has waited (on RabbitMQ an upper bound from what this process saw: take the smallest across processes)",
            m.queue_oldest_ready.clone(),
        );
        r.register(
            "queue_dead_letters",
            "Messages parked in a queue's dead-letter store",
            m.queue_dead.clone(),
        );
        r.register(
            "queue_dead_lettered",
            "Messages moved to a dead-letter store by this process",
            m.dead_lettered.clone(),
        );
        r.register(
            "processing_lag_seconds",
            "From ingress receive to the processor's commit",
            m.processing_lag_seconds.clone(),
        );
        r.register(
            "processor_batch_events",
            "Events applied in one store transaction",
            m.processor_batch_events.clone(),
        );
        r.register(
            "processor_applied",
            "Events the processor applied, new or already known",
            m.processor_applied.clone(),
        );
        r.register(
            "processor_retries",
            "Batches the processor retried after a store failure",
            m.processor_retries.clone(),
        );
        r.register(
            "dedupe_hits",
            "Duplicate events recognised, by the layer that recognised them",
            m.dedupe_hits.clone(),
        );
        r.register(
            "cache_lookups",
            "Cache lookups by cache, layer and hit/miss",
            m.cache_lookups.clone(),
        );
        r.register(
            "cache_hit_ratio",
            "Hits over lookups since start, by cache and layer",
            m.cache_hit_ratio.clone(),
        );
        r.register(
            "store_operation_seconds",
            "Store call latency by operation",
            m.store_seconds.clone(),
        );
        r.register(
            "forward_breakers",
            "Webhook URL circuit breakers this process tracks, by state",
            m.forward_breakers.clone(),
        );
        r.register(
            "breaker_transitions",
            "Webhook URL circuit breakers this process opened or closed, by the state they went to",
            m.breaker_transitions.clone(),
        );
        r.register(
            "endpoint_cache_lookups",
            "Endpoint config lookups by the layer that answered (memory, shared, store)",
            m.endpoint_cache_lookups.clone(),
        );
        // Dead-lettering on every queue, and breakers in every state, are exported from the
        // start, at 0: an alert on their increase then has a series to start from.
        for queue in [queues::EVENTS, queues::FORWARD, queues::SEND] {
            drop(m.dead_lettered.get_or_create(&QueueLabel { queue }));
        }
        for state in [
            crate::domain::breaker::BreakerState::Closed,
            crate::domain::breaker::BreakerState::Open,
            crate::domain::breaker::BreakerState::HalfOpen,
        ] {
            m.forward_breaker(state);
        }
        Metrics {
            registry: Arc::new(root),
            sizes,
            ..m
        }
    }

    pub fn cache_lookup(&self, cache: &'static str, layer: &'static str, hit: bool) {
        let (hits, misses) = if hit { (1, 0) } else { (0, 1) };
        self.cache_lookups_by(cache, layer, hits, misses);
    }

    /// Counts a batch of lookups at once.
    pub fn cache_lookups_by(
        &self,
        cache: &'static str,
        layer: &'static str,
        hits: u64,
        misses: u64,
    ) {
        for (result, n) in [("hit", hits), ("miss", misses)] {
            if n > 0 {
                self.cache_lookups
                    .get_or_create(&CacheResultLabel {
                        cache,
                        layer,
                        result,
                    })
                    .inc_by(n);
            }
        }
    }

    /// The gauge counting breakers in `state`.
    pub fn forward_breaker(&self, state: crate::domain::breaker::BreakerState) -> Gauge {
        self.forward_breakers
            .get_or_create(&StateLabel {
                state: state.as_str(),
            })
            .clone()
    }

    /// Counts a breaker opening or closing.
    pub fn breaker_transition(&self, to: crate::domain::breaker::BreakerState) {
        self.breaker_transitions
            .get_or_create(&ToLabel { to: to.as_str() })
            .inc();
    }

    /// Counts an endpoint lookup answered by `layer` (`memory`, `shared` or `store`).
    pub fn endpoint_cache_hit(&self, layer: &'static str) {
        self.endpoint_cache_lookups
            .get_or_create(&LayerLabel { layer })
            .inc();
    }

    /// Prometheus text format, with the derived hit ratios brought up to date first.
    pub fn render(&self) -> String {
        for cache in ["project_lookup", "api_key", "dedupe"] {
            for layer in ["memory", "redis"] {
                let count = |result| {
                    self.cache_lookups
                        .get(&CacheResultLabel {
                            cache,
                            layer,
                            result,
                        })
                        .map(|c| c.get())
                        .unwrap_or(0)
                };
                let (hits, misses) = (count("hit"), count("miss"));
                if hits + misses > 0 {
                    self.cache_hit_ratio
                        .get_or_create(&CacheLabel { cache, layer })
                        .set(hits as f64 / (hits + misses) as f64);
                }
            }
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_names_and_ratios() {
        let m = Metrics::new();
        m.ingress_accepted
            .get_or_create(&ProviderLabel { provider: "meta" })
            .inc_by(3);
        m.cache_lookup("project_lookup", "memory", true);
        m.cache_lookup("project_lookup", "memory", false);
        let text = m.render();
        assert!(
            text.contains("wagate_ingress_events_accepted_total{provider=\"meta\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("wagate_cache_hit_ratio{cache=\"project_lookup\",layer=\"memory\"} 0.5"),
            "{text}"
        );
    }
}
