//! `POST /webhook/config/{id}/replay`, on both backend sets: events that arrived while an
//! endpoint was disabled reach it once after it is enabled again and replayed, a second replay
//! sends nothing more, and every refusal answers its own code. Also: a redrive right after a
//! change of URL goes to the new URL, with the roles in separate processes.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::forwarding::{
    NUMBER, WITHIN, deliveries, endpoint, first_delivery_is, post_event, spawn, until,
};
use crate::support::app::{ADMIN, Backend, TestApp};
use crate::support::process::{env_for, start_with};
use crate::support::receiver::Receiver;

crate::support::app::backend_cases!(
    events_that_arrived_while_disabled_are_delivered_once_after_a_replay,
    a_replay_is_refused_with_a_code_for_each_reason,
);

fn rfc3339_ago(d: Duration) -> String {
    let now = wagate::domain::time::Timestamp::now().millis();
    wagate::domain::time::Timestamp::from_millis(now - d.as_millis() as i64).to_rfc3339()
}

async fn replay(app: &TestApp, key: &str, id: &str, body: Value) -> (StatusCode, Value) {
    app.call(
        Method::POST,
        &format!("/webhook/config/{id}/replay"),
        key,
        Some(body),
    )
    .await
}

async fn set_enabled(app: &TestApp, key: &str, id: &str, enabled: bool) {
    let (status, body) = app
        .call(
            Method::PUT,
            &format!("/webhook/config/{id}"),
            key,
            Some(json!({ "enabled": enabled })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Waits until the processor has applied the event for `wamid`.
async fn applied(app: &TestApp, key: &str, wamid: &str) {
    let path = format!("/v1/messages/{wamid}");
    until(app, &path, key, |m| m["status"].is_string()).await;
}

async fn events_that_arrived_while_disabled_are_delivered_once_after_a_replay(backend: Backend) {
    let Some(app) = spawn(backend, |_| {}).await else {
        return;
    };
    let rx = Receiver::start().await;
    rx.answer("r", &[400]);
    let key = app.create_project("acme", &[NUMBER]).await;
    let (id, _) = endpoint(&app, &key, &rx.url("r"), &["*"]).await;
    let since = rfc3339_ago(Duration::from_secs(1));
    // One delivery refused for good while the endpoint was enabled: a replay revives it.
    post_event(&app, "wamid.R0", "delivered").await;
    first_delivery_is(&app, &key, &id, "dead").await;
    set_enabled(&app, &key, &id, false).await;
    post_event(&app, "wamid.R1", "delivered").await;
    post_event(&app, "wamid.R2", "read").await;
    applied(&app, &key, "wamid.R1").await;
    applied(&app, &key, "wamid.R2").await;
    assert_eq!(
        deliveries(&app, &key, &id).await.len(),
        1,
        "none while disabled"
    );
    let (status, body) = replay(&app, &key, &id, json!({ "since": since })).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "endpoint_disabled");

    set_enabled(&app, &key, &id, true).await;
    let (status, body) = replay(&app, &key, &id, json!({ "since": since })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"replayed": 3, "revived": 1, "created": 2}),
        "{body}"
    );
    let got = rx.wait_for("r", 4, WITHIN).await;
    assert_eq!(got.len(), 4, "the refused attempt, then three deliveries");
    let path = format!("/webhook/config/{id}/deliveries?status=succeeded");
    until(&app, &path, &key, |p| {
        p["data"].as_array().map(Vec::len) == Some(3)
    })
    .await;
    let mut wamids: Vec<String> = got[1..]
        .iter()
        .map(|r| r.json()["message"]["wamid"].as_str().unwrap().to_owned())
        .collect();
    wamids.sort();
    assert_eq!(wamids, ["wamid.R0", "wamid.R1", "wamid.R2"]);

    // The same window again: every event has its delivery, none is dead.
    let (status, body) = replay(&app, &key, &id, json!({ "since": since })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"replayed": 0, "revived": 0, "created": 0}));
    assert_eq!(deliveries(&app, &key, &id).await.len(), 3);
    assert_eq!(rx.received("r").len(), 4, "nothing sent twice");
    app.stop().await;
}

async fn a_replay_is_refused_with_a_code_for_each_reason(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let key = app.create_project("acme", &[NUMBER]).await;
    let other = app.create_project("beta", &["+4915112345678"]).await;
    let (id, _) = endpoint(&app, &key, "http://127.0.0.1:9/hooks", &["*"]).await;
    let (theirs, _) = endpoint(&app, &other, "http://127.0.0.1:9/hooks", &["*"]).await;
    let since = rfc3339_ago(Duration::from_secs(3600));
    let ok = json!({ "since": since });

    let (status, _) = app
        .send(
            app.client
                .post(app.url(&format!("/webhook/config/{id}/replay")))
                .json(&ok),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no key");
    let unknown = "ep_00000000000000000000000000";
    for (missing, what) in [(unknown, "unknown"), (theirs.as_str(), "another project's")] {
        let (status, body) = replay(&app, &key, missing, ok.clone()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{what}: {body}");
        assert_eq!(body["error"]["code"], "not_found", "{body}");
    }
    let refused = [
        (json!({ "since": since, "from": 1 }), "invalid_request"),
        (json!({ "until": since }), "invalid_request"),
        (json!({ "since": "yesterday" }), "invalid_request"),
        (
            json!({ "since": since, "until": rfc3339_ago(Duration::from_secs(7200)) }),
            "invalid_request",
        ),
        (
            json!({ "since": rfc3339_ago(Duration::from_secs(8 * 24 * 3600)) }),
            "window_too_large",
        ),
    ];
    for (body, code) in refused {
        let (status, answer) = replay(&app, &key, &id, body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{body}: {answer}");
    }
    let (status, answer) = app
        .send(
            app.client
                .post(app.url(&format!("/webhook/config/{id}/replay")))
                .bearer_auth(&key)
                .body("{not json"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");

    // 10,001 stored status events in the window: more than one replay may create.
    let now = wagate::domain::time::Timestamp::now().millis();
    crate::security::sql(
        &app,
        format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10001) \
             INSERT INTO messages (wamid, project_id, provider, status_rank, business_number, \
             created_at, updated_at) SELECT 'wamid.bulk' || i, 'acme', 'datagen', 2, \
             '{NUMBER}', {now}, {now} FROM n; \
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10001) \
             INSERT INTO message_events (wamid, status_rank, project_id, provider, received_at, \
             raw) SELECT 'wamid.bulk' || i, 2, 'acme', 'datagen', {now}, '{{}}' FROM n;"
        ),
    )
    .await;
    let (status, answer) = replay(&app, &key, &id, ok.clone()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["error"]["code"], "too_many_events", "{answer}");
    assert_eq!(
        deliveries(&app, &key, &id).await.len(),
        0,
        "nothing half done"
    );
    app.stop().await;
}

/// The API and the forwarder in separate processes: the forwarder's cache still holds the old
/// URL when the owner redrives right after changing it, and the redrive must not use it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redrive_right_after_a_url_change_goes_to_the_new_url() {
    let Some((mut env, _keep)) = env_for(Backend::Distributed).await else {
        return;
    };
    env.extend([
        ("WAGATE_ALLOW_PRIVATE_TARGETS".into(), "true".into()),
        ("WAGATE_SWEEPER_INTERVAL_MS".into(), "50".into()),
    ]);
    let api = start_with(&env, &["--roles", "api,ingress,processor"]).await;
    let _forwarder = start_with(&env, &["--roles", "forwarder"]).await;
    let rx = Receiver::start().await;
    rx.answer("old", &[400; 10]);
    let client = reqwest::Client::new();
    let (status, project) = json_call(
        client
            .post(format!("{}/v1/projects", api.base))
            .bearer_auth(ADMIN)
            .json(&json!({"id": "acme", "name": "Acme", "phone_numbers": [NUMBER]})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{project}");
    let key = project["api_key"].as_str().unwrap().to_owned();
    let (status, ep) = json_call(
        client
            .post(format!("{}/webhook/config", api.base))
            .bearer_auth(&key)
            .json(&json!({"webhook_url": rx.url("old"), "topics": ["*"]})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{ep}");
    let id = ep["id"].as_str().unwrap().to_owned();
    let body = crate::forwarding::datagen("wamid.U1", "delivered");
    let answer = client
        .post(format!("{}/datagen-webhook", api.base))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let deadline = Instant::now() + WITHIN;
    loop {
        let (_, log) = json_call(
            client
                .get(format!("{}/webhook/config/{id}/deliveries", api.base))
                .bearer_auth(&key),
        )
        .await;
        if log["data"][0]["status"] == "dead" {
            break;
        }
        assert!(Instant::now() < deadline, "never dead: {log}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let (status, _) = json_call(
        client
            .put(format!("{}/webhook/config/{id}", api.base))
            .bearer_auth(&key)
            .json(&json!({"webhook_url": rx.url("new")})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, redriven) = json_call(
        client
            .post(format!("{}/webhook/config/{id}/redrive", api.base))
            .bearer_auth(&key),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{redriven}");
    assert_eq!(redriven["redriven"], 1);
    let got = rx.wait_for("new", 1, WITHIN).await;
    assert_eq!(got.len(), 1, "the redrive went to the new URL");
    assert_eq!(rx.received("old").len(), 1, "and not to the old one");
}

async fn json_call(req: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let r = req.send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}
