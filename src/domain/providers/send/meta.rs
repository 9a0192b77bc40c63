//! Meta Cloud API template sends: `POST {base}/{version}/{phone_number_id}/messages`, and the
//! Graph API's answer (`messages[0].id`, or an `error` object) read into a [`SendOutcome`].
//! The body builder is shared with AiSensy-direct, which speaks the same shape.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{
    BuildError, HttpCall, ProviderSettings, SendOutcome, SendRequest, base_url, bearer, by_status,
    credential, digits, from_gateway, header, join, json_call, segment, setting, text,
};
use crate::domain::campaign::Media;
use crate::domain::providers::{scalar_text, valid_id};

/// The server and Graph API version of Meta's own OpenAPI description of the Cloud API
/// (`business-messaging-api_v23.0.yaml` in the `facebook/openapi` repository), whose send
/// operation is `POST /{Version}/{Phone-Number-ID}/messages`.
pub const DEFAULT_BASE_URL: &str = "https://graph.facebook.com";
pub const DEFAULT_VERSION: &str = "v23.0";

/// The only language policy that description allows (its `LanguageObject` requires `policy`
/// and `code`): the template in exactly the language and locale asked for.
pub const LANGUAGE_POLICY: &str = "deterministic";

/// Refusals for a rate, not for the message: throughput (130429), too many to one user
/// (131056), spam rate limit (131048), and the app/account call limits (4, 80007).
const THROTTLE_CODES: [i64; 5] = [4, 80007, 130429, 131048, 131056];

/// Meta's own transient failures, whatever HTTP status carries them: unknown (1), service
/// temporarily down (2), "something went wrong" (131000), service unavailable (131016),
/// account in maintenance (131057), server temporarily unavailable (133004).
const RETRY_CODES: [i64; 6] = [1, 2, 131000, 131016, 131057, 133004];

pub fn build(settings: &ProviderSettings, req: &SendRequest<'_>) -> Result<HttpCall, BuildError> {
    let token = credential(settings)?;
    let base = base_url(settings, Some(DEFAULT_BASE_URL))?;
    let phone_number_id = req
        .from_meta_id
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .ok_or(BuildError::MetaPhoneNumberIdMissing)?;
    let version = setting(&settings.api_version).unwrap_or(DEFAULT_VERSION);
    let url = join(
        base,
        &format!("{}/{}/messages", segment(version), segment(phone_number_id)),
    );
    Ok(json_call(
        url,
        vec![header("authorization", bearer(token))],
        &cloud_api_body(req),
    ))
}

/// The Cloud API template message for `req`, as Meta's description has it (`TemplateMessage`:
/// `messaging_product`, `recipient_type`, `to`, `type`, and a `template` with `name` and a
/// `language` of `policy` and `code`). Components appear only when they carry something: a
/// header only with media, a body only with parameters.
pub(super) fn cloud_api_body(req: &SendRequest<'_>) -> Value {
    let mut components = Vec::new();
    if let Some(media) = req.media {
        components.push(json!({"type": "header", "parameters": [media_parameter(media)]}));
    }
    if !req.params.is_empty() {
        let parameters: Vec<Value> = req
            .params
            .iter()
            .map(|p| json!({"type": "text", "text": p}))
            .collect();
        components.push(json!({"type": "body", "parameters": parameters}));
    }
    let mut template = json!({
        "name": req.template,
        "language": {"policy": LANGUAGE_POLICY, "code": req.language},
    });
    if !components.is_empty() {
        template["components"] = Value::Array(components);
    }
    json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": digits(req.to),
        "type": "template",
        "template": template,
        "biz_opaque_callback_data": req.reference,
    })
}

/// `{"type":"image","image":{"link":…}}`; only a document takes a `filename` (the name the
/// user sees on the attachment).
fn media_parameter(media: &Media) -> Value {
    let kind = media.kind.trim().to_ascii_lowercase();
    let mut object = Map::new();
    object.insert("link".into(), json!(media.url));
    if let (Some(name), "document") = (media.filename.as_deref(), kind.as_str())
        && !name.trim().is_empty()
    {
        object.insert("filename".into(), json!(name));
    }
    let mut parameter = Map::new();
    parameter.insert("type".into(), json!(kind));
    parameter.insert(kind, Value::Object(object));
    Value::Object(parameter)
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Sent {
    messages: Vec<SentMessage>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct SentMessage {
    id: Value,
}

#[derive(Deserialize)]
struct Failure {
    error: Option<GraphError>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct GraphError {
    message: Value,
    code: Value,
    error_data: Value,
}

pub fn classify(status: u16, retry_after: Option<Duration>, body: &[u8]) -> SendOutcome {
    if (200..=299).contains(&status) {
        let id = serde_json::from_slice::<Sent>(body)
            .ok()
            .and_then(|s| s.messages.into_iter().next())
            .and_then(|m| valid_id(scalar_text(&m.id)));
        return SendOutcome::Accepted { id };
    }
    if let Some(uncertain) = from_gateway(status) {
        return uncertain;
    }
    let Some(error) = serde_json::from_slice::<Failure>(body)
        .ok()
        .and_then(|f| f.error)
    else {
        return by_status(status, retry_after, body);
    };
    let code = scalar_text(&error.code);
    let number = code.as_deref().and_then(|c| c.parse::<i64>().ok());
    let title = text(&error.message)
        .or_else(|| error.error_data.get("details").and_then(text))
        .unwrap_or_else(|| format!("HTTP status {status}"));
    if status == 429 || number.is_some_and(|n| THROTTLE_CODES.contains(&n)) {
        return SendOutcome::Throttled { retry_after };
    }
    let code = code.unwrap_or_else(|| format!("http_{status}"));
    if status == 408
        || (500..=599).contains(&status)
        || number.is_some_and(|n| RETRY_CODES.contains(&n))
    {
        return SendOutcome::Retry {
            reason: format!("{code}: {title}"),
        };
    }
    SendOutcome::Rejected { code, title }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::providers::send::test_support::{
        Sample, assert_json_eq, body_json, fixture, header_of, raw, settings,
    };

    const PROVIDER: &str = "meta";

    #[test]
    fn text_template_request() {
        let sample = Sample::new();
        let call = build(&settings("EAAG-token"), &sample.request()).unwrap();
        assert_eq!(
            call.url,
            "https://graph.facebook.com/v23.0/106540352242922/messages"
        );
        assert_eq!(header_of(&call, "authorization"), Some("Bearer EAAG-token"));
        assert_eq!(header_of(&call, "content-type"), Some("application/json"));
        assert_eq!(call.headers.len(), 2);
        assert_json_eq(&body_json(&call), &fixture(PROVIDER, "request_text.json"));
    }

    #[test]
    fn media_headers() {
        let mut sample = Sample::new().with_media("document", Some("invoice-42.pdf"));
        sample.params.clear();
        let call = build(&settings("t"), &sample.request()).unwrap();
        assert_json_eq(
            &body_json(&call),
            &fixture(PROVIDER, "request_document.json"),
        );
        // An image ignores a filename (Meta refuses one there) and keeps the body parameters.
        let sample = Sample::new().with_media("Image", Some("ignored.png"));
        let call = build(&settings("t"), &sample.request()).unwrap();
        assert_json_eq(&body_json(&call), &fixture(PROVIDER, "request_image.json"));
    }

    #[test]
    fn settings_shape_the_url_and_token() {
        let sample = Sample::new();
        let mut s = settings("Bearer already-prefixed");
        s.base_url = Some("http://127.0.0.1:9000/meta/".into());
        s.api_version = Some("v22.0".into());
        let call = build(&s, &sample.request()).unwrap();
        assert_eq!(
            call.url,
            "http://127.0.0.1:9000/meta/v22.0/106540352242922/messages"
        );
        assert_eq!(
            header_of(&call, "authorization"),
            Some("Bearer already-prefixed")
        );
        // An id that is not a plain segment cannot redirect the request.
        let mut sample = Sample::new();
        sample.meta_id = Some("1/../../x?y".into());
        let call = build(&settings("t"), &sample.request()).unwrap();
        assert_eq!(
            call.url,
            "https://graph.facebook.com/v23.0/1%2F..%2F..%2Fx%3Fy/messages"
        );
    }

    #[test]
    fn missing_settings() {
        let sample = Sample::new();
        for credential in [None, Some(""), Some("  ")] {
            let s = ProviderSettings {
                credential: credential.map(Into::into),
                ..ProviderSettings::default()
            };
            assert_eq!(
                build(&s, &sample.request()),
                Err(BuildError::Missing("credential"))
            );
        }
        for id in [None, Some(""), Some(" ")] {
            let mut sample = Sample::new();
            sample.meta_id = id.map(Into::into);
            assert_eq!(
                build(&settings("t"), &sample.request()),
                Err(BuildError::MetaPhoneNumberIdMissing)
            );
        }
    }

    fn classify_fixture(status: u16, name: &str) -> SendOutcome {
        classify(status, None, &raw(PROVIDER, name))
    }

    #[test]
    fn accepted() {
        let id = "wamid.HBgMOTE5ODc2NTQzMjEwFQIAERgSQkE1RjQyNUE3QjE5QzA0RDQ2AA==";
        assert_eq!(
            classify_fixture(200, "response_accepted.json"),
            SendOutcome::Accepted {
                id: Some(id.into())
            }
        );
        assert_eq!(
            classify_fixture(200, "response_accepted_extra.json"),
            SendOutcome::Accepted {
                id: Some(id.into())
            }
        );
        for body in [
            &b"{}"[..],
            b"",
            b"OK",
            br#"{"messages":[]}"#,
            br#"{"messages":[{"id":""}]}"#,
        ] {
            assert_eq!(
                classify(200, None, body),
                SendOutcome::Accepted { id: None },
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn throttled_by_status_and_by_code() {
        let after = Some(Duration::from_secs(7));
        assert_eq!(
            classify(429, after, b"Too Many Requests"),
            SendOutcome::Throttled { retry_after: after }
        );
        for name in [
            "error_throughput.json",
            "error_pair_rate.json",
            "error_account_rate.json",
        ] {
            assert_eq!(
                classify_fixture(400, name),
                SendOutcome::Throttled { retry_after: None },
                "{name}"
            );
        }
        assert_eq!(
            classify(400, after, &raw(PROVIDER, "error_throughput.json")),
            SendOutcome::Throttled { retry_after: after }
        );
    }

    #[test]
    fn server_errors_are_retried_unless_they_may_hide_a_send() {
        let SendOutcome::Retry { reason } = classify_fixture(500, "error_unknown.json") else {
            panic!("expected retry")
        };
        assert_eq!(reason, "131000: Something went wrong");
        // Meta's transient codes are retried even under a 400.
        assert!(matches!(
            classify_fixture(400, "error_unknown.json"),
            SendOutcome::Retry { .. }
        ));
        // A gateway's 502/504 (whatever its body) or a 5xx without Meta's error body may
        // have been processed: uncertain, never retried blindly.
        assert_eq!(
            classify_fixture(502, "error_bad_gateway.html"),
            SendOutcome::Uncertain {
                reason: "http_502".into()
            }
        );
        assert!(matches!(
            classify_fixture(504, "error_unknown.json"),
            SendOutcome::Uncertain { .. }
        ));
        assert!(matches!(
            classify(503, None, b""),
            SendOutcome::Uncertain { .. }
        ));
        assert!(matches!(
            classify(408, None, b""),
            SendOutcome::Retry { .. }
        ));
    }

    #[test]
    fn permanent_errors_keep_metas_code_and_title() {
        assert_eq!(
            classify_fixture(404, "error_template_missing.json"),
            SendOutcome::Rejected {
                code: "132001".into(),
                title: "(#132001) Template name does not exist in the translation".into()
            }
        );
        // Without a message the details are the title; a string code is still a code.
        let body = br#"{"error":{"code":"131009","error_data":{"details":"Parameter value is not valid"}}}"#;
        assert_eq!(
            classify(400, None, body),
            SendOutcome::Rejected {
                code: "131009".into(),
                title: "Parameter value is not valid".into()
            }
        );
        assert_eq!(
            classify(400, None, b"<html>Bad Request</html>"),
            SendOutcome::Rejected {
                code: "http_400".into(),
                title: "<html>Bad Request</html>".into()
            }
        );
        // An `error` that is not an object is read like no error at all.
        assert_eq!(
            classify(403, None, br#"{"error":"forbidden"}"#),
            SendOutcome::Rejected {
                code: "http_403".into(),
                title: r#"{"error":"forbidden"}"#.into()
            }
        );
    }
}
