//! The outbox: the delivery rows a store writes in the same transaction that applies new
//! events, one per (event, subscribed endpoint), each with the exact body it will send.

use std::time::Duration;

use sha2::{Digest, Sha256};

use super::request::{EventRef, body, event_type};
use crate::domain::endpoint::{EndpointId, Topic, Topics, WebhookDeliveryId};
use crate::domain::project::ProjectId;
use crate::domain::status::Status;
use crate::domain::time::Timestamp;

/// How long a new delivery waits for the queue message the processor publishes after its
/// commit. The row is written due at `now + QUEUED_LEASE`: the queue normally brings it to a
/// forwarder at once, and if the publish was lost (a crash between commit and publish, a
/// broker outage), the sweeper finds the row due after this and queues it again.
pub const QUEUED_LEASE: Duration = Duration::from_secs(30);

/// The event id every delivery of an event carries (`event_id`, `X-Event-ID`, `webhook-id`):
/// derived from the event's natural key, so the same event gets the same id wherever and
/// however often it is seen (a replay from quarantine, a redelivered queue message).
pub fn event_id(dedupe_key: &str) -> String {
    let digest = Sha256::digest(dedupe_key.as_bytes());
    format!("evt_{}", hex::encode(&digest[..16]))
}

/// An enabled endpoint that may receive a batch's events.
#[derive(Debug, Clone)]
pub struct Subscriber {
    pub id: EndpointId,
    pub project_id: ProjectId,
    pub topics: Topics,
}

/// A new event as the store knows it after merging: `current_status` and `campaign_id` are the
/// message's after this transaction (`None` for a user's message).
#[derive(Debug, Clone, Copy)]
pub struct Applied<'a> {
    pub event: EventRef<'a>,
    pub dedupe_key: &'a str,
    pub project_id: &'a ProjectId,
    pub current_status: Option<Status>,
    pub campaign_id: Option<&'a str>,
}

/// One outbox row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    pub id: WebhookDeliveryId,
    pub event_id: String,
    pub endpoint_id: EndpointId,
    pub project_id: ProjectId,
    pub event_type: &'static str,
    /// The exact body, built once and sent (and signed) on every attempt.
    pub payload: String,
    pub created_at: Timestamp,
    pub next_attempt_at: Timestamp,
}

/// The deliveries for `events`: one per event and endpoint of the event's project whose topics
/// take the event's type. The body is built once per event and shared by its endpoints.
pub fn deliveries<'a>(
    events: impl IntoIterator<Item = Applied<'a>>,
    subscribers: &[Subscriber],
    now: Timestamp,
) -> Vec<NewDelivery> {
    let mut out = Vec::new();
    if subscribers.is_empty() {
        return out;
    }
    let due = now.plus(QUEUED_LEASE);
    for e in events {
        let event_type = event_type(e.event);
        let topic = Topic::parse(event_type).expect("every event type is a topic");
        let mut targets = subscribers
            .iter()
            .filter(|s| s.project_id == *e.project_id && s.topics.accepts(topic))
            .peekable();
        if targets.peek().is_none() {
            continue;
        }
        let event_id = event_id(e.dedupe_key);
        let payload = String::from_utf8(body(
            e.event,
            e.current_status,
            e.campaign_id,
            &event_id,
            now,
        ))
        .expect("serde_json writes UTF-8");
        for s in targets {
            out.push(NewDelivery {
                id: WebhookDeliveryId::generate(),
                event_id: event_id.clone(),
                endpoint_id: s.id.clone(),
                project_id: s.project_id.clone(),
                event_type,
                payload: payload.clone(),
                created_at: now,
                next_attempt_at: due,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::value::RawValue;

    use super::*;
    use crate::domain::event::{InboundMessage, Provider, StatusEvent};
    use crate::domain::phone::PhoneNumber;
    use crate::domain::status::Reported;

    const NOW: Timestamp = Timestamp::from_millis(1_732_700_301_234);

    fn phone(s: &str) -> PhoneNumber {
        PhoneNumber::parse(s).unwrap()
    }

    fn report(provider: Provider) -> StatusEvent {
        StatusEvent {
            provider,
            wamid: "wamid.A".into(),
            status: Reported::Delivered,
            business_number: phone("+15550783881"),
            phone_number_id: None,
            phone: Some(phone("+919812345678")),
            campaign_id: None,
            reference: None,
            occurred_at: None,
            error: None,
            raw: RawValue::from_string(r#"{"id":"wamid.A"}"#.into()).unwrap(),
        }
    }

    fn inbound() -> InboundMessage {
        InboundMessage {
            provider: Provider::Meta,
            message_id: "wamid.IN".into(),
            business_number: phone("+15550783881"),
            phone_number_id: None,
            from: phone("+919812345678"),
            profile_name: None,
            kind: "text".into(),
            text: Some("hi".into()),
            occurred_at: None,
            raw: RawValue::from_string(r#"{"id":"wamid.IN"}"#.into()).unwrap(),
        }
    }

    fn subscriber(id: &str, project: &str, topics: &[&str]) -> Subscriber {
        Subscriber {
            id: EndpointId::from_trusted(id.into()),
            project_id: ProjectId::parse(project).unwrap(),
            topics: Topics::parse(topics).unwrap(),
        }
    }

    #[test]
    fn event_ids_are_stable_and_distinct() {
        assert_eq!(
            event_id("s:wamid.A:delivered"),
            event_id("s:wamid.A:delivered")
        );
        assert_ne!(event_id("s:wamid.A:delivered"), event_id("s:wamid.A:read"));
        assert_eq!(event_id("i:x").len(), 4 + 32);
        assert!(event_id("i:x").starts_with("evt_"));
    }

    #[test]
    fn each_event_goes_to_the_endpoints_of_its_project_that_take_its_type() {
        let acme = ProjectId::parse("acme").unwrap();
        let subs = [
            subscriber("ep_1", "acme", &["meta.delivery"]),
            subscriber("ep_2", "acme", &["*"]),
            subscriber("ep_3", "acme", &["datagen.delivery", "meta.user_message"]),
            subscriber("ep_4", "other", &["*"]),
        ];
        let meta = report(Provider::Meta);
        let msg = inbound();
        let out = deliveries(
            [
                Applied {
                    event: EventRef::Status(&meta),
                    dedupe_key: "s:wamid.A:delivered",
                    project_id: &acme,
                    current_status: Some(Status::Read),
                    campaign_id: Some("cmp_spring"),
                },
                Applied {
                    event: EventRef::Inbound(&msg),
                    dedupe_key: "i:wamid.IN",
                    project_id: &acme,
                    current_status: None,
                    campaign_id: None,
                },
            ],
            &subs,
            NOW,
        );
        let pairs: Vec<(&str, &str)> = out
            .iter()
            .map(|d| (d.event_type, d.endpoint_id.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("meta.delivery", "ep_1"),
                ("meta.delivery", "ep_2"),
                ("meta.user_message", "ep_2"),
                ("meta.user_message", "ep_3"),
            ]
        );
        // One body and one event id per event, whatever the endpoint.
        assert_eq!(out[0].payload, out[1].payload);
        assert_eq!(out[0].event_id, event_id("s:wamid.A:delivered"));
        assert!(out[0].payload.contains(r#""current_status":"read""#));
        // The message's campaign, which this event did not name.
        assert!(out[0].payload.contains(r#""campaign_id":"cmp_spring""#));
        assert!(out[0].payload.contains(&out[0].event_id));
        assert_ne!(out[0].id, out[1].id);
        assert!(
            out.iter()
                .all(|d| d.next_attempt_at == NOW.plus(QUEUED_LEASE))
        );
    }

    #[test]
    fn no_subscriber_no_body() {
        let acme = ProjectId::parse("acme").unwrap();
        let meta = report(Provider::Datagen);
        let applied = Applied {
            event: EventRef::Status(&meta),
            dedupe_key: "s:wamid.A:delivered",
            project_id: &acme,
            current_status: Some(Status::Delivered),
            campaign_id: None,
        };
        assert!(deliveries([applied], &[], NOW).is_empty());
        let only_meta = [subscriber("ep_1", "acme", &["meta.delivery"])];
        assert!(deliveries([applied], &only_meta, NOW).is_empty());
    }
}
