//! `Deliveries::replay` on both stores: dead deliveries of the window revived, stored events
//! the endpoint has no delivery for made into the outbox's deliveries (same event id, same
//! body but its timestamp), nothing twice, and nothing at all past the event bound.

use std::collections::BTreeMap;

use serde_json::Value;
use wagate::domain::endpoint::{Endpoint, WebhookDeliveryId};
use wagate::domain::time::Timestamp;
use wagate::ports::deliveries::{FollowUp, Pending, ReplayWindow, Replayed};

use super::{Ports, attempt, endpoint, later, record, seed};
use crate::store_conformance::apply;
use crate::support::events::{self, incoming};

fn window(max_events: u32) -> ReplayWindow {
    ReplayWindow {
        since: Timestamp::from_millis(0),
        until: later(3_600_000),
        max_events,
    }
}

async fn replay(ports: &Ports, e: &Endpoint, max_events: u32) -> Replayed {
    ports
        .deliveries
        .replay(e, &window(max_events), Timestamp::now())
        .await
        .unwrap()
}

/// The deliveries due now (not the outbox's, due after its queued lease), claimed and loaded.
async fn due(ports: &Ports) -> Vec<Pending> {
    let ids: Vec<WebhookDeliveryId> = ports
        .deliveries
        .claim_due(later(1_000), later(3_600_000), 100)
        .await
        .unwrap();
    ports.deliveries.load(&ids).await.unwrap()
}

/// A body without its `timestamp` (when it was made a delivery).
fn timeless(payload: &str) -> Value {
    let mut v: Value = serde_json::from_str(payload).unwrap();
    v.as_object_mut().unwrap().remove("timestamp");
    v
}

pub async fn replay_revives_the_window_and_creates_each_missing_delivery_once(ports: &Ports) {
    let (e, ids) = seed(ports, 2).await;
    let inbound = [incoming("acme", events::inbound("wamid.IN1", 1), 1)];
    let mut ids = [ids, apply(&*ports.store, &inbound).await.deliveries].concat();
    ids.sort();
    record(ports, &[attempt(&ids[0], 1, Some(400), FollowUp::Dead)]).await;
    let originals: BTreeMap<String, Value> = ports
        .deliveries
        .load(&ids)
        .await
        .unwrap()
        .into_iter()
        .map(|p| (p.event_id, timeless(&p.payload)))
        .collect();
    assert_eq!(originals.len(), 3);

    // Endpoints made after the events: one takes both kinds, one takes neither.
    let late = endpoint(ports, "acme", &["datagen.delivery", "meta.user_message"]).await;
    let none = endpoint(ports, "acme", &["meta.delivery"]).await;
    assert_eq!(replay(ports, &late, 2).await, Replayed::TooMany, "3 events");
    assert!(
        due(ports).await.is_empty(),
        "a refused replay changes nothing"
    );

    assert_eq!(
        replay(ports, &e, 3).await,
        Replayed::Done {
            revived: 1,
            created: 0
        },
        "the dead one revived; the others have their deliveries"
    );
    assert_eq!(
        replay(ports, &late, 10).await,
        Replayed::Done {
            revived: 0,
            created: 3
        }
    );
    assert_eq!(
        replay(ports, &none, 10).await,
        Replayed::Done {
            revived: 0,
            created: 0
        }
    );
    let due = due(ports).await;
    let made: BTreeMap<String, Value> = due
        .iter()
        .filter(|p| p.endpoint_id == late.id)
        .map(|p| (p.event_id.clone(), timeless(&p.payload)))
        .collect();
    assert_eq!(
        made, originals,
        "the same event ids and bodies as the outbox's"
    );
    let revived: Vec<&Pending> = due.iter().filter(|p| p.endpoint_id == e.id).collect();
    assert_eq!(revived.len(), 1);
    assert_eq!((revived[0].attempts, revived[0].budget_used), (1, 0));

    assert_eq!(
        replay(ports, &late, 10).await,
        Replayed::Done {
            revived: 0,
            created: 0
        },
        "a second replay finds every delivery made"
    );
    // A window that holds none of them.
    let after = ReplayWindow {
        since: later(1_000),
        until: later(2_000),
        max_events: 10,
    };
    let done = ports
        .deliveries
        .replay(&late, &after, Timestamp::now())
        .await
        .unwrap();
    assert_eq!(
        done,
        Replayed::Done {
            revived: 0,
            created: 0
        }
    );
}
