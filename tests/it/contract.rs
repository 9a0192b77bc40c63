//! What every route promises a client, walked over all of them on both backend sets: JSON bodies
//! refuse unknown fields and wrong types alike (422, naming the field) and malformed JSON alike
//! (400); every JSON response ends with a newline; URL errors name the field they are about.
//! And `wagate serve --help` names every role.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wagate::config::Role;

use crate::support::app::{ADMIN, Backend, TestApp, on_both_backends};

on_both_backends!(
    every_json_body_route_refuses_unknown_fields_and_wrong_types_alike,
    every_json_response_ends_with_a_newline,
    url_errors_name_their_field,
);

const NUMBER: &str = "+919812345678";

/// One route that takes a JSON body: a body it accepts, and a field of it given the wrong type.
struct JsonRoute {
    method: Method,
    path: String,
    token: String,
    valid: Value,
    wrong_type: (&'static str, Value),
}

/// A project with a draft campaign and a webhook endpoint, and every route of the API that
/// reads a JSON body. BSP ingress routes are not here: they take the providers' payloads,
/// which gain fields without notice, and must keep accepting them.
async fn json_routes(app: &TestApp) -> Vec<JsonRoute> {
    let key = app.create_project("acme", &[NUMBER]).await;
    let (status, campaign) = app
        .call(
            Method::POST,
            "/project/campaign",
            &key,
            Some(json!({"name": "c", "template_id": "t", "provider": "datagen", "sender": NUMBER})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{campaign}");
    let campaign = campaign["id"].as_str().unwrap().to_owned();
    let (status, endpoint) = app
        .call(
            Method::POST,
            "/webhook/config",
            &key,
            Some(json!({"webhook_url": "http://127.0.0.1:9/hook", "topics": ["*"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{endpoint}");
    let endpoint = endpoint["id"].as_str().unwrap().to_owned();
    let route = |method: Method, path: String, token: &str, valid, wrong_type| JsonRoute {
        method,
        path,
        token: token.to_owned(),
        valid,
        wrong_type,
    };
    vec![
        route(
            Method::POST,
            "/v1/projects".into(),
            ADMIN,
            json!({"id": "beta", "name": "B", "phone_numbers": ["+15550001111"]}),
            ("name", json!(5)),
        ),
        route(
            Method::POST,
            "/v1/projects/acme/numbers".into(),
            ADMIN,
            json!({"number": NUMBER}),
            ("meta_phone_number_id", json!(["x"])),
        ),
        route(
            Method::POST,
            "/v1/admin/quarantine/replay".into(),
            ADMIN,
            json!({}),
            ("limit", json!("ten")),
        ),
        route(
            Method::POST,
            "/webhook/config".into(),
            &key,
            json!({"webhook_url": "http://127.0.0.1:9/other", "topics": ["*"]}),
            ("topics", json!("*")),
        ),
        route(
            Method::PUT,
            format!("/webhook/config/{endpoint}"),
            &key,
            json!({}),
            ("enabled", json!("yes")),
        ),
        route(
            Method::POST,
            format!("/webhook/config/{endpoint}/rotate-secret"),
            &key,
            json!({}),
            ("overlap_secs", json!("a day")),
        ),
        route(
            Method::POST,
            "/project/campaign".into(),
            &key,
            json!({"name": "c", "template_id": "t", "provider": "datagen", "sender": NUMBER}),
            ("rate_limit_per_second", json!(true)),
        ),
        route(
            Method::POST,
            "/project/campaign/event/send".into(),
            &key,
            json!({"campaign_id": campaign}),
            ("schedule_time", json!({"at": 1})),
        ),
        route(
            Method::POST,
            format!("/project/campaign/{campaign}/recipients"),
            &key,
            json!({"csv_url": "http://127.0.0.1:9/r.csv"}),
            ("csv_url", json!(5)),
        ),
        route(
            Method::PUT,
            "/v1/providers/datagen".into(),
            &key,
            json!({}),
            ("base_url", json!(5)),
        ),
    ]
}

async fn send_raw(app: &TestApp, r: &JsonRoute, body: String) -> (StatusCode, Value) {
    app.send(
        app.client
            .request(r.method.clone(), app.url(&r.path))
            .bearer_auth(&r.token)
            .header("content-type", "application/json")
            .body(body),
    )
    .await
}

async fn every_json_body_route_refuses_unknown_fields_and_wrong_types_alike(app: &TestApp) {
    for r in json_routes(app).await {
        let at = format!("{} {}", r.method, r.path);
        let mut unknown = r.valid.clone();
        unknown["surprise_field"] = json!(1);
        let (status, e) = send_raw(app, &r, unknown.to_string()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{at}: {e}");
        assert_eq!(e["error"]["code"], "invalid_request", "{at}: {e}");
        let message = e["error"]["message"].as_str().unwrap();
        assert!(message.contains("surprise_field"), "{at}: {message}");

        let (field, value) = &r.wrong_type;
        let mut wrong = r.valid.clone();
        wrong[*field] = value.clone();
        let (status, e) = send_raw(app, &r, wrong.to_string()).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{at}, {field}: {e}"
        );
        assert_eq!(e["error"]["code"], "invalid_request", "{at}: {e}");
        let message = e["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{at}: {message}");

        let (status, e) = send_raw(app, &r, "{\"nope".into()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{at}: {e}");
        assert_eq!(e["error"]["code"], "invalid_json", "{at}: {e}");
    }
    // Inside a list too: the message says where.
    let (status, e) = app
        .call(
            Method::POST,
            "/v1/projects",
            ADMIN,
            Some(json!({"id": "gamma", "name": "G", "phone_numbers": [
                {"number": "+15550002222", "meta_id": "1"}
            ]})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    let message = e["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("phone_numbers[0]") && message.contains("meta_id"),
        "{message}"
    );
    // Provider payloads keep their unknown fields: ingress takes them.
    let mut event: Value =
        serde_json::from_str(&crate::support::app::fixture("datagen/delivery_read.json")).unwrap();
    event["a_field_datagen_added_later"] = json!({"x": 1});
    let (status, body) = app.post_raw("/datagen-webhook", event.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["accepted"], 1, "{body}");
}

/// GETs or sends `body` to `path`; returns the status, the raw body and its Content-Length.
async fn raw(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<String>,
) -> (StatusCode, String, Option<u64>) {
    let mut req = app.client.request(method, app.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let is_json = resp
        .headers()
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap().starts_with("application/json"));
    let length = resp.content_length();
    let text = resp.text().await.unwrap();
    assert!(is_json, "{path}: not JSON: {text}");
    (status, text, length)
}

/// A request (method, path, bearer token, JSON body) and the status it gets.
type Case<'a> = (Method, &'a str, Option<&'a str>, Option<String>, StatusCode);

async fn every_json_response_ends_with_a_newline(app: &TestApp) {
    let key = app.create_project("acme", &[NUMBER]).await;
    let post = Method::POST;
    let get = Method::GET;
    let cases: Vec<Case> = vec![
        (get.clone(), "/healthz", None, None, StatusCode::OK),
        (get.clone(), "/readyz", None, None, StatusCode::OK),
        (get.clone(), "/v1/project", Some(&key), None, StatusCode::OK),
        (
            post.clone(),
            "/datagen-webhook",
            None,
            Some(crate::support::app::fixture("datagen/delivery_sent.json")),
            StatusCode::OK,
        ),
        (
            post.clone(),
            "/webhook/config",
            Some(&key),
            Some(json!({"webhook_url": "http://127.0.0.1:9/h", "topics": ["*"]}).to_string()),
            StatusCode::CREATED,
        ),
        (
            post.clone(),
            "/project/campaign",
            Some(&key),
            Some(
                json!({"name": "c", "template_id": "t", "provider": "datagen", "sender": NUMBER})
                    .to_string(),
            ),
            StatusCode::CREATED,
        ),
        // Errors: from a handler, an extractor, the fallbacks, and below the handlers.
        (
            get.clone(),
            "/v1/messages/wamid.none",
            Some(&key),
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            get.clone(),
            "/v1/project",
            None,
            None,
            StatusCode::UNAUTHORIZED,
        ),
        (
            post.clone(),
            "/datagen-webhook",
            None,
            Some("{nope".into()),
            StatusCode::BAD_REQUEST,
        ),
        (
            get.clone(),
            "/no/such/route",
            None,
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            Method::DELETE,
            "/healthz",
            None,
            None,
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            get.clone(),
            "/v1/messages?limit=many",
            Some(&key),
            None,
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (method, path, token, body, want) in cases {
        let (status, text, length) = raw(app, method.clone(), path, token, body).await;
        assert_eq!(status, want, "{method} {path}: {text}");
        assert!(
            text.ends_with("}\n") && !text.ends_with("\n\n"),
            "{method} {path}: {text:?}"
        );
        assert_eq!(length, Some(text.len() as u64), "{method} {path}");
        serde_json::from_str::<Value>(&text).unwrap();
    }
    // A URI over the limit is refused before routing: still JSON, still a newline.
    let long = format!("/v1/messages/{}", "x".repeat(9000));
    let (status, text, _) = raw(app, get, &long, Some(&key), None).await;
    assert_eq!(status, StatusCode::URI_TOO_LONG);
    assert!(text.ends_with("}\n"), "{text:?}");
}

async fn url_errors_name_their_field(app: &TestApp) {
    let key = app.create_project("acme", &[NUMBER]).await;
    let (_, campaign) = app
        .call(
            Method::POST,
            "/project/campaign",
            &key,
            Some(json!({"name": "c", "template_id": "t", "provider": "datagen", "sender": NUMBER})),
        )
        .await;
    let recipients = format!(
        "/project/campaign/{}/recipients",
        campaign["id"].as_str().unwrap()
    );
    for (method, path, body, field) in [
        (
            Method::POST,
            recipients.as_str(),
            json!({"csv_url": "ftp://files.example.com/r.csv"}),
            "csv_url",
        ),
        (
            Method::PUT,
            "/v1/providers/datagen",
            json!({"base_url": "ftp://bsp.example.com"}),
            "base_url",
        ),
        (
            Method::POST,
            "/webhook/config",
            json!({"webhook_url": "ftp://hooks.example.com", "topics": ["*"]}),
            "webhook_url",
        ),
    ] {
        let (status, e) = app.call(method, path, &key, Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
        assert_eq!(e["error"]["code"], "url_not_allowed", "{e}");
        assert_eq!(
            e["error"]["message"],
            format!("{field} must start with https:// or http://"),
            "{e}"
        );
    }
}

/// A CSV URL is fetched at once: a host that does not resolve is a failed fetch, while an
/// internal address is still refused by the guard.
async fn csv_urls_that_do_not_resolve_are_failed_fetches(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| c.allow_private_targets = false).await else {
        return;
    };
    let key = app.create_project("acme", &[NUMBER]).await;
    let (_, campaign) = app
        .call(
            Method::POST,
            "/project/campaign",
            &key,
            Some(json!({"name": "c", "template_id": "t", "provider": "datagen", "sender": NUMBER})),
        )
        .await;
    let id = campaign["id"].as_str().unwrap();
    let recipients = format!("/project/campaign/{id}/recipients");
    for (url, code) in [
        ("http://127.0.0.1:9/r.csv", "url_not_allowed"),
        ("https://no-such-host.invalid/r.csv", "csv_fetch_failed"),
    ] {
        let (status, e) = app
            .call(
                Method::POST,
                &recipients,
                &key,
                Some(json!({"csv_url": url})),
            )
            .await;
        assert_eq!(
            (status, e["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some(code)),
            "{url}: {e}"
        );
    }
    let (_, c) = app.get(&format!("/project/campaign/{id}"), &key).await;
    assert!(
        c["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("does not resolve")),
        "{c}"
    );
    app.stop().await;
}

#[tokio::test]
async fn embedded_csv_urls_that_do_not_resolve_are_failed_fetches() {
    csv_urls_that_do_not_resolve_are_failed_fetches(Backend::Embedded).await;
}

#[tokio::test]
async fn distributed_csv_urls_that_do_not_resolve_are_failed_fetches() {
    csv_urls_that_do_not_resolve_are_failed_fetches(Backend::Distributed).await;
}

#[tokio::test]
async fn serve_help_names_every_role() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_wagate"))
        .args(["serve", "--help"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    // The option's own line (the command's description mentions --roles too).
    let roles = help
        .lines()
        .find(|l| l.trim_start().starts_with("--roles"))
        .expect("--roles is documented");
    for role in Role::ALL {
        assert!(
            roles.contains(role.as_str()),
            "{} missing: {help}",
            role.as_str()
        );
    }
}
