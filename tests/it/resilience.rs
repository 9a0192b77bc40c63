//! What happens when things go wrong: a broker outage, Redis down, poison queue messages, an
//! event the database refuses.

use reqwest::StatusCode;
use serde_json::value::RawValue;
use std::time::{Duration, Instant};
use wagate::domain::event::Event;
use wagate::domain::status::Status;
use wagate::domain::task::{Task, queues};
use wagate::domain::time::Timestamp;
use wagate::ports::Outgoing;

use crate::support::app::{ADMIN, Backend, TestApp, fixture, on_both_backends};
use crate::support::events;
use crate::support::proxy::Proxy;

const WAMID_PATH: &str =
    "/v1/messages/wamid.HBgMOTE5ODc2NTQzMjEwFQIAERgSM0E1RjQyNUE3QjE5QzA0RDQ2AA%3D%3D";

/// While RabbitMQ is unreachable, ingress answers 503 (so the BSP retries) and `/readyz`
/// names the queue; once it is back, both recover without a restart, and everything that got
/// a 200 is applied.
#[tokio::test]
async fn broker_outage_answers_503_then_recovers() {
    let Some(amqp) = crate::support::amqp_url().await else {
        return;
    };
    let (mut proxy, proxied) = Proxy::for_amqp(&amqp).await;
    let Some(app) = TestApp::spawn_with(Backend::Distributed, |c| c.amqp_url = Some(proxied)).await
    else {
        return;
    };
    let key = app.create_project("acme", &["+919812345678"]).await;
    assert_eq!(
        app.post_raw("/datagen-webhook", fixture("datagen/delivery_sent.json"))
            .await
            .0,
        StatusCode::OK
    );

    proxy.down();
    let (status, err) = app
        .post_raw("/datagen-webhook", fixture("datagen/delivery_read.json"))
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{err}");
    assert_eq!(err["error"]["code"], "queue_unavailable");
    let (status, ready) = app.send(app.client.get(app.url("/readyz"))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready["checks"]["queue"]["status"], "down");
    assert!(
        ready["error"]["message"]
            .as_str()
            .unwrap()
            .contains("queue (rabbitmq)"),
        "{ready}"
    );
    assert_eq!(ready["checks"]["store"]["status"], "ok");

    proxy.up().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _) = app
            .post_raw("/datagen-webhook", fixture("datagen/delivery_read.json"))
            .await;
        if status == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "ingress did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        app.send(app.client.get(app.url("/readyz"))).await.0,
        StatusCode::OK
    );
    app.process().await;
    let (_, m) = app.get(WAMID_PATH, &key).await;
    assert_eq!(m["status"], "read");
    assert_eq!(m["events"].as_array().unwrap().len(), 2, "{m}");
    app.stop().await;
}

/// Redis unreachable from the start: lookups fall through to the store, everything works, and
/// `/readyz` stays ready while reporting the cache as degraded.
#[tokio::test]
async fn redis_down_degrades_to_the_store() {
    let Some(app) = TestApp::spawn_with(Backend::Distributed, |c| {
        c.redis_url = Some("redis://127.0.0.1:1/".into())
    })
    .await
    else {
        return;
    };
    let key = app.create_project("acme", &["+919812345678"]).await;
    for file in ["delivery_read.json", "delivery_sent.json"] {
        let (status, _) = app
            .post_raw("/datagen-webhook", fixture(&format!("datagen/{file}")))
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(app.process().await, 2);
    let (status, m) = app.get(WAMID_PATH, &key).await;
    assert_eq!(
        (status, m["status"].as_str()),
        (StatusCode::OK, Some("read"))
    );
    let (status, ready) = app.send(app.client.get(app.url("/readyz"))).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert_eq!(ready["checks"]["cache"]["status"], "degraded");
    app.stop().await;
}

on_both_backends!(
    poison_messages_are_parked_not_blocking,
    a_missing_table_holds_the_batch_instead_of_quarantining,
);

/// Runs one statement on the app's database from outside the app.
async fn sql(app: &TestApp, statement: &str) {
    use sqlx::Connection;
    let url = app.config.database_url();
    let sql = sqlx::AssertSqlSafe(statement.to_owned());
    if url.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query(sql).execute(&mut c).await.unwrap();
    } else {
        let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query(sql).execute(&mut c).await.unwrap();
    }
}

/// A schema or permission problem is an outage, not bad data: the processor holds the batch
/// and retries (it must not bisect down and quarantine good events), and applies it once an
/// operator fixes the database.
async fn a_missing_table_holds_the_batch_instead_of_quarantining(app: &TestApp) {
    let key = app.create_project("acme", &["+919812345678"]).await;
    sql(
        app,
        "ALTER TABLE message_events RENAME TO message_events_away",
    )
    .await;
    for file in ["delivery_read.json", "delivery_sent.json"] {
        let (status, _) = app
            .post_raw("/datagen-webhook", fixture(&format!("datagen/{file}")))
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let processing = async {
        let events = app.process().await;
        (events, Instant::now())
    };
    let operator = async {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, metrics) = app.send(app.client.get(app.url("/metrics"))).await;
            let retried = metrics
                .as_str()
                .unwrap()
                .lines()
                .any(|l| l.starts_with("wagate_processor_retries") && !l.ends_with(" 0"));
            if retried {
                break;
            }
            assert!(Instant::now() < deadline, "the processor never retried");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (_, q) = app
            .send(
                app.client
                    .get(app.url("/v1/admin/quarantine"))
                    .bearer_auth(ADMIN),
            )
            .await;
        assert_eq!(
            q["data"],
            serde_json::json!([]),
            "nothing quarantined during the outage"
        );
        sql(
            app,
            "ALTER TABLE message_events_away RENAME TO message_events",
        )
        .await;
        Instant::now()
    };
    let ((events, done), fixed) = tokio::join!(processing, operator);
    assert_eq!(events, 2);
    assert!(done >= fixed, "the batch waited for the fix");
    let (_, m) = app.get(WAMID_PATH, &key).await;
    assert_eq!(m["status"], "read", "{m}");
    assert_eq!(m["events"].as_array().unwrap().len(), 2);
}

/// A queue message nobody can decode goes to the dead letters; the events behind it are
/// applied; the operator sees it and can redrive it.
async fn poison_messages_are_parked_not_blocking(app: &TestApp) {
    let key = app.create_project("acme", &["+919812345678"]).await;
    app.queue()
        .publish(
            queues::EVENTS,
            &[Outgoing::new(b"\xffnot a task".to_vec(), 0)],
        )
        .await
        .unwrap();
    assert_eq!(
        app.post_raw("/datagen-webhook", fixture("datagen/delivery_read.json"))
            .await
            .0,
        StatusCode::OK
    );
    app.process().await;
    assert_eq!(app.get(WAMID_PATH, &key).await.1["status"], "read");
    let queue_info = || {
        app.send(
            app.client
                .get(app.url("/v1/admin/queues/events"))
                .bearer_auth(ADMIN),
        )
    };
    let (_, q) = queue_info().await;
    assert_eq!(q["dead_letters"], 1, "{q}");
    let (status, moved) = app
        .send(
            app.client
                .post(app.url("/v1/admin/queues/events/redrive"))
                .bearer_auth(ADMIN),
        )
        .await;
    assert_eq!((status, moved["moved"].as_u64()), (StatusCode::OK, Some(1)));
    app.process().await;
    assert_eq!(
        queue_info().await.1["dead_letters"],
        1,
        "still poison after a redrive"
    );
}

/// PostgreSQL refuses text with a NUL character. An event carrying one (built here directly,
/// since the parsers strip NULs) is isolated and quarantined; the rest of its batch is applied.
#[tokio::test]
async fn an_event_the_database_refuses_is_quarantined_alone() {
    let Some(app) = TestApp::spawn(Backend::Distributed).await else {
        return;
    };
    let mut poison = events::status("wamid.bad", Status::Read, 1);
    if let Event::Status(s) = &mut poison {
        s.wamid = "wamid.bad\u{0}one".into();
        s.raw = RawValue::from_string(r#"{"mid":"wamid.bad\u0000one"}"#.into()).unwrap();
    }
    let (stats, q) = batch_with_poison(&app, 9, poison).await;
    assert_eq!(stats["messages"]["delivered"], 9, "{stats}");
    let rows = q["data"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{q}");
    assert_eq!(rows[0]["reason"], "store_rejected");
    app.stop().await;
}

/// Publishes `good` delivered events with `poison` among them as one queue message, processes
/// it, and returns the project's stats and the quarantine listing.
async fn batch_with_poison(
    app: &TestApp,
    good: usize,
    poison: Event,
) -> (serde_json::Value, serde_json::Value) {
    let key = app.create_project("acme", &["+919812345678"]).await;
    let mut events: Vec<Event> = (0..good)
        .map(|i| events::status(&format!("wamid.ok{i}"), Status::Delivered, 1))
        .collect();
    events.insert(good / 2, poison);
    let task = Task::EventsV1 {
        received_at: Timestamp::now(),
        events,
    };
    app.queue()
        .publish(queues::EVENTS, &[Outgoing::new(task.encode(), 0)])
        .await
        .unwrap();
    assert_eq!(app.process().await, good + 1);
    let (_, stats) = app.get("/v1/stats", &key).await;
    let (_, q) = app
        .send(
            app.client
                .get(app.url("/v1/admin/quarantine"))
                .bearer_auth(ADMIN),
        )
        .await;
    (stats, q)
}

/// An event whose wamid is too long for the database's unique index is refused alone and
/// quarantined (its key bounded), and the rest of its batch is applied and acked: nothing
/// goes to the dead letters.
#[tokio::test]
async fn an_oversized_event_is_quarantined_and_its_batch_still_acked() {
    let Some(app) = TestApp::spawn(Backend::Distributed).await else {
        return;
    };
    // Random text, so PostgreSQL cannot compress it under its index row limit (~2.7 kB).
    let huge: String = (0..250)
        .map(|_| uuid::Uuid::new_v4().simple().to_string())
        .collect();
    let poison = events::status(&format!("wamid.{huge}"), Status::Read, 1);
    let (stats, q) = batch_with_poison(&app, 5, poison).await;
    assert_eq!(stats["messages"]["delivered"], 5, "{stats}");
    assert_eq!(q["data"].as_array().unwrap().len(), 1, "{q} {stats}");
    assert_eq!(q["data"][0]["reason"], "store_rejected");
    let (_, queue) = app
        .send(
            app.client
                .get(app.url("/v1/admin/queues/events"))
                .bearer_auth(ADMIN),
        )
        .await;
    assert_eq!(queue["dead_letters"], 0, "{queue}");
    app.stop().await;
}
