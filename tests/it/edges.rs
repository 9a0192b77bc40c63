//! The HTTP edge on both backend sets: every error in the JSON shape, slow clients cut off,
//! excess requests refused, `/readyz` detail for admins only, the ingress token's decoding.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wagate::config::Config;

use crate::support::app::{ADMIN, Backend, TestApp, fixture, on_both_backends};

on_both_backends!(errors_from_below_the_handlers_are_json);

fn assert_error(status: StatusCode, body: &Value, want: StatusCode, code: &str) {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
}

async fn errors_from_below_the_handlers_are_json(app: &TestApp) {
    let key = app.create_project("edges", &["+919812345678"]).await;
    // Not UTF-8 once decoded: axum's path rejection, plain text before.
    let (status, body) = app.get("/v1/messages/%FF", &key).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    // Long paths are neither served nor echoed.
    let long = "a".repeat(10_000);
    let (status, body) = app.get(&format!("/{long}"), &key).await;
    assert_error(status, &body, StatusCode::URI_TOO_LONG, "uri_too_long");
    for path in [
        format!("/{}", "b".repeat(8000)),
        format!("/v1/messages/{}", "c".repeat(8000)),
    ] {
        let (status, body) = app.get(&path, &key).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.len() < 400, "echoed {} bytes", message.len());
    }
    let (status, body) = app
        .post_raw(&format!("/v1/ingest/{}", "d".repeat(8000)), "{}")
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    assert!(body.to_string().len() < 600, "{}", body.to_string().len());
    // A wrong method is JSON too.
    let (status, body) = app
        .send(app.client.delete(app.url("/v1/ingest/meta")))
        .await;
    assert_error(
        status,
        &body,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
}

/// A raw connection to the app, for clients no HTTP library would be.
async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.addr).await.unwrap()
}

/// Reads until the server closes the connection (or `limit` passes); returns what it sent.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&out).into_owned()),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

fn slow_limits(c: &mut Config) {
    c.http_header_timeout_ms = 300;
    c.http_request_timeout_ms = 500;
}

async fn slow_clients_are_cut_off(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, slow_limits).await else {
        return;
    };
    // Half the headers, then nothing: hyper's header timeout closes the connection.
    let mut half_headers = connect(&app).await;
    let t = Instant::now();
    half_headers
        .write_all(b"POST /datagen-webhook HTTP/1.1\r\nHost: x\r\nContent-Le")
        .await
        .unwrap();
    let sent = read_until_closed(&mut half_headers, Duration::from_secs(5))
        .await
        .expect("a client stuck in its headers is disconnected");
    assert!(!sent.contains("200 OK"), "{sent}");
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t.elapsed()
    );
    // Half the body, then nothing: 408 in JSON, then the connection is closed.
    let mut half_body = connect(&app).await;
    let t = Instant::now();
    let body = fixture("datagen/delivery_read.json");
    let head = format!(
        "POST /datagen-webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    half_body.write_all(head.as_bytes()).await.unwrap();
    half_body
        .write_all(&body.as_bytes()[..body.len() / 2])
        .await
        .unwrap();
    let sent = read_until_closed(&mut half_body, Duration::from_secs(5))
        .await
        .expect("a client stuck in its body is disconnected");
    assert!(sent.starts_with("HTTP/1.1 408"), "{sent}");
    let json: Value = serde_json::from_str(sent.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(json["error"]["code"], "request_timeout", "{json}");
    assert!(
        t.elapsed() >= Duration::from_millis(450),
        "{:?}",
        t.elapsed()
    );
    // Other clients were served all along.
    let (status, _) = app
        .post_raw("/datagen-webhook", fixture("datagen/delivery_read.json"))
        .await;
    assert_eq!(status, StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn embedded_slow_clients_are_cut_off() {
    slow_clients_are_cut_off(Backend::Embedded).await;
}

#[tokio::test]
async fn distributed_slow_clients_are_cut_off() {
    slow_clients_are_cut_off(Backend::Distributed).await;
}

async fn excess_requests_get_503(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| {
        c.http_max_concurrent_requests = 1;
        c.http_request_timeout_ms = 3000;
    })
    .await
    else {
        return;
    };
    // This request holds the one permit while it waits for the rest of its body.
    let mut holder = connect(&app).await;
    holder
        .write_all(b"POST /datagen-webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    let refused = loop {
        let (status, body) = app.send(app.client.get(app.url("/readyz"))).await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            break body;
        }
        assert!(Instant::now() < deadline, "never refused: {status} {body}");
        tokio::task::yield_now().await;
    };
    assert_eq!(refused["error"]["code"], "overloaded", "{refused}");
    let (status, _) = app.send(app.client.get(app.url("/healthz"))).await;
    assert_eq!(status, StatusCode::OK, "liveness is not capped");
    drop(holder);
    app.stop().await;
}

#[tokio::test]
async fn embedded_excess_requests_get_503() {
    excess_requests_get_503(Backend::Embedded).await;
}

#[tokio::test]
async fn distributed_excess_requests_get_503() {
    excess_requests_get_503(Backend::Distributed).await;
}

/// Redis on a port nothing listens on: the cache check fails with the client's own error.
async fn readyz_shows_error_text_only_to_the_admin(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| {
        c.redis_url = Some("redis://127.0.0.1:1/".into());
    })
    .await
    else {
        return;
    };
    let (status, public) = app.send(app.client.get(app.url("/readyz"))).await;
    assert_eq!(status, StatusCode::OK, "Redis never makes wagate unready");
    assert_eq!(public["checks"]["cache"]["status"], "degraded", "{public}");
    assert_eq!(public["checks"]["cache"]["backend"], "redis", "{public}");
    assert!(public["checks"]["cache"].get("error").is_none(), "{public}");
    let (_, wrong) = app
        .send(
            app.client
                .get(app.url("/readyz"))
                .bearer_auth("not-the-admin"),
        )
        .await;
    assert!(wrong["checks"]["cache"].get("error").is_none(), "{wrong}");
    let (_, admin) = app
        .send(app.client.get(app.url("/readyz")).bearer_auth(ADMIN))
        .await;
    assert!(
        admin["checks"]["cache"]["error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{admin}"
    );
    assert_eq!(admin["checks"]["store"]["status"], "ok", "{admin}");
    app.stop().await;
}

#[tokio::test]
async fn embedded_readyz_shows_error_text_only_to_the_admin() {
    readyz_shows_error_text_only_to_the_admin(Backend::Embedded).await;
}

#[tokio::test]
async fn distributed_readyz_shows_error_text_only_to_the_admin() {
    readyz_shows_error_text_only_to_the_admin(Backend::Distributed).await;
}

async fn ingress_token_in_the_query_is_decoded(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| {
        c.ingress_token = Some("k/ey=+1%".into());
    })
    .await
    else {
        return;
    };
    let event = fixture("datagen/delivery_read.json");
    for (query, want) in [
        ("token=k%2Fey%3D%2B1%25", StatusCode::OK),
        ("a=b&token=k/ey=+1%25", StatusCode::OK),
        ("token=k%2Fey%3D%201%25", StatusCode::UNAUTHORIZED),
        ("token=k%2Fey%3D%2B1", StatusCode::UNAUTHORIZED),
    ] {
        let (status, body) = app
            .post_raw(&format!("/datagen-webhook?{query}"), event.clone())
            .await;
        assert_eq!(status, want, "{query}: {body}");
    }
    app.stop().await;
}

#[tokio::test]
async fn embedded_ingress_token_in_the_query_is_decoded() {
    ingress_token_in_the_query_is_decoded(Backend::Embedded).await;
}

#[tokio::test]
async fn distributed_ingress_token_in_the_query_is_decoded() {
    ingress_token_in_the_query_is_decoded(Backend::Distributed).await;
}
