//! Turns a batch of received events into the rows one store transaction writes.
//!
//! The store enforces the same rules with unique keys and `GREATEST`, so applying a plan twice,
//! or two plans in either order, gives the same state; planning only removes the work a single
//! statement cannot do twice (PostgreSQL refuses to upsert one row twice in one statement) and
//! sorts rows so concurrent processors lock them in the same order.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use super::event::{Event, InboundMessage, Provider, StatusEvent};
use super::phone::PhoneNumber;
use super::project::ProjectId;
use super::status::Status;
use super::time::Timestamp;

/// An event whose project is known, as the processor hands it to the store.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub project_id: ProjectId,
    pub event: Event,
    pub received_at: Timestamp,
}

/// One row of a message's history.
#[derive(Debug, Clone, Copy)]
pub struct HistoryRow<'a> {
    pub project_id: &'a ProjectId,
    pub event: &'a StatusEvent,
    pub received_at: Timestamp,
}

/// The merged effect of a batch on one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageUpsert<'a> {
    pub wamid: &'a str,
    pub project_id: &'a ProjectId,
    pub provider: Provider,
    pub status: Status,
    pub business_number: &'a PhoneNumber,
    pub phone: Option<&'a PhoneNumber>,
    pub campaign_id: Option<&'a str>,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, Copy)]
pub struct InboundRow<'a> {
    pub project_id: &'a ProjectId,
    pub message: &'a InboundMessage,
    pub received_at: Timestamp,
}

/// The rows of one transaction, each list sorted by its key and free of duplicates.
#[derive(Debug, Default)]
pub struct Plan<'a> {
    pub history: Vec<HistoryRow<'a>>,
    pub messages: Vec<MessageUpsert<'a>>,
    pub inbound: Vec<InboundRow<'a>>,
}

pub fn plan(items: &[Incoming]) -> Plan<'_> {
    let mut history: BTreeMap<(&str, Status), HistoryRow> = BTreeMap::new();
    let mut messages: BTreeMap<&str, MessageUpsert> = BTreeMap::new();
    let mut inbound: BTreeMap<&str, InboundRow> = BTreeMap::new();
    for item in items {
        match &item.event {
            Event::Status(e) => {
                history
                    .entry((e.wamid.as_str(), e.status))
                    .or_insert(HistoryRow {
                        project_id: &item.project_id,
                        event: e,
                        received_at: item.received_at,
                    });
                match messages.entry(e.wamid.as_str()) {
                    Entry::Vacant(v) => {
                        v.insert(MessageUpsert {
                            wamid: &e.wamid,
                            project_id: &item.project_id,
                            provider: e.provider,
                            status: e.status,
                            business_number: &e.business_number,
                            phone: e.phone.as_ref(),
                            campaign_id: e.campaign_id.as_deref(),
                            updated_at: item.received_at,
                        });
                    }
                    Entry::Occupied(mut o) => {
                        let m = o.get_mut();
                        m.status = m.status.merge(e.status);
                        m.updated_at = m.updated_at.max(item.received_at);
                        m.phone = m.phone.or(e.phone.as_ref());
                        m.campaign_id = m.campaign_id.or(e.campaign_id.as_deref());
                    }
                }
            }
            Event::Inbound(m) => {
                inbound.entry(m.message_id.as_str()).or_insert(InboundRow {
                    project_id: &item.project_id,
                    message: m,
                    received_at: item.received_at,
                });
            }
        }
    }
    Plan {
        history: history.into_values().collect(),
        messages: messages.into_values().collect(),
        inbound: inbound.into_values().collect(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::value::RawValue;
    use std::collections::BTreeSet;

    pub(crate) fn status_event(wamid: &str, status: Status, at: i64) -> Event {
        Event::Status(StatusEvent {
            provider: Provider::Datagen,
            wamid: wamid.into(),
            status,
            business_number: PhoneNumber::parse("+919812345678").unwrap(),
            phone: (at % 2 == 0).then(|| PhoneNumber::parse("+919876543210").unwrap()),
            campaign_id: None,
            occurred_at: Some(Timestamp::from_millis(at)),
            error: None,
            raw: RawValue::from_string("{}".into()).unwrap(),
        })
    }

    fn any_status() -> impl Strategy<Value = Status> {
        prop::sample::select(Status::ALL.to_vec())
    }

    proptest! {
        /// Whatever the order and duplication inside a batch: one history row per distinct
        /// (wamid, status), one message per wamid, and its status is the max.
        #[test]
        fn plan_is_max_and_distinct(
            raw in prop::collection::vec((0u8..4, any_status(), 0i64..1000), 1..60),
        ) {
            let project = ProjectId::parse("p").unwrap();
            let items: Vec<Incoming> = raw.iter().map(|(w, s, at)| Incoming {
                project_id: project.clone(),
                event: status_event(&format!("w{w}"), *s, *at),
                received_at: Timestamp::from_millis(*at),
            }).collect();
            let p = plan(&items);
            let distinct: BTreeSet<(String, Status)> =
                raw.iter().map(|(w, s, _)| (format!("w{w}"), *s)).collect();
            let planned: Vec<(String, Status)> =
                p.history.iter().map(|h| (h.event.wamid.clone(), h.event.status)).collect();
            prop_assert_eq!(planned, distinct.iter().cloned().collect::<Vec<_>>());
            for m in &p.messages {
                let max = raw.iter().filter(|(w, ..)| format!("w{w}") == m.wamid).map(|r| r.1).max();
                prop_assert_eq!(Some(m.status), max);
                let latest = raw.iter().filter(|(w, ..)| format!("w{w}") == m.wamid).map(|r| r.2).max();
                prop_assert_eq!(Some(m.updated_at.millis()), latest);
            }
            let wamids: BTreeSet<&str> = p.messages.iter().map(|m| m.wamid).collect();
            prop_assert_eq!(wamids.len(), p.messages.len());
        }
    }
}
