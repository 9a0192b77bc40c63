//! HTTP metrics: requests by route and status, and their latency by route.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::{HistogramFamily, latency_histogram};

/// A request's route is its template (`/v1/messages/{wamid}`), never its path: paths hold ids,
/// and one series per id would grow without bound.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabel {
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: String,
}

#[derive(Clone)]
pub struct HttpMetrics {
    pub requests: Family<HttpLabel, Counter>,
    pub request_seconds: HistogramFamily<RouteLabel>,
}

impl HttpMetrics {
    pub(super) fn register(r: &mut Registry) -> HttpMetrics {
        let m = HttpMetrics {
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
        };
        r.register(
            "http_requests",
            "HTTP requests answered, by route template and status",
            m.requests.clone(),
        );
        r.register(
            "http_request_seconds",
            "Time from a request's arrival to its response's head, by route template",
            m.request_seconds.clone(),
        );
        m
    }
}
