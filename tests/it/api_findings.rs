//! What schemathesis found against `/openapi.json`, each fixed and kept fixed here.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::app::{ADMIN, TestApp, on_both_backends};

on_both_backends!(
    a_json_array_is_not_taken_for_an_object,
    redrive_and_replay_limits_are_bounded,
    an_unknown_ingest_provider_is_a_json_404_naming_the_known_ones,
);

fn assert_error(status: StatusCode, body: &Value, want: StatusCode, code: &str) {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
}

/// serde reads a struct from a JSON array, field by field in order: `["acme","Acme",[]]`
/// created a project. Every body the API takes is an object.
async fn a_json_array_is_not_taken_for_an_object(app: &TestApp) {
    let (status, body) = app
        .call(
            Method::POST,
            "/v1/projects",
            ADMIN,
            Some(json!(["arrays", "Arrays", ["+919812345671"]])),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_request",
    );
    let (status, _) = app.get("/v1/projects/arrays", ADMIN).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no project was made");
    let (status, body) = app
        .call(
            Method::POST,
            "/v1/admin/quarantine/replay",
            ADMIN,
            Some(json!([null, null, null, null, 5])),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_request",
    );
    // Not JSON at all is a 400, whatever its first value would have been.
    let key = app.create_project("arrays2", &["+919812345670"]).await;
    let (status, body) = app
        .send(
            app.client
                .post(app.url("/webhook/config"))
                .bearer_auth(&key)
                .body("[1,"),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_json");
}

/// A limit past `i64` made the store fail (a 500); 0 was read as 1.
async fn redrive_and_replay_limits_are_bounded(app: &TestApp) {
    for limit in ["0", "1000001", "18446744073709551615"] {
        let (status, body) = app
            .call(
                Method::POST,
                &format!("/v1/admin/queues/events/redrive?limit={limit}"),
                ADMIN,
                None,
            )
            .await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_query");
    }
    let (status, body) = app
        .call(
            Method::POST,
            "/v1/admin/queues/events/redrive?limit=1000000",
            ADMIN,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for limit in [json!(0), json!(1_000_001), json!(u64::MAX)] {
        let (status, body) = app
            .call(
                Method::POST,
                "/v1/admin/quarantine/replay",
                ADMIN,
                Some(json!({"limit": limit})),
            )
            .await;
        assert_error(
            status,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        );
    }
    let (status, body) = app
        .call(
            Method::POST,
            "/v1/admin/quarantine/replay",
            ADMIN,
            Some(json!({"limit": 1_000_000})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn an_unknown_ingest_provider_is_a_json_404_naming_the_known_ones(app: &TestApp) {
    let (status, body) = app.post_raw("/v1/ingest/karix", "{}").await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("datagen") && message.contains("meta"),
        "{message}"
    );
}
