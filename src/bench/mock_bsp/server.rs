//! The mock's HTTP routes: the four BSP send APIs, each answering in its provider's own shapes
//! (success, 401, 400, 429), and `GET /mock/stats` / `GET /mock/sends` for whoever checks a run.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State as Extract;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use tokio::sync::mpsc;

use super::bodies::{Due, Echo, Route};
use super::config::MockConfig;
use super::fate::{Verdict, decide};
use super::state::{SendRecord, State};
use super::{aisensy, cloud_api, karix};
use crate::domain::phone::PhoneNumber;
use crate::domain::providers::send::SendProvider;

/// What the handlers share.
pub struct Mock {
    pub config: MockConfig,
    pub state: Arc<State>,
    /// Numbers each valid send request, to seed its fate and make its id.
    seq: AtomicU64,
    /// `None`: no webhooks.
    webhooks: Option<mpsc::Sender<Due>>,
}

impl Mock {
    pub fn new(config: MockConfig, state: Arc<State>, webhooks: Option<mpsc::Sender<Due>>) -> Mock {
        Mock {
            config,
            state,
            seq: AtomicU64::new(0),
            webhooks,
        }
    }
}

pub type Shared = Arc<Mock>;

pub fn router(mock: Shared) -> Router {
    Router::new()
        .route(
            "/{version}/{phone_number_id}/messages",
            post(cloud_api::meta),
        )
        // Spelled out, not a wildcard: `/{version}/{phone_number_id}/messages` above would take
        // `/aisensy-direct/{id}/messages` as a Meta send.
        .route(
            "/aisensy-direct/{id}/messages",
            post(cloud_api::aisensy_direct_project),
        )
        .route(
            "/aisensy-direct/{version}/{id}/messages",
            post(cloud_api::aisensy_direct_versioned),
        )
        .route("/services/rcm/sendMessage", post(karix::send))
        .route("/campaign/t1/api", post(aisensy::send))
        .route("/campaign/t1/api/v2", post(aisensy::send))
        .route("/mock/stats", get(stats))
        .route("/mock/sends", get(sends))
        .with_state(mock)
}

async fn stats(Extract(mock): Extract<Shared>) -> Response {
    json(StatusCode::OK, &mock.state.stats())
}

async fn sends(Extract(mock): Extract<Shared>) -> Response {
    json(StatusCode::OK, &mock.state.sends())
}

pub fn json<T: Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// An accepted send, ready to record and report.
pub struct Accepted {
    pub provider: SendProvider,
    pub route: Route,
    pub reference: Option<String>,
    pub from: PhoneNumber,
    /// The business number as its webhooks write it.
    pub from_text: String,
    pub phone_number_id: String,
    pub to: PhoneNumber,
    pub to_text: String,
    pub template: String,
    pub echo: Echo,
}

impl Mock {
    /// Counts an invalid request and answers it.
    pub fn invalid<T: Serialize>(&self, body: &T) -> Response {
        self.state.counters.invalid.fetch_add(1, Relaxed);
        json(StatusCode::BAD_REQUEST, body)
    }

    pub fn unauthorized<T: Serialize>(&self, body: &T) -> Response {
        self.state.counters.unauthorized.fetch_add(1, Relaxed);
        json(StatusCode::UNAUTHORIZED, body)
    }

    /// Draws this valid request's fate; for an accepted one, records it, queues its webhooks
    /// and returns its id, built by `id` from the request's number.
    pub async fn settle(
        &self,
        send: impl FnOnce() -> Accepted,
        id: impl FnOnce(u64) -> String,
    ) -> Fate {
        let seq = self.seq.fetch_add(1, Relaxed);
        let (last, statuses) = match decide(&self.config, seq) {
            Verdict::Throttle => {
                self.state.counters.throttled.fetch_add(1, Relaxed);
                return Fate::Throttled;
            }
            Verdict::Reject => {
                self.state.counters.rejected.fetch_add(1, Relaxed);
                return Fate::Rejected;
            }
            Verdict::Accept { last, statuses } => (last, statuses),
        };
        let send = send();
        let id = id(seq);
        self.state.record(SendRecord {
            provider: send.provider,
            reference: send.reference,
            id: id.clone(),
            from: send.from.as_str().to_owned(),
            to: send.to.as_str().to_owned(),
            template: send.template,
            final_status: last,
            duplicate: false,
        });
        if let Some(tx) = &self.webhooks {
            let pending = &self.state.counters.webhook_statuses_pending;
            let n = statuses.len() as u64;
            pending.fetch_add(n, Relaxed);
            let due = Due {
                route: send.route,
                id: id.clone(),
                from: send.from_text,
                phone_number_id: send.phone_number_id,
                to: send.to_text,
                echo: send.echo,
                at_secs: now_secs(),
                statuses,
            };
            if tx.send(due).await.is_err() {
                // Shutting down: these will never be posted.
                pending.fetch_sub(n, Relaxed);
            }
        }
        Fate::Accepted(id)
    }
}

pub enum Fate {
    Throttled,
    Rejected,
    Accepted(String),
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The token after `Bearer ` in `name`, if any.
pub fn bearer<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Any header named like an API key (`x-api-key`, `apikey`, `X-AiSensy-Api-Key`) with a value.
pub fn api_key_header(headers: &HeaderMap) -> bool {
    headers.iter().any(|(name, value)| {
        let folded: String = name
            .as_str()
            .chars()
            .filter(|c| c.is_alphanumeric())
            .collect();
        // AiSensy's Project API names its key `X-AiSensy-Project-API-Pwd`.
        (folded.ends_with("apikey") || folded.ends_with("apipwd")) && !value.is_empty()
    })
}

/// Digits only, as Cloud API webhooks write numbers.
pub fn digits(n: &PhoneNumber) -> String {
    n.as_str().trim_start_matches('+').to_owned()
}
