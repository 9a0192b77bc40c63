//! Statuses beyond sent/failed/delivered/read, and values that cannot be represented, end to
//! end on both backend sets: webhook in, queue, processor, history and quarantine out.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::app::{ADMIN, TestApp, on_both_backends};

on_both_backends!(
    meta_reports_reach_the_history,
    datagen_unknown_words_reach_the_history,
    unrepresentable_values_are_quarantined,
);

/// A Cloud API body with the given statuses for business number +1 555 078 3881.
fn meta(statuses: Value) -> String {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{
        "field": "messages",
        "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
            "statuses": statuses
        }
    }]}]})
    .to_string()
}

fn meta_status(wamid: &str, word: &str, at: &str) -> Value {
    json!({"id": wamid, "status": word, "timestamp": at, "recipient_id": "16505551234"})
}

fn datagen(wamid: &str, word: &str, at: &str) -> String {
    json!({
        "channel": "WABA",
        "events": {"eventType": "DELIVERY EVENTS", "mid": wamid, "timestamp": at},
        "notificationAttributes": {"status": word, "reason": "", "code": ""},
        "recipient": {"to": "919876543210", "recipient_type": "individual"},
        "sender": {"from": "919812345678"}
    })
    .to_string()
}

fn words(message: &Value) -> Vec<&str> {
    message["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect()
}

async fn quarantine_reasons(app: &TestApp) -> Vec<String> {
    let (status, q) = app
        .send(
            app.client
                .get(app.url("/v1/admin/quarantine"))
                .bearer_auth(ADMIN),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    q["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].as_str().unwrap().to_owned())
        .collect()
}

async fn meta_reports_reach_the_history(app: &TestApp) {
    let key = app.create_project("meta", &["+15550783881"]).await;
    let body = meta(json!([
        meta_status("wamid.V", "sent", "1732700300"),
        meta_status("wamid.V", "delivered", "1732700301"),
        meta_status("wamid.V", "played", "1732700302"),
        meta_status("wamid.V", "deleted", "1732700303"),
        meta_status("wamid.V", "warning", "1732700304"),
        meta_status("wamid.V", "pending_review", "1732700305"),
    ]));
    let (status, reply) = app.post_raw("/v1/ingest/meta", body).await;
    assert_eq!(
        (status, reply),
        (StatusCode::OK, json!({"accepted": 6, "quarantined": 0}))
    );
    assert_eq!(app.process().await, 6);
    let (_, m) = app.get("/v1/messages/wamid.V", &key).await;
    assert_eq!(m["status"], "read", "played ranks with read: {m}");
    assert_eq!(
        words(&m),
        [
            "sent",
            "delivered",
            "played",
            "deleted",
            "warning",
            "pending_review"
        ]
    );
    assert!(quarantine_reasons(app).await.is_empty());
}

async fn datagen_unknown_words_reach_the_history(app: &TestApp) {
    let key = app.create_project("dg", &["+919812345678"]).await;
    for (word, at) in [("ENROUTE", "1732700001"), ("delivered", "1732700002")] {
        let (status, _) = app
            .post_raw("/datagen-webhook", datagen("w.dg", word, at))
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    // A BSP retry of the same unknown word is one history row; another word is another row.
    app.post_raw("/datagen-webhook", datagen("w.dg", "ENROUTE", "1732700001"))
        .await;
    app.post_raw("/datagen-webhook", datagen("w.dg", "queued", "1732700000"))
        .await;
    app.process().await;
    let (_, m) = app.get("/v1/messages/w.dg", &key).await;
    assert_eq!(m["status"], "delivered", "{m}");
    assert_eq!(words(&m), ["queued", "ENROUTE", "delivered"]);
    assert!(quarantine_reasons(app).await.is_empty());
}

async fn unrepresentable_values_are_quarantined(app: &TestApp) {
    let key = app.create_project("meta", &["+15550783881"]).await;
    let mut huge_recipient = meta_status("wamid.P", "read", "1732700300");
    huge_recipient["recipient_id"] = json!("9".repeat(5000));
    let body = meta(json!([
        meta_status("wamid.T", "read", "99999999999999999"),
        meta_status("wamid.T", "delivered", "tomorrow"),
        huge_recipient,
        meta_status("wamid.ok", "read", "1732700300"),
    ]));
    let (status, reply) = app.post_raw("/v1/ingest/meta", body).await;
    assert_eq!(
        (status, reply),
        (StatusCode::OK, json!({"accepted": 1, "quarantined": 3}))
    );
    let bad_business = meta(json!([meta_status("wamid.B", "read", "1732700300")]))
        .replace("\"15550783881\"", "\"1555078388x\"");
    app.post_raw("/v1/ingest/meta", bad_business).await;
    app.process().await;
    let mut reasons = quarantine_reasons(app).await;
    reasons.sort();
    assert_eq!(
        reasons,
        [
            "invalid_business_number",
            "invalid_phone",
            "invalid_timestamp",
            "invalid_timestamp"
        ]
    );
    for wamid in ["wamid.T", "wamid.P", "wamid.B"] {
        let (status, _) = app.get(&format!("/v1/messages/{wamid}"), &key).await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "{wamid} was not stored altered"
        );
    }
    let (_, m) = app.get("/v1/messages/wamid.ok", &key).await;
    assert_eq!(m["events"][0]["occurred_at"], "2024-11-27T09:38:20.000Z");
    assert_eq!(m["phone"], "+16505551234");
}
