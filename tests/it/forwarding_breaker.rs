//! The forwarder's breaker as a customer meets it, on both backend sets: a brief outage holds
//! deliveries for seconds (the first open is short), and a reset or a successful test ping
//! closes it and sends what it held at once.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wagate::config::{Config, Role};
use wagate::domain::time::Timestamp;

use crate::support::app::{Backend, TestApp};
use crate::support::receiver::Receiver;

const NUMBER: &str = "+919812345678";

crate::support::app::backend_cases!(
    a_short_outage_holds_deliveries_seconds_not_the_longest_cooldown,
    a_reset_or_a_successful_ping_closes_the_breaker_and_sends_what_it_held,
    a_probe_that_finds_its_host_full_gives_its_turn_back,
);

/// Every role, fast retries and sweeps, a breaker that opens after 3 failures and may stay
/// open up to 5 minutes; probes are attempts, so the budget leaves room for a few.
async fn spawn(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Option<TestApp> {
    TestApp::spawn_with(backend, |c| {
        c.roles = Role::ALL.into_iter().collect();
        c.forwarder_retry_schedule = "100ms,100ms,100ms,100ms,100ms,100ms".into();
        c.sweeper_interval_ms = 50;
        c.breaker_failure_threshold = 3;
        c.breaker_cooldown_secs = 300;
        tweak(c);
    })
    .await
}

async fn endpoint(app: &TestApp, key: &str, url: &str) -> String {
    let e = app.create_endpoint(key, url).await;
    e["id"].as_str().unwrap().to_owned()
}

async fn post_events(app: &TestApp, from: usize, to: usize) {
    post_events_of(app, "919812345678", from, to).await;
}

async fn post_events_of(app: &TestApp, number: &str, from: usize, to: usize) {
    for i in from..to {
        let body = json!({
            "channel": "WABA",
            "events": {"eventType": "DELIVERY EVENTS", "mid": format!("wamid.K{i}"), "timestamp": "1732700000"},
            "notificationAttributes": {"status": "delivered", "reason": "", "code": ""},
            "recipient": {"to": "919876543210", "recipient_type": "individual"},
            "sender": {"from": number}
        });
        let (status, body) = app.post_raw("/datagen-webhook", body.to_string()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

/// Distinct events `path` answered 2xx to (test pings left out).
fn delivered(rx: &Receiver, path: &str) -> BTreeSet<String> {
    rx.received(path)
        .iter()
        .filter(|r| r.header("x-event-type") == "datagen.delivery" && r.answered == 200)
        .map(|r| r.header("webhook-id").to_owned())
        .collect()
}

/// Waits until `path` got `n` distinct events; returns how long that took, or panics after
/// `within`.
async fn all_delivered(rx: &Receiver, path: &str, n: usize, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let got = delivered(rx, path).len();
        if got >= n {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "{path}: {got} of {n} events delivered after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn breaker(app: &TestApp, key: &str, id: &str) -> Value {
    let (status, e) = app.get(&format!("/webhook/config/{id}"), key).await;
    assert_eq!(status, StatusCode::OK, "{e}");
    e["breaker"].clone()
}

async fn until_open(app: &TestApp, key: &str, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let b = breaker(app, key, id).await;
        if b["state"] == "open" {
            return;
        }
        assert!(Instant::now() < deadline, "the breaker never opened: {b}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn metric(app: &TestApp, line: &str) -> f64 {
    let text = app.metrics().await;
    text.lines()
        .find_map(|l| l.strip_prefix(line))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// With the seed's fixed 5-minute cooldown, a 5-second outage held every delivery 5 minutes.
/// Now the first open lasts `BREAKER_FIRST_COOLDOWN_SECS` (5 s by default): the probe after it
/// finds the receiver back (or, unlucky, re-opens for 10 s), well within 20 s.
async fn a_short_outage_holds_deliveries_seconds_not_the_longest_cooldown(backend: Backend) {
    let Some(app) = spawn(backend, |_| {}).await else {
        return;
    };
    let rx = Receiver::start().await;
    let key = app.create_project("acme", &[NUMBER]).await;
    let id = endpoint(&app, &key, &rx.url("flaky")).await;
    rx.down_for("flaky", Duration::from_secs(5), 503);
    let started = Instant::now();
    post_events(&app, 0, 6).await;
    until_open(&app, &key, &id).await;
    let open = breaker(&app, &key, &id).await;
    let until = open["open_until"].as_str().expect("open until a time");
    let left = Timestamp::parse_rfc3339(until).unwrap().millis() - Timestamp::now().millis();
    assert!(
        left <= 6_000,
        "the first open lasts seconds, not BREAKER_COOLDOWN_SECS: {open}"
    );
    all_delivered(&rx, "flaky", 6, Duration::from_secs(25)).await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(20),
        "a 5 s outage held deliveries {took:?}"
    );
    assert!(metric(&app, "wagate_breaker_transitions_total{to=\"open\"}").await >= 1.0);
    app.stop().await;
}

/// An open breaker with minutes left: `POST …/breaker/reset` closes it, a 2xx test ping closes
/// another, and each endpoint's held deliveries (deferred, and retries put off by the breaker)
/// arrive at once.
async fn a_reset_or_a_successful_ping_closes_the_breaker_and_sends_what_it_held(backend: Backend) {
    let Some(app) = spawn(backend, |c| c.breaker_first_cooldown_secs = 300).await else {
        return;
    };
    let rx = Receiver::start().await;
    let key = app.create_project("acme", &[NUMBER]).await;
    rx.answer("reset", &[503; 3]);
    rx.answer("ping", &[503; 3]);
    let reset = endpoint(&app, &key, &rx.url("reset")).await;
    let ping = endpoint(&app, &key, &rx.url("ping")).await;
    post_events(&app, 0, 3).await;
    until_open(&app, &key, &reset).await;
    until_open(&app, &key, &ping).await;
    post_events(&app, 3, 6).await;
    // Give the held deliveries time to be picked up and deferred by the breaker.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(delivered(&rx, "reset").is_empty());

    let (status, body) = app
        .call(
            Method::POST,
            &format!("/webhook/config/{reset}/breaker/reset"),
            &key,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"state": "closed", "consecutive_failures": 0, "open_until": null})
    );
    all_delivered(&rx, "reset", 6, Duration::from_secs(15)).await;
    assert_eq!(breaker(&app, &key, &reset).await["state"], "closed");
    assert_eq!(breaker(&app, &key, &ping).await["state"], "open", "per URL");

    let (status, body) = app
        .call(
            Method::POST,
            &format!("/webhook/config/{ping}/test"),
            &key,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["delivered"], true, "{body}");
    assert_eq!(body["breaker"]["state"], "closed", "{body}");
    all_delivered(&rx, "ping", 6, Duration::from_secs(15)).await;
    assert!(metric(&app, "wagate_breaker_transitions_total{to=\"closed\"}").await >= 2.0);

    let (status, _) = app
        .call(
            Method::POST,
            "/webhook/config/ep_nope/breaker/reset",
            &key,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.stop().await;
}

/// The half-open probe of one endpoint finds its host's only place taken by another
/// endpoint's slow request and is deferred as busy. It must give its turn back: held, the
/// breaker stayed half-open (everyone else refused) until the probe timed out, the request
/// timeout plus 5 s (here 15 s) after it was let through.
async fn a_probe_that_finds_its_host_full_gives_its_turn_back(backend: Backend) {
    let Some(app) = spawn(backend, |c| {
        c.breaker_failure_threshold = 1;
        c.breaker_first_cooldown_secs = 1;
        c.forwarder_host_inflight = 1;
        c.forwarder_timeout_ms = 10_000;
    })
    .await
    else {
        return;
    };
    let rx = Receiver::start().await;
    let flaky = app.create_project("flaky", &[NUMBER]).await;
    let slow = app.create_project("slow", &["+919812345670"]).await;
    rx.answer("down", &[503]);
    rx.hang("slow", Duration::from_secs(6));
    let down = endpoint(&app, &flaky, &rx.url("down")).await;
    endpoint(&app, &slow, &rx.url("slow")).await;
    let started = Instant::now();
    post_events(&app, 0, 1).await;
    until_open(&app, &flaky, &down).await;
    // The slow request takes the host's one place while the breaker is open.
    post_events_of(&app, "919812345670", 1, 2).await;
    rx.wait_for("slow", 1, Duration::from_secs(5)).await;
    let took = all_delivered(&rx, "down", 1, Duration::from_secs(25)).await;
    let took = took.max(started.elapsed());
    assert!(
        took < Duration::from_secs(13),
        "the probe held the breaker half-open: delivered after {took:?}"
    );
    app.stop().await;
}
