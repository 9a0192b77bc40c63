//! Store suite, continued: the outbox. Applying new events writes, in the same transaction,
//! one delivery per subscribed enabled endpoint of the event's project, and nothing for
//! duplicates or refused events.

use std::collections::BTreeSet;

use wagate::domain::delivery::outbox::event_id;
use wagate::domain::endpoint::EndpointPatch;
use wagate::domain::event::Event;
use wagate::domain::status::Status;
use wagate::domain::time::Timestamp;
use wagate::ports::deliveries::Pending;
use wagate::ports::endpoints::DeliveryQuery;

use super::{apply, create};
use crate::deliveries_conformance::{OTHER, Ports, endpoint, project};
use crate::support::events::{self, BUSINESS, incoming};

macro_rules! outbox_suite {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $case() {
                let (ports, _dir) = crate::deliveries_conformance::sqlite().await;
                super::$case(&ports).await;
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $case() {
                let Some((ports, _db)) = crate::deliveries_conformance::postgres().await else {
                    return;
                };
                super::$case(&ports).await;
            })*
        }
    };
}

outbox_suite!(
    new_events_go_to_each_subscribed_endpoint_once,
    current_status_is_the_merged_status,
    refused_events_get_no_delivery,
    racing_projects_deliver_only_the_owners_events,
);

async fn projects(ports: &Ports) {
    create(&*ports.store, "acme", &[BUSINESS]).await.unwrap();
    create(&*ports.store, "beta", &[OTHER]).await.unwrap();
}

async fn load(ports: &Ports, ids: &[wagate::domain::endpoint::WebhookDeliveryId]) -> Vec<Pending> {
    ports.deliveries.load(ids).await.unwrap()
}

fn body(p: &Pending) -> serde_json::Value {
    serde_json::from_str(&p.payload).unwrap()
}

fn everything() -> DeliveryQuery {
    DeliveryQuery {
        status: None,
        after: None,
        limit: 1000,
    }
}

/// Two status reports and a user's message for acme: `*` takes all three, `meta.user_message`
/// the message, `meta.delivery` none (the reports are datagen's); a disabled endpoint and
/// another project's get nothing. Applying the batch again writes nothing more.
async fn new_events_go_to_each_subscribed_endpoint_once(ports: &Ports) {
    projects(ports).await;
    let all = endpoint(ports, "acme", &["*"]).await;
    let messages = endpoint(ports, "acme", &["meta.user_message"]).await;
    let other_topic = endpoint(ports, "acme", &["meta.delivery"]).await;
    let disabled = endpoint(ports, "acme", &["*"]).await;
    let off = EndpointPatch {
        enabled: Some(false),
        ..Default::default()
    };
    ports
        .endpoints
        .update(&project("acme"), &disabled.id, &off, Timestamp::now())
        .await
        .unwrap()
        .unwrap();
    let beta = endpoint(ports, "beta", &["*"]).await;

    let batch = [
        incoming("acme", events::status("w1", Status::Sent, 1), 1),
        incoming("acme", events::status("w2", Status::Delivered, 2), 2),
        incoming("acme", events::inbound("m1", 3), 3),
    ];
    let before = Timestamp::now();
    let applied = apply(&*ports.store, &batch).await;
    assert_eq!(applied.deliveries.len(), 4);
    let rows = load(ports, &applied.deliveries).await;
    let got: BTreeSet<(String, String, String)> = rows
        .iter()
        .map(|p| {
            (
                p.event_id.clone(),
                p.endpoint_id.to_string(),
                p.event_type.clone(),
            )
        })
        .collect();
    let key = |e: &Event| event_id(&e.dedupe_key());
    let expected: BTreeSet<(String, String, String)> = [
        (key(&batch[0].event), &all, "datagen.delivery"),
        (key(&batch[1].event), &all, "datagen.delivery"),
        (key(&batch[2].event), &all, "meta.user_message"),
        (key(&batch[2].event), &messages, "meta.user_message"),
    ]
    .into_iter()
    .map(|(k, e, t)| (k, e.id.to_string(), t.to_owned()))
    .collect();
    assert_eq!(got, expected);
    for p in &rows {
        assert_eq!(p.project_id, project("acme"));
        assert_eq!((p.attempts, p.budget_used), (0, 0));
        let b = body(p);
        assert_eq!(b["event_id"], p.event_id.as_str());
        assert_eq!(b["event_type"], p.event_type.as_str());
    }
    let inbound = rows
        .iter()
        .find(|p| p.event_type == "meta.user_message")
        .unwrap();
    assert_eq!(body(inbound)["message"]["message_id"], "m1");
    // Due after the queued lease, so the sweeper only takes it if the queue message is lost.
    let row = ports
        .endpoints
        .delivery(&project("acme"), &applied.deliveries[0])
        .await
        .unwrap()
        .unwrap();
    assert!(row.delivery.next_attempt_at.millis() >= before.millis() + 30_000);

    for quiet in [&other_topic, &disabled] {
        let none = ports
            .endpoints
            .deliveries(&project("acme"), &quiet.id, &everything())
            .await
            .unwrap();
        assert!(none.is_empty(), "{:?} takes none of these", quiet.topics);
    }
    let none = ports
        .endpoints
        .deliveries(&project("beta"), &beta.id, &everything())
        .await
        .unwrap();
    assert!(none.is_empty(), "another project's endpoint gets nothing");

    let again = apply(&*ports.store, &batch).await;
    assert_eq!((again.new_history, again.new_inbound), (0, 0));
    assert!(again.deliveries.is_empty(), "duplicates write no delivery");
    let listed = ports
        .endpoints
        .deliveries(&project("acme"), &all.id, &everything())
        .await
        .unwrap();
    assert_eq!(listed.len(), 3);
}

/// A report that arrives after a higher one says so: `delivered` applied after `read` carries
/// `current_status: read`; two reports in one batch both carry the merged status.
async fn current_status_is_the_merged_status(ports: &Ports) {
    projects(ports).await;
    endpoint(ports, "acme", &["datagen.delivery"]).await;
    let read = apply(
        &*ports.store,
        &[incoming("acme", events::status("w1", Status::Read, 1), 1)],
    )
    .await;
    let late = apply(
        &*ports.store,
        &[incoming(
            "acme",
            events::status("w1", Status::Delivered, 2),
            2,
        )],
    )
    .await;
    let read = body(&load(ports, &read.deliveries).await[0]);
    assert_eq!(read["message"]["status"], "read");
    assert_eq!(read["message"]["current_status"], "read");
    let late = body(&load(ports, &late.deliveries).await[0]);
    assert_eq!(late["message"]["status"], "delivered");
    assert_eq!(late["message"]["current_status"], "read");

    let both = apply(
        &*ports.store,
        &[
            incoming("acme", events::status("w2", Status::Sent, 3), 3),
            incoming("acme", events::status("w2", Status::Delivered, 4), 4),
        ],
    )
    .await;
    let rows = load(ports, &both.deliveries).await;
    assert_eq!(rows.len(), 2);
    let mut reported: Vec<String> = rows
        .iter()
        .map(|p| {
            let b = body(p);
            assert_eq!(b["message"]["current_status"], "delivered");
            b["message"]["status"].as_str().unwrap().to_owned()
        })
        .collect();
    reported.sort();
    assert_eq!(reported, ["delivered", "sent"]);
}

/// Beta's report for acme's message is refused for ownership: beta's endpoint gets nothing.
async fn refused_events_get_no_delivery(ports: &Ports) {
    projects(ports).await;
    let acme = endpoint(ports, "acme", &["*"]).await;
    let beta = endpoint(ports, "beta", &["*"]).await;
    let first = apply(
        &*ports.store,
        &[incoming("acme", events::status("w1", Status::Sent, 1), 1)],
    )
    .await;
    assert_eq!(first.deliveries.len(), 1);
    let foreign = apply(
        &*ports.store,
        &[incoming("beta", events::status("w1", Status::Read, 2), 2)],
    )
    .await;
    assert_eq!(foreign.mismatched.len(), 1);
    assert!(foreign.deliveries.is_empty());
    for (p, e, n) in [("acme", &acme, 1), ("beta", &beta, 0)] {
        let listed = ports
            .endpoints
            .deliveries(&project(p), &e.id, &everything())
            .await
            .unwrap();
        assert_eq!(listed.len(), n, "{p}");
    }
}

/// Two projects racing to record the same new wamids (see `racing_projects_leave_one_owner`):
/// each event that lost the race for its message, including history rows PostgreSQL takes
/// back, gets no delivery; every owner's event gets exactly one.
async fn racing_projects_deliver_only_the_owners_events(ports: &Ports) {
    projects(ports).await;
    let endpoints = [
        ("acme", endpoint(ports, "acme", &["*"]).await),
        ("beta", endpoint(ports, "beta", &["*"]).await),
    ];
    let wamids: Vec<String> = (0..150).map(|i| format!("r{i:03}")).collect();
    let mut tasks = Vec::new();
    for (p, pair) in [
        ("acme", [Status::Sent, Status::Delivered]),
        ("beta", [Status::Failed, Status::Read]),
    ] {
        let items: Vec<_> = wamids
            .iter()
            .flat_map(|w| pair.map(|s| incoming(p, events::status(w, s, 5), 5)))
            .collect();
        for chunk in items.chunks(50) {
            let store = ports.store.clone();
            let chunk = chunk.to_vec();
            tasks.push(tokio::spawn(async move {
                store.apply(&wagate::domain::apply::plan(&chunk)).await
            }));
        }
    }
    let mut returned = 0;
    for t in tasks {
        returned += t
            .await
            .unwrap()
            .expect("apply under contention")
            .deliveries
            .len();
    }
    let mut total = 0;
    for (p, e) in &endpoints {
        let listed = ports
            .endpoints
            .deliveries(&project(p), &e.id, &everything())
            .await
            .unwrap();
        let ids: Vec<_> = listed.iter().map(|d| d.id.clone()).collect();
        for d in load(ports, &ids).await {
            let wamid = body(&d)["message"]["wamid"].as_str().unwrap().to_owned();
            let owned = ports.store.message(&project(p), &wamid).await.unwrap();
            assert!(
                owned.is_some(),
                "{p} got a delivery for {wamid}, which it does not own"
            );
        }
        total += listed.len();
    }
    assert_eq!(
        total, 300,
        "two events per wamid, each delivered to its owner only"
    );
    assert_eq!(returned, 300);
}
