//! Versioned queue payloads: what one queue message carries between roles.

use serde::{Deserialize, Serialize};

use super::event::Event;
use super::time::Timestamp;

/// Queue names, one per kind of work.
pub mod queues {
    /// Normalized BSP events on their way to the processor.
    pub const EVENTS: &str = "events";
    /// Webhook deliveries (outbox rows) for the forwarder to attempt.
    pub const FORWARD: &str = "forward";
    /// Campaign recipients for the sender to send.
    pub const SEND: &str = "send";
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
    /// Deliveries to attempt, by id (`dl_…`). Only ids: the row holds the body, the endpoint
    /// holds the secret, and a secret never travels in a queue message.
    #[serde(rename = "forward.v1")]
    ForwardV1 { deliveries: Vec<String> },
    /// Campaign recipients to send, by id (`rcp_…`): the recipient rows hold the phone and
    /// variables, the campaign the template, and the project's settings the credentials.
    #[serde(rename = "send.v1")]
    SendV1 { recipients: Vec<String> },
}

/// Deliveries named per forward queue message: small enough that one slow endpoint holding a
/// message's ack (up to the request timeout) holds few others with it, large enough that the
/// broker's per-message cost stays low.
pub const FORWARD_CHUNK: usize = 64;

/// Recipients named per send queue message.
pub const SEND_CHUNK: usize = 50;

impl Task {
    /// The forward tasks naming these deliveries, [`FORWARD_CHUNK`] per task.
    pub fn forward<'a>(ids: impl IntoIterator<Item = &'a str>) -> Vec<Task> {
        let ids: Vec<String> = ids.into_iter().map(str::to_owned).collect();
        ids.chunks(FORWARD_CHUNK)
            .map(|c| Task::ForwardV1 {
                deliveries: c.to_vec(),
            })
            .collect()
    }

    /// The send tasks naming these recipients, [`SEND_CHUNK`] per task.
    pub fn send<'a>(ids: impl IntoIterator<Item = &'a str>) -> Vec<Task> {
        let ids: Vec<String> = ids.into_iter().map(str::to_owned).collect();
        ids.chunks(SEND_CHUNK)
            .map(|c| Task::SendV1 {
                recipients: c.to_vec(),
            })
            .collect()
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("tasks contain only serializable values")
    }

    pub fn decode(bytes: &[u8]) -> Result<Task, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::Event;
    use crate::domain::status::Reported;

    /// A task as the previous version encoded it, before statuses became reports: a rolling
    /// deploy still has these queued.
    #[test]
    fn decodes_the_previous_versions_status_events() {
        let old = br#"{"events.v1":{"received_at":1732700300123,"events":[{"status":{
            "provider":"datagen","wamid":"wamid.A","status":"delivered",
            "business_number":"+919812345678","phone":"+919876543210","campaign_id":"c1",
            "occurred_at":1732700300000,"error":null,"raw":{"mid":"wamid.A"}}}]}}"#;
        let Ok(Task::EventsV1 { events, .. }) = Task::decode(old) else {
            panic!("expected events")
        };
        let Event::Status(e) = &events[0] else {
            panic!("expected a status event")
        };
        assert_eq!(e.status, Reported::Delivered);
        assert_eq!(events[0].dedupe_key(), "s:wamid.A:delivered");
        // Events queued before references existed have none.
        assert_eq!(e.reference, None);
        // And what this version writes reads back the same, new words and references included.
        let mut again = e.clone();
        again.status = Reported::Other("queued".into());
        again.reference = Some("rcp_0193a1b2c3d47e8f9a0b1c2d3e4f5a6b".into());
        let task = Task::EventsV1 {
            received_at: Timestamp::from_millis(1),
            events: vec![Event::Status(again)],
        };
        let Ok(Task::EventsV1 { events, .. }) = Task::decode(&task.encode()) else {
            panic!("expected events")
        };
        let Event::Status(e) = &events[0] else {
            panic!("expected a status event")
        };
        assert_eq!(e.status, Reported::Other("queued".into()));
        assert_eq!(
            e.reference.as_deref(),
            Some("rcp_0193a1b2c3d47e8f9a0b1c2d3e4f5a6b")
        );
        // No reference, no field: what this version writes stays readable by the previous one.
        let mut plain = e.clone();
        plain.reference = None;
        let encoded = serde_json::to_value(Event::Status(plain)).unwrap();
        assert!(encoded["status"].get("reference").is_none(), "{encoded}");
        assert!(encoded["status"].get("campaign_id").is_some());
    }
}
