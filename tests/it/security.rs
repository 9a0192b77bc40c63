//! Trust boundaries, on both backend sets: a project's own BSP base URL never receives the
//! server's credential (at the API, and in the sender for settings stored before the rule),
//! while a project's own credential goes where the project says.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wagate::config::{Config, Role};

use crate::support::app::{ADMIN, Backend, TestApp};
use crate::support::receiver::Receiver;

pub const NUMBER: &str = "+919812345678";
const META_ID: &str = "919812345678";
const WITHIN: Duration = Duration::from_secs(30);
/// Every server credential starts with this; no request to a project's URL may carry it.
const SERVER: &str = "SERVER-CREDENTIAL";

crate::support::app::backend_cases!(
    a_project_base_url_needs_the_projects_own_credential,
    stored_settings_never_send_the_server_credential_elsewhere,
);

/// Every role running for real, fast enough for a test, with server credentials for the
/// three BSPs that have a public default URL.
pub fn fast(c: &mut Config) {
    c.roles = Role::ALL.into_iter().collect();
    c.sweeper_interval_ms = 50;
    c.send_rate_per_number = 1000;
    c.meta_token = Some(format!("{SERVER}-meta").into());
    c.datagen_token = Some(format!("{SERVER}-datagen").into());
    c.aisensy_api_key = Some(format!("{SERVER}-aisensy").into());
}

/// A project `shop` owning [`NUMBER`] (with its Meta id); returns its API key.
pub async fn shop(app: &TestApp) -> String {
    let (status, body) = app
        .send(
            app.client
                .post(app.url("/v1/projects"))
                .bearer_auth(ADMIN)
                .json(&json!({
                    "id": "shop", "name": "Shop",
                    "phone_numbers": [{"number": NUMBER, "meta_phone_number_id": META_ID}],
                })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["api_key"].as_str().unwrap().to_owned()
}

/// Runs statements on the app's database from outside the app.
pub async fn sql(app: &TestApp, statements: String) {
    use sqlx::Connection;
    let url = app.config.database_url();
    let statements = sqlx::AssertSqlSafe(statements);
    if url.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::raw_sql(statements).execute(&mut c).await.unwrap();
    } else {
        let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::raw_sql(statements).execute(&mut c).await.unwrap();
    }
}

/// A one-recipient campaign through `provider`, started; returns its id.
pub async fn one_send(app: &TestApp, key: &str, provider: &str) -> String {
    let id = draft(app, key, provider).await;
    let (status, body) = start(app, key, &id, None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    id
}

/// A one-recipient campaign through `provider`, not started; returns its id.
async fn draft(app: &TestApp, key: &str, provider: &str) -> String {
    let (status, c) = app
        .call(
            Method::POST,
            "/project/campaign",
            key,
            Some(json!({
                "name": format!("{provider} test"), "template_id": format!("{provider}_t"),
                "provider": provider, "sender": NUMBER,
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    let id = c["id"].as_str().unwrap().to_owned();
    let (status, body) = app
        .send(
            app.client
                .post(app.url(&format!("/project/campaign/{id}/recipients")))
                .bearer_auth(key)
                .header("content-type", "text/csv")
                .body("phone\n+919876543210\n"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    id
}

/// Starts campaign `id`, now or at `schedule_time` (unix seconds).
async fn start(
    app: &TestApp,
    key: &str,
    id: &str,
    schedule_time: Option<u64>,
) -> (StatusCode, Value) {
    let mut body = json!({"campaign_id": id});
    if let Some(at) = schedule_time {
        body["schedule_time"] = json!(at);
    }
    app.call(
        Method::POST,
        "/project/campaign/event/send",
        key,
        Some(body),
    )
    .await
}

/// Waits for the campaign's one recipient to be `failed`; returns it.
async fn failed_recipient(app: &TestApp, key: &str, id: &str, rx: &Receiver) -> Value {
    let deadline = Instant::now() + WITHIN;
    loop {
        let (_, page) = app
            .get(
                &format!("/project/campaign/{id}/recipients?status=failed"),
                key,
            )
            .await;
        if let Some(r) = page["data"].get(0) {
            return r.clone();
        }
        let (_, c) = app.get(&format!("/project/campaign/{id}"), key).await;
        assert!(
            Instant::now() < deadline,
            "the send was not refused: {c}; the receiver got {:?}",
            rx.all()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn assert_no_server_credential(rx: &Receiver) {
    for r in rx.all() {
        for (name, value) in &r.headers {
            assert!(!value.contains(SERVER), "header {name}: {value}");
        }
        let body = String::from_utf8_lossy(&r.body);
        assert!(!body.contains(SERVER), "body of /{}: {body}", r.path);
    }
}

async fn put(app: &TestApp, key: &str, provider: &str, body: Value) -> (StatusCode, Value) {
    app.call(
        Method::PUT,
        &format!("/v1/providers/{provider}"),
        key,
        Some(body),
    )
    .await
}

async fn a_project_base_url_needs_the_projects_own_credential(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, fast).await else {
        return;
    };
    let rx = Receiver::start().await;
    let key = shop(&app).await;
    let put = |provider: &'static str, body: Value| put(&app, &key, provider, body);
    // The API: a base URL of the project's own needs the project's own credential.
    for provider in ["meta", "datagen", "aisensy", "aisensy_direct"] {
        let (status, err) = put(provider, json!({"base_url": rx.url("")})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{provider}: {err}");
        assert_eq!(err["error"]["code"], "credential_required", "{err}");
        assert!(
            err["error"]["message"]
                .as_str()
                .unwrap()
                .contains("credential")
        );
    }
    // Other fields alone, or the server's own URL, keep the server's credential.
    let (status, body) = put("meta", json!({"api_version": "v22.0"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = put(
        "datagen",
        json!({"base_url": "https://rcmapi.instaalerts.zone/", "webhook_dn_id": "7"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["credential_set"], false);
    // A credential of its own, with or without a URL of its own, is the project's to use.
    let (status, body) = put("aisensy", json!({"api_key": "project-aisensy-key"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = put(
        "aisensy_direct",
        json!({"base_url": rx.url("direct"), "api_key": "project-direct-key"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.stop().await;
}

async fn stored_settings_never_send_the_server_credential_elsewhere(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, fast).await else {
        return;
    };
    let rx = Receiver::start().await;
    let key = shop(&app).await;
    let put = |provider: &'static str, body: Value| put(&app, &key, provider, body);
    // Settings stored before the rule (a base URL and no credential): a campaign start is
    // refused before anything moves, and a campaign started before they were stored (here, one
    // scheduled) is refused by the sender: nothing is sent to that URL.
    let legacy = |provider: &str| {
        format!(
            "DELETE FROM provider_settings WHERE project_id = 'shop' AND provider = '{provider}'; \
             INSERT INTO provider_settings (project_id, provider, settings, updated_at) \
             VALUES ('shop', '{provider}', '{{\"base_url\":\"{}\"}}', 0)",
            rx.url("").trim_end_matches('/')
        )
    };
    for provider in ["meta", "aisensy"] {
        sql(
            &app,
            format!("DELETE FROM provider_settings WHERE project_id = 'shop' AND provider = '{provider}'"),
        )
        .await;
        let scheduled = draft(&app, &key, provider).await;
        let soon = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 2;
        let (status, body) = start(&app, &key, &scheduled, Some(soon)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        sql(&app, legacy(provider)).await;

        let refused = draft(&app, &key, provider).await;
        let (status, body) = start(&app, &key, &refused, None).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["error"]["code"], "provider_not_configured", "{body}");

        let r = failed_recipient(&app, &key, &scheduled, &rx).await;
        assert_eq!(r["error"]["code"], "credential_required", "{r}");
    }
    assert_no_server_credential(&rx);
    assert!(rx.all().is_empty(), "nothing was sent: {:?}", rx.all());

    // The project's own credential goes to the project's URL, and only it.
    let (status, body) = put(
        "datagen",
        json!({"base_url": rx.url(""), "token": "project-datagen-token"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["credential_set"], true);
    one_send(&app, &key, "datagen").await;
    let got = rx.wait_for("services/rcm/sendMessage", 1, WITHIN).await;
    assert_eq!(got.len(), 1, "{:?}", rx.all());
    assert_eq!(
        got[0].header("authentication"),
        "Bearer project-datagen-token"
    );
    assert_no_server_credential(&rx);
    app.stop().await;
}
