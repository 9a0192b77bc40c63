//! Secrets at rest, on both backend sets: webhook signing secrets and BSP credentials are
//! sealed in the database (and in Redis), read as raw rows here, and still sign and send;
//! `wagate secrets rotate` re-seals them all with a new key while the gateway serves, twice
//! in a row harmlessly, after which the old key opens none of them.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wagate::domain::sealing::{self, SealKey};
use wagate::services::Sealer;

use crate::security::{NUMBER, fast, one_send, shop, sql};
use crate::support::app::{Backend, TestApp};
use crate::support::receiver::Receiver;

const WITHIN: Duration = Duration::from_secs(30);
const KEY_A: &str = "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1";
const KEY_B: &str = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=";

crate::support::app::backend_cases!(
    stored_secrets_are_sealed_and_still_sign_and_send,
    rotation_reseals_every_secret_and_the_old_key_no_longer_opens_them,
);

fn id(key: &str) -> String {
    SealKey::parse(key).unwrap().id().to_owned()
}

/// One text column of every row `query` selects, read straight from the app's database.
async fn raw(app: &TestApp, query: &'static str) -> Vec<String> {
    use sqlx::Connection;
    let url = app.config.database_url();
    if url.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query_scalar(query).fetch_all(&mut c).await.unwrap()
    } else {
        let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query_scalar(query).fetch_all(&mut c).await.unwrap()
    }
}

/// Creates an endpoint taking every event; returns its id and secret.
async fn endpoint(app: &TestApp, key: &str, url: &str) -> (String, String) {
    let e = app.create_endpoint(key, url).await;
    (
        e["id"].as_str().unwrap().to_owned(),
        e["shared_secret"].as_str().unwrap().to_owned(),
    )
}

async fn post_status(app: &TestApp, wamid: &str) {
    let body = json!({
        "events": {"eventType": "DELIVERY EVENTS", "mid": wamid, "timestamp": "1732700000"},
        "notificationAttributes": {"status": "delivered"},
        "recipient": {"to": "919876543210"},
        "sender": {"from": NUMBER.trim_start_matches('+')}
    });
    let (status, body) = app.post_raw("/datagen-webhook", body.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn put(app: &TestApp, key: &str, provider: &str, body: Value) {
    let (status, body) = app
        .call(
            Method::PUT,
            &format!("/v1/providers/{provider}"),
            key,
            Some(body),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["credential_set"], true, "{body}");
}

/// The project's next Datagen send reaches `rx` with `token`.
async fn sends_with(app: &TestApp, key: &str, rx: &Receiver, token: &str) {
    let before = rx.received("services/rcm/sendMessage").len();
    one_send(app, key, "datagen").await;
    let got = rx
        .wait_for("services/rcm/sendMessage", before + 1, WITHIN)
        .await;
    assert_eq!(got.len(), before + 1, "{:?}", rx.all());
    assert_eq!(
        got[before].header("authentication"),
        format!("Bearer {token}")
    );
}

async fn stored_secrets_are_sealed_and_still_sign_and_send(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| {
        fast(c);
        c.secret_key = Some(KEY_A.into());
    })
    .await
    else {
        return;
    };
    let sealed = format!("enc:v1:{}:", id(KEY_A));
    let rx = Receiver::start().await;
    let key = shop(&app).await;

    // A webhook signing secret: sealed in its row, and deliveries verify with it.
    let (endpoint_id, secret) = endpoint(&app, &key, &rx.url("hook")).await;
    let stored = raw(&app, "SELECT secret FROM endpoints").await;
    assert_eq!(stored.len(), 1);
    assert!(stored[0].starts_with(&sealed), "{}", stored[0]);
    assert!(!stored[0].contains(&secret[6..]), "{}", stored[0]);
    post_status(&app, "wamid.S1").await;
    let got = rx.wait_for("hook", 1, WITHIN).await;
    assert_eq!(got.len(), 1);
    assert!(got[0].verifies(&secret), "{:?}", got[0].headers);
    // Redis keeps the forwarder's copy sealed too.
    if let Some(url) = &app.config.redis_url {
        let mut conn = redis::Client::open(url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let cached: Option<String> = redis::cmd("GET")
            .arg(format!("{}endpoint:{endpoint_id}", app.config.redis_prefix))
            .query_async(&mut conn)
            .await
            .unwrap();
        let cached = cached.expect("the forwarder's lookup filled the shared cache");
        assert!(
            cached.contains(&sealed) && !cached.contains(&secret[6..]),
            "{cached}"
        );
    }
    // A rotated-out secret is sealed as well.
    let (status, rotated) = app
        .call(
            Method::POST,
            &format!("/webhook/config/{endpoint_id}/rotate-secret"),
            &key,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let previous = raw(&app, "SELECT previous_secret FROM endpoints").await;
    assert!(previous[0].starts_with(&sealed), "{}", previous[0]);
    assert!(!previous[0].contains(&secret[6..]), "{}", previous[0]);

    // A project's BSP credential: sealed in its row, and sends carry it.
    put(
        &app,
        &key,
        "datagen",
        json!({"base_url": rx.url(""), "token": "project-token-42"}),
    )
    .await;
    let stored = raw(&app, "SELECT settings FROM provider_settings").await;
    assert_eq!(stored.len(), 1);
    assert!(stored[0].contains(&sealed), "{}", stored[0]);
    assert!(!stored[0].contains("project-token-42"), "{}", stored[0]);
    sends_with(&app, &key, &rx, "project-token-42").await;
    app.stop().await;
}

/// Runs `wagate secrets <command>` on the app's database with these keys; returns its output.
async fn secrets(app: &TestApp, command: &str, key: &str, previous: Option<&str>) -> Value {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_wagate"));
    cmd.args(["secrets", command])
        .env_clear()
        .env("WAGATE_DATA_DIR", &app.config.data_dir)
        .env("WAGATE_DATABASE_URL", app.config.database_url())
        .env("WAGATE_SECRET_KEY", key)
        .env("WAGATE_LOG", "warn");
    if let Some(p) = previous {
        cmd.env("WAGATE_SECRET_KEY_PREVIOUS", p);
    }
    let out = tokio::time::timeout(WITHIN, cmd.output())
        .await
        .expect("exits")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

async fn rotation_reseals_every_secret_and_the_old_key_no_longer_opens_them(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| {
        fast(c);
        c.secret_key = Some(KEY_A.into());
    })
    .await
    else {
        return;
    };
    let rx = Receiver::start().await;
    let key = shop(&app).await;
    let (endpoint_id, secret) = endpoint(&app, &key, &rx.url("hook")).await;
    put(
        &app,
        &key,
        "datagen",
        json!({"base_url": rx.url(""), "token": "project-token-7"}),
    )
    .await;
    // A credential stored in clear, as before secrets were sealed.
    sql(
        &app,
        "INSERT INTO provider_settings (project_id, provider, settings, updated_at) \
         VALUES ('shop', 'meta', '{\"credential\":\"clear-meta-token\"}', 0)"
            .into(),
    )
    .await;

    // The new key seals from now on; the old one still opens, while every row is re-sealed.
    let app = app
        .restart_with(|c| {
            c.secret_key = Some(KEY_B.into());
            c.secret_key_previous = Some(KEY_A.into());
        })
        .await;
    let report = secrets(&app, "rotate", KEY_B, Some(KEY_A)).await;
    assert_eq!(
        report,
        json!({"resealed": 3, "already_current": 0, "changed_meanwhile": 0, "unreadable": 0})
    );
    let again = secrets(&app, "rotate", KEY_B, Some(KEY_A)).await;
    assert_eq!(
        again,
        json!({"resealed": 0, "already_current": 3, "changed_meanwhile": 0, "unreadable": 0})
    );
    let status = secrets(&app, "status", KEY_B, None).await;
    assert_eq!(
        status,
        json!({"sealing_key": id(KEY_B), "endpoint_secrets": {id(KEY_B): 1},
               "provider_credentials": {id(KEY_B): 2}})
    );

    // The old key alone opens none of them, and a process holding only it refuses to start.
    let stored_secret = raw(&app, "SELECT secret FROM endpoints").await;
    let stored_settings = raw(
        &app,
        "SELECT settings FROM provider_settings ORDER BY provider",
    )
    .await;
    let old = Sealer::new(SealKey::parse(KEY_A).unwrap(), vec![]);
    let new = Sealer::new(SealKey::parse(KEY_B).unwrap(), vec![]);
    let context = sealing::endpoint_context(&endpoint_id);
    assert!(old.open(&stored_secret[0], &context).is_err());
    assert_eq!(new.open(&stored_secret[0], &context).unwrap(), secret);
    for (provider, stored, token) in [
        ("datagen", &stored_settings[0], "project-token-7"),
        ("meta", &stored_settings[1], "clear-meta-token"),
    ] {
        assert!(!stored.contains(token), "{stored}");
        let credential: Value = serde_json::from_str(stored).unwrap();
        let credential = credential["credential"].as_str().unwrap();
        let context = sealing::provider_context("shop", provider);
        assert!(old.open(credential, &context).is_err(), "{provider}");
        assert_eq!(new.open(credential, &context).unwrap(), token);
    }
    let mut only_old = app.config.clone();
    only_old.listen = "127.0.0.1:0".parse().unwrap();
    only_old.secret_key = Some(KEY_A.into());
    only_old.secret_key_previous = None;
    let refused = wagate::app::App::build(only_old)
        .await
        .err()
        .expect("refused");
    let refused = format!("{refused:#}");
    assert!(refused.contains(&id(KEY_B)), "{refused}");

    // The new key alone: deliveries still verify, sends still carry the credential.
    let app = app.restart_with(|c| c.secret_key_previous = None).await;
    post_status(&app, "wamid.R1").await;
    let got = rx.wait_for("hook", 1, WITHIN).await;
    assert_eq!(got.len(), 1);
    assert!(got[0].verifies(&secret));
    sends_with(&app, &key, &rx, "project-token-7").await;
    let (status, meta) = app.get("/v1/providers/meta", &key).await;
    assert_eq!(
        (status, &meta["credential_set"]),
        (StatusCode::OK, &json!(true))
    );
    app.stop().await;
}
