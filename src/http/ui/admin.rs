//! The admin pages (admin token): projects and their numbers, key rotation (the key shown
//! once), queue depths with dead-letter redrive, quarantine with replay, backend readiness.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde_json::{Value, json};

use super::Ui;
use super::api::seg;
use super::guard::{AdminSigned, Posted};
use super::page::{Chrome, Flash, back, error_page, html, refused};
use super::session::Who;
use super::view::{data, s, when};

const QUEUES: [&str; 3] = ["events", "forward", "send"];

pub struct ProjectRow {
    pub id: String,
    pub name: String,
    pub numbers: Vec<String>,
    pub created: String,
}

pub struct QueueRow {
    pub name: &'static str,
    pub depth: String,
    pub dead: String,
}

pub struct QuarantineRow {
    pub reason: String,
    pub number: String,
    pub at: String,
    pub body: String,
}

#[derive(Template)]
#[template(path = "ui/admin.html")]
struct AdminPage {
    chrome: Chrome,
    projects: Vec<ProjectRow>,
    queues: Vec<QueueRow>,
    quarantine: Vec<QuarantineRow>,
    ready: Vec<(String, String)>,
    flash: Flash,
    new_key: Option<(String, String)>,
}

async fn page(
    ui: &Ui,
    chrome: Chrome,
    flash: Flash,
    new_key: Option<(String, String)>,
) -> Response {
    let api = &ui.api;
    let projects = match api.get(&Who::Admin, "/v1/projects?limit=1000").await {
        Ok(v) => data(&v)
            .iter()
            .map(|p| ProjectRow {
                id: s(&p["id"]),
                name: s(&p["name"]),
                numbers: p["numbers"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or(&[])
                    .iter()
                    .map(|n| match s(&n["meta_phone_number_id"]) {
                        id if id.is_empty() => s(&n["number"]),
                        id => format!("{} (Meta id {id})", s(&n["number"])),
                    })
                    .collect(),
                created: when(&p["created_at"]),
            })
            .collect(),
        Err(r) => return refused(chrome, r),
    };
    let mut queues = Vec::new();
    for q in QUEUES {
        let v = api
            .get(&Who::Admin, &format!("/v1/admin/queues/{q}"))
            .await
            .unwrap_or(Value::Null);
        queues.push(QueueRow {
            name: q,
            depth: s(&v["depth"]),
            dead: s(&v["dead_letters"]),
        });
    }
    let quarantine = api
        .get(&Who::Admin, "/v1/admin/quarantine?limit=20")
        .await
        .map(|v| {
            data(&v)
                .iter()
                .map(|item| QuarantineRow {
                    reason: s(&item["reason"]),
                    number: s(&item["business_number"]),
                    at: when(&item["received_at"]),
                    body: match &item["body"] {
                        Value::String(b) => b.chars().take(300).collect(),
                        other => other.to_string().chars().take(300).collect(),
                    },
                })
                .collect()
        })
        .unwrap_or_default();
    let readyz = api.get(&Who::Admin, "/readyz").await;
    let checks = match &readyz {
        Ok(v) => v["checks"].clone(),
        Err(_) => Value::Null,
    };
    let ready = checks
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        format!("{} ({})", s(&v["status"]), s(&v["backend"])),
                    )
                })
                .collect()
        })
        .unwrap_or_else(|| vec![("gateway".into(), "not ready".into())]);
    html(&AdminPage {
        chrome,
        projects,
        queues,
        quarantine,
        ready,
        flash,
        new_key,
    })
}

/// `GET /ui/admin`.
pub async fn overview(
    State(ui): State<Ui>,
    admin: AdminSigned,
    Query(flash): Query<Flash>,
) -> Response {
    let chrome = admin.0.chrome(&ui);
    page(&ui, chrome, flash, None).await
}

/// `POST /ui/admin/do/{action}`: rotate a key, redrive a queue, replay the quarantine.
pub async fn act(State(ui): State<Ui>, Path(action): Path<String>, posted: Posted) -> Response {
    let chrome = posted.signed.chrome(&ui);
    if posted.signed.who() != &Who::Admin {
        return error_page(
            axum::http::StatusCode::FORBIDDEN,
            Some(chrome),
            "The admin pages need the admin token.",
        );
    }
    let api = &ui.api;
    let result = match action.as_str() {
        "rotate-key" => {
            let project = posted.get("project").unwrap_or("");
            match api
                .post(
                    &Who::Admin,
                    &format!("/v1/projects/{}/rotate-key", seg(project)),
                    json!({}),
                )
                .await
            {
                Ok(v) => {
                    let key = Some((s(&v["id"]), s(&v["api_key"])));
                    return page(&ui, chrome, Flash::default(), key).await;
                }
                Err(r) => Err(r),
            }
        }
        "redrive" => {
            let q = posted.get("queue").unwrap_or("");
            api.post(
                &Who::Admin,
                &format!("/v1/admin/queues/{}/redrive", seg(q)),
                json!({}),
            )
            .await
            .map(|v| format!("{} dead letters of {q} moved back.", s(&v["moved"])))
        }
        "replay" => api
            .post(&Who::Admin, "/v1/admin/quarantine/replay", json!({}))
            .await
            .map(|v| format!("{} quarantined events replayed.", s(&v["replayed"]))),
        _ => return back("/ui/admin", "error", "That action does not exist."),
    };
    match result {
        Ok(done) => back("/ui/admin", "done", &done),
        Err(r) => back("/ui/admin", "error", &r.message),
    }
}
