//! The whole `run_ingest` against an in-process mock of the server's HTTP contract, so the
//! driver, the drain wait and the verification are exercised before the real server exists.
//! The mock can refuse requests and forget the max rule, to prove the bench notices.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::{IngestArgs, run_ingest};
use crate::domain::event::Event;
use crate::domain::providers::{datagen, meta, raw_json};
use crate::domain::status::Status;

#[derive(Default)]
struct Mock {
    /// Answer 503 (without applying) to every n-th ingest request.
    refuse_every: Option<usize>,
    /// Last write wins instead of the max: the seed's bug.
    last_write_wins: bool,
    /// Acknowledge but drop every n-th event: the other seed bug.
    forget_every: Option<usize>,
    requests: usize,
    events: usize,
    messages: BTreeMap<String, (Status, Vec<Status>)>,
    inbound: HashSet<String>,
}

type Shared = Arc<Mutex<Mock>>;

const KEY: &str = "wgk_mock";

async fn ingest(state: State<Shared>, provider: &str, body: Bytes) -> (StatusCode, String) {
    let raw = raw_json(&body).expect("bench sends JSON");
    let parsed = if provider == "meta" {
        meta::parse(&raw)
    } else {
        datagen::parse(&raw)
    };
    let mut m = state.lock().unwrap();
    m.requests += 1;
    if m.refuse_every.is_some_and(|n| m.requests.is_multiple_of(n)) {
        return (StatusCode::SERVICE_UNAVAILABLE, "{}".into());
    }
    let lww = m.last_write_wins;
    for event in &parsed.events {
        m.events += 1;
        if m.forget_every.is_some_and(|n| m.events.is_multiple_of(n)) {
            continue;
        }
        match event {
            Event::Status(e) => {
                // The bench sends only the four statuses, each its own effect.
                let status = e.status.merged();
                let entry = m
                    .messages
                    .entry(e.wamid.clone())
                    .or_insert((status, vec![]));
                entry.0 = if lww { status } else { entry.0.merge(status) };
                if !entry.1.contains(&status) {
                    entry.1.push(status);
                }
            }
            Event::Inbound(i) => {
                m.inbound.insert(i.message_id.clone());
            }
        }
    }
    let reply = json!({ "accepted": parsed.events.len(), "quarantined": parsed.rejected.len() });
    (StatusCode::OK, reply.to_string())
}

fn authorized(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {KEY}"))
}

async fn stats(state: State<Shared>, headers: HeaderMap) -> (StatusCode, String) {
    if !authorized(&headers) {
        return (StatusCode::UNAUTHORIZED, "{}".into());
    }
    let m = state.lock().unwrap();
    let history: usize = m.messages.values().map(|(_, h)| h.len()).sum();
    let body = json!({ "messages": { "total": m.messages.len() }, "history_events": history,
        "inbound_messages": m.inbound.len() });
    (StatusCode::OK, body.to_string())
}

async fn messages(
    state: State<Shared>,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> (StatusCode, String) {
    if !authorized(&headers) {
        return (StatusCode::UNAUTHORIZED, "{}".into());
    }
    let limit: usize = q["limit"].parse().unwrap();
    let m = state.lock().unwrap();
    let after = q.get("after").cloned().unwrap_or_default();
    let page: Vec<Value> = m
        .messages
        .range(after..)
        .filter(|(w, _)| Some(*w) != q.get("after"))
        .take(limit)
        .map(|(w, (s, h))| {
            let events: Vec<Value> = h.iter().map(|s| json!({ "status": s.as_str() })).collect();
            json!({ "wamid": w, "status": s.as_str(), "events": events })
        })
        .collect();
    let next = (page.len() == limit).then(|| page[limit - 1]["wamid"].clone());
    (
        StatusCode::OK,
        json!({ "data": page, "next_cursor": next }).to_string(),
    )
}

async fn serve(mock: Mock) -> String {
    let state: Shared = Arc::new(Mutex::new(mock));
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/v1/projects",
            post(|headers: HeaderMap, body: Bytes| async move {
                assert_eq!(headers["authorization"], "Bearer admin");
                let p: Value = serde_json::from_slice(&body).unwrap();
                let mut out = p.clone();
                out["api_key"] = KEY.into();
                (StatusCode::CREATED, out.to_string())
            }),
        )
        .route("/v1/ingest/datagen", post(|s, b| ingest(s, "datagen", b)))
        .route("/v1/ingest/meta", post(|s, b| ingest(s, "meta", b)))
        .route("/v1/stats", get(stats))
        .route("/v1/messages", get(messages))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn args(target: String) -> IngestArgs {
    IngestArgs {
        target,
        events: 3000,
        concurrency: 8,
        admin_token: Some("admin".into()),
        seed: Some(42),
        drain_timeout_secs: 5,
        healthz_secs: 1,
        ..IngestArgs::from_defaults()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correct_server_loses_nothing() {
    let target = serve(Mock::default()).await;
    let s = run_ingest(args(target)).await.unwrap();
    assert_eq!((s.events_sent, s.events_accepted), (3000, 3000));
    assert_eq!((s.requests_failed, s.events_quarantined), (0, 0));
    assert_eq!(s.events_lost, Some(0), "{s:?}");
    assert_eq!(s.backwards, Some(0));
    assert_eq!(s.history_duplicates, Some(0));
    assert_eq!(s.messages_missing, Some(0));
    assert!(s.drain_secs.is_some());
    assert!(s.healthz_per_sec > 0.0 && s.accepted_per_sec > 0.0);
    assert!(s.latency_p50_ms <= s.latency_p99_ms && s.latency_p99_ms <= s.latency_max_ms);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_not_losses_but_backwards_moves_are_caught() {
    let target = serve(Mock {
        refuse_every: Some(5),
        last_write_wins: true,
        ..Mock::default()
    })
    .await;
    let s = run_ingest(args(target)).await.unwrap();
    assert!(
        s.requests_failed > 0 && s.events_accepted < s.events_sent,
        "{s:?}"
    );
    assert_eq!(s.events_lost, Some(0), "refused events are not expected");
    assert!(s.backwards.unwrap() > 0, "{s:?}");
}

#[tokio::test]
async fn an_unreachable_server_is_an_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    assert!(run_ingest(args(target)).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_but_dropped_events_are_lost() {
    let target = serve(Mock {
        forget_every: Some(100),
        ..Mock::default()
    })
    .await;
    let s = run_ingest(IngestArgs {
        drain_timeout_secs: 1,
        healthz_secs: 0,
        ..args(target)
    })
    .await
    .unwrap();
    assert_eq!(s.requests_failed, 0);
    assert_eq!(s.drain_secs, None, "the stats never catch up");
    // Some dropped events were duplicates whose twin got through.
    let lost = s.events_lost.unwrap();
    assert!((10..=30).contains(&lost), "{s:?}");
    assert_eq!(s.healthz_per_sec, 0.0);
}
