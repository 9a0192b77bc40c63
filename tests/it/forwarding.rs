//! Forwarding end to end, on both backend sets: events posted through ingress reach a local
//! receiver signed, retried, dead-lettered and redriven, past a circuit breaker, beside a
//! hanging endpoint, and from the store when their queue messages are lost.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use wagate::config::{Config, Role};

use crate::support::app::{Backend, TestApp};
use crate::support::proxy::Proxy;
use crate::support::receiver::Receiver;

pub(crate) const NUMBER: &str = "+919812345678";
/// Long enough for any case here on a loaded CI machine; cases finish as soon as they can.
pub(crate) const WITHIN: Duration = Duration::from_secs(20);

/// Every role running for real, with retries and sweeps fast enough for a test.
pub(crate) fn fast(c: &mut Config) {
    c.roles = Role::ALL.into_iter().collect();
    c.forwarder_retry_schedule = "100ms,100ms,100ms".into();
    c.sweeper_interval_ms = 50;
}

crate::support::app::backend_cases!(
    delivers_signed_events_to_the_endpoints_that_subscribe,
    a_failed_attempt_is_retried_under_the_same_webhook_id,
    a_refused_delivery_is_dead_lettered_then_redriven,
    gone_disables_the_endpoint_until_it_is_enabled_again,
    an_open_breaker_defers_deliveries_and_drops_none,
    a_hanging_endpoint_does_not_delay_healthy_ones,
    deliveries_whose_queue_messages_were_lost_are_swept_from_the_store,
    https_receivers_get_deliveries_only_when_their_certificate_is_trusted,
    the_official_standard_webhooks_library_verifies_deliveries,
);

/// Creates an endpoint; returns its id and secret.
pub(crate) async fn endpoint(
    app: &TestApp,
    key: &str,
    url: &str,
    topics: &[&str],
) -> (String, String) {
    let (status, e) = app
        .call(
            Method::POST,
            "/webhook/config",
            key,
            Some(json!({"webhook_url": url, "topics": topics})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{e}");
    (
        e["id"].as_str().unwrap().to_owned(),
        e["shared_secret"].as_str().unwrap().to_owned(),
    )
}

pub(crate) fn datagen(wamid: &str, word: &str) -> String {
    json!({
        "channel": "WABA",
        "events": {"eventType": "DELIVERY EVENTS", "mid": wamid, "timestamp": "1732700000"},
        "notificationAttributes": {"status": word, "reason": "", "code": ""},
        "recipient": {"to": "919876543210", "recipient_type": "individual"},
        "sender": {"from": "919812345678"}
    })
    .to_string()
}

pub(crate) async fn post_event(app: &TestApp, wamid: &str, word: &str) {
    let (status, body) = app.post_raw("/datagen-webhook", datagen(wamid, word)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Polls `GET path` until `done` holds for its body; panics with the last body after WITHIN.
pub(crate) async fn until(
    app: &TestApp,
    path: &str,
    key: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + WITHIN;
    loop {
        let (_, body) = app.get(path, key).await;
        if done(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "{path} never got there: {body}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits until the endpoint's delivery log starts with one in `status`; returns the log.
pub(crate) async fn first_delivery_is(
    app: &TestApp,
    key: &str,
    endpoint: &str,
    status: &str,
) -> Value {
    let path = format!("/webhook/config/{endpoint}/deliveries");
    until(app, &path, key, |p| p["data"][0]["status"] == status).await
}

pub(crate) async fn deliveries(app: &TestApp, key: &str, endpoint: &str) -> Vec<Value> {
    let (status, page) = app
        .get(&format!("/webhook/config/{endpoint}/deliveries"), key)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["data"].as_array().unwrap().clone()
}

pub(crate) async fn spawn(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Option<TestApp> {
    TestApp::spawn_with(backend, |c| {
        fast(c);
        tweak(c);
    })
    .await
}

async fn delivers_signed_events_to_the_endpoints_that_subscribe(backend: Backend) {
    let Some(app) = spawn(backend, |_| {}).await else {
        return;
    };
    let rx = Receiver::start().await;
    let key = app.create_project("acme", &[NUMBER]).await;
    let (all, secret) = endpoint(&app, &key, &rx.url("all"), &["*"]).await;
    let (_meta, _) = endpoint(&app, &key, &rx.url("meta"), &["meta.delivery"]).await;
    post_event(&app, "wamid.F1", "read").await;
    post_event(&app, "wamid.F1", "delivered").await;
    let got = rx.wait_for("all", 2, WITHIN).await;
    assert_eq!(got.len(), 2, "both events forwarded to `*`");
    for r in &got {
        let body = r.json();
        assert!(r.verifies(&secret), "signatures verify: {:?}", r.headers);
        assert_eq!(r.header("x-event-type"), "datagen.delivery");
        assert_eq!(r.header("content-type"), "application/json");
        assert!(r.header("user-agent").starts_with("wagate/"));
        assert_eq!(r.header("x-attempt-count"), "1");
        assert_eq!(r.header("webhook-id"), r.header("x-event-id"));
        assert_eq!(body["event_id"], r.header("webhook-id"));
        assert_eq!(body["event_type"], "datagen.delivery");
        assert_eq!(body["message"]["wamid"], "wamid.F1");
        // The message's status once this event was applied: `read` from the `read` event on,
        // whichever of the two the processors applied first.
        let current = body["message"]["current_status"].as_str().unwrap();
        if body["message"]["status"] == "read" {
            assert_eq!(current, "read", "{body}");
        } else {
            assert!(["delivered", "read"].contains(&current), "{body}");
        }
        assert_eq!(body["data"]["events"]["mid"], "wamid.F1");
    }
    let words: BTreeSet<String> = got
        .iter()
        .map(|r| r.json()["message"]["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(words, ["delivered", "read"].map(String::from).into());
    let log = until(
        &app,
        &format!("/webhook/config/{all}/deliveries"),
        &key,
        |p| {
            p["data"]
                .as_array()
                .is_some_and(|d| d.len() == 2 && d.iter().all(|d| d["status"] == "succeeded"))
        },
    )
    .await;
    assert!(
        log["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["attempt_count"] == 1)
    );
    // The Datagen events are not Meta's: the second endpoint got nothing.
    assert!(rx.received("meta").is_empty());
    // A test ping goes out signed, and reports what came back.
    let (status, ping) = app
        .call(
            Method::POST,
            &format!("/webhook/config/{all}/test"),
            &key,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{ping}");
    assert_eq!(ping["status_code"], 200, "{ping}");
    assert_eq!(ping["delivered"], true);
    assert!(ping["latency_ms"].is_u64());
    let pings = rx.received("all");
    let last = pings.last().unwrap();
    assert_eq!(last.header("x-event-type"), "webhook.test");
    assert!(last.verifies(&secret));
    app.stop().await;
}

async fn a_failed_attempt_is_retried_under_the_same_webhook_id(backend: Backend) {
    let Some(app) = spawn(backend, |_| {}).await else {
        return;
    };
    let rx = Receiver::start().await;
    rx.answer("flaky", &[500]);
    let key = app.create_project("acme", &[NUMBER]).await;
    let (id, secret) = endpoint(&app, &key, &rx.url("flaky"), &["*"]).await;
    post_event(&app, "wamid.R1", "delivered").await;
    let got = rx.wait_for("flaky", 2, WITHIN).await;
    assert_eq!(got.len(), 2, "one failure, one success");
    assert_eq!(got[0].header("webhook-id"), got[1].header("webhook-id"));
    assert_eq!(got[0].body, got[1].body, "the same bytes on every attempt");
    assert_eq!(got[0].header("x-attempt-count"), "1");
    assert_eq!(got[1].header("x-attempt-count"), "2");
    assert!(got.iter().all(|r| r.verifies(&secret)));
    let log = first_delivery_is(&app, &key, &id, "succeeded").await;
    let data = log["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "one delivery: {log}");
    assert_eq!(data[0]["attempt_count"], 2);
    let (_, detail) = app
        .get(
            &format!("/webhook/deliveries/{}", data[0]["id"].as_str().unwrap()),
            &key,
        )
        .await;
    let attempts = detail["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{detail}");
    assert_eq!(attempts[0]["status_code"], 500);
    assert_eq!(attempts[1]["status_code"], 200);
    app.stop().await;
}

async fn a_refused_delivery_is_dead_lettered_then_redriven(backend: Backend) {
    let Some(app) = spawn(backend, |_| {}).await else {
        return;
    };
    let rx = Receiver::start().await;
    rx.answer("broken", &[400; 20]);
    let key = app.create_project("acme", &[NUMBER]).await;
    let (id, _) = endpoint(&app, &key, &rx.url("broken"), &["*"]).await;
    post_event(&app, "wamid.D1", "delivered").await;
    let log = first_delivery_is(&app, &key, &id, "dead").await;
    assert_eq!(log["data"][0]["attempt_count"], 1, "a 400 is not retried");
    assert_eq!(log["data"][0]["last_status_code"], 400);
    assert_eq!(rx.received("broken").len(), 1);
    // The owner fixes the URL and redrives the dead letters.
    let (status, _) = app
        .call(
            Method::PUT,
            &format!("/webhook/config/{id}"),
            &key,
            Some(json!({"webhook_url": rx.url("fixed")})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, redriven) = app
        .call(
            Method::POST,
            &format!("/webhook/config/{id}/redrive"),
            &key,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{redriven}");
    assert_eq!(redriven["redriven"], 1);
    let got = rx.wait_for("fixed", 1, WITHIN).await;
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].header("webhook-id"),
        rx.received("broken")[0].header("webhook-id")
    );
    assert_eq!(got[0].header("x-attempt-count"), "2");
    first_delivery_is(&app, &key, &id, "succeeded").await;
    // Retrying one delivery by hand sends it once more.
    let dl = deliveries(&app, &key, &id).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/webhook/deliveries/{dl}/retry"),
            &key,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(rx.wait_for("fixed", 2, WITHIN).await.len(), 2);
    app.stop().await;
}

async fn gone_disables_the_endpoint_until_it_is_enabled_again(backend: Backend) {
    let Some(app) = spawn(backend, |_| {}).await else {
        return;
    };
    let rx = Receiver::start().await;
    rx.answer("gone", &[410]);
    let key = app.create_project("acme", &[NUMBER]).await;
    let (id, _) = endpoint(&app, &key, &rx.url("gone"), &["*"]).await;
    post_event(&app, "wamid.G1", "delivered").await;
    let e = until(&app, &format!("/webhook/config/{id}"), &key, |e| {
        e["enabled"] == false
    })
    .await;
    assert!(
        e["disabled_reason"].as_str().unwrap().contains("410"),
        "{e}"
    );
    first_delivery_is(&app, &key, &id, "dead").await;
    // While disabled, new events make no deliveries for it.
    post_event(&app, "wamid.G2", "delivered").await;
    app.get("/v1/messages/wamid.G2", &key).await;
    until(&app, "/v1/messages/wamid.G2", &key, |m| {
        m["status"] == "delivered"
    })
    .await;
    assert_eq!(deliveries(&app, &key, &id).await.len(), 1);
    let (status, _) = app
        .call(
            Method::PUT,
            &format!("/webhook/config/{id}"),
            &key,
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    post_event(&app, "wamid.G3", "delivered").await;
    let got = rx.wait_for("gone", 2, WITHIN).await;
    assert_eq!(got[1].json()["message"]["wamid"], "wamid.G3");
    app.stop().await;
}

async fn an_open_breaker_defers_deliveries_and_drops_none(backend: Backend) {
    let Some(app) = spawn(backend, |c| {
        c.breaker_failure_threshold = 3;
        c.breaker_cooldown_secs = 1;
        // Probes are attempts: one delivery may be the probe each time the breaker half-opens.
        c.forwarder_retry_schedule = "100ms,100ms,100ms,100ms,100ms,100ms".into();
    })
    .await
    else {
        return;
    };
    let rx = Receiver::start().await;
    // Down for 8 requests: more than the retry budget of any one delivery, so only deferral
    // while the breaker is open (which charges nothing) gets them all through.
    rx.answer("down", &[503; 8]);
    let key = app.create_project("acme", &[NUMBER]).await;
    let (id, _) = endpoint(&app, &key, &rx.url("down"), &["*"]).await;
    for i in 0..6 {
        post_event(&app, &format!("wamid.B{i}"), "delivered").await;
    }
    let open = until(&app, &format!("/webhook/config/{id}"), &key, |e| {
        e["breaker"]["state"] == "open"
    })
    .await;
    assert!(open["breaker"]["open_until"].is_string(), "{open}");
    let log = until(
        &app,
        &format!("/webhook/config/{id}/deliveries"),
        &key,
        |p| {
            p["data"]
                .as_array()
                .is_some_and(|d| d.len() == 6 && d.iter().all(|d| d["status"] == "succeeded"))
        },
    )
    .await;
    assert!(
        log["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["status"] != "dead"),
        "{log}"
    );
    let ids: BTreeSet<String> = rx
        .received("down")
        .iter()
        .filter(|r| r.header("x-event-type") == "datagen.delivery")
        .map(|r| r.header("webhook-id").to_owned())
        .collect();
    assert_eq!(ids.len(), 6, "every event delivered");
    let e = until(&app, &format!("/webhook/config/{id}"), &key, |e| {
        e["breaker"]["state"] == "closed"
    })
    .await;
    assert_eq!(e["breaker"]["consecutive_failures"], 0);
    app.stop().await;
}

async fn a_hanging_endpoint_does_not_delay_healthy_ones(backend: Backend) {
    let Some(app) = spawn(backend, |c| {
        c.forwarder_timeout_ms = 5_000;
        c.forwarder_endpoint_inflight = 2;
    })
    .await
    else {
        return;
    };
    let rx = Receiver::start().await;
    rx.hang("slow", Duration::from_secs(30));
    let key = app.create_project("acme", &[NUMBER]).await;
    endpoint(&app, &key, &rx.url("slow"), &["*"]).await;
    endpoint(&app, &key, &rx.url("fast"), &["*"]).await;
    let started = Instant::now();
    for i in 0..20 {
        post_event(&app, &format!("wamid.H{i:02}"), "delivered").await;
    }
    let got = rx.wait_for("fast", 20, WITHIN).await;
    let took = started.elapsed();
    assert_eq!(got.len(), 20);
    assert!(
        took < Duration::from_secs(4),
        "the healthy endpoint got everything before the hanging one's first timeout: {took:?}"
    );
    assert!(
        rx.received("slow").len() <= 2,
        "the hanging endpoint holds at most its cap of requests: {}",
        rx.received("slow").len()
    );
    app.stop().await;
}

async fn deliveries_whose_queue_messages_were_lost_are_swept_from_the_store(backend: Backend) {
    // No forwarder in the app: the test loses the queue messages, then runs the sweeper and a
    // forwarder itself.
    let Some(app) = TestApp::spawn_with(backend, |c| {
        fast(c);
        c.roles = [Role::Api, Role::Ingress].into_iter().collect();
    })
    .await
    else {
        return;
    };
    let rx = Receiver::start().await;
    let key = app.create_project("acme", &[NUMBER]).await;
    endpoint(&app, &key, &rx.url("hook"), &["*"]).await;
    for i in 0..5 {
        post_event(&app, &format!("wamid.L{i}"), "delivered").await;
    }
    assert_eq!(app.process().await, 5);
    // Every forward message is taken and thrown away: a purged queue, a broker that lost them.
    let queue = app.queue();
    let mut consumer = queue.consumer("forward", 100).await.unwrap();
    let mut lost = 0;
    loop {
        let got = consumer
            .receive(100, Some(Duration::from_millis(500)))
            .await
            .unwrap();
        if got.is_empty() {
            break;
        }
        lost += got.len();
        consumer
            .ack(&got.iter().map(|d| d.id).collect::<Vec<_>>())
            .await
            .unwrap();
    }
    assert!(lost >= 1, "the processor queued the deliveries");
    drop(consumer);
    let metrics = wagate::metrics::Metrics::new();
    let backends = wagate::adapters::build(&app.config, &metrics)
        .await
        .unwrap();
    let sweeper = wagate::workers::sweeper::Sweeper {
        deliveries: backends.deliveries.clone(),
        queue: backends.queue.clone(),
        metrics: metrics.clone(),
        interval: Duration::from_millis(50),
        shutdown: CancellationToken::new(),
    };
    let now = wagate::domain::time::Timestamp::now();
    assert_eq!(
        sweeper.sweep(now).await.unwrap(),
        0,
        "within their lease the rows wait for their queue message"
    );
    let later = now.plus(wagate::domain::delivery::outbox::QUEUED_LEASE + Duration::from_secs(1));
    assert_eq!(sweeper.sweep(later).await.unwrap(), 5);
    assert_eq!(sweeper.sweep(later).await.unwrap(), 0, "claimed once");
    let tracker = tokio_util::task::TaskTracker::new();
    let stop = CancellationToken::new();
    let forwarding = wagate::app::forwarding(&app.config, &backends, &metrics).unwrap();
    let forwarder = wagate::app::forwarder(
        &app.config,
        &backends,
        &forwarding,
        &metrics,
        &tracker,
        stop.clone(),
    );
    std::sync::Arc::new(forwarder).spawn(&tracker);
    let got = rx.wait_for("hook", 5, WITHIN).await;
    let wamids: BTreeSet<String> = got
        .iter()
        .map(|r| r.json()["message"]["wamid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(wamids.len(), 5, "every event delivered from the store");
    stop.cancel();
    tracker.close();
    tracker.wait().await;
    app.stop().await;
}

/// Two HTTPS receivers: one whose CA the server trusts (`WEBHOOK_CA_FILE`) gets the event,
/// signed; the other, with a certificate nobody vouches for, is never sent the body, and its
/// attempt is recorded as a TLS failure to retry.
async fn https_receivers_get_deliveries_only_when_their_certificate_is_trusted(backend: Backend) {
    let (trusted, ca_pem) = Receiver::start_tls().await;
    let (stranger, _) = Receiver::start_tls().await;
    let ca = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca.path(), &ca_pem).unwrap();
    let Some(app) = spawn(backend, |c| {
        c.webhook_ca_file = Some(ca.path().to_owned());
        // One retry, so the untrusted delivery is soon dead.
        c.forwarder_retry_schedule = "100ms".into();
    })
    .await
    else {
        return;
    };
    let key = app.create_project("acme", &[NUMBER]).await;
    let (_, secret) = endpoint(&app, &key, &trusted.url("tls"), &["*"]).await;
    let (refused, _) = endpoint(&app, &key, &stranger.url("tls"), &["*"]).await;
    assert!(trusted.url("tls").starts_with("https://localhost:"));
    post_event(&app, "wamid.T1", "delivered").await;
    let got = trusted.wait_for("tls", 1, WITHIN).await;
    assert_eq!(got.len(), 1, "delivered over TLS");
    assert!(got[0].verifies(&secret), "{:?}", got[0].headers);
    assert_eq!(got[0].json()["message"]["wamid"], "wamid.T1");
    let log = first_delivery_is(&app, &key, &refused, "dead").await;
    let (_, detail) = app
        .get(
            &format!(
                "/webhook/deliveries/{}",
                log["data"][0]["id"].as_str().unwrap()
            ),
            &key,
        )
        .await;
    let attempts = detail["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{detail}");
    for a in attempts {
        let error = a["error"].as_str().unwrap_or_default();
        assert!(error.starts_with("tls"), "{detail}");
        assert!(a["status_code"].is_null(), "{detail}");
    }
    assert!(
        stranger.received("tls").is_empty(),
        "no request got past the handshake"
    );
    app.stop().await;
}

/// A retry pending while RabbitMQ goes away (every connection cut, and the forward queue
/// deleted with whatever it held, as a broker that restarts without it would) is still made
/// once the broker is back: scheduled retries wait in the store, not in the broker.
#[tokio::test]
async fn a_pending_retry_survives_a_broker_restart() {
    let Some(amqp) = crate::support::amqp_url().await else {
        return;
    };
    let (mut proxy, proxied) = Proxy::for_amqp(&amqp).await;
    let Some(app) = spawn(Backend::Distributed, |c| {
        c.amqp_url = Some(proxied);
        c.forwarder_retry_schedule = "1s".into();
    })
    .await
    else {
        return;
    };
    let rx = Receiver::start().await;
    rx.answer("flaky", &[503]);
    let key = app.create_project("acme", &[NUMBER]).await;
    let (id, secret) = endpoint(&app, &key, &rx.url("flaky"), &["*"]).await;
    post_event(&app, "wamid.B1", "delivered").await;
    let log = format!("/webhook/config/{id}/deliveries");
    until(&app, &log, &key, |p| p["data"][0]["attempt_count"] == 1).await;

    proxy.down();
    let forward = format!(
        "{}.{}",
        app.config.amqp_prefix,
        wagate::domain::task::queues::FORWARD
    );
    crate::rabbitmq::rabbitmqctl(&["delete_queue", &forward]).await;
    // Away past the retry's due time: nothing can carry it meanwhile.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        rx.received("flaky").len(),
        1,
        "no retry while the broker is away"
    );
    proxy.up().await;

    let got = rx.wait_for("flaky", 2, WITHIN).await;
    assert_eq!(got.len(), 2, "the retry was made from the store");
    assert_eq!(got[0].header("webhook-id"), got[1].header("webhook-id"));
    assert_eq!(got[1].header("x-attempt-count"), "2");
    assert!(got.iter().all(|r| r.verifies(&secret)));
    first_delivery_is(&app, &key, &id, "succeeded").await;
    app.stop().await;
}

/// Verifies `body` and `headers` with the Standard Webhooks project's own Python library, once
/// per secret; returns `ok` or `bad` for each. `None`: python3 or the library is missing (and
/// the run does not require it).
async fn official_verify(body: &[u8], headers: &Value, secrets: &[&str]) -> Option<Vec<String>> {
    const SCRIPT: &str = r#"
import json, sys
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
body = open(sys.argv[1], "rb").read()
headers = json.loads(sys.argv[2])
for secret in sys.argv[3:]:
    try:
        Webhook(secret).verify(body, headers)
        print("ok")
    except WebhookVerificationError:
        print("bad")
"#;
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), body).unwrap();
    let out = tokio::process::Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(file.path())
        .arg(headers.to_string())
        .args(secrets)
        .output()
        .await;
    let why = match out {
        Ok(o) if o.status.success() => {
            return Some(
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .map(String::from)
                    .collect(),
            );
        }
        Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
        Err(e) => e.to_string(),
    };
    crate::support::unavailable(
        crate::support::required(),
        "python3 with standardwebhooks (pip install standardwebhooks)",
        "PATH",
        why,
    )
}

/// A receiver using the official Standard Webhooks library accepts a delivery signed after a
/// rotation with either secret (the delivery carries two `v1,` signatures through the
/// overlap), and refuses it with any other.
async fn the_official_standard_webhooks_library_verifies_deliveries(backend: Backend) {
    let Some(app) = spawn(backend, |_| {}).await else {
        return;
    };
    let rx = Receiver::start().await;
    let key = app.create_project("acme", &[NUMBER]).await;
    let (id, old) = endpoint(&app, &key, &rx.url("std"), &["*"]).await;
    let (status, rotated) = app
        .call(
            Method::POST,
            &format!("/webhook/config/{id}/rotate-secret"),
            &key,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new = rotated["shared_secret"].as_str().unwrap().to_owned();
    post_event(&app, "wamid.S1", "read").await;
    let got = rx.wait_for("std", 1, WITHIN).await;
    assert_eq!(got.len(), 1);
    let signatures = got[0].header("webhook-signature");
    assert_eq!(signatures.split(' ').count(), 2, "{signatures}");
    let headers = json!({
        "webhook-id": got[0].header("webhook-id"),
        "webhook-timestamp": got[0].header("webhook-timestamp"),
        "webhook-signature": signatures,
    });
    let stranger = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let Some(verdicts) = official_verify(&got[0].body, &headers, &[&new, &old, stranger]).await
    else {
        return;
    };
    assert_eq!(
        verdicts,
        ["ok", "ok", "bad"],
        "new, old, and an unrelated secret"
    );
    app.stop().await;
}
