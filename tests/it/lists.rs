//! Every list route, on both backend sets, has one shape: `?cursor=&limit=` in,
//! `{"data": [...], "next_cursor": "…"|null}` out. Each is paged through one item at a time,
//! which must give every item once.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::app::{ADMIN, TestApp, on_both_backends};

on_both_backends!(
    every_list_pages_one_item_at_a_time,
    campaign_list_items_are_the_campaigns_as_shown_alone,
);

const NUMBER: &str = "+919812345678";

fn datagen(wamid: &str, word: &str, business: &str) -> String {
    json!({
        "channel": "WABA",
        "events": {"eventType": "DELIVERY EVENTS", "mid": wamid, "timestamp": "1732700000"},
        "notificationAttributes": {"status": word, "reason": "", "code": ""},
        "recipient": {"to": "919876543210", "recipient_type": "individual"},
        "sender": {"from": business}
    })
    .to_string()
}

/// A user's message to the project's number, as Datagen posts it.
fn datagen_inbound(id: &str) -> String {
    let mut m: Value = serde_json::from_str(&crate::support::app::fixture(
        "datagen/user_initiated_text.json",
    ))
    .unwrap();
    m["events"]["mid"] = json!(id);
    m["eventContent"]["message"]["id"] = json!(id);
    m.to_string()
}

/// Follows `next_cursor` from `path` (which already has `?limit=1` or more) to the end;
/// returns the `id_key` of every item, in order. Each page must have exactly the two fields.
async fn page_through(app: &TestApp, path: &str, key: &str, id_key: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..50 {
        let url = match &cursor {
            None => path.to_owned(),
            Some(c) => format!("{path}&cursor={c}"),
        };
        let (status, page) = app.get(&url, key).await;
        assert_eq!(status, StatusCode::OK, "{url}: {page}");
        let fields: BTreeSet<&str> = page
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(
            fields,
            BTreeSet::from(["data", "next_cursor"]),
            "{url}: {page}"
        );
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= 1, "{url}: {page}");
        ids.extend(data.iter().map(|d| match &d[id_key] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }));
        match &page["next_cursor"] {
            Value::Null => return ids,
            Value::String(c) => cursor = Some(c.clone()),
            other => panic!("{url}: next_cursor {other}"),
        }
    }
    panic!("{path} never ended");
}

async fn every_list_pages_one_item_at_a_time(app: &TestApp) {
    let key = app.create_project("acme", &[NUMBER]).await;
    app.create_project("beta", &["+15550783881"]).await;
    let mut endpoints = Vec::new();
    for url in ["https://hooks.example.com/a", "https://hooks.example.com/b"] {
        let (status, e) = app
            .call(
                Method::POST,
                "/webhook/config",
                &key,
                Some(json!({"webhook_url": url, "topics": ["*"]})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{e}");
        endpoints.push(e["id"].as_str().unwrap().to_owned());
    }
    for (wamid, word) in [
        ("wamid.L1", "sent"),
        ("wamid.L2", "delivered"),
        ("wamid.L3", "read"),
    ] {
        let (status, body) = app
            .post_raw("/datagen-webhook", datagen(wamid, word, "919812345678"))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    for id in ["in-1", "in-2"] {
        let (status, body) = app.post_raw("/datagen-webhook", datagen_inbound(id)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // Two events for a number no project has: quarantined by the processor.
    for wamid in ["wamid.Q1", "wamid.Q2"] {
        let (status, body) = app
            .post_raw("/datagen-webhook", datagen(wamid, "sent", "447700900123"))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    app.process().await;
    let mut campaigns = Vec::new();
    for name in ["first", "second"] {
        let (status, c) = app
            .call(
                Method::POST,
                "/project/campaign",
                &key,
                Some(
                    json!({"name": name, "template_id": "welcome", "provider": "datagen",
                    "sender": NUMBER}),
                ),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{c}");
        campaigns.push(c["id"].as_str().unwrap().to_owned());
    }
    let (status, report) = app
        .send(
            app.client
                .post(app.url(&format!("/project/campaign/{}/recipients", campaigns[0])))
                .bearer_auth(&key)
                .header("content-type", "text/csv")
                .body("phone\n+919800000001\n+919800000002\n+919800000003\n"),
        )
        .await;
    assert_eq!(
        (status, &report["accepted"]),
        (StatusCode::OK, &json!(3)),
        "{report}"
    );

    let deliveries = format!("/webhook/config/{}/deliveries?limit=1", endpoints[0]);
    let recipients = format!(
        "/project/campaign/{}/recipients?status=queued&limit=1",
        campaigns[0]
    );
    let cases: [(&str, &str, &str, usize); 8] = [
        ("/v1/projects?limit=1", ADMIN, "id", 2),
        ("/v1/messages?limit=1", &key, "wamid", 3),
        ("/v1/inbound?limit=1", &key, "message_id", 2),
        ("/v1/admin/quarantine?limit=1", ADMIN, "id", 2),
        ("/webhook/config?limit=1", &key, "id", 2),
        (&deliveries, &key, "id", 5),
        ("/project/campaign?limit=1", &key, "id", 2),
        (&recipients, &key, "id", 3),
    ];
    for (path, token, id_key, n) in cases {
        let ids = page_through(app, path, token, id_key).await;
        assert_eq!(ids.len(), n, "{path}: {ids:?}");
        let distinct: BTreeSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), n, "{path}: each item once: {ids:?}");
        // The whole list in one page is the same items in the same order.
        let whole = path.replace("limit=1", "limit=1000");
        let (_, all) = app.get(&whole, token).await;
        assert_eq!(all["next_cursor"], Value::Null, "{whole}");
        let listed: Vec<String> = all["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| match &d[id_key] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        assert_eq!(listed, ids, "{whole}");
        for bad in ["limit=0", "limit=1001"] {
            let (status, err) = app.get(&path.replace("limit=1", bad), token).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {bad}: {err}");
            assert_eq!(err["error"]["code"], "invalid_query");
        }
    }
    // The names the README gave the cursor before it had one name still work.
    let (_, first) = app.get("/v1/messages?limit=1", &key).await;
    let after = first["next_cursor"].as_str().unwrap();
    let (_, by_cursor) = app
        .get(&format!("/v1/messages?limit=1&cursor={after}"), &key)
        .await;
    let (_, by_after) = app
        .get(&format!("/v1/messages?limit=1&after={after}"), &key)
        .await;
    assert_eq!(by_cursor, by_after);
    let (_, newest) = app.get("/project/campaign?limit=1", &key).await;
    let before = newest["next_cursor"].as_str().unwrap();
    let (_, older) = app
        .get(&format!("/project/campaign?limit=1&before={before}"), &key)
        .await;
    let both: BTreeSet<&str> = [&newest, &older]
        .iter()
        .map(|p| p["data"][0]["id"].as_str().unwrap())
        .collect();
    assert_eq!(both, campaigns.iter().map(String::as_str).collect());
    // A cursor the list never gave is refused, not read as the start.
    for path in [
        "/v1/inbound?cursor=abc",
        "/project/campaign?cursor=nope",
        "/v1/admin/quarantine?cursor=abc",
    ] {
        let token = if path.contains("admin") { ADMIN } else { &key };
        let (status, err) = app.get(path, token).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {err}");
    }
    let (status, err) = app
        .get(
            &format!("/project/campaign/{}/recipients?status=lost", campaigns[0]),
            &key,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("queued, sending, sent, delivered, read, failed"),
        "{err}"
    );
}

async fn campaign_list_items_are_the_campaigns_as_shown_alone(app: &TestApp) {
    let key = app.create_project("acme", &[NUMBER]).await;
    let (status, c) = app
        .call(
            Method::POST,
            "/project/campaign",
            &key,
            Some(
                json!({"name": "spring", "template_id": "welcome", "provider": "datagen",
                "sender": NUMBER}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    let id = c["id"].as_str().unwrap();
    app.send(
        app.client
            .post(app.url(&format!("/project/campaign/{id}/recipients")))
            .bearer_auth(&key)
            .header("content-type", "text/csv")
            .body("phone\n+919800000001\n+919800000002\n"),
    )
    .await;
    let (_, alone) = app.get(&format!("/project/campaign/{id}"), &key).await;
    let (_, list) = app.get("/project/campaign", &key).await;
    let item = &list["data"][0];
    assert_eq!(item["counts"]["queued"], 2, "{item}");
    assert_eq!(item["total"], 2, "{item}");
    assert_eq!(item, &alone);
}
