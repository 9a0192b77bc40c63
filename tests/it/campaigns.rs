//! Campaigns end to end, on both backend sets, against the project's own mock BSP: a CSV in,
//! sends out through each provider's API, the mock's status webhooks back in through ingress,
//! and the campaign's counts and export agreeing with what the mock decided, with no recipient
//! ever sent twice.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wagate::bench::mock_bsp::{self, Final, MockBsp, MockConfig};
use wagate::config::{Config, Role};

use crate::support::app::{Backend, TestApp};

const NUMBER: &str = "+919812345678";
/// The number's Meta phone-number id: its own digits, which the mock reads back as the number.
const META_ID: &str = "919812345678";
const WITHIN: Duration = Duration::from_secs(30);

/// Every role running for real, with the runner fast enough for a test.
fn fast(c: &mut Config) {
    c.roles = Role::ALL.into_iter().collect();
    c.sweeper_interval_ms = 50;
    c.send_rate_per_number = 1000;
    c.send_retry_backoff_ms = 50;
}

crate::support::app::backend_cases!(
    a_campaign_per_provider_completes_with_every_status_right,
    a_throttling_bsp_slows_sends_and_loses_none,
    pause_holds_the_sends_and_resume_finishes_them,
    cancel_stops_the_queued_recipients,
    bad_input_gets_clear_errors_and_changes_nothing,
    opted_out_phones_are_never_sent,
    a_scheduled_campaign_starts_after_a_restart,
    a_large_upload_is_stored_in_batches_and_counted_once,
    forwarded_status_events_name_their_campaign,
    a_start_without_a_credential_is_refused_before_anything_moves,
    an_upload_broken_off_midway_says_exactly_what_was_stored,
);

/// A gateway with every role, a mock BSP posting its webhooks to it, and one project whose
/// four providers all point at the mock.
struct Setup {
    app: TestApp,
    mock: MockBsp,
    key: String,
}

async fn setup(backend: Backend, mock: MockConfig) -> Option<Setup> {
    let app = TestApp::spawn_with(backend, fast).await?;
    let mock = mock_bsp::start(MockConfig {
        webhook_target: Some(app.url("")),
        ..mock
    })
    .await
    .unwrap();
    let (status, body) = app
        .send(
            app.client
                .post(app.url("/v1/projects"))
                .bearer_auth(crate::support::app::ADMIN)
                .json(&json!({
                    "id": "shop", "name": "Shop",
                    "phone_numbers": [{"number": NUMBER, "meta_phone_number_id": META_ID}],
                })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let key = body["api_key"].as_str().unwrap().to_owned();
    let base = mock.base_url();
    for (provider, settings) in [
        ("meta", json!({"base_url": base, "token": "t"})),
        ("datagen", json!({"base_url": base, "token": "t"})),
        (
            "aisensy",
            json!({"base_url": base, "api_key": format!("mock-{META_ID}")}),
        ),
        (
            "aisensy_direct",
            // AiSensy's project URL names the sender; the mock reads it as the number's id.
            json!({"base_url": format!("{base}/aisensy-direct/{META_ID}"), "api_key": "k"}),
        ),
    ] {
        let (status, body) = app
            .call(
                Method::PUT,
                &format!("/v1/providers/{provider}"),
                &key,
                Some(settings),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{provider}: {body}");
        assert_eq!(body["credential_set"], true);
        assert!(body.get("token").is_none() && body.get("credential").is_none());
    }
    Some(Setup { app, mock, key })
}

impl Setup {
    async fn campaign(&self, provider: &str, extra: Value) -> String {
        let mut body = json!({
            "name": format!("{provider} spring sale"),
            // One template per provider: the mock counts a second send of one template to one
            // phone as a duplicate.
            "template_id": format!("{provider}_sale"),
            "language": "en",
            "provider": provider,
            "sender": NUMBER,
            "params": [{"column": "name", "fallback": "there"}, {"column": "code"}],
        });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, c) = self
            .app
            .call(Method::POST, "/project/campaign", &self.key, Some(body))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{c}");
        assert_eq!(c["state"], "draft");
        c["id"].as_str().unwrap().to_owned()
    }

    async fn upload(&self, id: &str, csv: String) -> (StatusCode, Value) {
        self.app
            .send(
                self.app
                    .client
                    .post(self.app.url(&format!("/project/campaign/{id}/recipients")))
                    .bearer_auth(&self.key)
                    .header("content-type", "text/csv")
                    .body(csv),
            )
            .await
    }

    async fn start(&self, id: &str) -> Value {
        let (status, c) = self
            .app
            .call(
                Method::POST,
                "/project/campaign/event/send",
                &self.key,
                Some(json!({"campaign_id": id})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{c}");
        c
    }

    async fn get(&self, id: &str) -> Value {
        let (status, c) = self
            .app
            .get(&format!("/project/campaign/{id}"), &self.key)
            .await;
        assert_eq!(status, StatusCode::OK, "{c}");
        c
    }

    async fn post(&self, id: &str, action: &str) -> (StatusCode, Value) {
        self.app
            .call(
                Method::POST,
                &format!("/project/campaign/{id}/{action}"),
                &self.key,
                None,
            )
            .await
    }

    /// Waits until `done` holds for the campaign, or panics with its last state.
    async fn until(&self, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WITHIN;
        loop {
            let c = self.get(id).await;
            if done(&c) {
                return c;
            }
            assert!(Instant::now() < deadline, "waiting for {what}: {c}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// phone → (wamid, status) from the export.
    async fn export(&self, id: &str) -> HashMap<String, (String, String)> {
        self.export_rows(id)
            .await
            .into_iter()
            .map(|cells| (cells[0].clone(), (cells[1].clone(), cells[2].clone())))
            .collect()
    }

    /// The export's rows, cut at commas (no test value holds one before the error title).
    async fn export_rows(&self, id: &str) -> Vec<Vec<String>> {
        let resp = self
            .app
            .client
            .get(
                self.app
                    .url(&format!("/project/campaign/{id}/messages.csv")),
            )
            .bearer_auth(&self.key)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let text = resp.text().await.unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("phone,wamid,status,updated_at,error_code,error_title")
        );
        lines
            .map(|l| l.split(',').map(str::to_owned).collect())
            .collect()
    }
}

/// `n` recipients, `+9198000000NN`, with a name on every other row.
fn csv(n: usize) -> String {
    let mut out = String::from("phone,name,code\n");
    for i in 0..n {
        let name = if i % 2 == 0 {
            format!("User {i}")
        } else {
            String::new()
        };
        out.push_str(&format!("+91980000{i:04},{name},C{i}\n"));
    }
    out
}

fn settled(c: &Value) -> u64 {
    ["delivered", "read", "failed"]
        .iter()
        .map(|k| c["counts"][k].as_u64().unwrap())
        .sum()
}

fn word(f: Final) -> &'static str {
    match f {
        Final::Delivered => "delivered",
        Final::Read => "read",
        Final::Failed => "failed",
    }
}

async fn a_campaign_per_provider_completes_with_every_status_right(backend: Backend) {
    let Some(s) = setup(
        backend,
        MockConfig {
            fail_rate: 0.2,
            read_rate: 0.5,
            duplicate_rate: 0.2,
            reorder: true,
            seed: 7,
            ..MockConfig::default()
        },
    )
    .await
    else {
        return;
    };
    for provider in ["meta", "datagen", "aisensy", "aisensy_direct"] {
        let id = s.campaign(provider, json!({})).await;
        let (status, report) = s.upload(&id, csv(12)).await;
        assert_eq!(status, StatusCode::OK, "{report}");
        assert_eq!(report["accepted"], 12, "{report}");
        s.start(&id).await;
        let c = s
            .until(&id, "every message final", |c| {
                c["state"] == "finished" && settled(c) == 12
            })
            .await;
        assert_eq!(c["counts"]["unknown"], 0, "{c}");
        // The export says what the mock decided, message by message.
        let exported = s.export(&id).await;
        assert_eq!(exported.len(), 12);
        let sends: Vec<_> = s
            .mock
            .sends()
            .into_iter()
            .filter(|r| r.provider.as_str() == provider)
            .collect();
        assert_eq!(
            sends.len(),
            12,
            "{provider}: one accepted send per recipient"
        );
        for r in &sends {
            let (wamid, status) = &exported[&r.to];
            assert_eq!(wamid, &r.id, "{provider} {}", r.to);
            assert_eq!(status, word(r.final_status), "{provider} {}", r.to);
        }
        // A failure the BSP reported in its webhook (the mock says 131026, undeliverable)
        // is in the export's error columns; other rows have none.
        for cells in s.export_rows(&id).await {
            let failed = cells[2] == "failed";
            let want = if failed { "131026" } else { "" };
            assert_eq!(cells[4], want, "{provider}: {cells:?}");
            assert_eq!(cells[5].is_empty(), !failed, "{provider}: {cells:?}");
        }
    }
    let stats = s.mock.stats();
    assert_eq!(stats.duplicate_sends, 0, "{stats:?}");
    s.app.stop().await;
}

async fn a_throttling_bsp_slows_sends_and_loses_none(backend: Backend) {
    let Some(s) = setup(
        backend,
        MockConfig {
            throttle_rate: 0.4,
            seed: 3,
            ..MockConfig::default()
        },
    )
    .await
    else {
        return;
    };
    let id = s.campaign("meta", json!({})).await;
    s.upload(&id, csv(20)).await;
    s.start(&id).await;
    let c = s
        .until(&id, "every message read", |c| c["counts"]["read"] == 20)
        .await;
    let stats = s.mock.stats();
    assert!(stats.throttled > 0, "the mock throttled some: {stats:?}");
    assert_eq!(stats.accepted.meta, 20, "{stats:?}");
    assert_eq!(stats.duplicate_sends, 0, "{stats:?}");
    assert_eq!(c["counts"]["failed"], 0, "{c}");
    s.app.stop().await;
}

async fn pause_holds_the_sends_and_resume_finishes_them(backend: Backend) {
    let Some(s) = setup(backend, MockConfig::default()).await else {
        return;
    };
    let id = s
        .campaign("datagen", json!({"rate_limit_per_second": 10}))
        .await;
    s.upload(&id, csv(30)).await;
    s.start(&id).await;
    s.until(&id, "some sends", |c| {
        c["counts"]["queued"].as_u64() < Some(28)
    })
    .await;
    let (status, c) = s.post(&id, "pause").await;
    assert_eq!(status, StatusCode::OK, "{c}");
    assert_eq!(c["state"], "paused");
    let (again, _) = s.post(&id, "pause").await;
    assert_eq!(again, StatusCode::CONFLICT, "pausing twice");
    // Requests in flight when it paused may still land; after a second nothing more goes out.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let held = s.mock.stats().accepted.datagen;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(s.mock.stats().accepted.datagen, held, "sends while paused");
    assert!(held < 30, "paused before the end");
    let (status, c) = s.post(&id, "resume").await;
    assert_eq!(status, StatusCode::OK, "{c}");
    s.until(&id, "finished", |c| c["state"] == "finished").await;
    assert_eq!(s.mock.stats().accepted.datagen, 30);
    assert_eq!(s.mock.stats().duplicate_sends, 0);
    s.app.stop().await;
}

async fn cancel_stops_the_queued_recipients(backend: Backend) {
    let Some(s) = setup(backend, MockConfig::default()).await else {
        return;
    };
    let id = s
        .campaign("meta", json!({"rate_limit_per_second": 5}))
        .await;
    s.upload(&id, csv(40)).await;
    s.start(&id).await;
    s.until(&id, "a first send", |c| {
        c["counts"]["queued"].as_u64() < Some(40)
    })
    .await;
    let (status, c) = s.post(&id, "cancel").await;
    assert_eq!(status, StatusCode::OK, "{c}");
    assert_eq!(c["state"], "cancelled");
    let (status, _) = s.post(&id, "resume").await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a cancelled campaign stays cancelled"
    );
    // Recipients claimed before the cancel and still waiting for their rate are released
    // and cancelled too; only requests already in flight complete.
    let c = s
        .until(&id, "nothing left sending", |c| c["counts"]["sending"] == 0)
        .await;
    let cancelled = c["counts"]["cancelled"].as_u64().unwrap();
    assert!(cancelled > 0, "{c}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = s.mock.stats().accepted.meta;
    assert_eq!(
        cancelled + sent,
        40,
        "every recipient either sent or cancelled: {c}"
    );
    assert_eq!(s.get(&id).await["counts"]["queued"], 0);
    s.app.stop().await;
}

async fn bad_input_gets_clear_errors_and_changes_nothing(backend: Backend) {
    let Some(s) = setup(backend, MockConfig::default()).await else {
        return;
    };
    let create = |body: Value| {
        let s = &s;
        async move {
            s.app
                .call(Method::POST, "/project/campaign", &s.key, Some(body))
                .await
        }
    };
    let base = json!({"name": "x", "template_id": "t", "provider": "meta", "sender": NUMBER});
    for (change, code) in [
        (json!({"provider": "pigeon"}), "unknown_provider"),
        (json!({"sender": "+15550001111"}), "unknown_sender"),
        (json!({"template_id": ""}), "missing_field"),
        (json!({"template_id": "a\u{7}b"}), "invalid_template_id"),
    ] {
        let mut body = base.clone();
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, e) = create(body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
        assert_eq!(e["error"]["code"], code, "{e}");
    }
    let id = s.campaign("datagen", json!({})).await;
    for (csv, code) in [
        ("", "empty_csv"),
        ("phone,name\n", "empty_csv"),
        ("name\nBob\n", "missing_phone_column"),
    ] {
        let (status, e) = s.upload(&id, csv.to_owned()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{csv:?}: {e}");
        assert_eq!(e["error"]["code"], code, "{e}");
    }
    // Bad rows are reported by number; the good ones go in.
    let (status, r) = s
        .upload(
            &id,
            "phone,name\n+919800000001,A\nnot-a-phone,B\n+919800000001,C\n+919800000002,D\n+919800000003,E,extra\n".into(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["accepted"], 2, "{r}");
    assert_eq!(r["duplicates"], 1, "{r}");
    assert_eq!(r["rejected"][0]["row"], 2, "{r}");
    assert_eq!(r["rejected"][1]["row"], 5, "wrong column count: {r}");
    // A CSV URL that fails is recorded and the campaign stays a draft.
    let (status, e) = s
        .app
        .call(
            Method::POST,
            &format!("/project/campaign/{id}/recipients"),
            &s.key,
            Some(json!({"csv_url": format!("{}/nothing-here.csv", s.mock.base_url())})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(e["error"]["code"], "csv_fetch_failed");
    let c = s.get(&id).await;
    assert_eq!(c["state"], "draft");
    assert!(c["last_error"].as_str().unwrap().contains("404"), "{c}");
    // Moves the state machine does not allow are 409.
    for action in ["pause", "resume", "retry-unknown", "retry-failed"] {
        let (status, e) = s.post(&id, action).await;
        assert_eq!(status, StatusCode::CONFLICT, "{action}: {e}");
        assert_eq!(e["error"]["code"], "invalid_transition");
    }
    // Another project's campaign is not there at all.
    let other = s.app.create_project("other", &["+15550002222"]).await;
    let (status, _) = s.app.get(&format!("/project/campaign/{id}"), &other).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(s.mock.stats().accepted.total(), 0, "nothing was sent");
    s.app.stop().await;
}

async fn opted_out_phones_are_never_sent(backend: Backend) {
    let Some(s) = setup(backend, MockConfig::default()).await else {
        return;
    };
    // The user writes STOP to the business number (a Karix inbound message).
    let stop = json!({
        "channel": "WABA",
        "events": {"eventType": "User initiated", "mid": "wamid.STOP1", "timestamp": "1732700000"},
        "eventContent": {"message": {
            "id": "wamid.STOP1", "from": "919800000001", "to": "919812345678",
            "contentType": "text", "messageType": "text", "text": {"body": " stop "}
        }},
        "recipient": {"to": "919812345678"},
        "sender": {"from": "919800000001"}
    });
    let (status, body) = s.app.post_raw("/datagen-webhook", stop.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The processor applies the STOP a moment after ingress took it: each try loads a fresh
    // campaign, until one sees the phone opted out.
    let deadline = Instant::now() + WITHIN;
    let id = loop {
        let id = s.campaign("meta", json!({})).await;
        let (status, r) = s.upload(&id, csv(3)).await;
        assert_eq!(status, StatusCode::OK, "{r}");
        if r["opted_out"] == 1 {
            assert_eq!(r["accepted"], 2, "{r}");
            break id;
        }
        assert!(Instant::now() < deadline, "the STOP was never applied: {r}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    s.start(&id).await;
    let c = s
        .until(&id, "finished", |c| {
            c["state"] == "finished" && c["counts"]["read"] == 2
        })
        .await;
    assert_eq!(c["counts"]["opted_out"], 1, "{c}");
    let sent_to: Vec<String> = s.mock.sends().into_iter().map(|r| r.to).collect();
    assert!(
        !sent_to.contains(&"+919800000001".to_owned()),
        "{sent_to:?}"
    );
    s.app.stop().await;
}

/// The schedule lives in the store: a campaign scheduled before a restart starts at its time
/// after it, and sends each recipient once.
async fn a_scheduled_campaign_starts_after_a_restart(backend: Backend) {
    let Some(s) = setup(backend, MockConfig::default()).await else {
        return;
    };
    let at = wagate::domain::time::Timestamp::now().millis() / 1000 + 4;
    let id = s.campaign("meta", json!({"schedule_time": at})).await;
    s.upload(&id, csv(5)).await;
    let c = s.start(&id).await;
    assert_eq!(c["state"], "scheduled", "{c}");
    let Setup { app, mock, key } = s;
    let s = Setup {
        app: app.restart().await,
        mock,
        key,
    };
    assert_eq!(
        s.get(&id).await["state"],
        "scheduled",
        "not before its time"
    );
    assert_eq!(s.mock.stats().accepted.total(), 0);
    s.until(&id, "finished", |c| c["state"] == "finished").await;
    assert!(
        wagate::domain::time::Timestamp::now().millis() / 1000 >= at,
        "started at its time"
    );
    assert_eq!(s.mock.stats().accepted.total(), 5);
    assert_eq!(s.mock.stats().duplicate_sends, 0);
    s.app.stop().await;
}

/// An upload of several store batches (written a few at a time while the rest is parsed)
/// counts every row once; the same file again adds nothing and counts every row a duplicate.
async fn a_large_upload_is_stored_in_batches_and_counted_once(backend: Backend) {
    let Some(s) = setup(backend, MockConfig::default()).await else {
        return;
    };
    let id = s.campaign("meta", json!({})).await;
    let rows = 17_003;
    let (status, report) = s.upload(&id, csv(rows)).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["accepted"], rows, "{report}");
    assert_eq!(report["duplicates"], 0, "{report}");
    assert_eq!(s.get(&id).await["total"], rows);
    let (status, again) = s.upload(&id, csv(rows)).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["accepted"], 0, "{again}");
    assert_eq!(again["duplicates"], rows, "{again}");
    assert_eq!(s.get(&id).await["total"], rows);
    s.app.stop().await;
}

async fn a_start_without_a_credential_is_refused_before_anything_moves(backend: Backend) {
    let Some(s) = setup(backend, MockConfig::default()).await else {
        return;
    };
    // A project with no provider settings of its own, on a server with none either.
    let key = s.app.create_project("bare", &["+15550003333"]).await;
    let (status, c) = s
        .app
        .call(
            Method::POST,
            "/project/campaign",
            &key,
            Some(
                json!({"name": "n", "template_id": "t", "provider": "datagen",
                "sender": "+15550003333", "unknown_policy": "resend"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    assert_eq!(c["unknown_policy"], "resend");
    let id = c["id"].as_str().unwrap();
    let (status, r) = s
        .app
        .send(
            s.app
                .client
                .post(s.app.url(&format!("/project/campaign/{id}/recipients")))
                .bearer_auth(&key)
                .header("content-type", "text/csv")
                .body(csv(3)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    let (status, e) = s
        .app
        .call(
            Method::POST,
            "/project/campaign/event/send",
            &key,
            Some(json!({"campaign_id": id})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{e}");
    assert_eq!(e["error"]["code"], "provider_not_configured", "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("credential"),
        "{e}"
    );
    let (_, c) = s.app.get(&format!("/project/campaign/{id}"), &key).await;
    assert_eq!(c["state"], "draft", "{c}");
    assert_eq!(c["counts"]["queued"], 3, "no recipient moved: {c}");
    assert_eq!(c["counts"]["failed"], 0, "{c}");
    let (status, e) = s
        .app
        .call(
            Method::POST,
            "/project/campaign",
            &key,
            Some(
                json!({"name": "n", "template_id": "t", "provider": "datagen",
                "sender": "+15550003333", "unknown_policy": "maybe"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(e["error"]["code"], "invalid_unknown_policy");
    s.app.stop().await;
}

/// Serves one CSV whose connection breaks off after `rows` rows (it promised far more bytes).
async fn breaking_csv(rows: usize) -> String {
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut request = [0u8; 4096];
        let _ = tokio::io::AsyncReadExt::read(&mut conn, &mut request).await;
        let mut body = String::from("phone\n");
        for i in 0..rows {
            body.push_str(&format!("+9198{i:08}\n"));
        }
        let head = "HTTP/1.1 200 OK\r\ncontent-type: text/csv\r\ncontent-length: 10000000\r\n\r\n";
        conn.write_all(head.as_bytes()).await.unwrap();
        conn.write_all(body.as_bytes()).await.unwrap();
        conn.flush().await.unwrap();
    });
    format!("http://{addr}/recipients.csv")
}

async fn an_upload_broken_off_midway_says_exactly_what_was_stored(backend: Backend) {
    let Some(s) = setup(backend, MockConfig::default()).await else {
        return;
    };
    let id = s.campaign("datagen", json!({})).await;
    let url = breaking_csv(6_000).await;
    let (status, e) = s
        .app
        .call(
            Method::POST,
            &format!("/project/campaign/{id}/recipients"),
            &s.key,
            Some(json!({"csv_url": url})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(e["error"]["code"], "csv_fetch_failed", "{e}");
    let c = s.get(&id).await;
    // At least one batch (5,000 rows, or all that one chunk held) was stored before the break,
    // and the error says exactly how many.
    let stored = c["counts"]["queued"].as_u64().unwrap();
    assert!(stored >= 5_000, "{c}");
    let message = e["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("{stored} recipients of this upload were stored")),
        "the error says what was stored ({stored}): {message}"
    );
    assert_eq!(c["state"], "draft");
    s.app.stop().await;
}

/// Every status event of a campaign's messages reaches the project's endpoint with the
/// campaign's id in `message.campaign_id`, whether the BSP's webhook came before or after the
/// send was stored (the mock reorders and repeats them).
async fn forwarded_status_events_name_their_campaign(backend: Backend) {
    let Some(s) = setup(
        backend,
        MockConfig {
            fail_rate: 0.2,
            read_rate: 0.5,
            duplicate_rate: 0.2,
            reorder: true,
            seed: 11,
            ..MockConfig::default()
        },
    )
    .await
    else {
        return;
    };
    let rx = crate::support::receiver::Receiver::start().await;
    let (status, e) = s
        .app
        .call(
            Method::POST,
            "/webhook/config",
            &s.key,
            Some(json!({"webhook_url": rx.url("all"), "topics": ["*"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{e}");
    for provider in ["meta", "datagen"] {
        let id = s.campaign(provider, json!({})).await;
        s.upload(&id, csv(6)).await;
        s.start(&id).await;
        s.until(&id, "every message final", |c| {
            c["state"] == "finished" && settled(c) == 6
        })
        .await;
        assert!(
            s.mock.wait_webhooks(WITHIN).await,
            "the mock posted every webhook"
        );
        // Until every event in the messages' histories (one delivery each) has come.
        let deadline = Instant::now() + WITHIN;
        let (ours, events) = loop {
            let (status, page) = s
                .app
                .get(&format!("/v1/messages?campaign_id={id}&limit=1000"), &s.key)
                .await;
            assert_eq!(status, StatusCode::OK, "{page}");
            let messages = page["data"].as_array().unwrap().clone();
            assert_eq!(messages.len(), 6, "{page}");
            let wamids: std::collections::HashSet<&str> = messages
                .iter()
                .map(|m| m["wamid"].as_str().unwrap())
                .collect();
            let events: usize = messages
                .iter()
                .map(|m| m["events"].as_array().unwrap().len())
                .sum();
            let ours: Vec<Value> = rx
                .received("all")
                .iter()
                .map(|r| r.json())
                .filter(|b| {
                    b["message"]["wamid"]
                        .as_str()
                        .is_some_and(|w| wamids.contains(w))
                })
                .collect();
            if ours.len() >= events || Instant::now() > deadline {
                break (ours, events);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(ours.len(), events, "{provider}: one delivery per event");
        for body in &ours {
            assert_eq!(
                body["message"]["campaign_id"],
                id.as_str(),
                "{provider}: {body}"
            );
        }
    }
    s.app.stop().await;
}
