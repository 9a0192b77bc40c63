//! The campaigns pages: the list with live progress, one campaign with its counts, chart,
//! actions and results download.

use askama::Template;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Ui;
use super::api::seg;
use super::chart::{Chart, status_chart};
use super::guard::{Posted, ProjectSigned};
use super::page::{Chrome, Flash, back, html, refused};
use super::view::{CampaignView, data, s, when};

#[derive(Template)]
#[template(path = "ui/campaigns.html")]
struct ListPage {
    chrome: Chrome,
    campaigns: Vec<CampaignView>,
    flash: Flash,
}

async fn campaigns_of(ui: &Ui, signed: &ProjectSigned) -> Result<Vec<CampaignView>, Response> {
    let v = ui
        .api
        .get(signed.0.who(), "/project/campaign?limit=100")
        .await
        .map_err(|r| refused(signed.0.chrome(ui), r))?;
    Ok(data(&v).iter().map(CampaignView::of).collect())
}

/// `GET /ui/campaigns`.
pub async fn list(
    State(ui): State<Ui>,
    signed: ProjectSigned,
    Query(flash): Query<Flash>,
) -> Response {
    match campaigns_of(&ui, &signed).await {
        Ok(campaigns) => html(&ListPage {
            chrome: signed.0.chrome(&ui),
            campaigns,
            flash,
        }),
        Err(r) => r,
    }
}

pub struct RecipientRow {
    pub phone: String,
    pub wamid: String,
    pub wamid_seg: String,
    pub status: String,
    pub error: String,
    pub updated: String,
}

#[derive(Template)]
#[template(path = "ui/campaign.html")]
struct OnePage {
    chrome: Chrome,
    c: CampaignView,
    actions: Vec<(&'static str, &'static str)>,
    chart: Chart,
    recent: Vec<RecipientRow>,
    flash: Flash,
}

/// `GET /ui/campaigns/{id}`: another project's campaign is the API's 404.
pub async fn one(
    State(ui): State<Ui>,
    signed: ProjectSigned,
    Path(id): Path<String>,
    Query(flash): Query<Flash>,
) -> Response {
    let who = signed.0.who();
    let chrome = signed.0.chrome(&ui);
    let c = match ui
        .api
        .get(who, &format!("/project/campaign/{}", seg(&id)))
        .await
    {
        Ok(c) => CampaignView::of(&c),
        Err(r) => return refused(chrome, r),
    };
    let messages = ui
        .api
        .get(
            who,
            &format!("/v1/messages?campaign_id={}&limit=1000", seg(&c.id)),
        )
        .await
        .unwrap_or(Value::Null);
    let recent = data(&messages)
        .iter()
        .take(50)
        .map(|m| {
            let last_error = m["events"]
                .as_array()
                .and_then(|es| es.iter().rev().find(|e| !e["error"].is_null()))
                .map(|e| format!("{} {}", s(&e["error"]["code"]), s(&e["error"]["message"])))
                .unwrap_or_default();
            RecipientRow {
                phone: s(&m["phone"]),
                wamid_seg: seg(&s(&m["wamid"])),
                wamid: s(&m["wamid"]),
                status: s(&m["status"]),
                error: last_error,
                updated: when(&m["updated_at"]),
            }
        })
        .collect();
    html(&OnePage {
        chrome,
        actions: c.actions(),
        chart: status_chart(data(&messages)),
        c,
        recent,
        flash,
    })
}

/// `GET /ui/campaigns/{id}/progress`: what the page's script polls while a campaign moves.
pub async fn progress(
    State(ui): State<Ui>,
    signed: ProjectSigned,
    Path(id): Path<String>,
) -> Response {
    match ui
        .api
        .get(signed.0.who(), &format!("/project/campaign/{}", seg(&id)))
        .await
    {
        Ok(c) => Json(json!({
            "id": c["id"],
            "state": c["state"],
            "total": c["total"],
            "counts": c["counts"],
            "send_rate_per_second": c["send_rate_per_second"],
        }))
        .into_response(),
        Err(r) => (r.status, Json(json!({"error": r.message}))).into_response(),
    }
}

/// `GET /ui/campaigns/{id}/results.csv`: the API's export, streamed through as a download.
pub async fn results(
    State(ui): State<Ui>,
    signed: ProjectSigned,
    Path(id): Path<String>,
) -> Response {
    let path = format!("/project/campaign/{}/messages.csv", seg(&id));
    let mut resp = ui
        .api
        .raw(
            signed.0.who(),
            Method::GET,
            &path,
            "text/csv",
            Body::empty(),
        )
        .await;
    if resp.status().is_success() {
        let name: String = id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        if let Ok(v) = HeaderValue::from_str(&format!(
            "attachment; filename=\"campaign-{name}-results.csv\""
        )) {
            resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
        }
        resp
    } else {
        refused(
            signed.0.chrome(&ui),
            super::api::Refused {
                status: resp.status(),
                message: "The results could not be downloaded.".into(),
            },
        )
    }
}

/// `POST /ui/campaigns/{id}/do/{action}`: start, pause, resume, cancel, retry.
pub async fn act(
    State(ui): State<Ui>,
    Path((id, action)): Path<(String, String)>,
    posted: Posted,
) -> Response {
    let who = posted.signed.who();
    let page = format!("/ui/campaigns/{}", seg(&id));
    let result = match action.as_str() {
        "start" => {
            ui.api
                .post(
                    who,
                    "/project/campaign/event/send",
                    json!({"campaign_id": id}),
                )
                .await
        }
        "pause" | "resume" | "cancel" | "retry-failed" | "retry-unknown" => {
            ui.api
                .post(
                    who,
                    &format!("/project/campaign/{}/{action}", seg(&id)),
                    json!({}),
                )
                .await
        }
        _ => return back(&page, "error", "That action does not exist."),
    };
    match result {
        Ok(v) => {
            let done = match action.as_str() {
                "start" if s(&v["state"]) == "scheduled" => "Scheduled.".to_owned(),
                "start" => "Sending started.".to_owned(),
                "pause" => "Paused: nothing new is sent until you resume.".to_owned(),
                "resume" => "Resumed.".to_owned(),
                "cancel" => "Cancelled: recipients not yet sent will not be.".to_owned(),
                _ => format!("{} recipients queued again.", s(&v["requeued"])),
            };
            back(&page, "done", &done)
        }
        Err(r) if r.status == axum::http::StatusCode::NOT_FOUND => {
            refused(posted.signed.chrome(&ui), r)
        }
        Err(r) => back(&page, "error", &r.message),
    }
}
