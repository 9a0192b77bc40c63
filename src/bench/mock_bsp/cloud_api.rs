//! Meta's Cloud API send (`POST /{version}/{phone_number_id}/messages`) and AiSensy-direct,
//! which speaks the same API under `/aisensy-direct`: Meta-shaped answers and errors.

use axum::body::Bytes;
use axum::extract::{Path, State as Extract};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::bodies::{Echo, Route};
use super::server::{Accepted, Fate, Mock, Shared, api_key_header, bearer, digits, json};
use crate::domain::phone::PhoneNumber;
use crate::domain::providers::send::SendProvider;

#[derive(Deserialize)]
struct CloudSend {
    messaging_product: Option<String>,
    to: Option<String>,
    template: Option<CloudTemplate>,
    biz_opaque_callback_data: Option<String>,
}

#[derive(Deserialize)]
struct CloudTemplate {
    name: Option<String>,
    language: Option<CloudLanguage>,
}

/// Meta's description of the Cloud API requires both (`LanguageObject`), and allows one
/// policy, `deterministic`.
#[derive(Deserialize)]
struct CloudLanguage {
    policy: Option<String>,
    code: Option<String>,
}

#[derive(Serialize)]
struct CloudError<'a> {
    error: CloudErrorBody<'a>,
}

#[derive(Serialize)]
struct CloudErrorBody<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    code: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_data: Option<CloudErrorData<'a>>,
    fbtrace_id: &'static str,
}

#[derive(Serialize)]
struct CloudErrorData<'a> {
    messaging_product: &'static str,
    details: &'a str,
}

fn cloud_error<'a>(message: &'a str, code: u32, details: Option<&'a str>) -> CloudError<'a> {
    CloudError {
        error: CloudErrorBody {
            message,
            kind: "OAuthException",
            code,
            error_data: details.map(|details| CloudErrorData {
                messaging_product: "whatsapp",
                details,
            }),
            fbtrace_id: "AmockBspTraceId",
        },
    }
}

#[derive(Serialize)]
struct CloudAccepted<'a> {
    messaging_product: &'static str,
    contacts: [CloudContact<'a>; 1],
    messages: [CloudMessage<'a>; 1],
}

#[derive(Serialize)]
struct CloudContact<'a> {
    input: &'a str,
    wa_id: &'a str,
}

#[derive(Serialize)]
struct CloudMessage<'a> {
    id: &'a str,
    message_status: &'static str,
}

pub async fn meta(
    Extract(mock): Extract<Shared>,
    Path((_version, phone_number_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if bearer(&headers, "authorization").is_none() {
        return mock.unauthorized(&cloud_error(
            "Invalid OAuth access token - Cannot parse access token",
            190,
            None,
        ));
    }
    mock.cloud_api(SendProvider::Meta, &phone_number_id, &body)
        .await
}

pub async fn aisensy_direct(
    Extract(mock): Extract<Shared>,
    Path(rest): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if bearer(&headers, "authorization").is_none() && !api_key_header(&headers) {
        return mock.unauthorized(&cloud_error(
            "Invalid OAuth access token - Cannot parse access token",
            190,
            None,
        ));
    }
    // `{version}/{phone_number_id}/messages`, as against graph.facebook.com.
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        [.., id, "messages"] => mock.cloud_api(SendProvider::AisensyDirect, id, &body).await,
        _ => json(
            StatusCode::NOT_FOUND,
            &cloud_error("Unknown path components", 2500, None),
        ),
    }
}

/// `POST /aisensy-direct/{id}/messages`: a project URL naming the sender by `id`.
pub async fn aisensy_direct_project(
    mock: Extract<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    aisensy_direct(mock, Path(format!("{id}/messages")), headers, body).await
}

/// `POST /aisensy-direct/{version}/{id}/messages`: the Graph-style path under the prefix.
pub async fn aisensy_direct_versioned(
    mock: Extract<Shared>,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    aisensy_direct(mock, Path(format!("{id}/messages")), headers, body).await
}

impl Mock {
    async fn cloud_api(
        &self,
        provider: SendProvider,
        phone_number_id: &str,
        body: &[u8],
    ) -> Response {
        let Ok(req) = serde_json::from_slice::<CloudSend>(body) else {
            return self.invalid(&cloud_error("(#100) Invalid parameter", 100, None));
        };
        if req.messaging_product.as_deref() != Some("whatsapp") {
            return self.invalid(&cloud_error(
                "(#100) The parameter messaging_product is required.",
                100,
                None,
            ));
        }
        let Some(to_raw) = req.to else {
            return self.invalid(&cloud_error(
                "(#100) The parameter to is required.",
                100,
                None,
            ));
        };
        let Ok(to) = PhoneNumber::parse(&to_raw) else {
            return self.invalid(&cloud_error("(#100) Invalid parameter", 100, Some("to")));
        };
        let Some(template) = req.template else {
            return self.invalid(&cloud_error(
                "(#100) The parameter template is required.",
                100,
                None,
            ));
        };
        let language = template.language.unwrap_or(CloudLanguage {
            policy: None,
            code: None,
        });
        if language.code.as_deref().is_none_or(str::is_empty) {
            return self.invalid(&cloud_error(
                "(#100) The parameter template['language']['code'] is required.",
                100,
                None,
            ));
        }
        if language.policy.as_deref() != Some("deterministic") {
            return self.invalid(&cloud_error(
                "(#100) The parameter template['language']['policy'] must be deterministic.",
                100,
                None,
            ));
        }
        let Some(template) = template.name.filter(|n| !n.is_empty()) else {
            return self.invalid(&cloud_error(
                "(#100) The parameter template['name'] is required.",
                100,
                None,
            ));
        };
        let Some(from) = self.meta_number(phone_number_id) else {
            let message = format!(
                "Unsupported post request. Object with ID '{phone_number_id}' does not exist"
            );
            return self.invalid(&cloud_error(&message, 100, None));
        };
        let wa_id = digits(&to);
        let fate = self
            .settle(
                || Accepted {
                    provider,
                    route: Route::Meta,
                    reference: req
                        .biz_opaque_callback_data
                        .clone()
                        .filter(|r| !r.is_empty()),
                    from_text: digits(&from),
                    from,
                    phone_number_id: phone_number_id.to_owned(),
                    to,
                    to_text: wa_id.clone(),
                    template: template.clone(),
                    echo: Echo::Opaque(req.biz_opaque_callback_data.clone()),
                },
                |seq| self.state.wamid(seq),
            )
            .await;
        match fate {
            Fate::Throttled => json(
                StatusCode::TOO_MANY_REQUESTS,
                &cloud_error(
                    "(#130429) Rate limit hit",
                    130_429,
                    Some("Cloud API message throughput has been reached."),
                ),
            ),
            Fate::Rejected => {
                let details = format!("template name ({template}) does not exist in en_US");
                json(
                    StatusCode::BAD_REQUEST,
                    &cloud_error(
                        "(#132001) Template name does not exist in the translation",
                        132_001,
                        Some(&details),
                    ),
                )
            }
            Fate::Accepted(id) => json(
                StatusCode::OK,
                &CloudAccepted {
                    messaging_product: "whatsapp",
                    contacts: [CloudContact {
                        input: &to_raw,
                        wa_id: &wa_id,
                    }],
                    messages: [CloudMessage {
                        id: &id,
                        message_status: "accepted",
                    }],
                },
            ),
        }
    }

    /// The business number behind a Meta `phone_number_id`: mapped, or the id's own digits.
    fn meta_number(&self, id: &str) -> Option<PhoneNumber> {
        if let Some(n) = self.config.meta_numbers.get(id) {
            return Some(n.clone());
        }
        id.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| PhoneNumber::parse(id).ok())
            .flatten()
    }
}
