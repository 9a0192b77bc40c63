//! End-to-end over HTTP on both backend sets: post webhooks, process, read back.

use reqwest::StatusCode;
use serde_json::{Value, json};
use wagate::domain::signing::hmac_sha256_hex;

use crate::support::app::{ADMIN, Backend, TestApp, fixture, on_both_backends};

on_both_backends!(
    projects_need_the_admin_token_and_unique_numbers,
    datagen_statuses_merge_out_of_order,
    datagen_batch_and_inbound,
    meta_statuses_and_messages,
    meta_events_find_their_project_by_phone_number_id,
    bad_input_gets_json_errors_or_quarantine,
    projects_see_only_their_own_messages,
    listing_pages_and_filters,
    unknown_business_number_is_quarantined,
    ops_endpoints,
    bulk_routes_take_at_most_64_kib_of_json,
);

const WAMID: &str = "wamid.HBgMOTE5ODc2NTQzMjEwFQIAERgSM0E1RjQyNUE3QjE5QzA0RDQ2AA==";
const FAILED_WAMID: &str = "wamid.HBgMOTE5OTExMTEyMjIyFQIAERgSNzc3N0FBQUFCQkJCQ0NDQ0REAA==";
const META_WAMID: &str = "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJEQjk5QzlBRjE0NzFCMDc2NjYA";

/// Wamids carry `+`, `/` and `=`: they must be escaped in a path.
fn message_path(wamid: &str) -> String {
    let escaped: String = wamid
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("/v1/messages/{escaped}")
}

async fn projects_need_the_admin_token_and_unique_numbers(app: &TestApp) {
    let body = json!({"id": "acme", "name": "Acme", "phone_numbers": ["+91 98123 45678"]});
    let post = |token: Option<&str>, body: &Value| {
        let mut r = app.client.post(app.url("/v1/projects")).json(body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r
    };
    let (status, err) = app.send(post(None, &body)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(err["error"]["code"], "unauthorized");
    let (status, _) = app.send(post(Some("wrong-token"), &body)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, created) = app.send(post(Some(ADMIN), &body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["phone_numbers"], json!(["+919812345678"]));
    let key = created["api_key"].as_str().unwrap();
    let (status, me) = app.get("/v1/project", key).await;
    assert_eq!((status, me["id"].as_str()), (StatusCode::OK, Some("acme")));
    let (status, err) = app.send(post(Some(ADMIN), &body)).await;
    assert_eq!(status, StatusCode::CONFLICT, "same id");
    assert_eq!(err["error"]["code"], "conflict");
    let taken = json!({"id": "other", "name": "Other", "phone_numbers": ["919812345678"]});
    assert_eq!(
        app.send(post(Some(ADMIN), &taken)).await.0,
        StatusCode::CONFLICT,
        "number taken"
    );
    let bad = json!({"id": "Bad Id", "name": "x", "phone_numbers": ["+919812345678"]});
    let (status, err) = app.send(post(Some(ADMIN), &bad)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err["error"]["code"], "invalid_request");
    let (status, err) = app
        .send(
            app.client
                .post(app.url("/v1/projects"))
                .bearer_auth(ADMIN)
                .body("{nope"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["error"]["code"], "invalid_json");
}

async fn datagen_statuses_merge_out_of_order(app: &TestApp) {
    let key = app.create_project("acme", &["+919812345678"]).await;
    // Read, then delivered, then sent: the webhook for the send raced everything.
    for file in [
        "delivery_read.json",
        "delivery_delivered.json",
        "delivery_sent.json",
        "delivery_failed.json",
    ] {
        let (status, body) = app
            .post_raw("/datagen-webhook", fixture(&format!("datagen/{file}")))
            .await;
        assert_eq!(status, StatusCode::OK, "{file}: {body}");
        assert_eq!(body["accepted"], 1);
        assert_eq!(app.process().await, 1);
    }
    // A duplicate changes nothing.
    app.post_raw(
        "/v1/ingest/datagen",
        fixture("datagen/delivery_delivered.json"),
    )
    .await;
    app.process().await;
    let (status, m) = app.get(&message_path(WAMID), &key).await;
    assert_eq!(status, StatusCode::OK, "{m}");
    assert_eq!(m["status"], "read");
    assert_eq!(m["project_id"], "acme");
    assert_eq!(m["phone"], "+919876543210");
    assert_eq!(m["business_number"], "+919812345678");
    assert_eq!(m["campaign_id"], "cmp_spring_sale");
    assert_eq!(m["provider"], "datagen");
    let statuses: Vec<&str> = m["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["sent", "delivered", "read"],
        "history oldest first, each once"
    );
    assert_eq!(m["events"][0]["occurred_at"], "2024-11-27T09:33:20.000Z");
    assert!(
        m["events"][0]["received_at"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    let (_, failed) = app.get(&message_path(FAILED_WAMID), &key).await;
    assert_eq!(failed["status"], "failed");
    assert_eq!(
        failed["events"][0]["error"],
        json!({"code": "131026", "message": "Message undeliverable"})
    );
}

async fn datagen_batch_and_inbound(app: &TestApp) {
    let key = app.create_project("acme", &["+919812345678"]).await;
    let (status, body) = app
        .post_raw("/v1/ingest/datagen", fixture("datagen/batch.json"))
        .await;
    assert_eq!(
        (status, body["accepted"].as_u64()),
        (StatusCode::OK, Some(3)),
        "{body}"
    );
    assert_eq!(app.process().await, 3);
    let (_, inbound) = app.get("/v1/inbound", &key).await;
    let data = inbound["data"].as_array().unwrap();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["text"], "Is the sale still on?");
    assert_eq!(data[0]["from"], "+919876543210");
    assert_eq!(data[0]["type"], "text");
    let (_, stats) = app.get("/v1/stats", &key).await;
    assert_eq!(stats["messages"]["total"], 2);
    assert_eq!(stats["messages"]["delivered"], 1);
    assert_eq!(stats["messages"]["failed"], 1);
    assert_eq!(stats["inbound_messages"], 1);
}

async fn meta_statuses_and_messages(app: &TestApp) {
    let key = app.create_project("meta", &["+15550783881"]).await;
    for file in [
        "meta/status_read_and_failed.json",
        "meta/status_sent.json",
        "meta/inbound_text.json",
    ] {
        let (status, body) = app.post_raw("/v1/ingest/meta", fixture(file)).await;
        assert_eq!(status, StatusCode::OK, "{file}: {body}");
    }
    assert_eq!(app.process().await, 4);
    let (_, m) = app.get(&message_path(META_WAMID), &key).await;
    assert_eq!(
        m["status"], "read",
        "read arrived before sent and still wins"
    );
    assert_eq!(m["phone"], "+16505551234");
    let (_, inbound) = app.get("/v1/inbound", &key).await;
    assert_eq!(inbound["data"][0]["profile_name"], "Sheena Nelson");
}

/// A Cloud API body for one business number, given as Meta's `metadata` gives it.
fn meta_change(display: &str, phone_number_id: &str, value: Value) -> String {
    let mut value = value;
    value["messaging_product"] = json!("whatsapp");
    value["metadata"] =
        json!({"display_phone_number": display, "phone_number_id": phone_number_id});
    json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398",
        "changes": [{"field": "messages", "value": value}]}]})
    .to_string()
}

/// Meta's display number comes in several spellings: here without its country code, which
/// reads as another valid number (another project's). The phone-number id the project
/// registered decides, and the events name the number as registered. An id nobody
/// registered leaves the display number to decide, as before.
async fn meta_events_find_their_project_by_phone_number_id(app: &TestApp) {
    let (status, acme) = app
        .send(app.client.post(app.url("/v1/projects")).bearer_auth(ADMIN).json(&json!({
            "id": "acme", "name": "Acme",
            "phone_numbers": [{"number": "+919812345678", "meta_phone_number_id": "106540352242922"}],
        })))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{acme}");
    let acme = acme["api_key"].as_str().unwrap().to_owned();
    let beta = app.create_project("beta", &["+9812345678"]).await;
    let status = json!({"statuses": [{"id": "wamid.P1", "status": "delivered",
        "timestamp": "1732700400", "recipient_id": "16505551234"}]});
    let inbound = json!({
        "contacts": [{"profile": {"name": "Asha"}, "wa_id": "16505551234"}],
        "messages": [{"from": "16505551234", "id": "wamid.IN1", "timestamp": "1732700401",
            "type": "text", "text": {"body": "hi"}}]});
    for body in [
        meta_change("98123 45678", "106540352242922", status),
        meta_change("9812345678", "106540352242922", inbound),
        // Nobody registered this id: the display number finds beta.
        meta_change(
            "+98 123 45678",
            "999000111",
            json!({"statuses": [{"id": "wamid.P2",
            "status": "sent", "timestamp": "1732700400", "recipient_id": "16505551234"}]}),
        ),
    ] {
        let (status, answer) = app.post_raw("/v1/ingest/meta", body).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    assert_eq!(app.process().await, 3);
    let (status, m) = app.get(&message_path("wamid.P1"), &acme).await;
    assert_eq!(status, StatusCode::OK, "{m}");
    assert_eq!(m["business_number"], "+919812345678", "{m}");
    assert_eq!(
        app.get(&message_path("wamid.P1"), &beta).await.0,
        StatusCode::NOT_FOUND
    );
    let (_, inbound) = app.get("/v1/inbound", &acme).await;
    assert_eq!(inbound["data"][0]["message_id"], "wamid.IN1", "{inbound}");
    assert_eq!(inbound["data"][0]["business_number"], "+919812345678");
    let (status, m) = app.get(&message_path("wamid.P2"), &beta).await;
    assert_eq!(status, StatusCode::OK, "{m}");
    assert_eq!(m["business_number"], "+9812345678");
    let (_, quarantined) = app.get("/v1/admin/quarantine", ADMIN).await;
    assert_eq!(quarantined["data"], json!([]), "{quarantined}");
    // The id registered now is found at once, though its absence was just looked up.
    let (status, body) = app
        .send(
            app.client
                .post(app.url("/v1/projects/beta/numbers"))
                .bearer_auth(ADMIN)
                .json(&json!({"number": "+9812345678", "meta_phone_number_id": "999000111"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let late = meta_change(
        "447700900123",
        "999000111",
        json!({"statuses": [{"id": "wamid.P3",
        "status": "sent", "timestamp": "1732700400", "recipient_id": "16505551234"}]}),
    );
    app.post_raw("/v1/ingest/meta", late).await;
    assert_eq!(app.process().await, 1);
    let (status, m) = app.get(&message_path("wamid.P3"), &beta).await;
    assert_eq!(status, StatusCode::OK, "{m}");
    assert_eq!(m["business_number"], "+9812345678");
}

async fn bad_input_gets_json_errors_or_quarantine(app: &TestApp) {
    let (status, err) = app.post_raw("/datagen-webhook", "this is not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["error"]["code"], "invalid_json");
    let (status, body) = app
        .post_raw("/v1/ingest/datagen", r#"{"surprise":"shape"}"#)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"accepted": 0, "quarantined": 1}));
    let (status, body) = app.post_raw("/v1/ingest/meta", r#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"account_update","value":{}}]}]}"#).await;
    assert_eq!(
        (status, body["quarantined"].as_u64()),
        (StatusCode::OK, Some(1))
    );
    let huge = format!(
        "[{}]",
        vec![fixture("datagen/delivery_sent.json"); 3000].join(",")
    );
    assert!(huge.len() > 1024 * 1024);
    let (status, err) = app.post_raw("/v1/ingest/datagen", huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(err["error"]["code"], "payload_too_large");
    let (status, q) = app
        .send(
            app.client
                .get(app.url("/v1/admin/quarantine"))
                .bearer_auth(ADMIN),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let rows = q["data"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["reason"], "unsupported_field");
    assert_eq!(
        rows[1]["body"],
        json!({"surprise": "shape"}),
        "kept verbatim, as JSON"
    );
    assert_eq!(
        app.get("/v1/admin/quarantine", "not-admin").await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, err) = app.post_raw("/v1/ingest/karix", "{}").await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (status, err) = app
        .send(app.client.delete(app.url("/v1/ingest/meta")))
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed"))
    );
}

async fn projects_see_only_their_own_messages(app: &TestApp) {
    let acme = app.create_project("acme", &["+919812345678"]).await;
    let other = app.create_project("other", &["+15550783881"]).await;
    app.post_raw("/datagen-webhook", fixture("datagen/delivery_sent.json"))
        .await;
    app.process().await;
    assert_eq!(app.get(&message_path(WAMID), &acme).await.0, StatusCode::OK);
    let (status, err) = app.get(&message_path(WAMID), &other).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (status, err) = app
        .send(app.client.get(app.url(&message_path(WAMID))))
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );
    assert_eq!(
        app.get(&message_path(WAMID), "wgk_made_up").await.0,
        StatusCode::UNAUTHORIZED
    );
    let (_, list) = app.get("/v1/messages", &other).await;
    assert_eq!(list["data"], json!([]));
}

async fn listing_pages_and_filters(app: &TestApp) {
    let key = app.create_project("acme", &["+919812345678"]).await;
    let events: Vec<Value> = (0..7)
        .map(|i| {
            let status = if i < 2 { "not sent" } else { "delivered" };
            json!({
                "events": {"eventType": "DELIVERY EVENTS", "mid": format!("wamid.list{i}"), "timestamp": "1732700000"},
                "notificationAttributes": {"status": status},
                "recipient": {"to": "919876543210", "reference": {"parent_campaign_id": if i % 2 == 0 { "even" } else { "odd" }}},
                "sender": {"from": "919812345678"},
            })
        })
        .collect();
    app.post_raw("/v1/ingest/datagen", Value::Array(events).to_string())
        .await;
    assert_eq!(app.process().await, 7);
    let mut seen = Vec::new();
    let mut path = "/v1/messages?limit=3".to_owned();
    loop {
        let (status, page) = app.get(&path, &key).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        seen.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["wamid"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/messages?limit=3&after={c}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7);
    let (_, failed) = app.get("/v1/messages?status=failed", &key).await;
    assert_eq!(failed["data"].as_array().unwrap().len(), 2);
    let (_, even) = app
        .get("/v1/messages?campaign_id=even&status=delivered", &key)
        .await;
    assert_eq!(
        even["data"].as_array().unwrap().len(),
        3,
        "wamid.list2, 4 and 6"
    );
    let (status, err) = app.get("/v1/messages?status=lost", &key).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_query"))
    );
    assert_eq!(
        app.get("/v1/messages?limit=0", &key).await.0,
        StatusCode::BAD_REQUEST
    );
}

async fn unknown_business_number_is_quarantined(app: &TestApp) {
    let (status, body) = app
        .post_raw("/datagen-webhook", fixture("datagen/delivery_read.json"))
        .await;
    assert_eq!(
        (status, body["accepted"].as_u64()),
        (StatusCode::OK, Some(1))
    );
    app.process().await;
    let (_, q) = app
        .send(
            app.client
                .get(app.url("/v1/admin/quarantine"))
                .bearer_auth(ADMIN),
        )
        .await;
    assert_eq!(q["data"][0]["reason"], "unknown_business_number", "{q}");
    // Redelivery or a BSP retry does not quarantine it twice.
    app.post_raw("/datagen-webhook", fixture("datagen/delivery_read.json"))
        .await;
    app.process().await;
    let (_, q) = app
        .send(
            app.client
                .get(app.url("/v1/admin/quarantine"))
                .bearer_auth(ADMIN),
        )
        .await;
    assert_eq!(q["data"].as_array().unwrap().len(), 1);
    // Once the project exists (the cached "absent" is dropped on creation), events go through.
    let key = app.create_project("late", &["+919812345678"]).await;
    app.post_raw("/datagen-webhook", fixture("datagen/delivery_read.json"))
        .await;
    app.process().await;
    assert_eq!(
        app.get(&message_path(WAMID), &key).await.1["status"],
        "read"
    );
}

async fn ops_endpoints(app: &TestApp) {
    let (status, h) = app.send(app.client.get(app.url("/healthz"))).await;
    assert_eq!((status, h["status"].as_str()), (StatusCode::OK, Some("ok")));
    let (status, r) = app.send(app.client.get(app.url("/readyz"))).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["checks"]["store"]["status"], "ok");
    app.create_project("acme", &["+919812345678"]).await;
    app.post_raw("/datagen-webhook", fixture("datagen/delivery_read.json"))
        .await;
    app.post_raw("/datagen-webhook", "{]").await;
    let text = app.metrics().await;
    for needle in [
        "wagate_ingress_events_accepted_total{provider=\"datagen\"} 1",
        "wagate_ingress_rejected_total{provider=\"datagen\",reason=\"invalid_json\"} 1",
        "wagate_ingress_publish_events_bucket",
        "wagate_store_operation_seconds_bucket",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    let (status, q) = app
        .send(
            app.client
                .get(app.url("/v1/admin/queues/events"))
                .bearer_auth(ADMIN),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(q["depth"], 1, "the event waits for the processor: {q}");
}

/// Meta's signature check and subscription handshake, configured.
#[tokio::test]
async fn meta_signature_and_handshake() {
    let Some(app) = TestApp::spawn_with(Backend::Embedded, |c| {
        c.meta_app_secret = Some("app-secret".into());
        c.meta_verify_token = Some("verify-me".into());
    })
    .await
    else {
        return;
    };
    let body = fixture("meta/status_sent.json");
    let (status, err) = app.post_raw("/v1/ingest/meta", body.clone()).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );
    let bad = format!("sha256={}", hmac_sha256_hex(b"wrong", body.as_bytes()));
    let req = app
        .client
        .post(app.url("/v1/ingest/meta"))
        .header("x-hub-signature-256", bad)
        .body(body.clone());
    assert_eq!(app.send(req).await.0, StatusCode::UNAUTHORIZED);
    let good = format!("sha256={}", hmac_sha256_hex(b"app-secret", body.as_bytes()));
    let req = app
        .client
        .post(app.url("/v1/ingest/meta"))
        .header("x-hub-signature-256", good)
        .body(body);
    let (status, ok) = app.send(req).await;
    assert_eq!((status, ok["accepted"].as_u64()), (StatusCode::OK, Some(1)));
    let hs = app.client.get(app.url(
        "/v1/ingest/meta?hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=1158201444",
    ));
    let resp = hs.send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.text().await.unwrap(), "1158201444");
    let hs = app
        .client
        .get(app.url("/v1/ingest/meta?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1"));
    assert_eq!(app.send(hs).await.0, StatusCode::FORBIDDEN);
    app.stop().await;
}

/// With an ingress token configured, webhooks without it are refused; both ways of passing it
/// work (Karix can be given headers, Meta only a URL).
#[tokio::test]
async fn ingress_token_when_configured() {
    let Some(app) = TestApp::spawn_with(Backend::Embedded, |c| {
        c.ingress_token = Some("hook-secret".into())
    })
    .await
    else {
        return;
    };
    let body = fixture("datagen/delivery_sent.json");
    let (status, err) = app.post_raw("/datagen-webhook", body.clone()).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );
    assert_eq!(
        app.post_raw("/datagen-webhook?token=wrong", body.clone())
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.post_raw("/datagen-webhook?token=hook-secret", body.clone())
            .await
            .0,
        StatusCode::OK
    );
    let req = app
        .client
        .post(app.url("/v1/ingest/datagen"))
        .bearer_auth("hook-secret")
        .body(body);
    assert_eq!(app.send(req).await.0, StatusCode::OK);
    let meta = fixture("meta/status_sent.json");
    assert_eq!(
        app.post_raw("/v1/ingest/meta", meta.clone()).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.post_raw("/v1/ingest/meta?token=hook-secret", meta)
            .await
            .0,
        StatusCode::OK
    );
    app.stop().await;
}

/// The bulk routes lift the body limit for CSVs only: their JSON bodies stop at 64 KiB, with
/// the API's JSON error.
async fn bulk_routes_take_at_most_64_kib_of_json(app: &TestApp) {
    use reqwest::Method;
    let key = app.create_project("acme", &["+919812345678"]).await;
    let padded = |n: usize| json!({"campaign_id": "cmp_none", "csv_url": format!("https://example.com/{}", "a".repeat(n))});
    let (status, err) = app
        .call(
            Method::POST,
            "/project/campaign/event/send",
            &key,
            Some(padded(70 * 1024)),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{err}");
    assert_eq!(err["error"]["code"], "payload_too_large");
    // Under the limit the body is read, and answered on its merits.
    let (status, err) = app
        .call(
            Method::POST,
            "/project/campaign/event/send",
            &key,
            Some(padded(60 * 1024)),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{err}");
    let (status, c) = app
        .call(
            Method::POST,
            "/project/campaign",
            &key,
            Some(json!({"name": "n", "template_id": "t", "provider": "datagen", "sender": "+919812345678"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    let (status, err) = app
        .call(
            Method::POST,
            &format!("/project/campaign/{}/recipients", c["id"].as_str().unwrap()),
            &key,
            Some(padded(70 * 1024)),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{err}");
    assert_eq!(err["error"]["code"], "payload_too_large");
}
