//! One Store suite, run against SQLite and PostgreSQL.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use wagate::adapters::postgres::PgStore;
use wagate::adapters::sqlite::{SqliteDb, SqliteStore};
use wagate::domain::apply::{Incoming, plan};
use wagate::domain::project::{ApiKey, ApiKeyHash, NewProject, ProjectId};
use wagate::domain::status::{Reported, Status};
use wagate::domain::time::Timestamp;
use wagate::ports::Store;
use wagate::ports::store::{MessageQuery, Quarantined, StoreError};

use crate::support::events::{self, BUSINESS, Rng, incoming, phone};

pub async fn sqlite() -> (Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let db = SqliteDb::open(&url, false).await.unwrap();
    (Arc::new(SqliteStore::new(db)), dir)
}

/// The store, and the guard that drops its database when the test is done.
pub async fn postgres() -> Option<(Arc<dyn Store>, crate::support::TestDb)> {
    let db = crate::support::postgres_db().await?;
    let store = PgStore::connect(db.url(), 4).await.unwrap();
    Some((Arc::new(store), db))
}

macro_rules! store_suite {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $case() {
                let (store, _dir) = super::sqlite().await;
                super::$case(store).await;
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $case() {
                let Some((store, _db)) = super::postgres().await else { return };
                super::$case(store).await;
            })*
        }
    };
}

store_suite!(
    projects_and_keys,
    status_is_max_whatever_the_batching,
    history_keeps_provider_and_receive_times,
    messages_are_scoped_to_their_project,
    listing_filters_and_pages,
    inbound_is_deduplicated_and_paged,
    quarantine_keeps_bodies_once,
    concurrent_applies_agree,
    first_project_owns_the_message,
    racing_projects_leave_one_owner,
    projects_are_managed,
    replay_claims_survive_requarantine,
    raw_payloads_are_pruned_and_history_stays,
    reported_kinds_are_history_rows,
);

mod outbox;
mod ownership;
mod retention;
use ownership::{
    first_project_owns_the_message, projects_are_managed, racing_projects_leave_one_owner,
    replay_claims_survive_requarantine,
};
use retention::raw_payloads_are_pruned_and_history_stays;

pub(crate) async fn create(
    store: &dyn Store,
    id: &str,
    numbers: &[&str],
) -> Result<ApiKey, StoreError> {
    let p = NewProject::parse(
        id,
        "Test",
        &numbers.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
    )
    .unwrap();
    let key = ApiKey::generate();
    store
        .create_project(&p, &key.hash(), Timestamp::from_millis(1))
        .await?;
    Ok(key)
}

pub(crate) async fn apply(store: &dyn Store, items: &[Incoming]) -> wagate::ports::store::Applied {
    store.apply(&plan(items)).await.unwrap()
}

async fn projects_and_keys(store: Arc<dyn Store>) {
    let key = create(&*store, "acme", &[BUSINESS, "+15550783881"])
        .await
        .unwrap();
    assert_eq!(
        store.project_by_key(&key.hash()).await.unwrap(),
        Some(ProjectId::parse("acme").unwrap())
    );
    assert_eq!(
        store
            .project_by_key(&ApiKeyHash::of("wrong"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .project_by_number(&phone("15550783881"))
            .await
            .unwrap(),
        Some(ProjectId::parse("acme").unwrap())
    );
    assert_eq!(
        store
            .project_by_number(&phone("+4915112345678"))
            .await
            .unwrap(),
        None
    );
    assert!(matches!(
        create(&*store, "acme", &["+4915112345678"]).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        create(&*store, "other", &[BUSINESS]).await,
        Err(StoreError::Conflict(_))
    ));
    // The failed creation left nothing behind.
    assert_eq!(
        store
            .project_by_number(&phone("+4915112345678"))
            .await
            .unwrap(),
        None
    );
    create(&*store, "other", &["+4915112345678"]).await.unwrap();
}

/// The heart of the merge rule, on the real store: any order, any duplication, any split into
/// batches gives status = max and each distinct event once.
async fn status_is_max_whatever_the_batching(store: Arc<dyn Store>) {
    create(&*store, "p", &[BUSINESS]).await.unwrap();
    let lifecycles: [&[Status]; 4] = [
        &[Status::Sent, Status::Delivered, Status::Read],
        &[Status::Sent, Status::Failed],
        &[Status::Sent, Status::Failed, Status::Delivered],
        &[Status::Delivered],
    ];
    for seed in 1..=4u64 {
        let mut rng = Rng(seed);
        let mut items = Vec::new();
        let mut expected: BTreeMap<String, Status> = BTreeMap::new();
        let mut distinct: BTreeSet<(String, Status)> = BTreeSet::new();
        for w in 0..40 {
            let wamid = format!("wamid.s{seed}.{w}");
            for &s in lifecycles[w % lifecycles.len()] {
                let copies = 1 + rng.below(3);
                for _ in 0..copies {
                    items.push(incoming(
                        "p",
                        events::status(&wamid, s, 1000 + s.rank() as i64),
                        5000,
                    ));
                }
                expected
                    .entry(wamid.clone())
                    .and_modify(|e| *e = e.merge(s))
                    .or_insert(s);
                distinct.insert((wamid.clone(), s));
            }
        }
        rng.shuffle(&mut items);
        let mut new_total = 0;
        let mut rest = &items[..];
        while !rest.is_empty() {
            let n = 1 + rng.below(rest.len().min(25));
            new_total += apply(&*store, &rest[..n]).await.new_history;
            rest = &rest[n..];
        }
        assert_eq!(
            new_total,
            distinct.len() as u64,
            "seed {seed}: each distinct event inserted once"
        );
        // Applying everything again changes nothing.
        let again = apply(&*store, &items).await;
        assert_eq!(again.new_history, 0);
        let project = ProjectId::parse("p").unwrap();
        for (wamid, want) in &expected {
            let m = store
                .message(&project, wamid)
                .await
                .unwrap()
                .expect("message exists");
            assert_eq!(m.status, *want, "seed {seed} {wamid}");
            let got: BTreeSet<Status> = m.events.iter().filter_map(|e| e.status.effect()).collect();
            assert_eq!(got.len(), m.events.len(), "no duplicate history rows");
            let want_set: BTreeSet<Status> = distinct
                .iter()
                .filter(|(w, _)| w == wamid)
                .map(|(_, s)| *s)
                .collect();
            assert_eq!(got, want_set);
        }
    }
}

async fn history_keeps_provider_and_receive_times(store: Arc<dyn Store>) {
    create(&*store, "p", &[BUSINESS]).await.unwrap();
    // Read arrives first, then delivered, then sent: history is ordered by provider time.
    apply(
        &*store,
        &[incoming(
            "p",
            events::status("w1", Status::Read, 3_000),
            10_000,
        )],
    )
    .await;
    apply(
        &*store,
        &[incoming(
            "p",
            events::status("w1", Status::Delivered, 2_000),
            11_000,
        )],
    )
    .await;
    apply(
        &*store,
        &[incoming(
            "p",
            events::status("w1", Status::Failed, 1_500),
            12_000,
        )],
    )
    .await;
    apply(
        &*store,
        &[incoming(
            "p",
            events::status("w1", Status::Sent, 1_000),
            13_000,
        )],
    )
    .await;
    let m = store
        .message(&ProjectId::parse("p").unwrap(), "w1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.status, Status::Read);
    let order: Vec<Status> = m.events.iter().filter_map(|e| e.status.effect()).collect();
    assert_eq!(
        order,
        [
            Status::Sent,
            Status::Failed,
            Status::Delivered,
            Status::Read
        ]
    );
    assert_eq!(m.events[0].occurred_at, Some(Timestamp::from_millis(1_000)));
    assert_eq!(m.events[0].received_at, Timestamp::from_millis(13_000));
    let failed = &m.events[1];
    assert_eq!(
        failed.error.as_ref().unwrap().code.as_deref(),
        Some("131026")
    );
    assert_eq!(m.phone.as_deref(), Some("+919876543210"));
    assert_eq!(m.campaign_id.as_deref(), Some("cmp_1"));
    assert_eq!(m.created_at, Timestamp::from_millis(10_000));
    assert_eq!(m.updated_at, Timestamp::from_millis(13_000));
}

async fn messages_are_scoped_to_their_project(store: Arc<dyn Store>) {
    create(&*store, "a", &[BUSINESS]).await.unwrap();
    create(&*store, "b", &["+15550783881"]).await.unwrap();
    apply(
        &*store,
        &[incoming("a", events::status("wa", Status::Sent, 1), 1)],
    )
    .await;
    let a = ProjectId::parse("a").unwrap();
    let b = ProjectId::parse("b").unwrap();
    assert!(store.message(&a, "wa").await.unwrap().is_some());
    assert!(store.message(&b, "wa").await.unwrap().is_none());
    let q = MessageQuery {
        limit: 10,
        ..Default::default()
    };
    assert!(store.messages(&b, &q).await.unwrap().is_empty());
    assert_eq!(store.stats(&b).await.unwrap().history_events, 0);
}

async fn listing_filters_and_pages(store: Arc<dyn Store>) {
    create(&*store, "p", &[BUSINESS]).await.unwrap();
    let mut items = Vec::new();
    for i in 0..25 {
        let s = if i % 5 == 0 {
            Status::Failed
        } else {
            Status::Delivered
        };
        items.push(incoming("p", events::status(&format!("w{i:02}"), s, i), i));
    }
    apply(&*store, &items).await;
    let p = ProjectId::parse("p").unwrap();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .messages(
                &p,
                &MessageQuery {
                    after: after.clone(),
                    limit: 10,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 10);
        after = Some(page.last().unwrap().wamid.clone());
        seen.extend(page.into_iter().map(|m| m.wamid));
    }
    assert_eq!(seen.len(), 25);
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "ordered by wamid, no repeats"
    );
    let failed = store
        .messages(
            &p,
            &MessageQuery {
                status: Some(Status::Failed),
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(failed.len(), 5);
    assert!(
        failed
            .iter()
            .all(|m| m.status == Status::Failed && m.events.len() == 1)
    );
    let none = store
        .messages(
            &p,
            &MessageQuery {
                campaign_id: Some("other".into()),
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(none.is_empty());
    let stats = store.stats(&p).await.unwrap();
    assert_eq!(stats.history_events, 25);
    let mut by_status = stats.messages_by_status.clone();
    by_status.sort();
    assert_eq!(
        by_status,
        vec![(Status::Failed, 5), (Status::Delivered, 20)]
    );
}

async fn inbound_is_deduplicated_and_paged(store: Arc<dyn Store>) {
    create(&*store, "p", &[BUSINESS]).await.unwrap();
    let items: Vec<_> = (0..5)
        .map(|i| incoming("p", events::inbound(&format!("in{i}"), i), 100 + i))
        .collect();
    let first = apply(&*store, &items).await;
    assert_eq!((first.new_inbound, first.duplicate_inbound), (5, 0));
    let again = apply(&*store, &items[1..3]).await;
    assert_eq!((again.new_inbound, again.duplicate_inbound), (0, 2));
    let p = ProjectId::parse("p").unwrap();
    let page1 = store.inbound(&p, None, 3).await.unwrap();
    assert_eq!(page1.len(), 3);
    let page2 = store.inbound(&p, Some(page1[2].seq), 3).await.unwrap();
    assert_eq!(page2.len(), 2);
    let ids: Vec<_> = page1
        .iter()
        .chain(&page2)
        .map(|m| m.message_id.clone())
        .collect();
    assert_eq!(ids, ["in0", "in1", "in2", "in3", "in4"]);
    assert_eq!(page1[0].text.as_deref(), Some("hello in0"));
    assert_eq!(page1[0].from, "+919876543210");
    assert_eq!(store.stats(&p).await.unwrap().inbound_messages, 5);
}

async fn quarantine_keeps_bodies_once(store: Arc<dyn Store>) {
    let q = |key: Option<&str>, body: &str| Quarantined {
        provider: "meta".into(),
        reason: "unknown_shape".into(),
        body: body.into(),
        dedupe_key: key.map(str::to_owned),
        business_number: None,
        event: None,
        received_at: Timestamp::from_millis(7),
    };
    store
        .quarantine(&[q(None, "{\"a\":1}"), q(Some("k1"), "{\"b\":2}")])
        .await
        .unwrap();
    store
        .quarantine(&[q(Some("k1"), "{\"b\":2}"), q(None, "{\"a\":1}")])
        .await
        .unwrap();
    let all = store.quarantined(None, 10).await.unwrap();
    assert_eq!(all.len(), 3, "keyed rows once, unkeyed rows each time");
    assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    let older = store.quarantined(Some(all[0].id), 10).await.unwrap();
    assert_eq!(older.len(), 2);
    assert_eq!(all[2].body, "{\"a\":1}");
}

/// Two processors applying overlapping batches at the same time end in the same state as one.
async fn concurrent_applies_agree(store: Arc<dyn Store>) {
    create(&*store, "p", &[BUSINESS]).await.unwrap();
    let mut all = Vec::new();
    for w in 0..200 {
        for s in Status::ALL {
            all.push(incoming(
                "p",
                events::status(&format!("c{w:03}"), s, s.rank() as i64),
                1,
            ));
        }
    }
    let mut rng = Rng(99);
    let mut a = all.clone();
    let mut b = all.clone();
    rng.shuffle(&mut a);
    rng.shuffle(&mut b);
    let tasks: Vec<_> = [a, b]
        .into_iter()
        .flat_map(|v| v.chunks(100).map(|c| c.to_vec()).collect::<Vec<_>>())
        .map(|chunk| {
            let store = store.clone();
            tokio::spawn(async move { store.apply(&plan(&chunk)).await })
        })
        .collect();
    let mut new = 0;
    for t in tasks {
        new += t
            .await
            .unwrap()
            .expect("apply under contention")
            .new_history;
    }
    assert_eq!(new, 800);
    let p = ProjectId::parse("p").unwrap();
    let stats = store.stats(&p).await.unwrap();
    assert_eq!(stats.messages_by_status, vec![(Status::Read, 200)]);
}

/// `played`, `deleted`, `warning` and unknown words are history rows under their own word;
/// `played` moves the status as `read` does, the others move nothing. Two unknown words for
/// one message are two rows, and the word is part of the key the store deduplicates on.
async fn reported_kinds_are_history_rows(store: Arc<dyn Store>) {
    create(&*store, "p", &[BUSINESS]).await.unwrap();
    let p = ProjectId::parse("p").unwrap();
    let other = |w: &str| Reported::Other(w.to_owned());
    let ev = |wamid: &str, r: Reported, at: i64| incoming("p", events::status(wamid, r, at), at);

    let first = apply(
        &*store,
        &[
            ev("w1", Status::Delivered.into(), 2_000),
            ev("w1", other("queued"), 1_000),
            ev("w1", Reported::Warning, 4_000),
        ],
    )
    .await;
    assert_eq!(first.new_history, 3);
    let m = store.message(&p, "w1").await.unwrap().unwrap();
    assert_eq!(
        m.status,
        Status::Delivered,
        "warning and unknown words move nothing"
    );

    // A repeat of a known word is a duplicate; another unknown word and `played` are new.
    let second = apply(
        &*store,
        &[
            ev("w1", other("queued"), 1_000),
            ev("w1", other("ENROUTE"), 1_500),
            ev("w1", Reported::Played, 3_000),
            ev("w1", Reported::Warning, 4_000),
        ],
    )
    .await;
    assert_eq!((second.new_history, second.duplicate_history), (2, 2));
    let m = store.message(&p, "w1").await.unwrap().unwrap();
    assert_eq!(m.status, Status::Read, "played ranks with read");
    let words: Vec<&str> = m.events.iter().map(|e| e.status.as_str()).collect();
    assert_eq!(
        words,
        ["queued", "ENROUTE", "delivered", "played", "warning"]
    );
    assert_eq!(m.events[1].status, other("ENROUTE"));
    assert_eq!(m.events[3].occurred_at, Some(Timestamp::from_millis(3_000)));

    // A message first seen through reports without effect exists, as `sent`, and a later
    // `read` is not outranked by `played`'s absence or `deleted`'s presence.
    apply(
        &*store,
        &[ev("w2", Reported::Deleted, 1), ev("w2", other("queued"), 2)],
    )
    .await;
    let m = store.message(&p, "w2").await.unwrap().unwrap();
    assert_eq!(m.status, Status::Sent);
    assert_eq!(m.events.len(), 2);
    apply(&*store, &[ev("w2", Status::Read.into(), 3)]).await;
    apply(&*store, &[ev("w2", Reported::Warning, 4)]).await;
    let m = store.message(&p, "w2").await.unwrap().unwrap();
    assert_eq!(m.status, Status::Read);
    let words: Vec<&str> = m.events.iter().map(|e| e.status.as_str()).collect();
    assert_eq!(words, ["deleted", "queued", "read", "warning"]);

    let stats = store.stats(&p).await.unwrap();
    assert_eq!(stats.history_events, 9);
    let mut by_status = stats.messages_by_status.clone();
    by_status.sort();
    assert_eq!(by_status, vec![(Status::Read, 2)]);
}

/// A store created by the previous version (migration 1 only) keeps its history through
/// migration 3 and then takes the new kinds beside the old rows.
async fn upgrade_keeps_history(store: Arc<dyn Store>) {
    let p = ProjectId::parse("old").unwrap();
    let m = store.message(&p, "w.old").await.unwrap().unwrap();
    assert_eq!(m.status, Status::Delivered);
    let words: Vec<&str> = m.events.iter().map(|e| e.status.as_str()).collect();
    assert_eq!(words, ["sent", "delivered"]);
    let again = apply(
        &*store,
        &[
            incoming("old", events::status("w.old", Status::Delivered, 2), 9),
            incoming("old", events::status("w.old", Reported::Played, 3), 9),
            incoming(
                "old",
                events::status("w.old", Reported::Other("x".into()), 4),
                9,
            ),
        ],
    )
    .await;
    assert_eq!((again.new_history, again.duplicate_history), (2, 1));
    let m = store.message(&p, "w.old").await.unwrap().unwrap();
    assert_eq!(m.status, Status::Read);
    assert_eq!(m.events.len(), 4);
}

/// Rows as the previous version wrote them, one message with two history rows.
const OLD_ROWS: [&str; 3] = [
    "INSERT INTO projects (id, name, api_key_hash, created_at) VALUES ('old', 'Old', 'h', 1)",
    "INSERT INTO messages (wamid, project_id, provider, status_rank, event_count, created_at, \
     updated_at) VALUES ('w.old', 'old', 'datagen', 2, 2, 1, 1)",
    "INSERT INTO message_events (wamid, status_rank, project_id, provider, occurred_at, \
     received_at, raw) VALUES ('w.old', 0, 'old', 'datagen', 1, 1, '{}'), \
     ('w.old', 2, 'old', 'datagen', 2, 1, '{}')",
];

mod upgrade {
    use super::*;
    use wagate::adapters::sql::migrator;

    #[tokio::test]
    async fn sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        {
            use std::str::FromStr;
            let options = sqlx::sqlite::SqliteConnectOptions::from_str(&url)
                .unwrap()
                .create_if_missing(true);
            let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
            let v1 = [(
                1,
                "init",
                include_str!("../../migrations/sqlite/0001_init.sql"),
            )];
            migrator(&v1).run(&pool).await.unwrap();
            for q in OLD_ROWS {
                sqlx::query(q).execute(&pool).await.unwrap();
            }
            pool.close().await;
        }
        let db = SqliteDb::open(&url, false).await.unwrap();
        upgrade_keeps_history(Arc::new(SqliteStore::new(db))).await;
    }

    #[tokio::test]
    async fn postgres() {
        let Some(db) = crate::support::postgres_db().await else {
            return;
        };
        let url = db.url().to_owned();
        {
            let pool = sqlx::PgPool::connect(&url).await.unwrap();
            let v1 = [(
                1,
                "init",
                include_str!("../../migrations/postgres/0001_init.sql"),
            )];
            migrator(&v1).run(&pool).await.unwrap();
            for q in OLD_ROWS {
                sqlx::query(q).execute(&pool).await.unwrap();
            }
            pool.close().await;
        }
        let store = PgStore::connect(&url, 4).await.unwrap();
        upgrade_keeps_history(Arc::new(store)).await;
    }
}
