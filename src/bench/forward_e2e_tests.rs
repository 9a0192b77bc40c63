//! `run_forward` end to end against an in-process mock of the gateway's contract: it creates
//! projects and endpoints, parses ingress bodies with the domain's parsers, and forwards each
//! status event signed by the domain's own functions. Faults it can inject (bad signatures,
//! duplicates, drops, refusing the receiver's URL) prove the bench notices each.
//!
//! The last test drives the real gateway (embedded backends, in this process).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::{ForwardArgs, run_forward};
use crate::domain::delivery;
use crate::domain::event::Event;
use crate::domain::providers::{datagen, meta, raw_json};
use crate::domain::signing::SigningSecret;
use crate::domain::time::Timestamp;

#[derive(Default, Clone, Copy)]
struct Faults {
    /// Sign every n-th forward with a secret the receiver does not hold.
    bad_signature_every: Option<usize>,
    /// Send every n-th forward twice (same event id).
    duplicate_every: Option<usize>,
    /// Accept but never forward every n-th event.
    drop_every: Option<usize>,
    /// Refuse every endpoint URL, as a gateway without WAGATE_ALLOW_PRIVATE_TARGETS does.
    refuse_urls: bool,
}

struct Mock {
    faults: Faults,
    client: reqwest::Client,
    /// API key → the project's business number.
    projects: HashMap<String, String>,
    /// Business number → its endpoint's URL and secret.
    endpoints: HashMap<String, (String, SigningSecret)>,
    forwards: usize,
}

type Shared = Arc<Mutex<Mock>>;

fn hits(every: Option<usize>, n: usize) -> bool {
    every.is_some_and(|k| n.is_multiple_of(k))
}

async fn create_project(State(m): State<Shared>, body: Bytes) -> (StatusCode, String) {
    let p: Value = serde_json::from_slice(&body).unwrap();
    let key = format!("key-{}", p["id"].as_str().unwrap());
    let number = p["phone_numbers"][0].as_str().unwrap().to_owned();
    m.lock().unwrap().projects.insert(key.clone(), number);
    let out = json!({ "id": p["id"], "api_key": key });
    (StatusCode::CREATED, out.to_string())
}

async fn create_endpoint(
    State(m): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let b: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(b["topics"], json!(["*"]));
    let mut m = m.lock().unwrap();
    if m.faults.refuse_urls {
        let e = json!({"error": {"code": "url_not_allowed", "message": "no"}});
        return (StatusCode::BAD_REQUEST, e.to_string());
    }
    let auth = headers["authorization"].to_str().unwrap();
    let number = m.projects[auth.strip_prefix("Bearer ").unwrap()].clone();
    let secret = SigningSecret::generate();
    let url = b["webhook_url"].as_str().unwrap().to_owned();
    let out = json!({ "id": uuid::Uuid::new_v4().to_string(), "shared_secret": secret.as_str() });
    m.endpoints.insert(number, (url, secret));
    (StatusCode::CREATED, out.to_string())
}

/// Parses like the gateway, answers 200, and forwards each event in the background.
async fn ingest(
    State(m): State<Shared>,
    Path(provider): Path<String>,
    body: Bytes,
) -> (StatusCode, String) {
    let raw = raw_json(&body).unwrap();
    let parsed = match provider.as_str() {
        "meta" => meta::parse(&raw),
        _ => datagen::parse(&raw),
    };
    assert!(parsed.rejected.is_empty());
    let mut m = m.lock().unwrap();
    for event in &parsed.events {
        let Event::Status(e) = event else {
            panic!("the bench sends status events only")
        };
        m.forwards += 1;
        let (n, f) = (m.forwards, m.faults);
        if hits(f.drop_every, n) {
            continue;
        }
        let (url, secret) = m.endpoints[e.business_number.as_str()].clone();
        let secret = if hits(f.bad_signature_every, n) {
            SigningSecret::generate()
        } else {
            secret
        };
        let id = uuid::Uuid::now_v7().to_string();
        let now = Timestamp::now();
        let body = delivery::body(event, Some(e.status.merged()), None, &id, now);
        let headers = delivery::headers(delivery::event_type(event), &id, 1, &body, &[secret], now);
        let copies = if hits(f.duplicate_every, n) { 2 } else { 1 };
        let client = m.client.clone();
        tokio::spawn(async move {
            for _ in 0..copies {
                let mut req = client.post(&url).body(body.clone());
                for (k, v) in &headers {
                    req = req.header(*k, v);
                }
                // A hanging endpoint times out, as at the gateway; nothing to do about it here.
                let _ = req.send().await;
            }
        });
    }
    let reply = json!({ "accepted": parsed.events.len(), "quarantined": 0 });
    (StatusCode::OK, reply.to_string())
}

async fn serve(faults: Faults) -> String {
    let client = crate::adapters::outbound::client_builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let state: Shared = Arc::new(Mutex::new(Mock {
        faults,
        client,
        projects: HashMap::new(),
        endpoints: HashMap::new(),
        forwards: 0,
    }));
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/v1/projects", post(create_project))
        .route("/webhook/config", post(create_endpoint))
        .route("/v1/ingest/{provider}", post(ingest))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn args(target: String) -> ForwardArgs {
    ForwardArgs {
        target,
        events: 1000,
        endpoints: 5,
        concurrency: 8,
        batch: 3,
        timeout_secs: 10,
        admin_token: Some("admin".into()),
        seed: Some(42),
        ..ForwardArgs::from_defaults()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correct_gateway_delivers_everything_once() {
    let s = run_forward(args(serve(Faults::default()).await))
        .await
        .unwrap();
    assert_eq!(
        (s.events, s.events_accepted, s.delivered),
        (1000, 1000, 1000)
    );
    assert_eq!(
        (s.missing, s.duplicates, s.bad_signatures, s.unexpected),
        (0, 0, 0, 0),
        "{s:?}"
    );
    assert!(!s.timed_out);
    assert!(s.forwards_per_sec > 0.0);
    assert!(s.latency_p50_ms > 0.0 && s.latency_p50_ms <= s.latency_p99_ms);
    assert!(s.latency_p99_ms <= s.latency_max_ms);
    assert!(s.failures().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signatures_duplicates_and_drops_are_each_counted() {
    let target = serve(Faults {
        bad_signature_every: Some(50),
        duplicate_every: Some(40),
        drop_every: Some(100),
        ..Faults::default()
    })
    .await;
    let s = run_forward(ForwardArgs {
        timeout_secs: 2,
        ..args(target)
    })
    .await
    .unwrap();
    // 1000 events: 10 dropped; of the rest, those at multiples of 50 (not of 100) are signed
    // wrongly, refused, so missing too; multiples of 40 (not of 100) arrive twice.
    assert_eq!(s.bad_signatures, 10, "{s:?}");
    assert_eq!(s.missing, 20, "{s:?}");
    assert_eq!(s.duplicates, 20, "{s:?}");
    assert_eq!(s.delivered, 980);
    assert!(s.timed_out);
    assert_eq!(s.failures().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_endpoints_are_not_waited_for() {
    let target = serve(Faults::default()).await;
    let s = run_forward(ForwardArgs {
        slow_endpoints: 2,
        slow_hold_secs: 5,
        ..args(target)
    })
    .await
    .unwrap();
    // 334 requests of 3 events (the last of 1) go round-robin over 5 projects; endpoints 3
    // and 4 hang, so 0 to 2 get 67 full requests each.
    assert_eq!(s.delivered, 603, "{s:?}");
    assert_eq!((s.missing, s.duplicates, s.bad_signatures), (0, 0, 0));
    assert!(!s.timed_out, "done without waiting for the hanging ones");
}

#[tokio::test]
async fn a_refused_receiver_url_says_what_to_set() {
    let target = serve(Faults {
        refuse_urls: true,
        ..Faults::default()
    })
    .await;
    let e = run_forward(args(target)).await.unwrap_err();
    assert!(
        format!("{e:#}").contains("WAGATE_ALLOW_PRIVATE_TARGETS=true"),
        "{e:#}"
    );
}

/// The real gateway, embedded backends, in this process, with one hanging endpoint: every
/// healthy delivery arrives once, signed, and the hanging one costs the others nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_forwards_every_event_signed_and_once() {
    use tokio_util::sync::CancellationToken;
    const ADMIN: &str = "bench-forward-admin-token-0123456789";
    let dir = tempfile::tempdir().unwrap();
    let config = crate::config::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_path_buf(),
        admin_token: Some(ADMIN.into()),
        allow_private_targets: true,
        // The hanging endpoint times out quickly, so shutdown does not wait long for it.
        forwarder_timeout_ms: 2_000,
        ..crate::config::Config::default()
    };
    let app = crate::app::App::build(config).await.unwrap();
    let target = format!("http://{}", app.local_addr());
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.run(shutdown.clone()));
    let s = run_forward(ForwardArgs {
        events: 1000,
        endpoints: 10,
        slow_endpoints: 1,
        slow_hold_secs: 3,
        // One event per request: 100 per endpoint, so 900 reach the nine healthy ones.
        batch: 1,
        admin_token: Some(ADMIN.into()),
        timeout_secs: 60,
        ..args(target)
    })
    .await
    .unwrap();
    shutdown.cancel();
    let _ = server.await;
    assert_eq!(s.events_accepted, 1000, "{s:?}");
    assert_eq!(s.delivered, 900, "{s:?}");
    assert_eq!(
        (s.missing, s.duplicates, s.bad_signatures, s.unexpected),
        (0, 0, 0, 0)
    );
}

/// How many signed deliveries per second the receiver verifies and records, posted from this
/// same process (so a lower bound): it must stay well above the gateway's rate. Prints the rate;
/// run with `cargo test --release --lib receiver_capacity -- --ignored --nocapture`.
#[ignore = "a measurement, not a check"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_capacity() {
    use std::time::Instant;

    use super::receiver::Receiver;
    const EVENTS: usize = 50_000;
    const ENDPOINTS: usize = 10;
    let secrets: Vec<SigningSecret> = (0..ENDPOINTS).map(|_| SigningSecret::generate()).collect();
    let plan: Vec<(String, u32)> = (0..EVENTS)
        .map(|i| (format!("wamid.CAP{i:08}"), (i % ENDPOINTS) as u32))
        .collect();
    let now = Timestamp::now();
    /// Endpoint, body, headers.
    type Signed = (usize, Vec<u8>, Vec<(&'static str, String)>);
    let requests: Vec<Signed> = plan
        .iter()
        .enumerate()
        .map(|(i, (wamid, e))| {
            let id = format!("event-{i}");
            let body = format!(
                r#"{{"event_type":"meta.delivery","event_id":"{id}","timestamp":"2025-01-01T00:00:00.000Z","data":{{"id":"{wamid}","status":"delivered","recipient_id":"919812345678","timestamp":"1750000000"}},"message":{{"wamid":"{wamid}","status":"delivered","current_status":"delivered","phone":"+919812345678","business_number":"+918000000000","campaign_id":"cmp","occurred_at":null,"error":null}}}}"#
            )
            .into_bytes();
            let secret = std::slice::from_ref(&secrets[*e as usize]);
            let headers = delivery::headers("meta.delivery", &id, 1, &body, secret, now);
            (*e as usize, body, headers)
        })
        .collect();
    let epoch = Instant::now();
    let receiver = Arc::new(Receiver::new(
        plan,
        &[false; ENDPOINTS],
        Duration::ZERO,
        epoch,
    ));
    for (e, s) in secrets.into_iter().enumerate() {
        receiver.set_secret(e, s);
    }
    let addr = receiver
        .clone()
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let requests = Arc::new(requests);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let client = crate::adapters::outbound::client_builder()
        .http1_only()
        .build()
        .unwrap();
    let start = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let (requests, next, client) = (requests.clone(), next.clone(), client.clone());
        workers.spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((e, body, headers)) = requests.get(i) else {
                    break;
                };
                let mut req = client.post(Receiver::url(addr, *e)).body(body.clone());
                for (k, v) in headers {
                    req = req.header(*k, v);
                }
                assert_eq!(req.send().await.unwrap().status(), StatusCode::OK);
            }
        });
    }
    while workers.join_next().await.is_some() {}
    let secs = start.elapsed().as_secs_f64();
    let counts = receiver.counts();
    println!(
        "receiver: {EVENTS} signed deliveries in {secs:.2}s: {:.0}/s",
        EVENTS as f64 / secs
    );
    assert_eq!(counts.healthy_delivered, EVENTS as u64);
    assert_eq!((counts.bad_signatures, counts.duplicates), (0, 0));
}
