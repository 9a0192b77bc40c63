//! What an operator sees: the access log (one line per request, by route template, at debug
//! unless `WAGATE_ACCESS_LOG=true`), campaign start and cancel lines, and the metrics for HTTP
//! requests, campaigns by state and pending deliveries.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::support::app::{ADMIN, TestApp, on_both_backends};
use crate::support::process::free_port;

on_both_backends!(metrics_count_requests_by_route_and_read_the_store,);

const NUMBER: &str = "+919812345678";

/// A real `wagate serve` (api, ingress, processor; embedded) whose JSON log lines are
/// collected as they come.
struct Logged {
    _child: Child,
    _dir: tempfile::TempDir,
    base: String,
    lines: Arc<Mutex<Vec<Value>>>,
    client: reqwest::Client,
}

impl Logged {
    async fn start(env: &[(&str, &str)]) -> Logged {
        let dir = tempfile::tempdir().unwrap();
        let listen = format!("127.0.0.1:{}", free_port());
        let mut child = Command::new(env!("CARGO_BIN_EXE_wagate"))
            .args(["serve", "--roles", "api,ingress,processor"])
            .env_clear()
            .env("WAGATE_DATA_DIR", dir.path())
            .env("WAGATE_LISTEN", &listen)
            .env("WAGATE_ADMIN_TOKEN", ADMIN)
            .env("WAGATE_LOG_FORMAT", "json")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        let sink = lines.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = stderr.next_line().await {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    sink.lock().unwrap().push(v);
                }
            }
        });
        let client = wagate::adapters::outbound::client_builder()
            .build()
            .unwrap();
        let base = format!("http://{listen}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(Instant::now() < deadline, "server did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Logged {
            _child: child,
            _dir: dir,
            base,
            lines,
            client,
        }
    }

    async fn call(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> Value {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.unwrap().json().await.unwrap()
    }

    /// The first line `matches` finds, waiting up to 10 s for it to be written.
    async fn line(&self, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(found) = self.lines.lock().unwrap().iter().find(|l| matches(l)) {
                return found.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no {what} line in: {:#?}",
                self.lines.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn access_line(&self, route: &str, status: u16) -> Value {
        self.line(&format!("access {route} {status}"), |l| {
            l["target"] == "wagate::access" && l["route"] == route && l["status"] == status
        })
        .await
    }
}

#[tokio::test]
async fn the_access_log_is_at_debug_by_default() {
    let server = Logged::start(&[("WAGATE_LOG", "info,wagate::access=debug")]).await;
    let wamid = "wamid.secret-looking-id";
    server
        .call(Method::GET, &format!("/v1/messages/{wamid}"), ADMIN, None)
        .await;
    let line = server.access_line("/v1/messages/{wamid}", 401).await;
    assert_eq!(line["level"], "DEBUG", "{line}");
    assert_eq!(line["method"], "GET", "{line}");
    assert!(line["latency_ms"].as_f64().is_some(), "{line}");
    assert!(
        !line.to_string().contains(wamid),
        "the route, not the path: {line}"
    );
    server
        .call(Method::GET, "/nowhere/at/all", ADMIN, None)
        .await;
    server.access_line("unmatched", 404).await;
}

#[tokio::test]
async fn access_log_at_info_and_campaign_lines() {
    // A server credential for Datagen, so the campaign may start (no sender runs here).
    let server = Logged::start(&[
        ("WAGATE_LOG", "info"),
        ("WAGATE_ACCESS_LOG", "true"),
        ("WAGATE_DATAGEN_TOKEN", "server-token"),
    ])
    .await;
    let project = server
        .call(
            Method::POST,
            "/v1/projects",
            ADMIN,
            Some(json!({"id": "acme", "name": "Acme", "phone_numbers": [NUMBER]})),
        )
        .await;
    let line = server.access_line("/v1/projects", 201).await;
    assert_eq!(line["level"], "INFO", "{line}");
    assert_eq!(line["method"], "POST", "{line}");
    let key = project["api_key"].as_str().unwrap();
    let campaign = server
        .call(
            Method::POST,
            "/project/campaign",
            key,
            Some(json!({"name": "c", "template_id": "t", "provider": "datagen", "sender": NUMBER})),
        )
        .await;
    let id = campaign["id"].as_str().unwrap();
    let uploaded = server
        .client
        .post(format!("{}/project/campaign/{id}/recipients", server.base))
        .bearer_auth(key)
        .header("content-type", "text/csv")
        .body("phone\n+919800000001\n+919800000002\n")
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), StatusCode::OK);
    server
        .call(
            Method::POST,
            "/project/campaign/event/send",
            key,
            Some(json!({"campaign_id": id})),
        )
        .await;
    let started = server
        .line("campaign started", |l| l["message"] == "campaign started")
        .await;
    assert_eq!(started["campaign"], id, "{started}");
    assert_eq!(started["project"], "acme", "{started}");
    assert_eq!(started["recipients"], 2, "{started}");
    server
        .call(
            Method::POST,
            &format!("/project/campaign/{id}/cancel"),
            key,
            None,
        )
        .await;
    let cancelled = server
        .line("campaign cancelled", |l| {
            l["message"] == "campaign cancelled"
        })
        .await;
    assert_eq!(cancelled["campaign"], id, "{cancelled}");
}

/// `/metrics` as text, once `ready` holds for it (the store gauges are read every few seconds).
async fn metrics_when(app: &TestApp, ready: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = app.metrics().await;
        if ready(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "metrics never got there:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn metrics_count_requests_by_route_and_read_the_store(app: &TestApp) {
    let key = app.create_project("acme", &[NUMBER]).await;
    for wamid in ["wamid.a", "wamid.b"] {
        let (status, _) = app.get(&format!("/v1/messages/{wamid}"), &key).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    app.get("/no/such/route", &key).await;
    // A credential, so the campaign may start.
    let (status, body) = app
        .call(
            Method::PUT,
            "/v1/providers/datagen",
            &key,
            Some(json!({"token": "project-token"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A running campaign and a draft; an endpoint whose delivery stays pending (no forwarder
    // runs in this app).
    for start in [true, false] {
        let (_, c) = app
            .call(
                Method::POST,
                "/project/campaign",
                &key,
                Some(json!({"name": "c", "template_id": "t", "provider": "datagen", "sender": NUMBER})),
            )
            .await;
        let id = c["id"].as_str().unwrap();
        if start {
            let (status, _) = app
                .send(
                    app.client
                        .post(app.url(&format!("/project/campaign/{id}/recipients")))
                        .bearer_auth(&key)
                        .header("content-type", "text/csv")
                        .body("phone\n+919800000001\n"),
                )
                .await;
            assert_eq!(status, StatusCode::OK);
            let (status, body) = app
                .call(
                    Method::POST,
                    "/project/campaign/event/send",
                    &key,
                    Some(json!({"campaign_id": id})),
                )
                .await;
            assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        }
    }
    let (status, _) = app
        .call(
            Method::POST,
            "/webhook/config",
            &key,
            Some(json!({"webhook_url": "http://127.0.0.1:9/h", "topics": ["*"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = app
        .post_raw(
            "/datagen-webhook",
            crate::support::app::fixture("datagen/delivery_sent.json"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    app.process().await;

    let text = metrics_when(app, |t| {
        t.contains("wagate_deliveries_pending 1\n")
            && t.contains("wagate_campaigns{state=\"running\"} 1\n")
    })
    .await;
    for line in [
        "wagate_http_requests_total{route=\"/v1/messages/{wamid}\",status=\"404\"} 2",
        "wagate_http_requests_total{route=\"unmatched\",status=\"404\"} 1",
        "wagate_http_requests_total{route=\"/v1/projects\",status=\"201\"} 1",
        "wagate_http_request_seconds_count{route=\"/v1/messages/{wamid}\"} 2",
        "wagate_campaigns{state=\"draft\"} 1",
        "wagate_campaigns{state=\"running\"} 1",
        "wagate_campaigns{state=\"finished\"} 0",
    ] {
        assert!(
            text.contains(&format!("{line}\n")),
            "{line} missing:\n{text}"
        );
    }
    assert!(!text.contains("wamid.a"), "routes, not paths");
}
