//! The webhook endpoints pages: list with breaker state, create and rotate (the secret shown
//! once), edit, enable/disable, delete, test ping, breaker reset, the delivery log and
//! dead-letter redrive.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::Ui;
use super::api::seg;
use super::guard::{Posted, ProjectSigned};
use super::page::{Chrome, Flash, back, html, refused};
use super::view::{data, s, when};

pub const TOPICS: [&str; 5] = [
    "datagen.delivery",
    "datagen.user_message",
    "meta.delivery",
    "meta.user_message",
    "*",
];

pub struct EndpointView {
    pub id: String,
    pub url: String,
    pub topics: Vec<String>,
    pub description: String,
    pub enabled: bool,
    pub disabled_reason: String,
    pub breaker: String,
    pub failures: String,
    pub open_until: String,
    pub created: String,
}

impl EndpointView {
    fn of(e: &Value) -> EndpointView {
        EndpointView {
            id: s(&e["id"]),
            url: s(&e["webhook_url"]),
            topics: e["topics"]
                .as_array()
                .map(|ts| ts.iter().map(s).collect())
                .unwrap_or_default(),
            description: s(&e["description"]),
            enabled: e["enabled"].as_bool().unwrap_or(false),
            disabled_reason: s(&e["disabled_reason"]),
            breaker: s(&e["breaker"]["state"]),
            failures: s(&e["breaker"]["consecutive_failures"]),
            open_until: when(&e["breaker"]["open_until"]),
            created: when(&e["created_at"]),
        }
    }

    pub fn has(&self, topic: &&str) -> bool {
        self.topics.iter().any(|t| t == topic)
    }
}

#[derive(Template)]
#[template(path = "ui/webhooks.html")]
struct ListPage {
    chrome: Chrome,
    endpoints: Vec<EndpointView>,
    topics: [&'static str; 5],
    flash: Flash,
}

/// `GET /ui/webhooks`.
pub async fn list(
    State(ui): State<Ui>,
    signed: ProjectSigned,
    Query(flash): Query<Flash>,
) -> Response {
    let chrome = signed.0.chrome(&ui);
    match ui
        .api
        .get(signed.0.who(), "/webhook/config?limit=1000")
        .await
    {
        Ok(v) => html(&ListPage {
            chrome,
            endpoints: data(&v).iter().map(EndpointView::of).collect(),
            topics: TOPICS,
            flash,
        }),
        Err(r) => refused(chrome, r),
    }
}

#[derive(Template)]
#[template(path = "ui/secret.html")]
struct SecretPage {
    chrome: Chrome,
    id: String,
    url: String,
    secret: String,
    rotated: bool,
}

/// `POST /ui/webhooks`: a new endpoint; its secret is shown on this one page only.
pub async fn create(State(ui): State<Ui>, posted: Posted) -> Response {
    let mut body = json!({
        "webhook_url": posted.get("webhook_url").unwrap_or(""),
        "topics": posted.all("topics"),
    });
    if let Some(d) = posted.get("description") {
        body["description"] = json!(d);
    }
    match ui
        .api
        .post(posted.signed.who(), "/webhook/config", body)
        .await
    {
        Ok(v) => html(&SecretPage {
            chrome: posted.signed.chrome(&ui),
            id: s(&v["id"]),
            url: s(&v["webhook_url"]),
            secret: s(&v["shared_secret"]),
            rotated: false,
        }),
        Err(r) => back("/ui/webhooks", "error", &r.message),
    }
}

pub struct DeliveryRow {
    pub id: String,
    pub event_type: String,
    pub status: String,
    pub attempts: String,
    pub last_code: String,
    pub last_error: String,
    pub next_attempt: String,
}

#[derive(Template)]
#[template(path = "ui/webhook.html")]
struct OnePage {
    chrome: Chrome,
    e: EndpointView,
    topics: [&'static str; 5],
    deliveries: Vec<DeliveryRow>,
    filter: String,
    flash: Flash,
}

#[derive(serde::Deserialize)]
pub struct OneQuery {
    status: Option<String>,
    done: Option<String>,
    error: Option<String>,
}

/// `GET /ui/webhooks/{id}?status=`: the endpoint, its edit form and its delivery log.
pub async fn one(
    State(ui): State<Ui>,
    signed: ProjectSigned,
    Path(id): Path<String>,
    Query(q): Query<OneQuery>,
) -> Response {
    let who = signed.0.who();
    let chrome = signed.0.chrome(&ui);
    let e = match ui
        .api
        .get(who, &format!("/webhook/config/{}", seg(&id)))
        .await
    {
        Ok(e) => EndpointView::of(&e),
        Err(r) => return refused(chrome, r),
    };
    let filter = match q.status.as_deref() {
        Some(f @ ("pending" | "succeeded" | "dead")) => f.to_owned(),
        _ => String::new(),
    };
    let mut path = format!("/webhook/config/{}/deliveries?limit=200", seg(&id));
    if !filter.is_empty() {
        path.push_str(&format!("&status={filter}"));
    }
    let deliveries = match ui.api.get(who, &path).await {
        Ok(v) => data(&v)
            .iter()
            .map(|d| DeliveryRow {
                id: s(&d["id"]),
                event_type: s(&d["event_type"]),
                status: s(&d["status"]),
                attempts: s(&d["attempt_count"]),
                last_code: s(&d["last_status_code"]),
                last_error: s(&d["last_error"]),
                next_attempt: when(&d["next_attempt_at"]),
            })
            .collect(),
        Err(r) => return refused(chrome, r),
    };
    html(&OnePage {
        chrome,
        e,
        topics: TOPICS,
        deliveries,
        filter,
        flash: Flash {
            done: q.done,
            error: q.error,
        },
    })
}

/// `POST /ui/webhooks/{id}`: the edit form (URL, topics, description).
pub async fn edit(State(ui): State<Ui>, Path(id): Path<String>, posted: Posted) -> Response {
    let page = format!("/ui/webhooks/{}", seg(&id));
    let body = json!({
        "webhook_url": posted.get("webhook_url").unwrap_or(""),
        "topics": posted.all("topics"),
        "description": posted.get("description").unwrap_or(""),
    });
    match ui
        .api
        .call(
            posted.signed.who(),
            Method::PUT,
            &format!("/webhook/config/{}", seg(&id)),
            Some(body),
        )
        .await
    {
        Ok(_) => back(&page, "done", "Saved."),
        Err(r) if r.status == StatusCode::NOT_FOUND => refused(posted.signed.chrome(&ui), r),
        Err(r) => back(&page, "error", &r.message),
    }
}

/// `POST /ui/webhooks/{id}/do/{action}`.
pub async fn act(
    State(ui): State<Ui>,
    Path((id, action)): Path<(String, String)>,
    posted: Posted,
) -> Response {
    let who = posted.signed.who();
    let base = format!("/webhook/config/{}", seg(&id));
    let page = format!("/ui/webhooks/{}", seg(&id));
    let result = match action.as_str() {
        "enable" | "disable" => {
            let on = action == "enable";
            ui.api
                .call(who, Method::PUT, &base, Some(json!({"enabled": on})))
                .await
                .map(|_| {
                    if on {
                        "Enabled."
                    } else {
                        "Disabled: nothing is delivered to it until you enable it."
                    }
                    .to_owned()
                })
        }
        "delete" => match ui.api.call(who, Method::DELETE, &base, None).await {
            Ok(_) => return back("/ui/webhooks", "done", "Endpoint deleted."),
            Err(r) => Err(r),
        },
        "rotate" => match ui
            .api
            .post(who, &format!("{base}/rotate-secret"), json!({}))
            .await
        {
            Ok(v) => {
                return html(&SecretPage {
                    chrome: posted.signed.chrome(&ui),
                    id: id.clone(),
                    url: String::new(),
                    secret: s(&v["shared_secret"]),
                    rotated: true,
                });
            }
            Err(r) => Err(r),
        },
        "test" => ui
            .api
            .post(who, &format!("{base}/test"), json!({}))
            .await
            .map(|v| {
                if v["delivered"].as_bool() == Some(true) {
                    format!(
                        "Test ping delivered: the endpoint answered {} in {} ms.",
                        s(&v["status_code"]),
                        s(&v["latency_ms"])
                    )
                } else if !v["status_code"].is_null() {
                    format!(
                        "Test ping refused: the endpoint answered {}.",
                        s(&v["status_code"])
                    )
                } else {
                    format!("Test ping failed: {}", s(&v["error"]))
                }
            }),
        "reset-breaker" => ui
            .api
            .post(who, &format!("{base}/breaker/reset"), json!({}))
            .await
            .map(|_| "Circuit breaker closed: held deliveries are being sent now.".to_owned()),
        "redrive" => ui
            .api
            .post(who, &format!("{base}/redrive"), json!({}))
            .await
            .map(|v| format!("{} dead deliveries sent again.", s(&v["redriven"]))),
        "retry" => {
            let delivery = posted.get("delivery").unwrap_or("");
            ui.api
                .post(
                    who,
                    &format!("/webhook/deliveries/{}/retry", seg(delivery)),
                    json!({}),
                )
                .await
                .map(|_| "Delivery queued again.".to_owned())
        }
        _ => return back(&page, "error", "That action does not exist."),
    };
    match result {
        Ok(done) => back(&page, "done", &done),
        Err(r) if r.status == StatusCode::NOT_FOUND => refused(posted.signed.chrome(&ui), r),
        Err(r) => back(&page, "error", &r.message),
    }
}

pub struct AttemptRow {
    pub attempt: String,
    pub status_code: String,
    pub latency: String,
    pub error: String,
    pub snippet: String,
    pub at: String,
}

#[derive(Template)]
#[template(path = "ui/delivery.html")]
struct DeliveryPage {
    chrome: Chrome,
    id: String,
    endpoint_seg: String,
    event_type: String,
    status: String,
    payload: String,
    attempts: Vec<AttemptRow>,
}

/// `GET /ui/deliveries/{id}`: one delivery, its body and every attempt.
pub async fn delivery(
    State(ui): State<Ui>,
    signed: ProjectSigned,
    Path(id): Path<String>,
) -> Response {
    let chrome = signed.0.chrome(&ui);
    let d = match ui
        .api
        .get(signed.0.who(), &format!("/webhook/deliveries/{}", seg(&id)))
        .await
    {
        Ok(d) => d,
        Err(r) => return refused(chrome, r),
    };
    let payload = match &d["payload"] {
        Value::String(p) => p.clone(),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    };
    html(&DeliveryPage {
        chrome,
        id: s(&d["id"]),
        endpoint_seg: seg(&s(&d["endpoint_id"])),
        event_type: s(&d["event_type"]),
        status: s(&d["status"]),
        payload,
        attempts: d["attempts"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[])
            .iter()
            .map(|a| AttemptRow {
                attempt: s(&a["attempt"]),
                status_code: s(&a["status_code"]),
                latency: s(&a["latency_ms"]),
                error: s(&a["error"]),
                snippet: s(&a["response_snippet"]),
                at: when(&a["attempted_at"]),
            })
            .collect(),
    })
}
