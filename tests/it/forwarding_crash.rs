//! The binary forwarding under load, killed with `kill -9`: after a restart every event is
//! delivered at least once, and a delivery made twice carries the same `webhook-id`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::app::{ADMIN, Backend};
use crate::support::process::{env_for, start};
use crate::support::receiver::Receiver;

const EVENTS: usize = 300;

async fn kill_forwarder_mid_run(backend: Backend) {
    let Some((mut env, _dir)) = env_for(backend).await else {
        return;
    };
    env.extend([
        ("WAGATE_ALLOW_PRIVATE_TARGETS".into(), "true".into()),
        (
            "WAGATE_FORWARDER_RETRY_SCHEDULE".into(),
            "200ms,1s,2s".into(),
        ),
        ("WAGATE_SWEEPER_INTERVAL_MS".into(), "100".into()),
    ]);
    let rx = Receiver::start().await;
    // Slow enough that the kill lands while deliveries are in flight.
    rx.hang("hook", Duration::from_millis(200));
    let mut server = start(&env).await;
    let client = wagate::adapters::outbound::client_builder()
        .build()
        .unwrap();
    let created: Value = client
        .post(format!("{}/v1/projects", server.base))
        .bearer_auth(ADMIN)
        .json(&json!({"id": "crash", "name": "Crash", "phone_numbers": ["+919812345678"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = created["api_key"].as_str().unwrap().to_owned();
    let r = client
        .post(format!("{}/webhook/config", server.base))
        .bearer_auth(&key)
        .json(&json!({"webhook_url": rx.url("hook"), "topics": ["*"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let bodies: Vec<String> = (0..EVENTS)
        .map(|i| {
            json!({
                "events": {"eventType": "DELIVERY EVENTS", "mid": format!("wamid.fc{i:04}"), "timestamp": "1732700000"},
                "notificationAttributes": {"status": "delivered"},
                "recipient": {"to": "919876543210"},
                "sender": {"from": "919812345678"},
            })
            .to_string()
        })
        .collect();
    // The datagen route takes an array: a few large posts, all acknowledged before the kill.
    for chunk in bodies.chunks(50) {
        let r = client
            .post(format!("{}/datagen-webhook", server.base))
            .header("content-type", "application/json")
            .body(format!("[{}]", chunk.join(",")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let before = rx.wait_for("hook", 30, Duration::from_secs(30)).await.len();
    assert!(before >= 30, "forwarding had started: {before}");
    let pid = server.child.id().unwrap();
    assert!(
        std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    server.child.wait().await.unwrap();
    let at_kill = rx.received("hook").len();
    let t = Instant::now();
    let _restarted = start(&env).await;
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut per_event: BTreeMap<String, usize> = BTreeMap::new();
    while Instant::now() < deadline {
        per_event.clear();
        for r in rx.received("hook") {
            *per_event
                .entry(r.header("webhook-id").to_owned())
                .or_default() += 1;
        }
        if per_event.len() >= EVENTS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let duplicates: usize = per_event.values().map(|n| n - 1).sum();
    eprintln!(
        "{backend:?}: {at_kill} requests before the kill; all {} events delivered {:?} after restart, {duplicates} duplicate deliveries (same webhook-id)",
        per_event.len(),
        t.elapsed()
    );
    assert_eq!(
        per_event.len(),
        EVENTS,
        "every event delivered at least once"
    );
    // Each event id names one event: a duplicate is the same event again, never another.
    let wamids: BTreeMap<String, String> = rx
        .received("hook")
        .iter()
        .map(|r| {
            (
                r.header("webhook-id").to_owned(),
                r.json()["message"]["wamid"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(wamids.len(), EVENTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_kill_9_of_the_forwarder_delivers_everything() {
    kill_forwarder_mid_run(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distributed_kill_9_of_the_forwarder_delivers_everything() {
    kill_forwarder_mid_run(Backend::Distributed).await;
}
