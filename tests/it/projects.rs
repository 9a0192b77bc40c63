//! Project management, message ownership and quarantine replay, over HTTP on both backend sets.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::app::{ADMIN, TestApp, fixture, on_both_backends};

on_both_backends!(
    projects_are_listed_changed_and_rekeyed,
    another_projects_event_is_quarantined_as_mismatch,
    events_for_a_late_number_replay_on_registration,
    quarantine_replay_by_filter,
    ingress_quarantine_keeps_a_retried_body_once,
    retention_empties_raw_payloads_and_keeps_the_history,
    a_meta_phone_number_id_names_one_number,
);

const WAMID: &str = "wamid.HBgMOTE5ODc2NTQzMjEwFQIAERgSM0E1RjQyNUE3QjE5QzA0RDQ2AA%3D%3D";

async fn admin(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = app.client.request(method, app.url(path)).bearer_auth(ADMIN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    app.send(req).await
}

async fn quarantine(app: &TestApp) -> Vec<Value> {
    let (status, q) = admin(app, reqwest::Method::GET, "/v1/admin/quarantine", None).await;
    assert_eq!(status, StatusCode::OK, "{q}");
    q["data"].as_array().unwrap().clone()
}

/// The datagen fixture with its business number (`sender.from`) swapped.
fn datagen_from(file: &str, business: &str) -> String {
    let mut v: Value = serde_json::from_str(&fixture(&format!("datagen/{file}"))).unwrap();
    v["sender"]["from"] = json!(business);
    v.to_string()
}

async fn projects_are_listed_changed_and_rekeyed(app: &TestApp) {
    use reqwest::Method;
    let (status, created) = admin(
        app,
        Method::POST,
        "/v1/projects",
        Some(json!({"id": "acme", "name": "Acme", "phone_numbers": [
            "+919812345678",
            {"number": "+15550783881", "meta_phone_number_id": "106540352242922"},
        ]})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        created["phone_numbers"],
        json!(["+15550783881", "+919812345678"])
    );
    assert_eq!(
        created["numbers"][0]["meta_phone_number_id"],
        "106540352242922"
    );
    let old_key = created["api_key"].as_str().unwrap().to_owned();
    app.create_project("beta", &["+4915112345678"]).await;

    let (_, list) = admin(app, Method::GET, "/v1/projects?limit=1", None).await;
    assert_eq!(list["data"][0]["id"], "acme");
    assert!(
        list["data"][0].get("api_key").is_none(),
        "keys are shown once"
    );
    let (_, next) = admin(app, Method::GET, "/v1/projects?after=acme", None).await;
    assert_eq!(next["data"][0]["id"], "beta");
    let (status, _) = app.get("/v1/projects", &old_key).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a project key is not an admin token"
    );

    let (status, p) = admin(
        app,
        Method::POST,
        "/v1/projects/acme/numbers",
        Some(json!({"number": "+44 7700 900123"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{p}");
    assert_eq!(p["phone_numbers"].as_array().unwrap().len(), 3);
    let (status, err) = admin(
        app,
        Method::POST,
        "/v1/projects/acme/numbers",
        Some(json!({"number": "+4915112345678"})),
    )
    .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("conflict"))
    );
    let (status, _) = admin(
        app,
        Method::POST,
        "/v1/projects/nobody/numbers",
        Some(json!({"number": "+447700900124"})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = admin(
        app,
        Method::DELETE,
        "/v1/projects/acme/numbers/%2B447700900123",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = admin(
        app,
        Method::DELETE,
        "/v1/projects/acme/numbers/%2B447700900123",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, p) = admin(app, Method::GET, "/v1/projects/acme", None).await;
    assert_eq!(p["phone_numbers"], json!(["+15550783881", "+919812345678"]));

    // The old key works until the rotation, and not one request after it.
    assert_eq!(app.get("/v1/project", &old_key).await.0, StatusCode::OK);
    let (status, rotated) = admin(app, Method::POST, "/v1/projects/acme/rotate-key", None).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new_key = rotated["api_key"].as_str().unwrap();
    assert_eq!(
        app.get("/v1/project", &old_key).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.get("/v1/project", new_key).await.1["id"], "acme");
    let (status, _) = admin(app, Method::POST, "/v1/projects/nobody/rotate-key", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Bad input is a 422 on both stores, never a 500.
    for bad in [
        json!({"id": "nul", "name": "a\u{0}b", "phone_numbers": ["+447700900125"]}),
        json!({"id": "meta", "name": "m", "phone_numbers": [{"number": "+447700900126", "meta_phone_number_id": "x1"}]}),
    ] {
        let (status, err) = admin(app, Method::POST, "/v1/projects", Some(bad)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
        assert_eq!(err["error"]["code"], "invalid_request");
    }
}

/// Project B names A's message: A's message does not move, B's event is kept aside.
async fn another_projects_event_is_quarantined_as_mismatch(app: &TestApp) {
    let key_a = app.create_project("a", &["+919812345678"]).await;
    let key_b = app.create_project("b", &["+4915112345678"]).await;
    app.post_raw(
        "/datagen-webhook",
        fixture("datagen/delivery_delivered.json"),
    )
    .await;
    app.process().await;
    let (status, _) = app
        .post_raw(
            "/datagen-webhook",
            datagen_from("delivery_read.json", "4915112345678"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    app.process().await;
    let path = format!("/v1/messages/{WAMID}");
    let (_, m) = app.get(&path, &key_a).await;
    assert_eq!(m["status"], "delivered", "{m}");
    assert_eq!(m["events"].as_array().unwrap().len(), 1);
    assert_eq!(app.get(&path, &key_b).await.0, StatusCode::NOT_FOUND);
    let q = quarantine(app).await;
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!(q[0]["reason"], "project_mismatch");
    assert_eq!(q[0]["business_number"], "+4915112345678");
    // A redelivered copy is not kept twice.
    app.post_raw(
        "/datagen-webhook",
        datagen_from("delivery_read.json", "4915112345678"),
    )
    .await;
    app.process().await;
    assert_eq!(quarantine(app).await.len(), 1);
}

/// An event that arrives before its number is registered waits in quarantine, and goes
/// through as soon as the project is created, with no operator action.
async fn events_for_a_late_number_replay_on_registration(app: &TestApp) {
    app.post_raw("/datagen-webhook", fixture("datagen/delivery_read.json"))
        .await;
    app.post_raw("/datagen-webhook", fixture("datagen/delivery_sent.json"))
        .await;
    app.process().await;
    let q = quarantine(app).await;
    assert_eq!(q.len(), 2);
    assert!(q.iter().all(|i| i["reason"] == "unknown_business_number"));
    let (status, created) = admin(
        app,
        reqwest::Method::POST,
        "/v1/projects",
        Some(json!({"id": "late", "name": "Late", "phone_numbers": ["+919812345678"]})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(created["replayed_from_quarantine"], 2);
    app.process().await;
    let key = created["api_key"].as_str().unwrap();
    let (_, m) = app.get(&format!("/v1/messages/{WAMID}"), key).await;
    assert_eq!(m["status"], "read", "{m}");
    assert_eq!(m["events"].as_array().unwrap().len(), 2);
    assert!(quarantine(app).await.is_empty());
}

/// The manual replay: filters, idempotence, and an event that still cannot be applied goes
/// back to quarantine.
async fn quarantine_replay_by_filter(app: &TestApp) {
    use reqwest::Method;
    app.post_raw("/datagen-webhook", fixture("datagen/delivery_read.json"))
        .await;
    app.post_raw(
        "/datagen-webhook",
        datagen_from("delivery_delivered.json", "4915112345678"),
    )
    .await;
    app.process().await;
    assert_eq!(quarantine(app).await.len(), 2);
    // Registered behind wagate's back is not possible, so register, then empty the
    // quarantine by hand for the other number, which still has no project.
    let (status, r) = admin(
        app,
        Method::POST,
        "/v1/admin/quarantine/replay",
        Some(json!({"business_number": "+4915112345678"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["replayed"], 1);
    app.process().await;
    let q = quarantine(app).await;
    assert_eq!(
        q.len(),
        2,
        "replayed, still unknown, quarantined again: {q:?}"
    );
    let (status, r) = admin(
        app,
        Method::POST,
        "/v1/admin/quarantine/replay",
        Some(json!({"from": "2100-01-01T00:00:00Z"})),
    )
    .await;
    assert_eq!((status, r["replayed"].as_u64()), (StatusCode::OK, Some(0)));
    let (status, err) = admin(
        app,
        Method::POST,
        "/v1/admin/quarantine/replay",
        Some(json!({"from": "yesterday"})),
    )
    .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_request"))
    );
    let (status, _) = app
        .send(
            app.client
                .post(app.url("/v1/admin/quarantine/replay"))
                .json(&json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn ingress_quarantine_keeps_a_retried_body_once(app: &TestApp) {
    for _ in 0..3 {
        let (status, body) = app
            .post_raw("/datagen-webhook", r#"{"hello":"world"}"#)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["quarantined"], 1);
    }
    app.post_raw("/datagen-webhook", r#"{"hello":"there"}"#)
        .await;
    assert_eq!(quarantine(app).await.len(), 2);
}

/// Two processes on PostgreSQL + RabbitMQ without Redis: a project created through one is
/// resolvable at once by the other, which must not have kept the number's earlier absence.
#[tokio::test]
async fn a_new_project_is_seen_at_once_by_other_processes_without_redis() {
    let Some(app) = TestApp::spawn_with(crate::support::app::Backend::Distributed, |c| {
        c.redis_url = None
    })
    .await
    else {
        return;
    };
    app.post_raw("/datagen-webhook", fixture("datagen/delivery_read.json"))
        .await;
    app.process().await;
    assert_eq!(quarantine(&app).await.len(), 1, "no project yet");

    let mut other = app.config.clone();
    other.roles = [wagate::config::Role::Api].into_iter().collect();
    let other = wagate::app::App::build(other)
        .await
        .expect("second process");
    let other_url = format!("http://{}", other.local_addr());
    let stop = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(other.run(stop.clone()));
    let created = app
        .client
        .post(format!("{other_url}/v1/projects"))
        .bearer_auth(ADMIN)
        .json(&json!({"id": "late", "name": "Late", "phone_numbers": ["+919812345678"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let key = created.json::<Value>().await.unwrap()["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    stop.cancel();
    server.await.unwrap().unwrap();

    // The first process resolves the number now, for a new event and for the replayed one.
    app.post_raw("/datagen-webhook", fixture("datagen/delivery_sent.json"))
        .await;
    app.process().await;
    let (_, m) = app.get(&format!("/v1/messages/{WAMID}"), &key).await;
    assert_eq!(m["status"], "read", "{m}");
    assert_eq!(m["events"].as_array().unwrap().len(), 2);
    app.stop().await;
}

/// The retention task's work, end to end: webhooks in and applied, then their raw payloads
/// emptied; the message and its history read the same.
async fn retention_empties_raw_payloads_and_keeps_the_history(app: &TestApp) {
    let key = app.create_project("acme", &["+919812345678"]).await;
    app.post_raw("/datagen-webhook", fixture("datagen/delivery_read.json"))
        .await;
    app.post_raw("/datagen-webhook", fixture("datagen/delivery_sent.json"))
        .await;
    app.process().await;
    let path = format!("/v1/messages/{WAMID}");
    let (_, before) = app.get(&path, &key).await;
    let future = wagate::domain::time::Timestamp::from_millis(
        wagate::domain::time::Timestamp::now().millis() + 60_000,
    );
    let store = app.store();
    let emptied = wagate::services::retention::prune_raw_payloads(&*store, future)
        .await
        .unwrap();
    assert_eq!(emptied, 2);
    assert_eq!(
        wagate::services::retention::prune_raw_payloads(&*store, future)
            .await
            .unwrap(),
        0
    );
    let (_, after) = app.get(&path, &key).await;
    assert_eq!(after, before, "the normalized message and history are kept");
}

/// A Meta phone-number id names one number: registering it for another number (of another
/// project, or the same one; at creation or later) is a 409, and the refused call changes
/// nothing. Before, both were stored, and Meta's webhooks for it no longer found a project by it.
async fn a_meta_phone_number_id_names_one_number(app: &TestApp) {
    use reqwest::Method;
    const ID: &str = "106540352242922";
    let numbers = |n: &str| json!([{"number": n, "meta_phone_number_id": ID}]);
    let (status, body) = admin(
        app,
        Method::POST,
        "/v1/projects",
        Some(json!({"id": "acme", "name": "Acme", "phone_numbers": numbers("+918000000001")})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, err) = admin(
        app,
        Method::POST,
        "/v1/projects",
        Some(json!({"id": "rival", "name": "Rival", "phone_numbers": numbers("+918000000002")})),
    )
    .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("conflict"))
    );
    assert!(
        err["error"]["message"].as_str().unwrap().contains(ID),
        "{err}"
    );
    let (status, _) = admin(app, Method::GET, "/v1/projects/rival", None).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the refused project was not half made"
    );
    for project in ["acme", "other"] {
        if project == "other" {
            admin(
                app,
                Method::POST,
                "/v1/projects",
                Some(json!({"id": "other", "name": "Other", "phone_numbers": ["+918000000003"]})),
            )
            .await;
        }
        let (status, err) = admin(
            app,
            Method::POST,
            &format!("/v1/projects/{project}/numbers"),
            Some(json!({"number": "+918000000004", "meta_phone_number_id": ID})),
        )
        .await;
        assert_eq!(status, StatusCode::CONFLICT, "{project}: {err}");
    }
    // The number that has it may be given it again (an idempotent re-registration).
    let (status, body) = admin(
        app,
        Method::POST,
        "/v1/projects/acme/numbers",
        Some(json!({"number": "+918000000001", "meta_phone_number_id": ID})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
