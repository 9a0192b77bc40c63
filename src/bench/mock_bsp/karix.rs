//! Karix (Datagen) send: `POST /services/rcm/sendMessage` with `Authentication: Bearer` (sic),
//! answered with Karix's `statusCode`/`statusDesc`/`mid`.

use axum::body::Bytes;
use axum::extract::State as Extract;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::bodies::{Echo, Route};
use super::server::{Accepted, Fate, Shared, bearer, json};
use crate::domain::phone::PhoneNumber;
use crate::domain::providers::send::SendProvider;

#[derive(Deserialize)]
struct KarixSend {
    message: Option<KarixMessage>,
}

#[derive(Deserialize)]
struct KarixMessage {
    content: Option<KarixContent>,
    recipient: Option<KarixRecipient>,
    sender: Option<KarixSender>,
}

#[derive(Deserialize)]
struct KarixContent {
    template: Option<KarixTemplate>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KarixTemplate {
    template_id: Option<String>,
}

#[derive(Deserialize)]
struct KarixRecipient {
    to: Option<String>,
    reference: Option<Box<RawValue>>,
}

#[derive(Deserialize)]
struct KarixSender {
    from: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct KarixReference {
    cust_ref: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KarixReply<'a> {
    status_code: &'static str,
    status_desc: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    mid: Option<&'a str>,
}

fn karix_error<'a>(code: &'static str, desc: &'a str) -> KarixReply<'a> {
    KarixReply {
        status_code: code,
        status_desc: desc,
        mid: None,
    }
}

pub async fn send(Extract(mock): Extract<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    // Karix reads `Authentication`, not `Authorization`.
    if bearer(&headers, "authentication").is_none() {
        return mock.unauthorized(&karix_error("401", "Authentication failed"));
    }
    let Some(message) = serde_json::from_slice::<KarixSend>(&body)
        .ok()
        .and_then(|s| s.message)
    else {
        return mock.invalid(&karix_error("400", "Invalid request body"));
    };
    let template = message
        .content
        .and_then(|c| c.template)
        .and_then(|t| t.template_id)
        .filter(|t| !t.is_empty());
    let (to_raw, reference) = message
        .recipient
        .map_or((None, None), |r| (r.to, r.reference));
    let from_raw = message.sender.and_then(|s| s.from);
    let (Some(template), Some(to_raw), Some(from_raw)) = (template, to_raw, from_raw) else {
        return mock.invalid(&karix_error(
            "400",
            "templateId, recipient.to and sender.from are required",
        ));
    };
    let (Ok(to), Ok(from)) = (PhoneNumber::parse(&to_raw), PhoneNumber::parse(&from_raw)) else {
        return mock.invalid(&karix_error("400", "Invalid recipient or sender number"));
    };
    let cust_ref = match reference
        .as_deref()
        .map(|r| serde_json::from_str::<KarixReference>(r.get()))
    {
        None => None,
        Some(Ok(r)) => r.cust_ref.filter(|c| !c.is_empty()),
        Some(Err(_)) => {
            return mock.invalid(&karix_error("400", "recipient.reference must be an object"));
        }
    };
    let fate = mock
        .settle(
            || Accepted {
                provider: SendProvider::Datagen,
                route: Route::Datagen,
                reference: cust_ref,
                from,
                from_text: from_raw,
                phone_number_id: String::new(),
                to,
                to_text: to_raw,
                template,
                echo: Echo::Karix(reference),
            },
            |seq| mock.state.karix_mid(seq),
        )
        .await;
    match fate {
        Fate::Throttled => json(
            StatusCode::TOO_MANY_REQUESTS,
            &karix_error("429", "Too Many Requests"),
        ),
        Fate::Rejected => json(
            StatusCode::BAD_REQUEST,
            &karix_error("400", "Template not found"),
        ),
        Fate::Accepted(mid) => json(
            StatusCode::OK,
            &KarixReply {
                status_code: "200",
                status_desc: "Successfully Accepted",
                mid: Some(&mid),
            },
        ),
    }
}
