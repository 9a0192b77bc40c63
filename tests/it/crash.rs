//! The binary under load, killed: `kill -9` and SIGTERM mid-load lose nothing acknowledged.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::app::{ADMIN, Backend};
use crate::support::process::{env_for, start};

fn event(i: usize) -> String {
    json!({
        "events": {"eventType": "DELIVERY EVENTS", "mid": format!("wamid.crash{i:06}"), "timestamp": "1732700000"},
        "notificationAttributes": {"status": if i.is_multiple_of(3) { "read" } else { "delivered" }},
        "recipient": {"to": "919876543210"},
        "sender": {"from": "919812345678"},
    })
    .to_string()
}

/// Posts events from `workers` tasks until told to stop; returns the indexes acknowledged.
fn load(
    base: String,
    workers: usize,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<BTreeSet<usize>> {
    tokio::spawn(async move {
        let acked = Arc::new(Mutex::new(BTreeSet::new()));
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let tasks: Vec<_> = (0..workers)
            .map(|_| {
                let (base, acked, next, stop) =
                    (base.clone(), acked.clone(), next.clone(), stop.clone());
                tokio::spawn(async move {
                    let client = wagate::adapters::outbound::client_builder()
                        .timeout(Duration::from_secs(5))
                        .build()
                        .unwrap();
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let r = client
                            .post(format!("{base}/datagen-webhook"))
                            .body(event(i))
                            .send()
                            .await;
                        match r {
                            Ok(r) if r.status() == 200 => {
                                acked.lock().unwrap().insert(i);
                            }
                            Ok(_) => {}
                            // The server is gone: wait for the test to stop us.
                            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        Arc::try_unwrap(acked).unwrap().into_inner().unwrap()
    })
}

async fn create_project(base: &str) -> String {
    let r = wagate::adapters::outbound::client_builder()
        .build()
        .unwrap()
        .post(format!("{base}/v1/projects"))
        .bearer_auth(ADMIN)
        .json(&json!({"id": "crash", "name": "Crash", "phone_numbers": ["+919812345678"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.unwrap()["api_key"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Waits until the server has applied at least `n` history events, then returns every wamid
/// it holds with its status.
async fn applied(base: &str, key: &str, n: usize) -> Vec<(String, String)> {
    let client = wagate::adapters::outbound::client_builder()
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stats: Value = client
            .get(format!("{base}/v1/stats"))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if stats["history_events"].as_u64().unwrap() as usize >= n || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut out = Vec::new();
    let mut url = format!("{base}/v1/messages?limit=1000");
    loop {
        let page: Value = client
            .get(&url)
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for m in page["data"].as_array().unwrap() {
            out.push((
                m["wamid"].as_str().unwrap().to_owned(),
                m["status"].as_str().unwrap().to_owned(),
            ));
        }
        match page["next_cursor"].as_str() {
            Some(c) => {
                url = format!(
                    "{base}/v1/messages?limit=1000&after={}",
                    c.replace('+', "%2B")
                        .replace('/', "%2F")
                        .replace('=', "%3D")
                )
            }
            None => return out,
        }
    }
}

async fn kill_mid_load(backend: Backend, signal: &str) {
    let Some((env, _dir)) = env_for(backend).await else {
        return;
    };
    let mut server = start(&env).await;
    let key = create_project(&server.base).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let loader = load(server.base.clone(), 32, stop.clone());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pid = server.child.id().unwrap();
    let status = std::process::Command::new("kill")
        .arg(signal)
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(30), server.child.wait())
        .await
        .expect("exits")
        .unwrap();
    if signal == "-TERM" {
        assert!(exit.success(), "graceful shutdown exits 0, got {exit}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let acked = loader.await.unwrap();
    assert!(
        acked.len() > 100,
        "the load was real: {} acknowledged",
        acked.len()
    );
    let t = Instant::now();
    let restarted = start(&env).await;
    eprintln!("{backend:?} {signal}: restarted in {:?}", t.elapsed());
    let held = applied(&restarted.base, &key, acked.len()).await;
    eprintln!("{backend:?} {signal}: applied after {:?}", t.elapsed());
    let statuses: std::collections::BTreeMap<String, String> = held.into_iter().collect();
    let lost: Vec<usize> = acked
        .iter()
        .copied()
        .filter(|i| {
            let want = if i.is_multiple_of(3) {
                "read"
            } else {
                "delivered"
            };
            statuses
                .get(&format!("wamid.crash{i:06}"))
                .map(String::as_str)
                != Some(want)
        })
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged events lost after {signal}: {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(10)]
    );
    eprintln!(
        "{backend:?} {signal}: {} acknowledged, all applied after restart",
        acked.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_kill_9_loses_nothing_acknowledged() {
    kill_mid_load(Backend::Embedded, "-KILL").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_sigterm_drains_and_loses_nothing() {
    kill_mid_load(Backend::Embedded, "-TERM").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distributed_kill_9_loses_nothing_acknowledged() {
    kill_mid_load(Backend::Distributed, "-KILL").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distributed_sigterm_drains_and_loses_nothing() {
    kill_mid_load(Backend::Distributed, "-TERM").await;
}
