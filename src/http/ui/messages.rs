//! Finding a message (by wamid, or by the recipient's phone) and its status timeline.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::Value;

use super::Ui;
use super::api::seg;
use super::guard::ProjectSigned;
use super::page::{Chrome, html, refused};
use super::view::{data, s, when};

/// Phone search reads the project's messages page by page (the API has no phone index); it
/// stops after this many, and says so.
const PHONE_SCAN_PAGES: usize = 10;

pub struct MessageRow {
    pub wamid: String,
    pub wamid_seg: String,
    pub phone: String,
    pub status: String,
    pub campaign: String,
    pub updated: String,
}

fn row(m: &Value) -> MessageRow {
    MessageRow {
        wamid: s(&m["wamid"]),
        wamid_seg: seg(&s(&m["wamid"])),
        phone: s(&m["phone"]),
        status: s(&m["status"]),
        campaign: s(&m["campaign_id"]),
        updated: when(&m["updated_at"]),
    }
}

#[derive(Template)]
#[template(path = "ui/messages.html")]
struct SearchPage {
    chrome: Chrome,
    q: String,
    rows: Vec<MessageRow>,
    note: String,
}

#[derive(serde::Deserialize)]
pub struct Search {
    #[serde(default)]
    q: String,
}

fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

fn looks_like_phone(q: &str) -> bool {
    !q.is_empty()
        && q.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')'))
}

/// `GET /ui/messages?q=`: a wamid opens its timeline; a phone lists its messages.
pub async fn search(
    State(ui): State<Ui>,
    signed: ProjectSigned,
    Query(Search { q }): Query<Search>,
) -> Response {
    let who = signed.0.who();
    let chrome = signed.0.chrome(&ui);
    let q = q.trim().to_owned();
    let mut rows = Vec::new();
    let mut note = String::new();
    if q.is_empty() {
        match ui.api.get(who, "/v1/messages?limit=50").await {
            Ok(v) => rows = data(&v).iter().map(row).collect(),
            Err(r) => return refused(chrome, r),
        }
        if rows.is_empty() {
            note = "No messages yet. They appear here once a campaign sends, or a BSP reports a status.".into();
        }
    } else if looks_like_phone(&q) {
        let wanted = digits(&q);
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let path = match &cursor {
                Some(c) => format!("/v1/messages?limit=1000&cursor={}", seg(c)),
                None => "/v1/messages?limit=1000".to_owned(),
            };
            let v = match ui.api.get(who, &path).await {
                Ok(v) => v,
                Err(r) => return refused(chrome, r),
            };
            rows.extend(
                data(&v)
                    .iter()
                    .filter(|m| digits(&s(&m["phone"])).ends_with(&wanted))
                    .map(row),
            );
            pages += 1;
            cursor = v["next_cursor"].as_str().map(str::to_owned);
            if cursor.is_none() {
                break;
            }
            if pages == PHONE_SCAN_PAGES {
                note = format!(
                    "Only the first {} messages were searched. Search by message id (wamid) to find any message.",
                    PHONE_SCAN_PAGES * 1000
                );
                break;
            }
        }
        if rows.is_empty() && note.is_empty() {
            note = format!("No message was sent to {q}.");
        }
    } else {
        match ui.api.get(who, &format!("/v1/messages/{}", seg(&q))).await {
            Ok(_) => return Redirect::to(&format!("/ui/messages/{}", seg(&q))).into_response(),
            Err(r) if r.status == axum::http::StatusCode::NOT_FOUND => {
                note = "No message has that id in this project.".into();
            }
            Err(r) => return refused(chrome, r),
        }
    }
    html(&SearchPage {
        chrome,
        q,
        rows,
        note,
    })
}

pub struct EventRow {
    pub status: String,
    pub occurred: String,
    pub received: String,
    pub error_code: String,
    pub error_message: String,
}

#[derive(Template)]
#[template(path = "ui/message.html")]
struct MessagePage {
    chrome: Chrome,
    m: MessageRow,
    business_number: String,
    provider: String,
    events: Vec<EventRow>,
}

/// `GET /ui/messages/{wamid}`: the status timeline, oldest first, with the BSP's error codes.
pub async fn one(
    State(ui): State<Ui>,
    signed: ProjectSigned,
    Path(wamid): Path<String>,
) -> Response {
    let chrome = signed.0.chrome(&ui);
    let m = match ui
        .api
        .get(signed.0.who(), &format!("/v1/messages/{}", seg(&wamid)))
        .await
    {
        Ok(m) => m,
        Err(r) => return refused(chrome, r),
    };
    let events = m["events"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .map(|e| EventRow {
            status: s(&e["status"]),
            occurred: when(&e["occurred_at"]),
            received: when(&e["received_at"]),
            error_code: s(&e["error"]["code"]),
            error_message: s(&e["error"]["message"]),
        })
        .collect();
    html(&MessagePage {
        chrome,
        business_number: s(&m["business_number"]),
        provider: s(&m["provider"]),
        m: row(&m),
        events,
    })
}
