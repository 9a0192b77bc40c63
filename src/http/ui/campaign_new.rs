//! Creating a campaign and loading its recipients. The form's script reads the chosen CSV's
//! header row so that template parameters are mapped to the file's own columns, creates the
//! campaign, then uploads the file with a progress bar and shows the import report.

use askama::Template;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::Ui;
use super::api::seg;
use super::guard::{Posted, ProjectSigned, Signed};
use super::page::{Chrome, back, html};
use super::session::Who;

#[derive(Template)]
#[template(path = "ui/campaign_new.html")]
struct NewPage {
    chrome: Chrome,
    providers: [&'static str; 4],
}

/// `GET /ui/campaigns/new`.
pub async fn form(State(ui): State<Ui>, signed: ProjectSigned) -> Response {
    html(&NewPage {
        chrome: signed.0.chrome(&ui),
        providers: ["meta", "datagen", "aisensy", "aisensy_direct"],
    })
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"))
}

/// The API's campaign body from the form's fields.
fn body_of(p: &Posted) -> Value {
    let mut b = Map::new();
    for (field, key) in [
        ("name", "name"),
        ("template_id", "template_id"),
        ("language", "language"),
        ("provider", "provider"),
        ("sender", "sender"),
        ("rate_limit_per_second", "rate_limit_per_second"),
    ] {
        if let Some(v) = p.get(field) {
            b.insert(key.into(), json!(v));
        }
    }
    if let Some(at) = p.get("schedule_time") {
        // `datetime-local` has no zone; the form says the time is UTC.
        let at = if at.len() == 16 {
            format!("{at}:00Z")
        } else {
            format!("{at}Z")
        };
        b.insert("schedule_time".into(), json!(at));
    }
    let fallbacks = p.all("param_fallback");
    let params: Vec<Value> = p
        .all("param_column")
        .into_iter()
        .enumerate()
        .filter(|(_, c)| !c.trim().is_empty())
        .map(|(i, column)| {
            let fallback = fallbacks.get(i).map(|f| f.trim()).unwrap_or("");
            if fallback.is_empty() {
                json!({"column": column.trim()})
            } else {
                json!({"column": column.trim(), "fallback": fallback})
            }
        })
        .collect();
    if !params.is_empty() {
        b.insert("params".into(), Value::Array(params));
    }
    Value::Object(b)
}

/// `POST /ui/campaigns/new`: a draft; JSON for the form's script, else to the new campaign.
pub async fn create(State(ui): State<Ui>, headers: HeaderMap, posted: Posted) -> Response {
    let result = ui
        .api
        .post(posted.signed.who(), "/project/campaign", body_of(&posted))
        .await;
    match (result, wants_json(&headers)) {
        (Ok(v), true) => (StatusCode::CREATED, Json(json!({"id": v["id"]}))).into_response(),
        (Ok(v), false) => back(
            &format!("/ui/campaigns/{}", seg(v["id"].as_str().unwrap_or(""))),
            "done",
            "Campaign created as a draft. Add its recipients, then start it.",
        ),
        (Err(r), true) => (r.status, Json(json!({"error": r.message}))).into_response(),
        (Err(r), false) => back("/ui/campaigns/new", "error", &r.message),
    }
}

/// `POST /ui/campaigns/{id}/recipients`: the CSV (the request body, from the page's script,
/// with the CSRF token in `X-CSRF-Token`) streamed to the API; answers its import report.
pub async fn upload(
    State(ui): State<Ui>,
    signed: Signed,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    let token = req
        .headers()
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !signed.0.csrf_ok(&ui.key, token) {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({"error": "This page has expired: reload it and try again."})),
        )
            .into_response();
    }
    if !matches!(signed.who(), Who::Project(_)) {
        return StatusCode::FORBIDDEN.into_response();
    }
    let path = format!("/project/campaign/{}/recipients", seg(&id));
    let body = Body::new(req.into_body());
    let resp = ui
        .api
        .raw(signed.who(), Method::POST, &path, "text/csv", body)
        .await;
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if status.is_success() {
        (status, Json(v)).into_response()
    } else {
        let message = v["error"]["message"]
            .as_str()
            .unwrap_or("The file could not be loaded.");
        (status, Json(json!({"error": message}))).into_response()
    }
}
