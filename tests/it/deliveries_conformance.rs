//! One `Deliveries` suite, run against SQLite and PostgreSQL. Delivery rows come from the
//! outbox (applying events with an endpoint subscribed), as they do in production.

use std::collections::BTreeSet;
use std::sync::Arc;

use wagate::adapters::postgres::PgStore;
use wagate::adapters::sqlite::{SqliteDb, SqliteStore};
use wagate::domain::endpoint::{DeliveryStatus, Endpoint, EndpointIn, WebhookDeliveryId};
use wagate::domain::project::ProjectId;
use wagate::domain::status::Status;
use wagate::domain::time::Timestamp;
use wagate::ports::Store;
use wagate::ports::deliveries::{AttemptRecord, Deliveries, FollowUp};
use wagate::ports::endpoints::{DeliveryDetail, Endpoints};

use crate::store_conformance::{apply, create};
use crate::support::events::{self, BUSINESS, incoming};

/// The three ports one database serves.
pub struct Ports {
    pub store: Arc<dyn Store>,
    pub endpoints: Arc<dyn Endpoints>,
    pub deliveries: Arc<dyn Deliveries>,
}

pub async fn sqlite() -> (Ports, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let s = Arc::new(SqliteStore::new(SqliteDb::open(&url, false).await.unwrap()));
    let ports = Ports {
        store: s.clone(),
        endpoints: s.clone(),
        deliveries: s,
    };
    (ports, dir)
}

pub async fn postgres() -> Option<(Ports, crate::support::TestDb)> {
    let db = crate::support::postgres_db().await?;
    let s = Arc::new(PgStore::connect(db.url(), 4).await.unwrap());
    let ports = Ports {
        store: s.clone(),
        endpoints: s.clone(),
        deliveries: s,
    };
    Some((ports, db))
}

macro_rules! deliveries_suite {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $case() {
                let (ports, _dir) = super::sqlite().await;
                super::$case(&ports).await;
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $case() {
                let Some((ports, _db)) = super::postgres().await else { return };
                super::$case(&ports).await;
            })*
        }
    };
}

deliveries_suite!(
    load_returns_the_rows_the_outbox_wrote,
    an_attempt_is_recorded_once,
    a_record_with_nul_and_controls_is_stored_cleaned,
    one_call_records_many_deliveries_in_order,
    dead_deliveries_are_counted,
    pending_deliveries_are_counted,
    defer_moves_without_charging,
    hasten_makes_an_endpoints_deferred_deliveries_due_now,
    claim_due_leases_what_is_due,
    concurrent_claims_are_disjoint,
    retry_resets_the_budget_of_this_projects_delivery,
    redrive_revives_an_endpoints_dead_deliveries,
    prune_deletes_settled_deliveries_with_their_attempts,
    replay_revives_the_window_and_creates_each_missing_delivery_once,
);

mod replay;
use replay::replay_revives_the_window_and_creates_each_missing_delivery_once;

pub const OTHER: &str = "+4915112345678";

pub fn project(id: &str) -> ProjectId {
    ProjectId::parse(id).unwrap()
}

/// Stores an endpoint of `project` taking `topics`.
pub async fn endpoint(ports: &Ports, project_id: &str, topics: &[&str]) -> Endpoint {
    let input = EndpointIn::parse("https://hooks.example.com/wa", topics, None, None).unwrap();
    let e = Endpoint::create(project(project_id), input, Timestamp::now());
    ports.endpoints.create(&e).await.unwrap();
    e
}

/// Projects `acme` and `beta`, an endpoint of acme's taking everything, and `n` deliveries to
/// it (one per status event applied), oldest first.
pub(crate) async fn seed(ports: &Ports, n: usize) -> (Endpoint, Vec<WebhookDeliveryId>) {
    create(&*ports.store, "acme", &[BUSINESS]).await.unwrap();
    create(&*ports.store, "beta", &[OTHER]).await.unwrap();
    let e = endpoint(ports, "acme", &["*"]).await;
    let items: Vec<_> = (0..n)
        .map(|i| {
            incoming(
                "acme",
                events::status(&format!("w{i:04}"), Status::Sent, 1),
                1,
            )
        })
        .collect();
    let mut ids = apply(&*ports.store, &items).await.deliveries;
    ids.sort();
    assert_eq!(ids.len(), n);
    (e, ids)
}

pub(crate) fn attempt(
    id: &WebhookDeliveryId,
    n: u32,
    code: Option<u16>,
    follow_up: FollowUp,
) -> AttemptRecord {
    AttemptRecord {
        delivery: id.clone(),
        attempt: n,
        status_code: code,
        latency_ms: Some(12),
        error: code.filter(|c| *c >= 300).map(|c| format!("HTTP {c}")),
        response_snippet: code.map(|c| format!("body {c}")),
        attempted_at: Timestamp::now(),
        follow_up,
    }
}

pub(crate) async fn detail(ports: &Ports, id: &WebhookDeliveryId) -> DeliveryDetail {
    ports
        .endpoints
        .delivery(&project("acme"), id)
        .await
        .unwrap()
        .unwrap()
}

pub(crate) async fn record(ports: &Ports, records: &[AttemptRecord]) -> Vec<WebhookDeliveryId> {
    ports.deliveries.record(records).await.unwrap()
}

pub(crate) fn later(ms: i64) -> Timestamp {
    Timestamp::from_millis(Timestamp::now().millis() + ms)
}

async fn load_returns_the_rows_the_outbox_wrote(ports: &Ports) {
    let (e, ids) = seed(ports, 3).await;
    let mut asked = ids.clone();
    asked.push(WebhookDeliveryId::generate());
    let mut got = ports.deliveries.load(&asked).await.unwrap();
    got.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(
        got.iter().map(|p| p.id.clone()).collect::<Vec<_>>(),
        ids,
        "an id with no row is left out"
    );
    for p in &got {
        assert_eq!(p.endpoint_id, e.id);
        assert_eq!(p.project_id, project("acme"));
        assert_eq!(p.event_type, "datagen.delivery");
        assert_eq!(p.status, DeliveryStatus::Pending);
        assert_eq!((p.attempts, p.budget_used), (0, 0));
        assert!(
            p.payload.contains(&p.event_id),
            "the body carries its event id"
        );
    }
    assert!(ports.deliveries.load(&[]).await.unwrap().is_empty());
}

async fn an_attempt_is_recorded_once(ports: &Ports) {
    let (_, ids) = seed(ports, 1).await;
    let d = &ids[0];
    let retry_at = later(60_000);
    let moved = record(
        ports,
        &[attempt(d, 1, Some(500), FollowUp::RetryAt(retry_at))],
    )
    .await;
    assert_eq!(moved, vec![d.clone()]);
    let after_first = detail(ports, d).await;
    assert_eq!(after_first.delivery.status, DeliveryStatus::Pending);
    assert_eq!(after_first.delivery.attempts, 1);
    assert_eq!(after_first.delivery.next_attempt_at, retry_at);
    assert_eq!(after_first.delivery.last_status_code, Some(500));
    assert_eq!(after_first.delivery.last_error.as_deref(), Some("HTTP 500"));
    assert_eq!(after_first.attempts.len(), 1);
    assert_eq!(
        after_first.attempts[0].response_snippet.as_deref(),
        Some("body 500")
    );
    assert_eq!(after_first.attempts[0].latency_ms, Some(12));
    let loaded = &ports.deliveries.load(&ids).await.unwrap()[0];
    assert_eq!((loaded.attempts, loaded.budget_used), (1, 1));

    // A second forwarder reporting the same attempt changes nothing.
    let again = record(ports, &[attempt(d, 1, Some(200), FollowUp::Succeeded)]).await;
    assert!(again.is_empty());
    assert_eq!(detail(ports, d).await, after_first);

    // The next attempt succeeds; a late record of a later one finds the delivery done.
    let moved = record(ports, &[attempt(d, 2, Some(204), FollowUp::Succeeded)]).await;
    assert_eq!(moved, vec![d.clone()]);
    let done = detail(ports, d).await;
    assert_eq!(done.delivery.status, DeliveryStatus::Succeeded);
    assert_eq!(done.delivery.attempts, 2);
    assert_eq!(done.delivery.last_status_code, Some(204));
    assert_eq!(done.delivery.last_error, None);
    assert_eq!(
        done.attempts.iter().map(|a| a.attempt).collect::<Vec<_>>(),
        [1, 2]
    );
    assert!(
        record(ports, &[attempt(d, 3, Some(204), FollowUp::Succeeded)])
            .await
            .is_empty()
    );
    assert_eq!(detail(ports, d).await, done);
}

/// A receiver's answer is untrusted bytes: the store keeps it cleaned and bounded, and a NUL
/// in one record (which PostgreSQL's `text` refuses) does not fail the batch it came in.
async fn a_record_with_nul_and_controls_is_stored_cleaned(ports: &Ports) {
    let (_, ids) = seed(ports, 2).await;
    let mut dirty = attempt(&ids[0], 1, Some(500), FollowUp::Dead);
    dirty.error = Some(format!("HTTP 500 \0\u{7}{}", "e".repeat(600)));
    dirty.response_snippet = Some(format!("200 ok\0\x1b[2J\n{}", "s".repeat(2000)));
    let fine = attempt(&ids[1], 1, Some(200), FollowUp::Succeeded);
    let mut moved = record(ports, &[dirty, fine]).await;
    moved.sort();
    assert_eq!(moved, ids);
    let d = detail(ports, &ids[0]).await;
    let error = d.delivery.last_error.unwrap();
    assert!(error.starts_with("HTTP 500 \u{FFFD}\u{FFFD}eee"), "{error}");
    assert_eq!(error.chars().count(), 512);
    let a = &d.attempts[0];
    assert_eq!(a.error.as_deref().map(|e| e.chars().count()), Some(512));
    let snippet = a.response_snippet.as_deref().unwrap();
    assert!(
        snippet.starts_with("200 ok\u{FFFD}\u{FFFD}[2J\nsss"),
        "{snippet}"
    );
    assert_eq!(snippet.chars().count(), 1024);
    let f = detail(ports, &ids[1]).await;
    assert_eq!(f.delivery.status, DeliveryStatus::Succeeded);
}

/// The recorder hands the store attempts of many deliveries at once, a delivery's later
/// attempts after its earlier ones, and some that another forwarder recorded first.
async fn one_call_records_many_deliveries_in_order(ports: &Ports) {
    let (_, ids) = seed(ports, 4).await;
    let [a, b, c, d] = [&ids[0], &ids[1], &ids[2], &ids[3]];
    record(
        ports,
        &[attempt(d, 1, Some(500), FollowUp::RetryAt(later(1)))],
    )
    .await;
    let retry_at = later(60_000);
    let mut odd = attempt(b, 1, None, FollowUp::RetryAt(retry_at));
    odd.error = Some("connect: \"refused\" \u{e9}\n".into());
    odd.latency_ms = None;
    let records = [
        attempt(a, 1, Some(503), FollowUp::RetryAt(later(1))),
        odd,
        attempt(c, 1, Some(410), FollowUp::Dead),
        attempt(a, 2, Some(200), FollowUp::Succeeded),
        // d's first attempt is recorded already: this one is stale, its second is not.
        attempt(d, 1, Some(200), FollowUp::Succeeded),
        attempt(d, 2, Some(201), FollowUp::Succeeded),
    ];
    let mut moved = record(ports, &records).await;
    moved.sort();
    let mut expected = vec![a.clone(), a.clone(), b.clone(), c.clone(), d.clone()];
    expected.sort();
    assert_eq!(moved, expected);

    let a = detail(ports, a).await;
    assert_eq!(a.delivery.status, DeliveryStatus::Succeeded);
    assert_eq!(a.delivery.last_status_code, Some(200));
    let codes: Vec<_> = a
        .attempts
        .iter()
        .map(|x| (x.attempt, x.status_code))
        .collect();
    assert_eq!(codes, [(1, Some(503)), (2, Some(200))]);

    let b = detail(ports, b).await;
    assert_eq!(b.delivery.status, DeliveryStatus::Pending);
    assert_eq!(b.delivery.next_attempt_at, retry_at);
    assert_eq!(b.delivery.last_status_code, None);
    assert_eq!(
        b.delivery.last_error.as_deref(),
        Some("connect: \"refused\" \u{e9}\n")
    );
    assert_eq!(b.attempts.len(), 1);
    assert_eq!(b.attempts[0].latency_ms, None);
    assert_eq!(b.attempts[0].response_snippet, None);

    let c = detail(ports, c).await;
    assert_eq!(c.delivery.status, DeliveryStatus::Dead);
    assert_eq!(c.attempts.len(), 1);

    let d = detail(ports, d).await;
    assert_eq!(d.delivery.status, DeliveryStatus::Succeeded);
    assert_eq!(d.delivery.attempts, 2);
    let codes: Vec<_> = d
        .attempts
        .iter()
        .map(|x| (x.attempt, x.status_code))
        .collect();
    assert_eq!(codes, [(1, Some(500)), (2, Some(201))]);
}

async fn pending_deliveries_are_counted(ports: &Ports) {
    assert_eq!(ports.deliveries.pending_count().await.unwrap(), 0);
    let (_, ids) = seed(ports, 4).await;
    assert_eq!(ports.deliveries.pending_count().await.unwrap(), 4);
    // Delivered and dead ones leave the count; a retry and a deferral stay in it.
    record(
        ports,
        &[
            attempt(&ids[0], 1, Some(200), FollowUp::Succeeded),
            attempt(&ids[1], 1, Some(400), FollowUp::Dead),
            attempt(&ids[2], 1, Some(503), FollowUp::RetryAt(later(60_000))),
        ],
    )
    .await;
    ports
        .deliveries
        .defer(&ids[3..], later(60_000))
        .await
        .unwrap();
    assert_eq!(ports.deliveries.pending_count().await.unwrap(), 2);
}

async fn dead_deliveries_are_counted(ports: &Ports) {
    let (_, ids) = seed(ports, 3).await;
    assert_eq!(ports.deliveries.dead_count().await.unwrap(), 0);
    // Two records in one call, one of them for its second attempt in the same slice.
    let moved = record(
        ports,
        &[
            attempt(&ids[0], 1, Some(400), FollowUp::Dead),
            attempt(&ids[1], 1, None, FollowUp::RetryAt(later(1_000))),
            attempt(&ids[1], 2, Some(404), FollowUp::Dead),
        ],
    )
    .await;
    assert_eq!(moved, vec![ids[0].clone(), ids[1].clone(), ids[1].clone()]);
    assert_eq!(ports.deliveries.dead_count().await.unwrap(), 2);
    let dead = detail(ports, &ids[1]).await;
    assert_eq!(dead.delivery.status, DeliveryStatus::Dead);
    assert_eq!(dead.delivery.attempts, 2);
    assert!(
        record(
            ports,
            &[attempt(&ids[0], 2, Some(200), FollowUp::Succeeded)]
        )
        .await
        .is_empty(),
        "a dead delivery takes no attempt"
    );
    assert_eq!(
        detail(ports, &ids[2]).await.delivery.status,
        DeliveryStatus::Pending
    );
}

async fn defer_moves_without_charging(ports: &Ports) {
    let (_, ids) = seed(ports, 2).await;
    record(
        ports,
        &[attempt(&ids[1], 1, Some(200), FollowUp::Succeeded)],
    )
    .await;
    let succeeded = detail(ports, &ids[1]).await;
    let at = later(300_000);
    ports.deliveries.defer(&ids, at).await.unwrap();
    let deferred = detail(ports, &ids[0]).await;
    assert_eq!(deferred.delivery.next_attempt_at, at);
    assert_eq!(deferred.delivery.attempts, 0);
    assert!(deferred.attempts.is_empty());
    assert_eq!(
        ports.deliveries.load(&ids[..1]).await.unwrap()[0].budget_used,
        0
    );
    assert_eq!(
        detail(ports, &ids[1]).await,
        succeeded,
        "only pending rows move"
    );
    ports.deliveries.defer(&[], at).await.unwrap();
}

async fn hasten_makes_an_endpoints_deferred_deliveries_due_now(ports: &Ports) {
    let (e, ids) = seed(ports, 3).await;
    let other = endpoint(ports, "acme", &["*"]).await;
    let now = Timestamp::now();
    let far = later(300_000);
    ports.deliveries.defer(&ids, far).await.unwrap();
    record(
        ports,
        &[attempt(&ids[2], 1, Some(200), FollowUp::Succeeded)],
    )
    .await;
    let settled = detail(ports, &ids[2]).await;
    assert_eq!(ports.deliveries.hasten(&other.id, now).await.unwrap(), 0);
    assert_eq!(
        detail(ports, &ids[0]).await.delivery.next_attempt_at,
        far,
        "another endpoint's hasten moves nothing here"
    );
    assert_eq!(ports.deliveries.hasten(&e.id, now).await.unwrap(), 2);
    for id in &ids[..2] {
        let d = detail(ports, id).await.delivery;
        assert_eq!(
            (d.next_attempt_at, d.attempts),
            (now, 0),
            "due now, uncharged"
        );
    }
    assert_eq!(detail(ports, &ids[2]).await, settled, "settled rows stay");
    let due: BTreeSet<_> = ports
        .deliveries
        .claim_due(now, later(60_000), 10)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(due, BTreeSet::from([ids[0].clone(), ids[1].clone()]));
}

async fn claim_due_leases_what_is_due(ports: &Ports) {
    let (_, ids) = seed(ports, 3).await;
    // Written due a lease after now: nothing is due yet.
    let now = Timestamp::now();
    assert!(
        ports
            .deliveries
            .claim_due(now, later(1_000), 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Make the rows due in a known order: ids[2] first.
    for (i, id) in ids.iter().rev().enumerate() {
        ports
            .deliveries
            .defer(
                std::slice::from_ref(id),
                Timestamp::from_millis(1_000 + i as i64),
            )
            .await
            .unwrap();
    }
    let lease = later(60_000);
    let first = ports.deliveries.claim_due(now, lease, 2).await.unwrap();
    assert_eq!(
        first,
        vec![ids[2].clone(), ids[1].clone()],
        "oldest due first"
    );
    let second = ports.deliveries.claim_due(now, lease, 2).await.unwrap();
    assert_eq!(
        second,
        vec![ids[0].clone()],
        "claimed rows are not claimed again"
    );
    assert!(
        ports
            .deliveries
            .claim_due(now, lease, 2)
            .await
            .unwrap()
            .is_empty()
    );
    let leased = detail(ports, &ids[0]).await.delivery;
    assert_eq!((leased.next_attempt_at, leased.attempts), (lease, 0));

    // Once the lease has passed they are due again; finished rows never are.
    record(
        ports,
        &[attempt(&ids[1], 1, Some(200), FollowUp::Succeeded)],
    )
    .await;
    let after = Timestamp::from_millis(lease.millis() + 1);
    let again: BTreeSet<_> = ports
        .deliveries
        .claim_due(after, Timestamp::from_millis(after.millis() + 60_000), 10)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(again, BTreeSet::from([ids[0].clone(), ids[2].clone()]));
}

async fn concurrent_claims_are_disjoint(ports: &Ports) {
    let (_, ids) = seed(ports, 200).await;
    let now = later(3_600_000);
    let lease = later(7_200_000);
    let (a, b) = tokio::join!(
        ports.deliveries.claim_due(now, lease, 150),
        ports.deliveries.claim_due(now, lease, 150),
    );
    let (a, b): (BTreeSet<_>, BTreeSet<_>) = (
        a.unwrap().into_iter().collect(),
        b.unwrap().into_iter().collect(),
    );
    assert!(a.is_disjoint(&b), "no delivery is claimed twice");
    assert_eq!(a.len() + b.len(), 200, "together they claim every due row");
    assert_eq!(a.union(&b).cloned().collect::<Vec<_>>(), ids);
}

async fn retry_resets_the_budget_of_this_projects_delivery(ports: &Ports) {
    let (_, ids) = seed(ports, 1).await;
    let d = &ids[0];
    record(
        ports,
        &[
            attempt(d, 1, Some(503), FollowUp::RetryAt(later(1_000))),
            attempt(d, 2, Some(422), FollowUp::Dead),
        ],
    )
    .await;
    let dead = detail(ports, d).await;
    assert_eq!(
        ports
            .deliveries
            .retry(&project("beta"), d, Timestamp::now())
            .await
            .unwrap(),
        None,
        "another project's delivery is absent"
    );
    assert_eq!(detail(ports, d).await, dead);
    assert_eq!(
        ports
            .deliveries
            .retry(
                &project("acme"),
                &WebhookDeliveryId::generate(),
                Timestamp::now()
            )
            .await
            .unwrap(),
        None
    );

    let now = later(5);
    let view = ports
        .deliveries
        .retry(&project("acme"), d, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.status, DeliveryStatus::Pending);
    assert_eq!(view.next_attempt_at, now);
    assert_eq!(
        view.attempts, 2,
        "attempts are history; only the budget resets"
    );
    assert_eq!(
        view.last_status_code,
        Some(422),
        "the last error stays for the log"
    );
    let loaded = &ports.deliveries.load(&ids).await.unwrap()[0];
    assert_eq!((loaded.attempts, loaded.budget_used), (2, 0));

    // The next attempt is number 3, charged as the first of the new budget.
    let moved = record(
        ports,
        &[attempt(d, 3, None, FollowUp::RetryAt(later(1_000)))],
    )
    .await;
    assert_eq!(moved, vec![d.clone()]);
    let loaded = &ports.deliveries.load(&ids).await.unwrap()[0];
    assert_eq!((loaded.attempts, loaded.budget_used), (3, 1));
}

async fn redrive_revives_an_endpoints_dead_deliveries(ports: &Ports) {
    let (e, ids) = seed(ports, 3).await;
    record(
        ports,
        &[
            attempt(&ids[0], 1, Some(400), FollowUp::Dead),
            attempt(&ids[1], 1, Some(400), FollowUp::Dead),
            attempt(&ids[2], 1, Some(200), FollowUp::Succeeded),
        ],
    )
    .await;
    let now = later(10);
    assert_eq!(
        ports
            .deliveries
            .redrive(&project("beta"), &e.id, now)
            .await
            .unwrap(),
        0
    );
    let other = endpoint(ports, "acme", &["*"]).await;
    assert_eq!(
        ports
            .deliveries
            .redrive(&project("acme"), &other.id, now)
            .await
            .unwrap(),
        0
    );
    assert_eq!(ports.deliveries.dead_count().await.unwrap(), 2);

    assert_eq!(
        ports
            .deliveries
            .redrive(&project("acme"), &e.id, now)
            .await
            .unwrap(),
        2
    );
    assert_eq!(ports.deliveries.dead_count().await.unwrap(), 0);
    for id in &ids[..2] {
        let d = detail(ports, id).await.delivery;
        assert_eq!(
            (d.status, d.next_attempt_at, d.attempts),
            (DeliveryStatus::Pending, now, 1)
        );
    }
    assert_eq!(
        detail(ports, &ids[2]).await.delivery.status,
        DeliveryStatus::Succeeded
    );
    let budgets: Vec<u32> = ports
        .deliveries
        .load(&ids[..2])
        .await
        .unwrap()
        .iter()
        .map(|p| p.budget_used)
        .collect();
    assert_eq!(budgets, [0, 0]);
    let due = ports
        .deliveries
        .claim_due(now, later(60_000), 10)
        .await
        .unwrap();
    assert_eq!(
        due.into_iter().collect::<BTreeSet<_>>(),
        ids[..2].iter().cloned().collect()
    );
    assert_eq!(
        ports
            .deliveries
            .redrive(&project("acme"), &e.id, now)
            .await
            .unwrap(),
        0
    );
}

async fn prune_deletes_settled_deliveries_with_their_attempts(ports: &Ports) {
    let (_, ids) = seed(ports, 4).await;
    record(
        ports,
        &[
            attempt(&ids[0], 1, Some(200), FollowUp::Succeeded),
            attempt(&ids[1], 1, Some(400), FollowUp::Dead),
            attempt(&ids[2], 1, Some(500), FollowUp::RetryAt(later(60_000))),
        ],
    )
    .await;
    let d = &ports.deliveries;
    // Created just now: not before a cutoff in the past.
    assert_eq!(d.prune(later(-60_000), 100).await.unwrap(), 0);
    // A limit of one takes the oldest first.
    assert_eq!(d.prune(later(60_000), 1).await.unwrap(), 1);
    assert_eq!(d.prune(later(60_000), 100).await.unwrap(), 1);
    assert_eq!(d.prune(later(60_000), 100).await.unwrap(), 0);
    let project = project("acme");
    for gone in &ids[..2] {
        assert!(
            ports
                .endpoints
                .delivery(&project, gone)
                .await
                .unwrap()
                .is_none()
        );
    }
    // Pending ones stay, attempts and all, whatever their age.
    assert_eq!(detail(ports, &ids[2]).await.attempts.len(), 1);
    assert_eq!(
        detail(ports, &ids[3]).await.delivery.status,
        DeliveryStatus::Pending
    );
    assert_eq!(d.dead_count().await.unwrap(), 0);
}
