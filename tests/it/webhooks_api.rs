//! The webhook endpoint API (`/webhook/config…`, `/webhook/deliveries/{id}`) over HTTP, on both
//! backend sets: CRUD, secrets shown only at creation and rotation, project isolation, bad
//! input, and the refusal of internal targets.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wagate::domain::endpoint::WebhookDeliveryId;
use wagate::domain::time::Timestamp;

use crate::support::app::{Backend, TestApp, on_both_backends};

on_both_backends!(
    endpoints_are_created_listed_changed_and_deleted,
    secrets_show_only_at_creation_and_rotation,
    other_projects_endpoints_and_deliveries_are_404,
    delivery_logs_show_attempts_and_the_exact_body,
    bad_urls_topics_and_fields_are_refused,
);

async fn create_endpoint(app: &TestApp, key: &str, body: Value) -> Value {
    let (status, created) = app
        .call(Method::POST, "/webhook/config", key, Some(body))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

/// Runs statements on the app's database from outside the app.
async fn sql(app: &TestApp, statements: &str) {
    use sqlx::Connection;
    let url = app.config.database_url();
    let statements = sqlx::AssertSqlSafe(statements.to_owned());
    if url.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::raw_sql(statements).execute(&mut c).await.unwrap();
    } else {
        let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::raw_sql(statements).execute(&mut c).await.unwrap();
    }
}

async fn endpoints_are_created_listed_changed_and_deleted(app: &TestApp) {
    let key = app.create_project("acme", &["+919812345678"]).await;
    let created = create_endpoint(
        app,
        &key,
        json!({
            "webhook_url": "http://127.0.0.1:9/hook",
            "topics": ["meta.delivery", "datagen.delivery"],
            "description": "CRM",
        }),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("ep_"), "{created}");
    assert_eq!(created["webhook_url"], "http://127.0.0.1:9/hook");
    assert_eq!(
        created["topics"],
        json!(["datagen.delivery", "meta.delivery"])
    );
    assert_eq!(created["description"], "CRM");
    assert_eq!(created["enabled"], true);
    assert_eq!(created["disabled_reason"], Value::Null);
    assert_eq!(created["breaker"]["state"], "closed", "{created}");
    assert_eq!(created["breaker"]["consecutive_failures"], 0);
    assert_eq!(created["breaker"]["open_until"], Value::Null);
    let second = create_endpoint(
        app,
        &key,
        json!({"webhook_url": "http://127.0.0.1:9/all", "topics": ["*"]}),
    )
    .await;

    let (status, list) = app.call(Method::GET, "/webhook/config", &key, None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![id.as_str(), second["id"].as_str().unwrap()]);

    let path = format!("/webhook/config/{id}");
    let (status, one) = app.call(Method::GET, &path, &key, None).await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(one["topics"], created["topics"]);

    let (status, changed) = app
        .call(
            Method::PUT,
            &path,
            &key,
            Some(json!({"webhook_url": "http://127.0.0.1:9/v2", "enabled": false})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["webhook_url"], "http://127.0.0.1:9/v2");
    assert_eq!(changed["topics"], created["topics"], "untouched");
    assert_eq!(changed["description"], "CRM", "untouched");
    assert_eq!(changed["enabled"], false);
    assert_eq!(changed["disabled_reason"], "disabled through the API");
    let (_, one) = app.call(Method::GET, &path, &key, None).await;
    assert_eq!(one["enabled"], false, "the change is stored");

    let (_, changed) = app
        .call(
            Method::PUT,
            &path,
            &key,
            Some(json!({"enabled": true, "topics": ["*"], "description": ""})),
        )
        .await;
    assert_eq!(
        (
            &changed["enabled"],
            &changed["disabled_reason"],
            &changed["topics"],
            &changed["description"]
        ),
        (&json!(true), &Value::Null, &json!(["*"]), &Value::Null)
    );

    let (status, _) = app.call(Method::DELETE, &path, &key, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, gone) = app.call(Method::GET, &path, &key, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&gone), "not_found");
    let (status, _) = app.call(Method::DELETE, &path, &key, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = app.call(Method::GET, "/webhook/config", &key, None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let (status, _) = app
        .call(Method::GET, "/webhook/config/ep_nonsense", &key, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn secrets_show_only_at_creation_and_rotation(app: &TestApp) {
    let key = app.create_project("acme", &["+919812345678"]).await;
    let generated = create_endpoint(
        app,
        &key,
        json!({"webhook_url": "http://127.0.0.1:9/a", "topics": ["*"]}),
    )
    .await;
    let secret = generated["shared_secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{generated}");
    let given = format!("whsec_{}", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    let chosen = create_endpoint(
        app,
        &key,
        json!({"webhook_url": "http://127.0.0.1:9/b", "topics": ["*"], "shared_secret": given}),
    )
    .await;
    assert_eq!(chosen["shared_secret"], given.as_str());
    let id = generated["id"].as_str().unwrap();
    let path = format!("/webhook/config/{id}");

    let (_, list) = app.call(Method::GET, "/webhook/config", &key, None).await;
    let (_, one) = app.call(Method::GET, &path, &key, None).await;
    for shown in [list.to_string(), one.to_string()] {
        assert!(
            !shown.contains(&secret) && !shown.contains(&given) && !shown.contains("whsec_"),
            "secrets never in reads: {shown}"
        );
    }
    assert_eq!(one["previous_secret_expires_at"], Value::Null);

    let before = Timestamp::now().millis();
    let (status, rotated) = app
        .call(Method::POST, &format!("{path}/rotate-secret"), &key, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new = rotated["shared_secret"].as_str().unwrap().to_owned();
    assert!(new.starts_with("whsec_") && new != secret, "{rotated}");
    let until = Timestamp::parse_rfc3339(rotated["previous_secret_expires_at"].as_str().unwrap())
        .unwrap()
        .millis();
    let day = 86_400_000;
    assert!(
        (before + day..before + day + 60_000).contains(&until),
        "the old secret signs for a day by default: {rotated}"
    );
    let (_, one) = app.call(Method::GET, &path, &key, None).await;
    assert_eq!(
        one["previous_secret_expires_at"],
        rotated["previous_secret_expires_at"]
    );
    assert!(!one.to_string().contains("whsec_"), "{one}");

    let (status, rotated) = app
        .call(
            Method::POST,
            &format!("{path}/rotate-secret"),
            &key,
            Some(json!({"overlap_secs": 0, "shared_secret": given})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    assert_eq!(rotated["shared_secret"], given.as_str());
    assert_eq!(
        rotated["previous_secret_expires_at"],
        Value::Null,
        "no overlap"
    );

    for (body, code) in [
        (
            json!({"overlap_secs": 40 * 86_400}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"shared_secret": "secret_for_hmac"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"overlap_secs": -1}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let (status, err) = app
            .call(
                Method::POST,
                &format!("{path}/rotate-secret"),
                &key,
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, code, "{body}: {err}");
        assert_eq!(error_code(&err), "invalid_request");
    }
    let (status, err) = app
        .call(
            Method::PUT,
            &path,
            &key,
            Some(json!({"shared_secret": given})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("rotate-secret")
    );
}

async fn other_projects_endpoints_and_deliveries_are_404(app: &TestApp) {
    let acme = app.create_project("acme", &["+919812345678"]).await;
    let beta = app.create_project("beta", &["+4915112345678"]).await;
    let created = create_endpoint(
        app,
        &acme,
        json!({"webhook_url": "http://127.0.0.1:9/a", "topics": ["*"]}),
    )
    .await;
    let id = created["id"].as_str().unwrap();
    let delivery = WebhookDeliveryId::generate();
    sql(app, &insert_delivery(&delivery, id, "acme")).await;
    let path = format!("/webhook/config/{id}");
    for (method, path, body) in [
        (Method::GET, path.clone(), None),
        (Method::PUT, path.clone(), Some(json!({"enabled": false}))),
        (Method::DELETE, path.clone(), None),
        (Method::POST, format!("{path}/rotate-secret"), None),
        (Method::GET, format!("{path}/deliveries"), None),
        (Method::GET, format!("/webhook/deliveries/{delivery}"), None),
    ] {
        let (status, body) = app.call(method.clone(), &path, &beta, body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {body}");
        assert_eq!(error_code(&body), "not_found");
    }
    let (_, list) = app.call(Method::GET, "/webhook/config", &beta, None).await;
    assert_eq!(list["data"], json!([]));
    // Nothing of acme's changed.
    let (_, one) = app.call(Method::GET, &path, &acme, None).await;
    assert_eq!(one["enabled"], true);
    let (status, _) = app
        .call(
            Method::GET,
            &format!("/webhook/deliveries/{delivery}"),
            &acme,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .call(Method::GET, "/webhook/config", "wgk_wrong", None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// A delivery row of `project`'s endpoint, with two attempts, as the forwarder writes them.
fn insert_delivery(id: &WebhookDeliveryId, endpoint: &str, project: &str) -> String {
    format!(
        "INSERT INTO deliveries (id, event_id, endpoint_id, project_id, event_type, payload, \
         status, attempts, next_attempt_at, last_status_code, last_error, created_at, updated_at) \
         VALUES ('{id}', 'evt_1', '{endpoint}', '{project}', 'datagen.delivery', \
         '{{\"event_type\":\"datagen.delivery\",  \"b\":1,\"a\":2}}', 'dead', 2, 1700000000000, \
         400, 'Bad Request', 1700000000000, 1700000005000); \
         INSERT INTO delivery_attempts (delivery_id, attempt, status_code, latency_ms, error, \
         response_snippet, attempted_at) VALUES \
         ('{id}', 1, 503, 40, NULL, 'busy', 1700000001000), \
         ('{id}', 2, 400, 12, 'Bad Request', 'no such hook', 1700000005000);"
    )
}

async fn delivery_logs_show_attempts_and_the_exact_body(app: &TestApp) {
    let key = app.create_project("acme", &["+919812345678"]).await;
    let created = create_endpoint(
        app,
        &key,
        json!({"webhook_url": "http://127.0.0.1:9/a", "topics": ["*"]}),
    )
    .await;
    let id = created["id"].as_str().unwrap();
    let older = WebhookDeliveryId::generate();
    let newer = WebhookDeliveryId::generate();
    sql(app, &insert_delivery(&older, id, "acme")).await;
    sql(
        app,
        &insert_delivery(&newer, id, "acme").replace("'evt_1'", "'evt_2'"),
    )
    .await;

    let base = format!("/webhook/config/{id}/deliveries");
    let (status, page) = app
        .call(Method::GET, &format!("{base}?limit=1"), &key, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let d = &page["data"][0];
    assert_eq!(d["id"], older.as_str());
    assert_eq!(d["event_id"], "evt_1");
    assert_eq!(d["endpoint_id"], id);
    assert_eq!(d["event_type"], "datagen.delivery");
    assert_eq!(d["status"], "dead");
    assert_eq!(d["attempt_count"], 2);
    assert_eq!(
        d["next_attempt_at"],
        Value::Null,
        "nothing is scheduled for a dead one"
    );
    assert_eq!(d["last_status_code"], 400);
    assert_eq!(d["last_error"], "Bad Request");
    assert!(d.get("payload").is_none(), "lists leave bodies out");
    assert_eq!(page["next_cursor"], older.as_str());
    let (_, next) = app
        .call(
            Method::GET,
            &format!("{base}?limit=1&after={older}"),
            &key,
            None,
        )
        .await;
    assert_eq!(next["data"][0]["id"], newer.as_str());
    let (_, pending) = app
        .call(Method::GET, &format!("{base}?status=pending"), &key, None)
        .await;
    assert_eq!(pending["data"], json!([]));
    let (_, dead) = app
        .call(Method::GET, &format!("{base}?status=dead"), &key, None)
        .await;
    assert_eq!(dead["data"].as_array().unwrap().len(), 2);
    assert_eq!(dead["next_cursor"], Value::Null);
    for bad in ["?status=lost", "?after=nonsense", "?limit=0", "?limit=1001"] {
        let (status, err) = app
            .call(Method::GET, &format!("{base}{bad}"), &key, None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {err}");
        assert_eq!(error_code(&err), "invalid_query");
    }

    let resp = app
        .client
        .get(app.url(&format!("/webhook/deliveries/{older}")))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.text().await.unwrap();
    assert!(
        text.contains(r#""payload":{"event_type":"datagen.delivery",  "b":1,"a":2}"#),
        "the body as it is sent, byte for byte: {text}"
    );
    let one: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(one["id"], older.as_str());
    assert_eq!(one["status"], "dead");
    assert_eq!(
        one["attempts"],
        json!([
            {"attempt": 1, "status_code": 503, "latency_ms": 40, "error": null,
             "response_snippet": "busy", "attempted_at": "2023-11-14T22:13:21.000Z"},
            {"attempt": 2, "status_code": 400, "latency_ms": 12, "error": "Bad Request",
             "response_snippet": "no such hook", "attempted_at": "2023-11-14T22:13:25.000Z"},
        ])
    );
    let (status, _) = app
        .call(Method::GET, "/webhook/deliveries/dl_nonsense", &key, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let missing = WebhookDeliveryId::generate();
    let (status, _) = app
        .call(
            Method::GET,
            &format!("/webhook/deliveries/{missing}"),
            &key,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn bad_urls_topics_and_fields_are_refused(app: &TestApp) {
    let key = app.create_project("acme", &["+919812345678"]).await;
    let cases = [
        (
            json!({"webhook_url": "http://127.0.0.1/x", "topics": ["sms.delivery"]}),
            StatusCode::BAD_REQUEST,
            "invalid_topic",
        ),
        (
            json!({"webhook_url": "http://127.0.0.1/x", "topics": []}),
            StatusCode::BAD_REQUEST,
            "invalid_topic",
        ),
        (
            json!({"webhook_url": "http://127.0.0.1/x", "topics": ["*", "datagen.delivery", "meta.delivery", "meta.user_message", "datagen.user_message", "*", "*", "*", "*", "*", "*"]}),
            StatusCode::BAD_REQUEST,
            "invalid_topic",
        ),
        (
            json!({"webhook_url": "ftp://example.com/x", "topics": ["*"]}),
            StatusCode::BAD_REQUEST,
            "url_not_allowed",
        ),
        (
            json!({"webhook_url": "example.com/x", "topics": ["*"]}),
            StatusCode::BAD_REQUEST,
            "url_not_allowed",
        ),
        (
            json!({"webhook_url": "https://user:pw@example.com/x", "topics": ["*"]}),
            StatusCode::BAD_REQUEST,
            "url_not_allowed",
        ),
        (
            json!({"webhook_url": format!("https://example.com/{}", "a".repeat(2100)), "topics": ["*"]}),
            StatusCode::BAD_REQUEST,
            "url_not_allowed",
        ),
        (
            json!({"webhook_url": "http://127.0.0.1/x", "topics": ["*"], "description": "a\nb"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            json!({"webhook_url": "http://127.0.0.1/x", "topics": ["*"], "shared_secret": "whsec_c2hvcnQ="}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            json!({"webhook_url": "http://127.0.0.1/x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            json!({"webhook_url": "http://127.0.0.1/x", "topics": ["*"], "topic": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
    ];
    for (body, status, code) in cases {
        let (got, err) = app
            .call(Method::POST, "/webhook/config", &key, Some(body.clone()))
            .await;
        assert_eq!((got, error_code(&err)), (status, code), "{body}: {err}");
        assert!(
            err["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    let (_, list) = app.call(Method::GET, "/webhook/config", &key, None).await;
    assert_eq!(list["data"], json!([]), "nothing was created");

    let created = create_endpoint(
        app,
        &key,
        json!({"webhook_url": "http://127.0.0.1:9/a", "topics": ["*"]}),
    )
    .await;
    let path = format!("/webhook/config/{}", created["id"].as_str().unwrap());
    for (body, code) in [
        (json!({"topics": ["nope"]}), "invalid_topic"),
        (json!({"webhook_url": "gopher://x/"}), "url_not_allowed"),
    ] {
        let (status, err) = app.call(Method::PUT, &path, &key, Some(body.clone())).await;
        assert_eq!(
            (status, error_code(&err)),
            (StatusCode::BAD_REQUEST, code),
            "{body}"
        );
    }
    let (status, err) = app
        .call(Method::PUT, &path, &key, Some(json!({"enable": true})))
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a misspelt field is refused: {err}"
    );
    let (status, _) = app
        .send(app.client.post(app.url("/webhook/config")).json(&json!({})))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// With `allow_private_targets` off (the default outside tests), internal targets are refused
/// at creation and on change, whether named by address or by a name that resolves to one.
async fn internal_targets_are_refused(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| c.allow_private_targets = false).await else {
        return;
    };
    let key = app.create_project("acme", &["+919812345678"]).await;
    for url in [
        "http://127.0.0.1/x",
        "http://10.0.0.1/",
        "http://[::1]/",
        "http://169.254.169.254/",
        "http://[::ffff:192.168.1.1]/",
        "http://100.64.0.1/",
        "http://0.0.0.0:8080/",
        "http://localhost:9/hook",
    ] {
        let (status, err) = app
            .call(
                Method::POST,
                "/webhook/config",
                &key,
                Some(json!({"webhook_url": url, "topics": ["*"]})),
            )
            .await;
        assert_eq!(
            (status, error_code(&err)),
            (StatusCode::BAD_REQUEST, "url_not_allowed"),
            "{url}: {err}"
        );
    }
    // A public address is taken without any request being made to it.
    let created = create_endpoint(
        &app,
        &key,
        json!({"webhook_url": "https://93.184.215.14/hook", "topics": ["*"]}),
    )
    .await;
    let path = format!("/webhook/config/{}", created["id"].as_str().unwrap());
    let (status, err) = app
        .call(
            Method::PUT,
            &path,
            &key,
            Some(json!({"webhook_url": "http://10.1.2.3/"})),
        )
        .await;
    assert_eq!(
        (status, error_code(&err)),
        (StatusCode::BAD_REQUEST, "url_not_allowed")
    );
    let (_, one) = app.call(Method::GET, &path, &key, None).await;
    assert_eq!(
        one["webhook_url"], "https://93.184.215.14/hook",
        "unchanged"
    );
    app.stop().await;
}

#[tokio::test]
async fn internal_targets_are_refused_embedded() {
    internal_targets_are_refused(Backend::Embedded).await;
}

#[tokio::test]
async fn internal_targets_are_refused_distributed() {
    internal_targets_are_refused(Backend::Distributed).await;
}
