//! AiSensy API-campaign sends: `POST {base}/campaign/t1/api/v2` with the API key in the body.
//!
//! The issue names `/campaign/t1/api`; `/v2` is the path AiSensy's current integrations use
//! and the one DESIGN.md names, so wagate sends there (a base URL override can point anywhere).
//! AiSensy does not document its success body, so the message id is looked for under every
//! name it has been seen with; when none is there the send is still accepted, and the
//! reference (sent as the `wagate_ref` attribute) is what ties a later webhook to it.

use std::time::Duration;

use serde_json::{Value, json};

use super::{
    BuildError, HttpCall, ProviderSettings, SendOutcome, SendRequest, base_url, by_status,
    credential, digits, from_gateway, join, json_call, snippet, sounds_throttled, text,
};
use crate::domain::providers::{scalar_text, valid_id};

pub const DEFAULT_BASE_URL: &str = "https://backend.aisensy.com";

/// Where a message id may sit in a success body, at the top level or under `data`.
const ID_FIELDS: [&str; 4] = ["submitted_message_id", "messageId", "message_id", "id"];

pub fn build(settings: &ProviderSettings, req: &SendRequest<'_>) -> Result<HttpCall, BuildError> {
    let key = credential(settings)?;
    let base = base_url(settings, Some(DEFAULT_BASE_URL))?;
    let user_name = req
        .user_name
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or(req.to.as_str());
    let mut body = json!({
        "apiKey": key,
        "campaignName": req.template,
        "destination": digits(req.to),
        "userName": user_name,
        "templateParams": req.params,
        "source": "wagate",
        "attributes": {"wagate_ref": req.reference},
    });
    if let Some(media) = req.media {
        let mut object = json!({"url": media.url});
        if let Some(name) = media.filename.as_deref().filter(|n| !n.trim().is_empty()) {
            object["filename"] = json!(name);
        }
        body["media"] = object;
    }
    Ok(json_call(
        join(base, "campaign/t1/api/v2"),
        Vec::new(),
        &body,
    ))
}

pub fn classify(status: u16, retry_after: Option<Duration>, body: &[u8]) -> SendOutcome {
    if let Some(uncertain) = from_gateway(status) {
        return uncertain;
    }
    let Ok(reply) = serde_json::from_slice::<Value>(body) else {
        return by_status(status, retry_after, body);
    };
    let success = (200..=299).contains(&status);
    // A 200 that says `"success": false` is a refusal like a 4xx.
    let refused = matches!(reply.get("success"), Some(Value::Bool(false)))
        || reply.get("success").and_then(Value::as_str) == Some("false");
    if success && !refused {
        return SendOutcome::Accepted {
            id: message_id(&reply),
        };
    }
    let title = error_text(&reply);
    if status == 429 || title.as_deref().is_some_and(sounds_throttled) {
        return SendOutcome::Throttled { retry_after };
    }
    if (500..=599).contains(&status) && title.is_none() {
        return by_status(status, retry_after, body);
    }
    if status == 408 || (500..=599).contains(&status) {
        return SendOutcome::Retry {
            reason: match title {
                Some(t) => format!("http_{status}: {t}"),
                None => format!("http_{status}"),
            },
        };
    }
    let code = ["code", "errorCode", "error_code"]
        .iter()
        .find_map(|k| reply.get(*k).and_then(scalar_text))
        .unwrap_or_else(|| match success {
            true => "unsuccessful".to_owned(),
            false => format!("http_{status}"),
        });
    SendOutcome::Rejected {
        code,
        title: title
            .or_else(|| snippet(body))
            .unwrap_or_else(|| format!("HTTP status {status}")),
    }
}

fn message_id(reply: &Value) -> Option<String> {
    [Some(reply), reply.get("data")]
        .into_iter()
        .flatten()
        .flat_map(|object| ID_FIELDS.iter().filter_map(|k| object.get(*k)))
        .find_map(|v| valid_id(scalar_text(v)))
}

/// The human words of an error body: `message`, `error` (a string, or an object with a
/// `message`), or `errorMessage`.
fn error_text(reply: &Value) -> Option<String> {
    reply
        .get("message")
        .and_then(text)
        .or_else(|| match reply.get("error") {
            Some(Value::Object(e)) => e.get("message").and_then(text),
            Some(other) => text(other),
            None => None,
        })
        .or_else(|| reply.get("errorMessage").and_then(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::providers::send::test_support::{
        Sample, assert_json_eq, body_json, fixture, header_of, raw, settings,
    };

    const PROVIDER: &str = "aisensy";

    #[test]
    fn campaign_request() {
        let sample = Sample::new();
        let call = build(&settings("ais-key"), &sample.request()).unwrap();
        assert_eq!(call.url, "https://backend.aisensy.com/campaign/t1/api/v2");
        // The key travels in the body; no auth header.
        assert_eq!(
            call.headers,
            vec![("content-type".to_owned(), "application/json".to_owned())]
        );
        assert_json_eq(&body_json(&call), &fixture(PROVIDER, "request.json"));
    }

    #[test]
    fn media_and_a_nameless_recipient() {
        let mut sample = Sample::new().with_media("image", Some("banner.jpg"));
        sample.user_name = Some("  ".into());
        let mut s = settings("ais-key");
        s.base_url = Some("http://127.0.0.1:9100/".into());
        let call = build(&s, &sample.request()).unwrap();
        assert_eq!(call.url, "http://127.0.0.1:9100/campaign/t1/api/v2");
        assert_json_eq(&body_json(&call), &fixture(PROVIDER, "request_media.json"));
        assert_eq!(header_of(&call, "authorization"), None);
    }

    #[test]
    fn missing_credential() {
        assert_eq!(
            build(&settings(""), &Sample::new().request()),
            Err(BuildError::Missing("credential"))
        );
    }

    #[test]
    fn accepted_with_whatever_id_comes_back() {
        for (name, id) in [
            ("response_submitted.json", Some("6a1f0c2e9b8d7a6c5e4f3a2b")),
            (
                "response_nested.json",
                Some("wamid.HBgMOTE5ODc2NTQzMjEwFQIAERgSQUlTRU5TWQA="),
            ),
            ("response_no_id.json", None),
        ] {
            assert_eq!(
                classify(200, None, &raw(PROVIDER, name)),
                SendOutcome::Accepted {
                    id: id.map(Into::into)
                },
                "{name}"
            );
        }
        assert_eq!(
            classify(200, None, b"Success"),
            SendOutcome::Accepted { id: None }
        );
        assert_eq!(
            classify(201, None, br#"{"messageId":12345}"#),
            SendOutcome::Accepted {
                id: Some("12345".into())
            }
        );
    }

    #[test]
    fn throttled_and_retried() {
        let after = Some(Duration::from_secs(30));
        assert_eq!(
            classify(429, after, br#"{"message":"Too many requests"}"#),
            SendOutcome::Throttled { retry_after: after }
        );
        assert_eq!(
            classify(
                400,
                None,
                br#"{"message":"Rate limit exceeded for this project"}"#
            ),
            SendOutcome::Throttled { retry_after: None }
        );
        assert_eq!(
            classify(
                500,
                None,
                br#"{"error":{"message":"Internal Server Error"}}"#
            ),
            SendOutcome::Retry {
                reason: "http_500: Internal Server Error".into()
            }
        );
        // A gateway's answer, or a 5xx that is not AiSensy's own error: it may have sent.
        assert_eq!(
            classify(504, None, b"upstream timed out"),
            SendOutcome::Uncertain {
                reason: "http_504".into()
            }
        );
        assert_eq!(
            classify(502, None, br#"{"message":"Bad gateway"}"#),
            SendOutcome::Uncertain {
                reason: "http_502".into()
            }
        );
        assert_eq!(
            classify(500, None, br#"{"ok":false}"#),
            SendOutcome::Uncertain {
                reason: "http_500".into()
            }
        );
    }

    #[test]
    fn refusals() {
        assert_eq!(
            classify(400, None, &raw(PROVIDER, "error_campaign_missing.json")),
            SendOutcome::Rejected {
                code: "http_400".into(),
                title: "Campaign does not exist.".into()
            }
        );
        assert_eq!(
            classify(
                401,
                None,
                br#"{"errorMessage":"Invalid API key","code":"AUTH_01"}"#
            ),
            SendOutcome::Rejected {
                code: "AUTH_01".into(),
                title: "Invalid API key".into()
            }
        );
        assert_eq!(
            classify(
                200,
                None,
                br#"{"success":false,"message":"Template params mismatch"}"#
            ),
            SendOutcome::Rejected {
                code: "unsuccessful".into(),
                title: "Template params mismatch".into()
            }
        );
        assert_eq!(
            classify(404, None, b"Not Found"),
            SendOutcome::Rejected {
                code: "http_404".into(),
                title: "Not Found".into()
            }
        );
    }
}
