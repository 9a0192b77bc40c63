//! Skips events already applied, by their natural key, before they reach the store.
//!
//! A key is remembered only after the store committed the event, so "seen" always means
//! "already applied": skipping it is safe. The store's unique keys remain the real guarantee;
//! this only saves it work on the duplicates BSPs send.
//!
//! Marks live in this process's memory alone ([`RecentMarks`]). A Redis tier was measured to
//! cost more than it saves: every event paid a Redis round trip to spare the store the ~10%
//! that are duplicates, and ingress on PostgreSQL + RabbitMQ + Redis went from ~16.8k to
//! ~12.9k events/s (`wagate bench ingest --events 100000 --concurrency 64`, two runs each).

use std::sync::Arc;

use super::recent_marks::RecentMarks;
use crate::metrics::{LayerLabel, Metrics};

pub struct Dedupe {
    marks: Arc<RecentMarks>,
    metrics: Metrics,
}

impl Dedupe {
    pub fn new(marks: Arc<RecentMarks>, metrics: Metrics) -> Dedupe {
        Dedupe { marks, metrics }
    }

    /// For each natural key, whether it was applied before.
    pub async fn seen(&self, natural_keys: &[String]) -> Vec<bool> {
        let found = self.marks.seen(natural_keys);
        let hits = found.iter().filter(|f| **f).count() as u64;
        self.metrics
            .cache_lookups_by("dedupe", "memory", hits, found.len() as u64 - hits);
        if hits > 0 {
            self.metrics
                .dedupe_hits
                .get_or_create(&LayerLabel { layer: "cache" })
                .inc_by(hits);
        }
        found
    }

    /// Call only after the events with these keys are committed.
    pub async fn remember(&self, natural_keys: &[String]) {
        self.marks.mark(natural_keys);
    }
}
