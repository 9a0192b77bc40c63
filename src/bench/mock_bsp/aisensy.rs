//! AiSensy send: `POST /campaign/t1/api[/v2]` with the API key in the body. Its webhooks are
//! not public, so the mock reports its sends in the Cloud API shape.

use axum::body::Bytes;
use axum::extract::State as Extract;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::bodies::{Echo, Route};
use super::server::{Accepted, Fate, Mock, Shared, digits, json};
use crate::domain::phone::PhoneNumber;
use crate::domain::providers::send::SendProvider;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AisensySend {
    api_key: Option<String>,
    campaign_name: Option<String>,
    destination: Option<String>,
    attributes: Option<serde_json::Value>,
}

#[derive(Serialize)]
struct AisensyMessage<'a> {
    message: &'a str,
}

#[derive(Serialize)]
struct AisensyAccepted<'a> {
    success: &'static str,
    submitted_message_id: &'a str,
}

pub async fn send(Extract(mock): Extract<Shared>, body: Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<AisensySend>(&body) else {
        return mock.invalid(&AisensyMessage {
            message: "Invalid request body",
        });
    };
    let Some(api_key) = req.api_key.filter(|k| !k.trim().is_empty()) else {
        return mock.unauthorized(&AisensyMessage {
            message: "Invalid API key",
        });
    };
    let Some(from) = mock.aisensy_number(&api_key) else {
        return mock.invalid(&AisensyMessage {
            message: "unknown account",
        });
    };
    let Some(campaign) = req.campaign_name.filter(|c| !c.is_empty()) else {
        return mock.invalid(&AisensyMessage {
            message: "campaignName is required",
        });
    };
    let Some(to) = req.destination.and_then(|d| PhoneNumber::parse(&d).ok()) else {
        return mock.invalid(&AisensyMessage {
            message: "Invalid destination",
        });
    };
    let reference = req
        .attributes
        .as_ref()
        .and_then(|a| a.get("wagate_ref"))
        .and_then(|r| r.as_str())
        .filter(|r| !r.is_empty())
        .map(str::to_owned);
    let fate = mock
        .settle(
            || Accepted {
                provider: SendProvider::Aisensy,
                route: Route::Aisensy,
                reference: reference.clone(),
                from_text: digits(&from),
                // AiSensy names no phone_number_id: its business number stands in for it.
                phone_number_id: digits(&from),
                from,
                to_text: digits(&to),
                to,
                template: campaign,
                echo: Echo::Opaque(reference),
            },
            |_| uuid::Uuid::new_v4().to_string(),
        )
        .await;
    match fate {
        Fate::Throttled => json(
            StatusCode::TOO_MANY_REQUESTS,
            &AisensyMessage {
                message: "Too many requests",
            },
        ),
        Fate::Rejected => json(
            StatusCode::BAD_REQUEST,
            &AisensyMessage {
                message: "Campaign does not exist.",
            },
        ),
        Fate::Accepted(id) => json(
            StatusCode::OK,
            &AisensyAccepted {
                success: "true",
                submitted_message_id: &id,
            },
        ),
    }
}

impl Mock {
    /// The business number behind an AiSensy API key: mapped, or `mock-<digits>`.
    fn aisensy_number(&self, key: &str) -> Option<PhoneNumber> {
        if let Some(n) = self.config.aisensy_numbers.get(key) {
            return Some(n.clone());
        }
        key.strip_prefix("mock-")
            .filter(|d| d.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|d| PhoneNumber::parse(d).ok())
    }
}
