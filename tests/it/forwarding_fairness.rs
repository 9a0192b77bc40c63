//! Fairness across projects, on both backend sets: one project's slow endpoints (five of them
//! on one host, answering after 14 s) must not hold the forwarder's places, so another
//! project's healthy endpoint keeps its latency.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use wagate::config::Role;

use crate::support::app::{Backend, TestApp};
use crate::support::receiver::Receiver;

const A_NUMBER: &str = "+919812345678";
const B_NUMBER: &str = "+919812345679";
/// Events measured per phase, one at a time.
const SAMPLES: usize = 40;

crate::support::app::backend_cases!(
    a_projects_slow_endpoints_do_not_slow_another_projects_healthy_one
);

async fn endpoint(app: &TestApp, key: &str, url: &str) {
    app.create_endpoint(key, url).await;
}

async fn post_event(app: &TestApp, from: &str, wamid: &str) {
    let body = json!({
        "channel": "WABA",
        "events": {"eventType": "DELIVERY EVENTS", "mid": wamid, "timestamp": "1732700000"},
        "notificationAttributes": {"status": "delivered", "reason": "", "code": ""},
        "recipient": {"to": "919876543210", "recipient_type": "individual"},
        "sender": {"from": from.trim_start_matches('+')}
    });
    let (status, body) = app.post_raw("/datagen-webhook", body.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Posts B's events one at a time, each once the previous one arrived; returns each one's
/// time from post to arrival, sorted. Stops at the first that takes over 5 s (what A's
/// slow endpoints did to B before the host cap): the test fails either way, sooner.
async fn latencies(app: &TestApp, rx: &Receiver, phase: &str, n: usize) -> Vec<Duration> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let wamid = format!("wamid.{phase}{i:03}");
        let posted = Instant::now();
        post_event(app, B_NUMBER, &wamid).await;
        let deadline = posted + Duration::from_secs(30);
        let arrived = loop {
            let hit = rx
                .received("b")
                .into_iter()
                .find(|r| r.json()["message"]["wamid"] == wamid.as_str());
            if let Some(r) = hit {
                break r.at;
            }
            assert!(Instant::now() < deadline, "{wamid} never reached B");
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        let took = arrived.saturating_duration_since(posted);
        out.push(took);
        if took > Duration::from_secs(5) {
            break;
        }
    }
    out.sort();
    out
}

fn p99(sorted: &[Duration]) -> Duration {
    let i = (sorted.len() * 99).div_ceil(100).saturating_sub(1);
    sorted[i]
}

async fn a_projects_slow_endpoints_do_not_slow_another_projects_healthy_one(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| {
        c.roles = Role::ALL.into_iter().collect();
        c.sweeper_interval_ms = 50;
    })
    .await
    else {
        return;
    };
    let slow = Receiver::start().await;
    let healthy = Receiver::start().await;
    let a = app.create_project("slowco", &[A_NUMBER]).await;
    let b = app.create_project("fastco", &[B_NUMBER]).await;
    for i in 0..5 {
        let path = format!("a{i}");
        slow.hang(&path, Duration::from_secs(14));
        endpoint(&app, &a, &slow.url(&path)).await;
    }
    endpoint(&app, &b, &healthy.url("b")).await;

    // The first events also fill caches and open connections.
    latencies(&app, &healthy, "warm", 5).await;
    let alone = p99(&latencies(&app, &healthy, "alone", SAMPLES).await);

    // 60 events × 5 endpoints: 300 requests that each take 14 s, more than every place the
    // forwarder has (100 by default).
    for i in 0..60 {
        post_event(&app, A_NUMBER, &format!("wamid.A{i:03}")).await;
    }
    let flooded = Instant::now();
    while slow.all().len() < 40 && flooded.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let held = slow.all().len();
    let beside = p99(&latencies(&app, &healthy, "beside", SAMPLES).await);
    eprintln!("B's p99 alone {alone:?}, beside A's slow endpoints {beside:?}; A held {held}");
    assert!(held >= 40, "A's slow requests were in flight: {held}");
    // Twice the p99 alone, taken as at least 100 ms: on a 2-core machine running other tests
    // beside this one, scheduling noise alone moves a p99 of tens of milliseconds by as much.
    // (Without the host cap, B's p99 beside A was 13.8 s.)
    let bound = alone.max(Duration::from_millis(100)) * 2;
    assert!(
        beside <= bound,
        "B's p99 alone {alone:?}, beside A's slow endpoints {beside:?} (bound {bound:?})"
    );
    app.stop().await;
}
