//! AiSensy-direct (AiSensy's Project API) template sends: the Cloud API body, built by
//! [`super::meta`], posted to `{base}/messages`, answered in the Cloud API's shape.
//!
//! The Project API addresses a send by AiSensy project, not by phone number id:
//! `https://apis.aisensy.com/project-apis/v1/project/{project_id}/messages`, with the
//! project's API password in `X-AiSensy-Project-API-Pwd`. So the base URL (required, there is
//! no default) is the project's URL up to and including its id, and the sender number needs
//! no Meta id. This is read from public integrations of that API, not from a reference page
//! we could open; the mock BSP and these tests pin the same shape.

use std::time::Duration;

use super::{
    BuildError, HttpCall, ProviderSettings, SendOutcome, SendRequest, base_url, credential, header,
    join, json_call, meta,
};

pub const KEY_HEADER: &str = "x-aisensy-project-api-pwd";

pub fn build(settings: &ProviderSettings, req: &SendRequest<'_>) -> Result<HttpCall, BuildError> {
    let key = credential(settings)?;
    let base = base_url(settings, None)?;
    Ok(json_call(
        join(base, "messages"),
        vec![header(KEY_HEADER, key)],
        &meta::cloud_api_body(req),
    ))
}

/// The Project API relays the Cloud API's answers, error codes included.
pub fn classify(status: u16, retry_after: Option<Duration>, body: &[u8]) -> SendOutcome {
    meta::classify(status, retry_after, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::providers::send::test_support::{
        Sample, assert_json_eq, body_json, fixture, header_of, raw, settings,
    };

    const BASE: &str = "https://apis.aisensy.com/project-apis/v1/project/64f0c0ffee1234567890abcd";

    #[test]
    fn cloud_api_body_against_the_project_url() {
        let mut sample = Sample::new();
        // The project URL names the sender, so a number without a Meta id can send.
        sample.meta_id = None;
        let mut s = settings("pwd-123");
        s.base_url = Some(format!("{BASE}/"));
        let call = build(&s, &sample.request()).unwrap();
        assert_eq!(call.url, format!("{BASE}/messages"));
        assert_eq!(header_of(&call, KEY_HEADER), Some("pwd-123"));
        assert_eq!(header_of(&call, "authorization"), None);
        assert_eq!(header_of(&call, "content-type"), Some("application/json"));
        assert_json_eq(
            &body_json(&call),
            &fixture("aisensy_direct", "request.json"),
        );
        // The very body Meta gets.
        assert_json_eq(&body_json(&call), &fixture("meta", "request_text.json"));
    }

    #[test]
    fn base_url_and_key_are_required() {
        let sample = Sample::new();
        assert_eq!(
            build(&settings("pwd"), &sample.request()),
            Err(BuildError::Missing("base_url"))
        );
        let s = ProviderSettings {
            base_url: Some(BASE.into()),
            ..ProviderSettings::default()
        };
        assert_eq!(
            build(&s, &sample.request()),
            Err(BuildError::Missing("credential"))
        );
    }

    #[test]
    fn answers_read_as_the_cloud_apis() {
        assert_eq!(
            classify(200, None, &raw("aisensy_direct", "response_accepted.json")),
            SendOutcome::Accepted {
                id: Some("wamid.HBgMOTE5ODc2NTQzMjEwFQIAERgSRElSRUNUMDAxAA==".into())
            }
        );
        assert_eq!(
            classify(400, None, &raw("meta", "error_throughput.json")),
            SendOutcome::Throttled { retry_after: None }
        );
        assert!(matches!(
            classify(502, None, b"Bad Gateway"),
            SendOutcome::Uncertain { .. }
        ));
    }
}
