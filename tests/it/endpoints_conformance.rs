//! One `Endpoints` suite, run against SQLite and PostgreSQL. Delivery rows are written with
//! plain SQL here, as the outbox and the forwarder will, to exercise the port's reads.

use std::sync::Arc;

use wagate::adapters::postgres::PgStore;
use wagate::adapters::sqlite::{SqliteDb, SqliteStore};
use wagate::domain::endpoint::{
    DISABLED_BY_REQUEST, DeliveryStatus, Endpoint, EndpointId, EndpointIn, EndpointPatch,
    PreviousSecret, SharedSecret, Topic, WebhookDeliveryId,
};
use wagate::domain::project::ProjectId;
use wagate::domain::time::Timestamp;
use wagate::ports::Store;
use wagate::ports::endpoints::{DeliveryQuery, Endpoints};

use crate::store_conformance::create;

/// Both ports on one database, and its URL for the plain SQL a test writes.
pub struct Db {
    store: Arc<dyn Store>,
    endpoints: Arc<dyn Endpoints>,
    url: String,
}

async fn sqlite() -> (Db, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let s = Arc::new(SqliteStore::new(SqliteDb::open(&url, false).await.unwrap()));
    let db = Db {
        store: s.clone(),
        endpoints: s,
        url,
    };
    (db, dir)
}

async fn postgres() -> Option<(Db, crate::support::TestDb)> {
    let test_db = crate::support::postgres_db().await?;
    let s = Arc::new(PgStore::connect(test_db.url(), 4).await.unwrap());
    let db = Db {
        store: s.clone(),
        endpoints: s,
        url: test_db.url().to_owned(),
    };
    Some((db, test_db))
}

macro_rules! endpoints_suite {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $case() {
                let (db, _dir) = super::sqlite().await;
                super::$case(&db).await;
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $case() {
                let Some((db, _guard)) = super::postgres().await else { return };
                super::$case(&db).await;
            })*
        }
    };
}

endpoints_suite!(
    endpoints_are_stored_whole_and_scoped_to_their_project,
    updates_change_only_what_is_given,
    rotation_keeps_the_previous_secret_until_it_expires,
    for_project_topic_picks_enabled_subscribers,
    deliveries_are_listed_by_endpoint_status_and_cursor,
    deleting_an_endpoint_takes_its_deliveries,
    by_id_reads_any_project_endpoint,
);

fn project(id: &str) -> ProjectId {
    ProjectId::parse(id).unwrap()
}

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

/// Creates and stores an endpoint of `project` taking `topics`.
async fn endpoint(db: &Db, project_id: &str, topics: &[&str]) -> Endpoint {
    let input =
        EndpointIn::parse("https://hooks.example.com/wa", topics, Some("CRM"), None).unwrap();
    let e = Endpoint::create(project(project_id), input, at(1_000));
    db.endpoints.create(&e).await.unwrap();
    e
}

/// Two projects, `acme` and `beta`.
async fn projects(db: &Db) {
    create(&*db.store, "acme", &["+919812345678"])
        .await
        .unwrap();
    create(&*db.store, "beta", &["+4915112345678"])
        .await
        .unwrap();
}

/// Runs statements on the database from outside the adapters.
async fn sql(db: &Db, statements: &str) {
    use sqlx::Connection;
    let statements = sqlx::AssertSqlSafe(statements.to_owned());
    if db.url.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
        sqlx::raw_sql(statements).execute(&mut c).await.unwrap();
    } else {
        let mut c = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
        sqlx::raw_sql(statements).execute(&mut c).await.unwrap();
    }
}

async fn count(db: &Db, table: &str) -> i64 {
    use sqlx::Connection;
    let q = sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}"));
    if db.url.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
        sqlx::query_scalar(q).fetch_one(&mut c).await.unwrap()
    } else {
        let mut c = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
        sqlx::query_scalar(q).fetch_one(&mut c).await.unwrap()
    }
}

/// A delivery row as the outbox writes it.
fn delivery_row(id: &WebhookDeliveryId, event: &str, e: &Endpoint, status: &str) -> String {
    format!(
        "INSERT INTO deliveries (id, event_id, endpoint_id, project_id, event_type, payload, \
         status, attempts, next_attempt_at, last_status_code, last_error, created_at, updated_at) \
         VALUES ('{id}', '{event}', '{}', '{}', 'datagen.delivery', \
         '{{\"event_id\": \"{event}\",  \"data\": {{}}}}', '{status}', 2, 5000, 503, \
         'Service Unavailable', 1000, 2000);",
        e.id, e.project_id
    )
}

async fn endpoints_are_stored_whole_and_scoped_to_their_project(db: &Db) {
    projects(db).await;
    let a1 = endpoint(db, "acme", &["meta.delivery", "datagen.delivery"]).await;
    let a2 = endpoint(db, "acme", &["*"]).await;
    let b1 = endpoint(db, "beta", &["*"]).await;
    let got = db.endpoints.get(&project("acme"), &a1.id).await.unwrap();
    assert_eq!(
        got.as_ref(),
        Some(&a1),
        "every field, the secret too, reads back"
    );
    assert_eq!(
        got.unwrap().topics.as_slice(),
        [Topic::DatagenDelivery, Topic::MetaDelivery]
    );
    assert_eq!(
        db.endpoints.get(&project("beta"), &a1.id).await.unwrap(),
        None,
        "another project's endpoint is absent"
    );
    assert_eq!(
        db.endpoints
            .get(&project("acme"), &EndpointId::generate())
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        db.endpoints.list(&project("acme")).await.unwrap(),
        vec![a1, a2],
        "oldest first"
    );
    assert_eq!(db.endpoints.list(&project("beta")).await.unwrap(), vec![b1]);
    assert!(
        db.endpoints
            .list(&project("nobody"))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn updates_change_only_what_is_given(db: &Db) {
    projects(db).await;
    let e = endpoint(db, "acme", &["datagen.delivery"]).await;
    let acme = project("acme");
    let patch =
        EndpointPatch::parse::<&str>(Some("https://new.example.com/x"), None, None, None).unwrap();
    let u = db
        .endpoints
        .update(&acme, &e.id, &patch, at(2_000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(u.url.as_str(), "https://new.example.com/x");
    assert_eq!(
        (u.topics.clone(), u.description.clone()),
        (e.topics.clone(), e.description.clone())
    );
    assert_eq!(
        (u.secret.clone(), u.enabled, u.updated_at),
        (e.secret.clone(), true, at(2_000))
    );
    assert_eq!(u.created_at, e.created_at);
    assert_eq!(db.endpoints.get(&acme, &e.id).await.unwrap(), Some(u));

    let patch = EndpointPatch::parse(None, Some(&["*"][..]), Some(""), None).unwrap();
    let u = db
        .endpoints
        .update(&acme, &e.id, &patch, at(3_000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(u.topics.as_slice(), [Topic::All]);
    assert_eq!(u.description, None, "an empty description clears it");

    // The forwarder disables on a 410; a later edit that does not mention `enabled` keeps it
    // disabled, and so does an explicit disable (keeping the first reason).
    assert!(
        db.endpoints
            .disable(&e.id, "410 Gone", at(4_000))
            .await
            .unwrap()
    );
    let describe = EndpointPatch::parse::<&str>(None, None, Some("new words"), None).unwrap();
    let u = db
        .endpoints
        .update(&acme, &e.id, &describe, at(5_000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (u.enabled, u.disabled_reason.as_deref()),
        (false, Some("410 Gone"))
    );
    assert_eq!(u.description.as_deref(), Some("new words"));
    let off = EndpointPatch::parse::<&str>(None, None, None, Some(false)).unwrap();
    let u = db
        .endpoints
        .update(&acme, &e.id, &off, at(6_000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (u.enabled, u.disabled_reason.as_deref()),
        (false, Some("410 Gone"))
    );

    let on = EndpointPatch::parse::<&str>(None, None, None, Some(true)).unwrap();
    let u = db
        .endpoints
        .update(&acme, &e.id, &on, at(7_000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (u.enabled, u.disabled_reason),
        (true, None),
        "re-enabling forgets why"
    );
    let u = db
        .endpoints
        .update(&acme, &e.id, &off, at(8_000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (u.enabled, u.disabled_reason.as_deref()),
        (false, Some(DISABLED_BY_REQUEST))
    );

    assert_eq!(
        db.endpoints
            .update(&project("beta"), &e.id, &on, at(9_000))
            .await
            .unwrap(),
        None,
        "another project cannot change it"
    );
    assert!(
        !db.endpoints
            .get(&acme, &e.id)
            .await
            .unwrap()
            .unwrap()
            .enabled
    );
    assert!(
        !db.endpoints
            .disable(&EndpointId::generate(), "410 Gone", at(9_000))
            .await
            .unwrap()
    );
}

async fn rotation_keeps_the_previous_secret_until_it_expires(db: &Db) {
    projects(db).await;
    let e = endpoint(db, "acme", &["*"]).await;
    let acme = project("acme");
    let first = SharedSecret::generate();
    let r = db
        .endpoints
        .rotate_secret(&acme, &e.id, &first, at(90_000), at(2_000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.secret, first);
    assert_eq!(
        r.previous_secret,
        Some(PreviousSecret {
            secret: e.secret.clone(),
            expires_at: at(90_000)
        })
    );
    assert_eq!(r.updated_at, at(2_000));
    assert_eq!(db.endpoints.get(&acme, &e.id).await.unwrap(), Some(r));
    // Rotating again within the overlap: the secret being replaced becomes the previous one.
    let second = SharedSecret::generate();
    let r = db
        .endpoints
        .rotate_secret(&acme, &e.id, &second, at(95_000), at(3_000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.secret, second);
    assert_eq!(r.previous_secret.unwrap().secret, first);
    assert_eq!(
        db.endpoints
            .rotate_secret(&project("beta"), &e.id, &first, at(1), at(1))
            .await
            .unwrap(),
        None,
        "another project cannot rotate it"
    );
    assert_eq!(
        db.endpoints
            .get(&acme, &e.id)
            .await
            .unwrap()
            .unwrap()
            .secret,
        second
    );
}

async fn for_project_topic_picks_enabled_subscribers(db: &Db) {
    projects(db).await;
    let delivery = endpoint(db, "acme", &["datagen.delivery"]).await;
    let all = endpoint(db, "acme", &["*"]).await;
    let meta = endpoint(db, "acme", &["meta.delivery", "meta.user_message"]).await;
    let beta = endpoint(db, "beta", &["*"]).await;
    let acme = project("acme");
    let ids = |v: Vec<Endpoint>| v.into_iter().map(|e| e.id).collect::<Vec<_>>();
    let pick = |p: ProjectId, t: Topic| {
        let endpoints = db.endpoints.clone();
        async move { ids(endpoints.for_project_topic(&p, t).await.unwrap()) }
    };
    assert_eq!(
        pick(acme.clone(), Topic::DatagenDelivery).await,
        vec![delivery.id.clone(), all.id.clone()]
    );
    assert_eq!(
        pick(acme.clone(), Topic::MetaUserMessage).await,
        vec![all.id.clone(), meta.id.clone()]
    );
    assert!(
        db.endpoints
            .disable(&meta.id, "410 Gone", at(2_000))
            .await
            .unwrap()
    );
    assert_eq!(
        pick(acme.clone(), Topic::MetaUserMessage).await,
        vec![all.id.clone()],
        "a disabled endpoint takes nothing"
    );
    assert_eq!(
        pick(project("beta"), Topic::DatagenUserMessage).await,
        vec![beta.id]
    );
    assert!(
        pick(project("nobody"), Topic::DatagenDelivery)
            .await
            .is_empty()
    );
}

async fn deliveries_are_listed_by_endpoint_status_and_cursor(db: &Db) {
    projects(db).await;
    let e = endpoint(db, "acme", &["*"]).await;
    let other = endpoint(db, "acme", &["*"]).await;
    let ids: Vec<WebhookDeliveryId> = (0..4).map(|_| WebhookDeliveryId::generate()).collect();
    sql(
        db,
        &[
            delivery_row(&ids[0], "ev1", &e, "pending"),
            delivery_row(&ids[1], "ev2", &e, "succeeded"),
            delivery_row(&ids[2], "ev3", &e, "dead"),
            delivery_row(&ids[3], "ev1", &other, "pending"),
            format!(
                "INSERT INTO delivery_attempts (delivery_id, attempt, status_code, latency_ms, \
                 error, response_snippet, attempted_at) VALUES \
                 ('{0}', 2, NULL, 15000, 'timeout', NULL, 4000), \
                 ('{0}', 1, 503, 42, 'Service Unavailable', 'try later', 3000);",
                ids[0]
            ),
        ]
        .concat(),
    )
    .await;
    let acme = project("acme");
    let query =
        |status: Option<DeliveryStatus>, after: Option<&WebhookDeliveryId>, limit| DeliveryQuery {
            status,
            after: after.cloned(),
            limit,
        };
    let page = db
        .endpoints
        .deliveries(&acme, &e.id, &query(None, None, 10))
        .await
        .unwrap();
    assert_eq!(
        page.iter().map(|d| d.id.clone()).collect::<Vec<_>>(),
        ids[..3].to_vec(),
        "this endpoint's, in creation order"
    );
    let first = &page[0];
    assert_eq!(
        (
            first.event_id.as_str(),
            &first.endpoint_id,
            first.event_type.as_str()
        ),
        ("ev1", &e.id, "datagen.delivery")
    );
    assert_eq!(
        (first.status, first.attempts, first.next_attempt_at),
        (DeliveryStatus::Pending, 2, at(5_000))
    );
    assert_eq!(
        (first.last_status_code, first.last_error.as_deref()),
        (Some(503), Some("Service Unavailable"))
    );
    assert_eq!((first.created_at, first.updated_at), (at(1_000), at(2_000)));

    let dead = db
        .endpoints
        .deliveries(&acme, &e.id, &query(Some(DeliveryStatus::Dead), None, 10))
        .await
        .unwrap();
    assert_eq!(
        dead.iter().map(|d| &d.id).collect::<Vec<_>>(),
        vec![&ids[2]]
    );
    let second = db
        .endpoints
        .deliveries(&acme, &e.id, &query(None, Some(&ids[0]), 1))
        .await
        .unwrap();
    assert_eq!(
        second.iter().map(|d| &d.id).collect::<Vec<_>>(),
        vec![&ids[1]]
    );
    assert!(
        db.endpoints
            .deliveries(&project("beta"), &e.id, &query(None, None, 10))
            .await
            .unwrap()
            .is_empty(),
        "another project sees none"
    );

    let detail = db
        .endpoints
        .delivery(&acme, &ids[0])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(detail.delivery, *first);
    assert_eq!(
        detail.payload, r#"{"event_id": "ev1",  "data": {}}"#,
        "byte for byte"
    );
    let attempts: Vec<_> = detail
        .attempts
        .iter()
        .map(|a| (a.attempt, a.status_code, a.latency_ms, a.error.as_deref()))
        .collect();
    assert_eq!(
        attempts,
        vec![
            (1, Some(503), Some(42), Some("Service Unavailable")),
            (2, None, Some(15_000), Some("timeout")),
        ],
        "oldest first"
    );
    assert_eq!(
        detail.attempts[0].response_snippet.as_deref(),
        Some("try later")
    );
    assert_eq!(detail.attempts[0].attempted_at, at(3_000));
    assert_eq!(
        db.endpoints
            .delivery(&project("beta"), &ids[0])
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        db.endpoints
            .delivery(&acme, &WebhookDeliveryId::generate())
            .await
            .unwrap(),
        None
    );
}

async fn deleting_an_endpoint_takes_its_deliveries(db: &Db) {
    projects(db).await;
    let e = endpoint(db, "acme", &["*"]).await;
    let kept = endpoint(db, "acme", &["*"]).await;
    let (gone, stays) = (WebhookDeliveryId::generate(), WebhookDeliveryId::generate());
    sql(
        db,
        &[
            delivery_row(&gone, "ev1", &e, "dead"),
            delivery_row(&stays, "ev1", &kept, "pending"),
            format!(
                "INSERT INTO delivery_attempts (delivery_id, attempt, attempted_at) VALUES \
                 ('{gone}', 1, 3000), ('{stays}', 1, 3000);"
            ),
        ]
        .concat(),
    )
    .await;
    let acme = project("acme");
    assert!(
        !db.endpoints.delete(&project("beta"), &e.id).await.unwrap(),
        "another project cannot delete it"
    );
    assert!(db.endpoints.get(&acme, &e.id).await.unwrap().is_some());
    assert!(db.endpoints.delete(&acme, &e.id).await.unwrap());
    assert_eq!(db.endpoints.get(&acme, &e.id).await.unwrap(), None);
    assert_eq!(db.endpoints.delivery(&acme, &gone).await.unwrap(), None);
    assert!(
        db.endpoints
            .delivery(&acme, &stays)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(count(db, "delivery_attempts").await, 1);
    assert_eq!(count(db, "deliveries").await, 1);
    assert!(
        !db.endpoints.delete(&acme, &e.id).await.unwrap(),
        "already gone"
    );
    assert_eq!(db.endpoints.list(&acme).await.unwrap(), vec![kept]);
}

async fn by_id_reads_any_project_endpoint(db: &Db) {
    projects(db).await;
    let a = endpoint(db, "acme", &["*"]).await;
    let b = endpoint(db, "beta", &["meta.delivery"]).await;
    assert_eq!(db.endpoints.by_id(&a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(db.endpoints.by_id(&b.id).await.unwrap(), Some(b));
    assert_eq!(
        db.endpoints.by_id(&EndpointId::generate()).await.unwrap(),
        None
    );
    assert!(db.endpoints.delete(&project("acme"), &a.id).await.unwrap());
    assert_eq!(db.endpoints.by_id(&a.id).await.unwrap(), None);
}
