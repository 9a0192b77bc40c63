//! Versioned queue payloads: what one queue message carries between roles.

use serde::{Deserialize, Serialize};

use super::event::Event;
use super::time::Timestamp;

/// Queue names, one per kind of work.
pub mod queues {
    /// Normalized BSP events on their way to the processor.
    pub const EVENTS: &str = "events";
}

/// A queue message. New shapes get a new variant (`EventsV2`), so a rolling deploy can still
/// read what the previous version wrote.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Task {
    /// Events received together by ingress (one or more webhooks, micro-batched so one broker
    /// message carries many events).
    #[serde(rename = "events.v1")]
    EventsV1 {
        received_at: Timestamp,
        events: Vec<Event>,
    },
}

impl Task {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("tasks contain only serializable values")
    }

    pub fn decode(bytes: &[u8]) -> Result<Task, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}
