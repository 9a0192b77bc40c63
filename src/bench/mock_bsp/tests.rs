//! The mock BSP end to end: real sends over HTTP to each API, and its webhooks received by a
//! small recorder and read with the gateway's own parsers.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use serde_json::{Value, json};

use super::*;
use crate::domain::event::{Event, StatusEvent};
use crate::domain::providers::{datagen, meta, raw_json};
use crate::domain::signing::verify_meta_signature;
use crate::domain::status::Reported;

const WAIT: Duration = Duration::from_secs(10);
const KARIX_NUMBER: &str = "919812345678";

struct Post {
    path: String,
    signature: Option<String>,
    body: Bytes,
}

/// Records every webhook; answers 503 to the first `fail_first`.
#[derive(Clone, Default)]
struct Recorder {
    posts: Arc<Mutex<Vec<Post>>>,
    fail_first: Arc<AtomicUsize>,
}

impl Recorder {
    fn take(&self) -> Vec<Post> {
        std::mem::take(&mut *self.posts.lock().unwrap())
    }
}

async fn record(
    State(r): State<Recorder>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let failing = r
        .fail_first
        .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if failing {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    r.posts.lock().unwrap().push(Post {
        path: uri.path().to_owned(),
        signature: headers
            .get("x-hub-signature-256")
            .map(|v| v.to_str().unwrap().to_owned()),
        body,
    });
    StatusCode::OK
}

async fn recorder() -> (String, Recorder) {
    let rec = Recorder::default();
    let app = Router::new().fallback(record).with_state(rec.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), rec)
}

async fn mock_with(f: impl FnOnce(&mut MockConfig)) -> (MockBsp, Recorder) {
    let (target, rec) = recorder().await;
    let mut config = MockConfig {
        webhook_target: Some(target),
        seed: 1,
        ..MockConfig::default()
    };
    f(&mut config);
    (start(config).await.unwrap(), rec)
}

fn client() -> reqwest::Client {
    crate::adapters::outbound::client_builder().build().unwrap()
}

/// Posts `body` to the mock at `path` with `headers`; the status and the JSON answer.
async fn send(mock: &MockBsp, path: &str, headers: &[(&str, &str)], body: Value) -> (u16, Value) {
    let mut req = client()
        .post(format!("{}{path}", mock.base_url()))
        .json(&body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

fn cloud_send(to: &str, template: &str, reference: &str) -> Value {
    json!({
        "messaging_product": "whatsapp",
        "to": to,
        "type": "template",
        "template": {"name": template, "language": {"policy": "deterministic", "code": "en"},
            "components": [{"type": "body", "parameters": [{"type": "text", "text": "Asha"}]}]},
        "biz_opaque_callback_data": reference,
    })
}

fn karix_send(to: &str, reference: Value) -> Value {
    json!({
        "message": {
            "channel": "WABA",
            "content": {"type": "TEMPLATE", "template": {"templateId": "spring_sale",
                "parameterValues": {"0": "Asha"}}},
            "recipient": {"to": to, "recipient_type": "individual", "reference": reference},
            "sender": {"from": KARIX_NUMBER},
            "preferences": {"webHookDNId": "1001"}
        },
        "metaData": {"version": "v1.0.9"}
    })
}

const META: &[(&str, &str)] = &[("authorization", "Bearer token-1")];
const KARIX: &[(&str, &str)] = &[("authentication", "Bearer key-1")];

/// Every status event in the posts, read by the parser of the path it was posted to.
fn statuses(posts: &[Post]) -> Vec<StatusEvent> {
    let mut out = Vec::new();
    for p in posts {
        let raw = raw_json(&p.body).unwrap();
        let parsed = match p.path.as_str() {
            "/v1/ingest/meta" => meta::parse(&raw),
            "/datagen-webhook" => datagen::parse(&raw),
            other => panic!("posted to {other}"),
        };
        assert!(parsed.rejected.is_empty(), "{:?}", parsed.rejected);
        out.extend(parsed.events.into_iter().map(|e| match e {
            Event::Status(s) => s,
            Event::Inbound(m) => panic!("inbound {m:?}"),
        }));
    }
    out
}

fn words(events: &[StatusEvent], id: &str) -> Vec<Reported> {
    events
        .iter()
        .filter(|e| e.wamid == id)
        .map(|e| e.status.clone())
        .collect()
}

const LIFECYCLE: [Reported; 3] = [Reported::Sent, Reported::Delivered, Reported::Read];

#[tokio::test]
async fn meta_send_is_answered_and_reported_back_signed() {
    let (mock, rec) = mock_with(|c| c.meta_app_secret = Some("app-secret".into())).await;
    let (status, body) = send(
        &mock,
        "/v21.0/15550783881/messages",
        META,
        cloud_send("+16505551234", "spring_sale", "rcp_1"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["messaging_product"], "whatsapp");
    assert_eq!(body["contacts"][0]["input"], "+16505551234");
    assert_eq!(body["contacts"][0]["wa_id"], "16505551234");
    assert_eq!(body["messages"][0]["message_status"], "accepted");
    let wamid = body["messages"][0]["id"].as_str().unwrap().to_owned();
    assert!(wamid.starts_with("wamid."), "{wamid}");

    assert!(mock.wait_webhooks(WAIT).await);
    let posts = rec.take();
    for p in &posts {
        assert!(verify_meta_signature(
            b"app-secret",
            &p.body,
            p.signature.as_deref()
        ));
    }
    let events = statuses(&posts);
    assert_eq!(words(&events, &wamid), LIFECYCLE);
    for e in &events {
        assert_eq!(e.campaign_id.as_deref(), Some("rcp_1"));
        assert_eq!(e.business_number.as_str(), "+15550783881");
        assert_eq!(e.phone.as_ref().unwrap().as_str(), "+16505551234");
        assert!(e.occurred_at.is_some());
    }
    let stats = mock.stats();
    assert_eq!(stats.accepted.meta, 1);
    assert_eq!(
        (stats.webhook_statuses, stats.webhook_statuses_pending),
        (3, 0)
    );
    assert_eq!(stats.duplicate_sends, 0);
    let sends = mock.sends();
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0].reference.as_deref(), Some("rcp_1"));
    assert_eq!(
        (sends[0].id.as_str(), sends[0].final_status),
        (wamid.as_str(), Final::Read)
    );
}

/// The template's language as Meta's description of the Cloud API requires it: a `code`, and
/// the one `policy` there is.
#[tokio::test]
async fn meta_send_needs_a_deterministic_language() {
    let (mock, _rec) = mock_with(|_| {}).await;
    let path = "/v23.0/15550783881/messages";
    for (language, field) in [
        (json!({"code": "en"}), "policy"),
        (json!({"policy": "fallback", "code": "en"}), "policy"),
        (json!({"policy": "deterministic"}), "code"),
        (json!({"policy": "deterministic", "code": ""}), "code"),
    ] {
        let mut body = cloud_send("+16505551234", "spring_sale", "rcp_1");
        body["template"]["language"] = language.clone();
        let (status, answer) = send(&mock, path, META, body).await;
        assert_eq!(
            (status, &answer["error"]["code"]),
            (400, &json!(100)),
            "{language}"
        );
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("['{field}']")),
            "{language}: {message}"
        );
    }
    assert_eq!(mock.stats().accepted.meta, 0);
    let (status, body) = send(
        &mock,
        path,
        META,
        cloud_send("+16505551234", "spring_sale", "rcp_1"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn aisensy_direct_takes_an_api_key_header_and_reports_as_meta() {
    let (mock, rec) = mock_with(|c| {
        c.meta_numbers = mappings(&["pn-1=+919812345678".to_owned()]).unwrap();
    })
    .await;
    let (status, body) = send(
        &mock,
        "/aisensy-direct/v21.0/pn-1/messages",
        &[("x-api-key", "key-1")],
        cloud_send("919876543210", "spring_sale", "rcp_2"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let wamid = body["messages"][0]["id"].as_str().unwrap().to_owned();
    assert!(mock.wait_webhooks(WAIT).await);
    let events = statuses(&rec.take());
    assert_eq!(words(&events, &wamid), LIFECYCLE);
    assert_eq!(events[0].business_number.as_str(), "+919812345678");
    assert_eq!(events[0].campaign_id.as_deref(), Some("rcp_2"));
    assert_eq!(mock.stats().accepted.aisensy_direct, 1);

    // Neither credential: refused. An id that is neither mapped nor digits: unknown.
    let (status, _) = send(
        &mock,
        "/aisensy-direct/v21.0/pn-1/messages",
        &[],
        cloud_send("919876543210", "t", "r"),
    )
    .await;
    assert_eq!(status, 401);
    let (status, body) = send(
        &mock,
        "/v21.0/pn-unknown/messages",
        META,
        cloud_send("919876543210", "t", "r"),
    )
    .await;
    assert_eq!((status, &body["error"]["code"]), (400, &json!(100)));
}

#[tokio::test]
async fn karix_send_is_reported_with_its_reference_echoed() {
    let (mock, rec) = mock_with(|_| {}).await;
    let reference =
        json!({"cust_ref": "rcp_3", "messageTag1": "tag", "parent_campaign_id": "cmp_1"});
    let (status, body) = send(
        &mock,
        "/services/rcm/sendMessage",
        KARIX,
        karix_send("919876543210", reference.clone()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["statusCode"], "200");
    assert_eq!(body["statusDesc"], "Successfully Accepted");
    let mid = body["mid"].as_str().unwrap().to_owned();
    assert!(
        mid.len() >= 20 && mid.bytes().all(|b| b.is_ascii_digit()),
        "{mid}"
    );

    assert!(mock.wait_webhooks(WAIT).await);
    let events = statuses(&rec.take());
    assert_eq!(words(&events, &mid), LIFECYCLE);
    for e in &events {
        assert_eq!(e.business_number.as_str(), "+919812345678");
        assert_eq!(e.phone.as_ref().unwrap().as_str(), "+919876543210");
        assert_eq!(e.campaign_id.as_deref(), Some("cmp_1"));
        let raw: Value = serde_json::from_str(e.raw.get()).unwrap();
        assert_eq!(raw["recipient"]["reference"], reference);
    }
    let sends = mock.sends();
    assert_eq!(sends[0].reference.as_deref(), Some("rcp_3"));
    assert_eq!(sends[0].template, "spring_sale");
}

#[tokio::test]
async fn aisensy_send_is_keyed_by_its_api_key_and_reported_as_meta() {
    let (mock, rec) = mock_with(|_| {}).await;
    let body = |key: Option<&str>| {
        let mut b = json!({"campaignName": "spring_sale", "destination": "919876543210",
            "userName": "Asha", "templateParams": ["Asha"], "attributes": {"wagate_ref": "rcp_4"}});
        if let Some(k) = key {
            b["apiKey"] = k.into();
        }
        b
    };
    let (status, reply) = send(
        &mock,
        "/campaign/t1/api/v2",
        &[],
        body(Some("mock-919812345678")),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["success"], "true");
    let id = reply["submitted_message_id"].as_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");

    assert!(mock.wait_webhooks(WAIT).await);
    let events = statuses(&rec.take());
    assert_eq!(words(&events, &id), LIFECYCLE);
    assert_eq!(events[0].business_number.as_str(), "+919812345678");
    assert_eq!(events[0].campaign_id.as_deref(), Some("rcp_4"));

    let (status, reply) = send(&mock, "/campaign/t1/api", &[], body(None)).await;
    assert_eq!(
        (status, reply),
        (401, json!({"message": "Invalid API key"}))
    );
    let (status, reply) = send(&mock, "/campaign/t1/api", &[], body(Some("who-knows"))).await;
    assert_eq!(
        (status, reply),
        (400, json!({"message": "unknown account"}))
    );
    let stats = mock.stats();
    assert_eq!(
        (stats.accepted.aisensy, stats.unauthorized, stats.invalid),
        (1, 1, 1)
    );
}

#[tokio::test]
async fn missing_credentials_are_refused_in_each_providers_shape() {
    let (mock, _rec) = mock_with(|_| {}).await;
    let (status, body) = send(
        &mock,
        "/v21.0/15550783881/messages",
        &[],
        cloud_send("16505551234", "t", "r"),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], 190);
    assert_eq!(body["error"]["type"], "OAuthException");
    assert!(body["error"]["message"].is_string() && body["error"]["fbtrace_id"].is_string());
    // Karix reads `Authentication`; `Authorization` is not it.
    let (status, body) = send(
        &mock,
        "/services/rcm/sendMessage",
        &[("authorization", "Bearer key-1")],
        karix_send("919876543210", json!({"cust_ref": "r"})),
    )
    .await;
    assert_eq!((status, &body["statusCode"]), (401, &json!("401")));
    let stats = mock.stats();
    assert_eq!((stats.unauthorized, stats.accepted.total()), (2, 0));
    assert!(mock.sends().is_empty());
}

#[tokio::test]
async fn a_recipient_sent_twice_is_counted() {
    let (mock, _rec) = mock_with(|c| c.webhook_target = None).await;
    let path = "/v21.0/15550783881/messages";
    for (to, template, reference) in [
        ("16505551234", "t1", "rcp_a"),
        ("16505551235", "t1", "rcp_b"),
        // The same reference again.
        ("16505551236", "t1", "rcp_a"),
        // The same sender, recipient (spelled differently) and template again.
        ("+1 650 555 1235", "t1", "rcp_c"),
        // The same recipient with another template is another message.
        ("16505551234", "t2", "rcp_d"),
    ] {
        let (status, body) = send(&mock, path, META, cloud_send(to, template, reference)).await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(mock.stats().duplicate_sends, 2);
    let flags: Vec<bool> = mock.sends().iter().map(|s| s.duplicate).collect();
    assert_eq!(flags, [false, false, true, true, false]);
}

#[tokio::test]
async fn throttled_and_rejected_sends_are_not_accepted() {
    let (mock, rec) = mock_with(|c| c.throttle_rate = 1.0).await;
    let (status, body) = send(
        &mock,
        "/v21.0/15550783881/messages",
        META,
        cloud_send("16505551234", "t", "r1"),
    )
    .await;
    assert_eq!((status, &body["error"]["code"]), (429, &json!(130429)));
    let (status, _) = send(
        &mock,
        "/services/rcm/sendMessage",
        KARIX,
        karix_send("919876543210", json!({"cust_ref": "r2"})),
    )
    .await;
    assert_eq!(status, 429);
    let (status, _) = send(
        &mock,
        "/campaign/t1/api/v2",
        &[],
        json!({"apiKey": "mock-919812345678",
        "campaignName": "c", "destination": "919876543210"}),
    )
    .await;
    assert_eq!(status, 429);
    let stats = mock.stats();
    assert_eq!((stats.throttled, stats.accepted.total()), (3, 0));
    assert!(mock.sends().is_empty());
    assert!(mock.wait_webhooks(WAIT).await);
    assert!(rec.take().is_empty());

    let (mock, _rec) = mock_with(|c| c.reject_rate = 1.0).await;
    let (status, body) = send(
        &mock,
        "/v21.0/15550783881/messages",
        META,
        cloud_send("16505551234", "t", "r1"),
    )
    .await;
    assert_eq!((status, &body["error"]["code"]), (400, &json!(132001)));
    assert_eq!(
        (mock.stats().rejected, mock.stats().accepted.total()),
        (1, 0)
    );
}

#[tokio::test]
async fn failed_sends_report_the_error_in_both_shapes() {
    let (mock, rec) = mock_with(|c| c.fail_rate = 1.0).await;
    let (_, body) = send(
        &mock,
        "/v21.0/15550783881/messages",
        META,
        cloud_send("16505551234", "t", "r1"),
    )
    .await;
    let wamid = body["messages"][0]["id"].as_str().unwrap().to_owned();
    let (_, body) = send(
        &mock,
        "/services/rcm/sendMessage",
        KARIX,
        karix_send("919876543210", json!({"cust_ref": "r2"})),
    )
    .await;
    let mid = body["mid"].as_str().unwrap().to_owned();
    assert!(mock.wait_webhooks(WAIT).await);
    let events = statuses(&rec.take());
    for id in [&wamid, &mid] {
        assert_eq!(words(&events, id), [Reported::Sent, Reported::Failed]);
        let failed = events
            .iter()
            .find(|e| &e.wamid == id && e.status == Reported::Failed)
            .unwrap();
        let error = failed.error.as_ref().unwrap();
        assert_eq!(error.code.as_deref(), Some("131026"));
        assert!(error.message.is_some());
    }
    assert!(mock.sends().iter().all(|s| s.final_status == Final::Failed));
}

#[tokio::test]
async fn duplicated_and_reordered_statuses_all_arrive() {
    let (mock, rec) = mock_with(|c| {
        c.duplicate_rate = 1.0;
        c.reorder = true;
    })
    .await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let (_, body) = send(
            &mock,
            "/v21.0/15550783881/messages",
            META,
            cloud_send(&format!("165055500{i:02}"), "t", &format!("r{i}")),
        )
        .await;
        ids.push(body["messages"][0]["id"].as_str().unwrap().to_owned());
    }
    assert!(mock.wait_webhooks(WAIT).await);
    let events = statuses(&rec.take());
    let mut out_of_order = 0;
    for id in &ids {
        let got = words(&events, id);
        let mut sorted = got.clone();
        sorted.sort_by_key(|w| LIFECYCLE.iter().position(|l| l == w));
        assert_eq!(
            sorted,
            [
                Reported::Sent,
                Reported::Sent,
                Reported::Delivered,
                Reported::Delivered,
                Reported::Read,
                Reported::Read
            ]
        );
        out_of_order += usize::from(got != sorted);
    }
    assert!(out_of_order > 0);
    assert_eq!(mock.stats().webhook_statuses, 20 * 6);
}

#[tokio::test]
async fn webhooks_are_retried_while_the_gateway_is_down_and_batched() {
    let (mock, rec) = mock_with(|c| {
        c.posters = 1;
        c.read_rate = 0.0;
    })
    .await;
    rec.fail_first.store(3, SeqCst);
    let mut mids = Vec::new();
    for i in 0..30 {
        let (status, body) = send(
            &mock,
            "/services/rcm/sendMessage",
            KARIX,
            karix_send(
                &format!("9198765432{i:02}"),
                json!({"cust_ref": format!("r{i}")}),
            ),
        )
        .await;
        assert_eq!(status, 200);
        mids.push(body["mid"].as_str().unwrap().to_owned());
    }
    assert!(mock.wait_webhooks(WAIT).await);
    let posts = rec.take();
    let events = statuses(&posts);
    for mid in &mids {
        assert_eq!(words(&events, mid), [Reported::Sent, Reported::Delivered]);
    }
    let stats = mock.stats();
    assert_eq!(
        (stats.webhook_post_failures, stats.webhook_statuses_dropped),
        (3, 0)
    );
    assert!(stats.last_webhook_error.unwrap().contains("503"));
    // The sends queued up while the first post was being retried went out together.
    assert!(posts.len() < 30, "{} posts for 60 statuses", posts.len());
    assert_eq!(stats.webhook_posts, posts.len() as u64);
}

#[tokio::test]
async fn stats_and_sends_are_served_over_http() {
    let (mock, _rec) = mock_with(|c| c.webhook_target = None).await;
    send(
        &mock,
        "/v21.0/15550783881/messages",
        META,
        cloud_send("16505551234", "t", "r1"),
    )
    .await;
    let get = |path: &'static str| {
        let url = format!("{}{path}", mock.base_url());
        async move {
            client()
                .get(url)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let stats: MockStats = serde_json::from_value(get("/mock/stats").await).unwrap();
    assert_eq!(stats, mock.stats());
    assert_eq!(stats.accepted.meta, 1);
    let sends: Vec<SendRecord> = serde_json::from_value(get("/mock/sends").await).unwrap();
    assert_eq!(sends, mock.sends());
    assert_eq!(sends[0].final_status, Final::Read);
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let (mock, _rec) = mock_with(|_| {}).await;
    let url = format!("{}/mock/stats", mock.base_url());
    mock.shutdown().await;
    assert!(client().get(url).send().await.is_err());
}

#[test]
fn options_parse_and_are_checked() {
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: MockBspArgs,
    }
    let parse = |argv: &[&str]| {
        <Cli as clap::Parser>::try_parse_from(
            std::iter::once("mock-bsp").chain(argv.iter().copied()),
        )
        .unwrap()
        .args
        .into_config()
    };
    let c = parse(&[
        "--listen",
        "127.0.0.1:0",
        "--webhook-target",
        "http://127.0.0.1:8080",
        "--fail-rate",
        "0.1",
        "--meta-number",
        "pn-1=+919812345678",
        "--aisensy-number",
        "key=919812345679",
        "--delay-ms",
        "5",
        "--reorder",
        "--seed",
        "9",
    ])
    .unwrap();
    assert_eq!(c.fail_rate, 0.1);
    assert_eq!(c.meta_numbers["pn-1"].as_str(), "+919812345678");
    assert_eq!(c.aisensy_numbers["key"].as_str(), "+919812345679");
    assert_eq!(
        (c.delay, c.reorder, c.seed),
        (Duration::from_millis(5), true, 9)
    );
    assert_eq!(c.webhook_target.as_deref(), Some("http://127.0.0.1:8080"));
    assert!(parse(&["--no-webhooks"]).unwrap().webhook_target.is_none());
    assert!(matches!(
        parse(&["--read-rate", "1.5"]),
        Err(ConfigError::Rate("read-rate", _))
    ));
    assert!(matches!(
        parse(&["--meta-number", "no-equals"]),
        Err(ConfigError::Mapping(_))
    ));
    assert!(matches!(
        parse(&["--meta-number", "x=12"]),
        Err(ConfigError::Phone(_))
    ));
    assert!(matches!(
        parse(&["--webhook-target", "ftp://x"]),
        Err(ConfigError::Target(_))
    ));
}
