//! Store suite, continued: a message belongs to one project; project management; replay claims.

use std::sync::Arc;

use wagate::domain::event::Event;
use wagate::domain::project::{ApiKey, BusinessNumber, ProjectId};
use wagate::domain::status::Status;
use wagate::domain::time::Timestamp;
use wagate::ports::Store;
use wagate::ports::store::{QuarantineFilter, Quarantined, StoreError};

use super::{apply, create};
use crate::support::events::{self, BUSINESS, incoming, phone};

const OTHER: &str = "+4915112345678";

fn pid(s: &str) -> ProjectId {
    ProjectId::parse(s).unwrap()
}

fn statuses(view: &wagate::ports::store::MessageView) -> Vec<Status> {
    let mut s: Vec<Status> = view.events.iter().map(|e| e.status.merged()).collect();
    s.sort();
    s
}

/// Project B's event for A's message changes nothing and comes back as a mismatch; so does
/// B's half of a batch in which both first name a new wamid.
pub async fn first_project_owns_the_message(store: Arc<dyn Store>) {
    create(&*store, "a", &[BUSINESS]).await.unwrap();
    create(&*store, "b", &[OTHER]).await.unwrap();
    let first = apply(
        &*store,
        &[incoming("a", events::status("w1", Status::Sent, 1), 1)],
    )
    .await;
    assert!(first.mismatched.is_empty());
    let foreign = apply(
        &*store,
        &[incoming("b", events::status("w1", Status::Read, 2), 2)],
    )
    .await;
    assert_eq!(foreign.mismatched, vec![("w1".to_owned(), pid("b"))]);
    assert_eq!(foreign.new_history, 0);
    let m = store.message(&pid("a"), "w1").await.unwrap().unwrap();
    assert_eq!(m.status, Status::Sent, "B's read must not move A's message");
    assert_eq!(statuses(&m), vec![Status::Sent]);
    assert!(store.message(&pid("b"), "w1").await.unwrap().is_none());
    assert_eq!(store.stats(&pid("b")).await.unwrap().history_events, 0);

    // Both name a new wamid in one batch: one owns it, the other's events are refused.
    let mixed = apply(
        &*store,
        &[
            incoming("a", events::status("w2", Status::Sent, 3), 3),
            incoming("b", events::status("w2", Status::Delivered, 4), 4),
        ],
    )
    .await;
    assert_eq!(mixed.mismatched.len(), 1);
    let (_, loser) = &mixed.mismatched[0];
    let winner = if loser.as_str() == "a" { "b" } else { "a" };
    let m = store.message(&pid(winner), "w2").await.unwrap().unwrap();
    assert_eq!(
        m.events.len(),
        1,
        "only the owner's event is in the history"
    );
    assert!(store.message(loser, "w2").await.unwrap().is_none());
}

/// Two projects racing to record the same new wamids: each message ends with exactly one
/// owner and only that owner's events (A reports sent+delivered, B failed+read).
pub async fn racing_projects_leave_one_owner(store: Arc<dyn Store>) {
    create(&*store, "a", &[BUSINESS]).await.unwrap();
    create(&*store, "b", &[OTHER]).await.unwrap();
    let wamids: Vec<String> = (0..150).map(|i| format!("r{i:03}")).collect();
    let batch = |project: &str, pair: [Status; 2]| -> Vec<wagate::domain::apply::Incoming> {
        wamids
            .iter()
            .flat_map(|w| pair.map(|s| incoming(project, events::status(w, s, 5), 5)))
            .collect()
    };
    let mut tasks = Vec::new();
    for (project, pair) in [
        ("a", [Status::Sent, Status::Delivered]),
        ("b", [Status::Failed, Status::Read]),
    ] {
        for chunk in batch(project, pair).chunks(50) {
            let store = store.clone();
            let chunk = chunk.to_vec();
            tasks.push(tokio::spawn(async move {
                store.apply(&wagate::domain::apply::plan(&chunk)).await
            }));
        }
    }
    for t in tasks {
        t.await.unwrap().expect("apply under contention");
    }
    for w in &wamids {
        let a = store.message(&pid("a"), w).await.unwrap();
        let b = store.message(&pid("b"), w).await.unwrap();
        match (a, b) {
            (Some(m), None) => assert_eq!(statuses(&m), [Status::Sent, Status::Delivered], "{w}"),
            (None, Some(m)) => assert_eq!(statuses(&m), [Status::Failed, Status::Read], "{w}"),
            other => panic!("{w}: one owner expected, got {other:?}"),
        }
    }
}

pub async fn projects_are_managed(store: Arc<dyn Store>) {
    let key = create(&*store, "acme", &[BUSINESS]).await.unwrap();
    create(&*store, "beta", &[OTHER]).await.unwrap();
    let with_id = BusinessNumber::parse("+15550783881", Some("106540352242922")).unwrap();
    assert!(store.add_number(&pid("acme"), &with_id).await.unwrap());
    assert!(!store.add_number(&pid("nobody"), &with_id).await.unwrap());
    let taken = BusinessNumber::parse(OTHER, None).unwrap();
    assert!(matches!(
        store.add_number(&pid("acme"), &taken).await,
        Err(StoreError::Conflict(_))
    ));
    // Adding a number the project has sets its Meta id.
    let again = BusinessNumber::parse(BUSINESS, Some("42")).unwrap();
    assert!(store.add_number(&pid("acme"), &again).await.unwrap());
    let acme = store.project(&pid("acme")).await.unwrap().unwrap();
    let numbers: Vec<(&str, Option<&str>)> = acme
        .numbers
        .iter()
        .map(|n| (n.number.as_str(), n.meta_phone_number_id.as_deref()))
        .collect();
    assert_eq!(
        numbers,
        [
            ("+15550783881", Some("106540352242922")),
            (BUSINESS, Some("42"))
        ]
    );
    assert_eq!(
        store
            .project_by_number(&phone("+15550783881"))
            .await
            .unwrap(),
        Some(pid("acme"))
    );

    assert!(
        store
            .remove_number(&pid("acme"), &phone("+15550783881"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .remove_number(&pid("acme"), &phone("+15550783881"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .remove_number(&pid("acme"), &phone(OTHER))
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .project_by_number(&phone("+15550783881"))
            .await
            .unwrap(),
        None
    );

    let new = ApiKey::generate();
    let old = store.rotate_key(&pid("acme"), &new.hash()).await.unwrap();
    assert_eq!(old, Some(key.hash()));
    assert_eq!(store.project_by_key(&key.hash()).await.unwrap(), None);
    assert_eq!(
        store.project_by_key(&new.hash()).await.unwrap(),
        Some(pid("acme"))
    );
    assert_eq!(
        store.rotate_key(&pid("nobody"), &new.hash()).await.unwrap(),
        None
    );

    let page = store.projects(None, 1).await.unwrap();
    assert_eq!(
        page.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        ["acme"]
    );
    let next = store.projects(Some(&page[0].id), 10).await.unwrap();
    assert_eq!(
        next.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        ["beta"]
    );
    assert_eq!(next[0].numbers.len(), 1);
    assert!(store.project(&pid("nobody")).await.unwrap().is_none());
}

fn held(key: &str, number: &str, at: i64) -> Quarantined {
    let event = events::status(key, Status::Delivered, at);
    Quarantined {
        provider: "datagen".into(),
        reason: "unknown_business_number".into(),
        body: event.raw().get().to_owned(),
        dedupe_key: Some(key.into()),
        business_number: Some(number.into()),
        event: serde_json::to_string(&event).ok(),
        received_at: Timestamp::from_millis(at),
    }
}

/// Claims select by number, reason and time; an item quarantined again after it was claimed
/// loses the claim, so releasing the claim does not delete it.
pub async fn replay_claims_survive_requarantine(store: Arc<dyn Store>) {
    store
        .quarantine(&[
            held("k1", BUSINESS, 10),
            held("k2", BUSINESS, 20),
            held("k3", OTHER, 30),
        ])
        .await
        .unwrap();
    let filter = QuarantineFilter {
        reason: Some("unknown_business_number".into()),
        business_numbers: vec![BUSINESS.into()],
        ..QuarantineFilter::default()
    };
    let claimed = store.claim_quarantined(&filter, "t1", 10).await.unwrap();
    assert_eq!(claimed.len(), 2);
    assert!(claimed[0].id < claimed[1].id, "oldest first");
    let event: Event = serde_json::from_str(claimed[0].event.as_deref().unwrap()).unwrap();
    assert_eq!(
        event.dedupe_key(),
        events::status("k1", Status::Delivered, 0).dedupe_key()
    );
    let windowed = QuarantineFilter {
        from: Some(Timestamp::from_millis(15)),
        to: Some(Timestamp::from_millis(30)),
        ..QuarantineFilter::default()
    };
    assert_eq!(
        store
            .claim_quarantined(&windowed, "t0", 10)
            .await
            .unwrap()
            .len(),
        1
    );
    // k2 was claimed by t0 just now, so t1 no longer holds it; k1 is quarantined again.
    store.quarantine(&[held("k1", BUSINESS, 40)]).await.unwrap();
    let ids: Vec<i64> = claimed.iter().map(|c| c.id).collect();
    assert_eq!(store.release_quarantined(&ids, "t1").await.unwrap(), 0);
    assert_eq!(store.release_quarantined(&ids, "t0").await.unwrap(), 1);
    let left: Vec<String> = store
        .quarantined(None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|q| q.business_number.unwrap())
        .collect();
    assert_eq!(left, [OTHER, BUSINESS], "k3 and the re-quarantined k1 stay");
    let after = QuarantineFilter {
        after_id: ids[1],
        ..QuarantineFilter::default()
    };
    assert_eq!(
        store
            .claim_quarantined(&after, "t2", 10)
            .await
            .unwrap()
            .len(),
        1
    );
}
