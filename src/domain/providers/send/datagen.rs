//! Datagen/Karix (RCM) template sends: `POST {base}/services/rcm/sendMessage` with the
//! `Authentication` header (sic), and its `{"statusCode","statusDesc","mid"}` answers.
//!
//! Karix's public material shows two content shapes: `TEMPLATE` with `template.parameterValues`
//! for text templates, and `MEDIA_TEMPLATE` with `mediaTemplate.{media, bodyParameterValues}`
//! for templates with a media header. The second comes from integrations seen in public code,
//! not from a Karix reference page; the fixture tests pin what is sent so a correction is one
//! place.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{
    BuildError, HttpCall, ProviderSettings, SendOutcome, SendRequest, base_url, bearer, by_status,
    credential, digits, from_gateway, header, join, json_call, setting, snippet, sounds_throttled,
    text,
};
use crate::domain::campaign::Media;
use crate::domain::providers::{scalar_text, valid_id};

pub const DEFAULT_BASE_URL: &str = "https://rcmapi.instaalerts.zone";
pub const DEFAULT_VERSION: &str = "v1.0.9";
/// The webhook configuration Karix accounts get by default.
pub const DEFAULT_WEBHOOK_DN_ID: &str = "1001";

pub fn build(settings: &ProviderSettings, req: &SendRequest<'_>) -> Result<HttpCall, BuildError> {
    let key = credential(settings)?;
    let base = base_url(settings, Some(DEFAULT_BASE_URL))?;
    let url = join(base, "services/rcm/sendMessage");
    let body = json!({
        "message": {
            "channel": "WABA",
            "content": content(req),
            "recipient": {
                "to": digits(req.to),
                "recipient_type": "individual",
                // Every slot Karix echoes in its webhooks carries the reference, so whichever
                // one an account's webhook format keeps, the status finds its recipient.
                "reference": {
                    "cust_ref": req.reference,
                    "messageTag1": req.reference,
                    "conversationId": req.reference,
                },
            },
            "sender": {"from": digits(req.from)},
            "preferences": {
                "webHookDNId": setting(&settings.webhook_dn_id).unwrap_or(DEFAULT_WEBHOOK_DN_ID),
            },
        },
        "metaData": {"version": setting(&settings.api_version).unwrap_or(DEFAULT_VERSION)},
    });
    Ok(json_call(
        url,
        vec![header("authentication", bearer(key))],
        &body,
    ))
}

fn content(req: &SendRequest<'_>) -> Value {
    // Karix numbers parameters from "0", as object keys.
    let values: Map<String, Value> = req
        .params
        .iter()
        .enumerate()
        .map(|(i, p)| (i.to_string(), json!(p)))
        .collect();
    match req.media {
        None => json!({
            "preview_url": false,
            "type": "TEMPLATE",
            "template": {"templateId": req.template, "parameterValues": values},
        }),
        Some(media) => json!({
            "preview_url": false,
            "type": "MEDIA_TEMPLATE",
            "mediaTemplate": {
                "templateId": req.template,
                "media": media_object(media),
                "bodyParameterValues": values,
            },
        }),
    }
}

fn media_object(media: &Media) -> Value {
    let kind = media.kind.trim().to_ascii_lowercase();
    let mut object = json!({"type": kind, "url": media.url});
    if let (Some(name), "document") = (media.filename.as_deref(), kind.as_str())
        && !name.trim().is_empty()
    {
        object["fileName"] = json!(name);
    }
    object
}

#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Reply {
    status_code: Value,
    status_desc: Value,
    mid: Value,
}

pub fn classify(status: u16, retry_after: Option<Duration>, body: &[u8]) -> SendOutcome {
    if let Some(uncertain) = from_gateway(status) {
        return uncertain;
    }
    let Ok(reply) = serde_json::from_slice::<Reply>(body) else {
        return by_status(status, retry_after, body);
    };
    let code = scalar_text(&reply.status_code);
    let desc = text(&reply.status_desc);
    // JSON without Karix's fields (a proxy's `{"message": …}`) is not Karix's answer.
    if code.is_none() && desc.is_none() && !(200..=299).contains(&status) {
        return by_status(status, retry_after, body);
    }
    let code_number = code.as_deref().and_then(|c| c.parse::<u16>().ok());
    if status == 429 || code_number == Some(429) || desc.as_deref().is_some_and(sounds_throttled) {
        return SendOutcome::Throttled { retry_after };
    }
    // Karix answers some refusals with HTTP 200 and its own non-200 `statusCode`: the body's
    // code decides when there is one.
    let accepted = match code_number {
        Some(c) => (200..=299).contains(&c) && (200..=299).contains(&status),
        None => code.is_none() && (200..=299).contains(&status),
    };
    if accepted {
        return SendOutcome::Accepted {
            id: valid_id(scalar_text(&reply.mid)),
        };
    }
    let transient = |s: u16| s == 408 || (500..=599).contains(&s);
    if transient(status) || code_number.is_some_and(transient) {
        let reason = match (&code, &desc) {
            (Some(c), Some(d)) => format!("{c}: {d}"),
            _ => format!("http_{status}"),
        };
        return SendOutcome::Retry { reason };
    }
    SendOutcome::Rejected {
        code: code.unwrap_or_else(|| format!("http_{status}")),
        title: desc
            .or_else(|| snippet(body))
            .unwrap_or_else(|| format!("HTTP status {status}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::providers::send::test_support::{
        Sample, assert_json_eq, body_json, fixture, header_of, raw, settings,
    };

    const PROVIDER: &str = "datagen";

    #[test]
    fn text_template_request() {
        let sample = Sample::new();
        let call = build(&settings("k4r1x=="), &sample.request()).unwrap();
        assert_eq!(
            call.url,
            "https://rcmapi.instaalerts.zone/services/rcm/sendMessage"
        );
        assert_eq!(header_of(&call, "authentication"), Some("Bearer k4r1x=="));
        assert_eq!(header_of(&call, "authorization"), None);
        assert_eq!(header_of(&call, "content-type"), Some("application/json"));
        assert_json_eq(&body_json(&call), &fixture(PROVIDER, "request_text.json"));
    }

    #[test]
    fn media_template_request_and_overrides() {
        let sample = Sample::new().with_media("document", Some("invoice-42.pdf"));
        let s = ProviderSettings {
            base_url: Some("https://rcmapisandbox.instaalerts.zone/".into()),
            credential: Some("k".into()),
            api_version: Some("v1.0.10".into()),
            webhook_dn_id: Some("2002".into()),
        };
        let call = build(&s, &sample.request()).unwrap();
        assert_eq!(
            call.url,
            "https://rcmapisandbox.instaalerts.zone/services/rcm/sendMessage"
        );
        assert_json_eq(&body_json(&call), &fixture(PROVIDER, "request_media.json"));
    }

    #[test]
    fn no_parameters_is_an_empty_object() {
        let mut sample = Sample::new();
        sample.params.clear();
        let body = body_json(&build(&settings("k"), &sample.request()).unwrap());
        assert_eq!(
            body["message"]["content"]["template"]["parameterValues"],
            json!({})
        );
    }

    #[test]
    fn missing_credential() {
        let sample = Sample::new();
        assert_eq!(
            build(&ProviderSettings::default(), &sample.request()),
            Err(BuildError::Missing("credential"))
        );
    }

    #[test]
    fn accepted() {
        let want = SendOutcome::Accepted {
            id: Some("410123751001143816805212".into()),
        };
        assert_eq!(
            classify(200, None, &raw(PROVIDER, "response_accepted.json")),
            want
        );
        assert_eq!(
            classify(200, None, &raw(PROVIDER, "response_accepted_extra.json")),
            want
        );
        assert_eq!(
            classify(202, None, br#"{"statusCode":"200"}"#),
            SendOutcome::Accepted { id: None }
        );
        assert_eq!(
            classify(200, None, b"accepted"),
            SendOutcome::Accepted { id: None }
        );
    }

    #[test]
    fn throttled() {
        let after = Some(Duration::from_secs(2));
        assert_eq!(
            classify(429, after, b""),
            SendOutcome::Throttled { retry_after: after }
        );
        assert_eq!(
            classify(200, None, &raw(PROVIDER, "response_throttled.json")),
            SendOutcome::Throttled { retry_after: None }
        );
        assert_eq!(
            classify(
                400,
                None,
                br#"{"statusCode":"429","statusDesc":"Slow down"}"#
            ),
            SendOutcome::Throttled { retry_after: None }
        );
    }

    #[test]
    fn server_errors_are_retried_unless_they_may_hide_a_send() {
        // Not Karix's answer (an HTML page, JSON without its fields, a gateway): uncertain.
        assert_eq!(
            classify(503, None, b"<html>Service Unavailable</html>"),
            SendOutcome::Uncertain {
                reason: "http_503".into()
            }
        );
        assert_eq!(
            classify(500, None, br#"{"message":"oops"}"#),
            SendOutcome::Uncertain {
                reason: "http_500".into()
            }
        );
        assert_eq!(
            classify(
                502,
                None,
                br#"{"statusCode":"500","statusDesc":"Internal error"}"#
            ),
            SendOutcome::Uncertain {
                reason: "http_502".into()
            }
        );
        assert_eq!(
            classify(
                500,
                None,
                br#"{"statusCode":"500","statusDesc":"Internal error"}"#
            ),
            SendOutcome::Retry {
                reason: "500: Internal error".into()
            }
        );
        assert_eq!(
            classify(
                200,
                None,
                br#"{"statusCode":"500","statusDesc":"Internal error"}"#
            ),
            SendOutcome::Retry {
                reason: "500: Internal error".into()
            }
        );
    }

    #[test]
    fn refusals_keep_karixs_code_and_description() {
        let want = SendOutcome::Rejected {
            code: "4003".into(),
            title: "Template parameters do not match: separate values required".into(),
        };
        // Whether Karix says it with HTTP 200 or 400, and despite "separate" holding "rate".
        assert_eq!(
            classify(200, None, &raw(PROVIDER, "response_rejected.json")),
            want
        );
        assert_eq!(
            classify(400, None, &raw(PROVIDER, "response_rejected.json")),
            want
        );
        assert_eq!(
            classify(401, None, br#"{"error":"Unauthorized"}"#),
            SendOutcome::Rejected {
                code: "http_401".into(),
                title: r#"{"error":"Unauthorized"}"#.into()
            }
        );
    }
}
