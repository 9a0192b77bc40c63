//! Outbound template sends, one file per BSP with the same shape: `build` (the HTTP request),
//! `classify` (the response → [`SendOutcome`]), and fixture tests beside them; `settings`
//! says where each BSP is reached with which credential. No IO: the sender worker performs
//! the request.

pub mod aisensy;
pub mod aisensy_direct;
pub mod datagen;
pub mod meta;
mod settings;
#[cfg(test)]
mod test_support;

pub use settings::{CredentialRequired, ProviderSettings, for_project};

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::campaign::Media;
use crate::domain::phone::PhoneNumber;

/// The BSP a campaign sends through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SendProvider {
    Aisensy,
    Datagen,
    AisensyDirect,
    Meta,
}

impl SendProvider {
    pub const ALL: [SendProvider; 4] = [
        SendProvider::Aisensy,
        SendProvider::Datagen,
        SendProvider::AisensyDirect,
        SendProvider::Meta,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SendProvider::Aisensy => "aisensy",
            SendProvider::Datagen => "datagen",
            SendProvider::AisensyDirect => "aisensy_direct",
            SendProvider::Meta => "meta",
        }
    }

    pub fn parse(s: &str) -> Option<SendProvider> {
        SendProvider::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// The provider's public API, where sends go when neither the server nor the project
    /// names a base URL (AiSensy-direct has none: its URL names the AiSensy project).
    pub fn default_base_url(self) -> Option<&'static str> {
        match self {
            SendProvider::Aisensy => Some(aisensy::DEFAULT_BASE_URL),
            SendProvider::Datagen => Some(datagen::DEFAULT_BASE_URL),
            SendProvider::AisensyDirect => None,
            SendProvider::Meta => Some(meta::DEFAULT_BASE_URL),
        }
    }
}

/// Everything one send needs, provider-neutral.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendRequest<'a> {
    /// The project's business number sending it.
    pub from: &'a PhoneNumber,
    /// Meta's id of `from` (Meta and AiSensy-direct address numbers by it).
    pub from_meta_id: Option<&'a str>,
    pub to: &'a PhoneNumber,
    /// The template's name (Meta, AiSensy-direct), Karix template id, or AiSensy API campaign.
    pub template: &'a str,
    /// `en`, `en_US`, ...
    pub language: &'a str,
    /// Body parameters, in order.
    pub params: &'a [String],
    pub media: Option<&'a Media>,
    /// The recipient's name (AiSensy's `userName`), when the CSV had one.
    pub user_name: Option<&'a str>,
    /// Echoed by the BSP in its status webhooks (see `RecipientId`).
    pub reference: &'a str,
}

/// An HTTP request to make, fully built. It carries the credential (in a header, or in the
/// body for AiSensy), so its `Debug` shows header names and the body's size only.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpCall {
    pub url: String,
    /// Header names in lowercase.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for HttpCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(name, value)| {
                let shown = if name == "content-type" {
                    value.as_str()
                } else {
                    "<redacted>"
                };
                (name.as_str(), shown)
            })
            .collect();
        f.debug_struct("HttpCall")
            .field("url", &settings::redact_url(&self.url))
            .field("headers", &headers)
            .field("body", &format_args!("<{} bytes>", self.body.len()))
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("no {0} is configured for this provider")]
    Missing(&'static str),
    #[error("the sender number has no meta_phone_number_id")]
    MetaPhoneNumberIdMissing,
}

/// What one response (or its absence) means for the recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// The BSP took it. `id` is its message id, when the response carried one.
    Accepted { id: Option<String> },
    /// The BSP refused it for now because of a rate (HTTP 429; Meta 130429, 131056, 80007, 4):
    /// not accepted, so it may be sent again; the number's bucket should slow down.
    Throttled { retry_after: Option<Duration> },
    /// Not accepted, for a reason worth retrying: the BSP's own error body says so (a 5xx or
    /// 408 it answered itself).
    Retry { reason: String },
    /// May have been accepted: a gateway's 502 or 504 (the BSP behind it may have processed the
    /// request), or a 5xx without a body the BSP's classifier recognises. Settled by the BSP's
    /// webhook echoing the reference, or the unknown timeout; never sent again blindly.
    Uncertain { reason: String },
    /// Refused for good, with the provider's own code and title.
    Rejected { code: String, title: String },
}

/// Builds the request for `req` through `provider` with these settings.
pub fn build(
    provider: SendProvider,
    settings: &ProviderSettings,
    req: &SendRequest<'_>,
) -> Result<HttpCall, BuildError> {
    match provider {
        SendProvider::Meta => meta::build(settings, req),
        SendProvider::Datagen => datagen::build(settings, req),
        SendProvider::Aisensy => aisensy::build(settings, req),
        SendProvider::AisensyDirect => aisensy_direct::build(settings, req),
    }
}

/// Whether these settings let `provider` build a request at all: a credential, and a base URL
/// where the provider has no public one. A campaign's start checks this before any recipient
/// moves, so a missing credential is a clear refusal, not a campaign of failed recipients.
pub fn check(provider: SendProvider, settings: &ProviderSettings) -> Result<(), BuildError> {
    credential(settings)?;
    if provider == SendProvider::AisensyDirect {
        base_url(settings, None)?;
    }
    Ok(())
}

/// Reads a response: status code, `Retry-After` (already parsed), and the body.
pub fn classify(
    provider: SendProvider,
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
) -> SendOutcome {
    match provider {
        SendProvider::Meta => meta::classify(status, retry_after, body),
        SendProvider::Datagen => datagen::classify(status, retry_after, body),
        SendProvider::Aisensy => aisensy::classify(status, retry_after, body),
        SendProvider::AisensyDirect => aisensy_direct::classify(status, retry_after, body),
    }
}

/// A configured value with something in it: an empty string in the config or a project's
/// override means "not set", not "set to nothing".
fn setting(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn credential(settings: &ProviderSettings) -> Result<&str, BuildError> {
    setting(&settings.credential).ok_or(BuildError::Missing("credential"))
}

/// The configured base URL, else the provider's public one (`None` when it has none).
fn base_url<'a>(
    settings: &'a ProviderSettings,
    default: Option<&'static str>,
) -> Result<&'a str, BuildError> {
    setting(&settings.base_url)
        .or(default)
        .ok_or(BuildError::Missing("base_url"))
}

/// `base` and `path` joined by exactly one `/`, whether or not the configured base ends in one.
fn join(base: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

/// A configured id as one URL path segment: ids are digits in practice, but a stray `/` or `?`
/// in a project's setting must not send the request somewhere else.
fn segment(value: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.');
    percent_encoding::utf8_percent_encode(value, KEEP).to_string()
}

/// `Bearer <token>`. Tokens pasted from a BSP's dashboard sometimes carry the scheme already;
/// doubling it would fail every send.
fn bearer(token: &str) -> String {
    match token.get(..7) {
        Some(scheme) if scheme.eq_ignore_ascii_case("bearer ") => token.to_owned(),
        _ => format!("Bearer {token}"),
    }
}

/// The number as BSPs address it: country code and digits, no `+`.
fn digits(phone: &PhoneNumber) -> &str {
    phone.as_str().trim_start_matches('+')
}

/// A JSON `POST` with these extra headers.
fn json_call(url: String, mut headers: Vec<(String, String)>, body: &Value) -> HttpCall {
    headers.push(("content-type".into(), "application/json".into()));
    HttpCall {
        url,
        headers,
        body: serde_json::to_vec(body).expect("a JSON value always serializes"),
    }
}

fn header(name: &str, value: impl Into<String>) -> (String, String) {
    (name.to_owned(), value.into())
}

/// What a response means when its body says nothing the provider's classifier understands:
/// the status alone decides. 408 is the BSP saying it did not get the whole request, so it is
/// retried; a 5xx from something that is not the BSP's own code may hide an accepted send.
fn by_status(status: u16, retry_after: Option<Duration>, body: &[u8]) -> SendOutcome {
    match status {
        200..=299 => SendOutcome::Accepted { id: None },
        429 => SendOutcome::Throttled { retry_after },
        408 => SendOutcome::Retry {
            reason: format!("http_{status}"),
        },
        500..=599 => SendOutcome::Uncertain {
            reason: format!("http_{status}"),
        },
        _ => SendOutcome::Rejected {
            code: format!("http_{status}"),
            title: snippet(body).unwrap_or_else(|| format!("HTTP status {status}")),
        },
    }
}

/// A gateway's answer: the request may have reached the BSP behind it, whatever the body says.
fn from_gateway(status: u16) -> Option<SendOutcome> {
    matches!(status, 502 | 504).then(|| SendOutcome::Uncertain {
        reason: format!("http_{status}"),
    })
}

/// The start of a body that is not the JSON we expected (an HTML error page, a proxy's text),
/// short enough to store as an error title.
fn snippet(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let words: Vec<&str> = text.split_whitespace().collect();
    (!words.is_empty()).then(|| words.join(" ").chars().take(200).collect())
}

/// A JSON string with something in it.
fn text(value: &Value) -> Option<String> {
    value
        .as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// Words a BSP uses when it refuses for a rate rather than for the message itself. Whole
/// phrases only: a bare "rate" would match "separate" or "generate" in a validation error.
fn sounds_throttled(text: &str) -> bool {
    let text = text.to_ascii_lowercase();
    [
        "throttl",
        "too many",
        "rate limit",
        "rate-limit",
        "ratelimit",
        "rate exceeded",
    ]
    .iter()
    .any(|phrase| text.contains(phrase))
}

#[cfg(test)]
mod tests {
    use super::test_support::{Sample, settings};
    use super::*;

    #[test]
    fn dispatch_reaches_each_providers_file() {
        let sample = Sample::new();
        let mut s = settings("k");
        s.base_url = Some("http://mock:9000".into());
        let urls: Vec<String> = SendProvider::ALL
            .into_iter()
            .map(|p| build(p, &s, &sample.request()).unwrap().url)
            .collect();
        assert_eq!(
            urls,
            [
                "http://mock:9000/campaign/t1/api/v2",
                "http://mock:9000/services/rcm/sendMessage",
                "http://mock:9000/messages",
                "http://mock:9000/v23.0/106540352242922/messages",
            ]
        );
        let body = br#"{"messages":[{"id":"wamid.X"}],"mid":"m1","messageId":"a1"}"#;
        let ids: Vec<SendOutcome> = SendProvider::ALL
            .into_iter()
            .map(|p| classify(p, 200, None, body))
            .collect();
        let accepted = |id: &str| SendOutcome::Accepted {
            id: Some(id.into()),
        };
        assert_eq!(
            ids,
            [
                accepted("a1"),
                accepted("m1"),
                accepted("wamid.X"),
                accepted("wamid.X")
            ]
        );
    }

    #[test]
    fn debug_never_shows_a_credential() {
        let sample = Sample::new();
        let mut s = settings("sk-very-secret");
        s.base_url = Some("https://user:url-password@bsp.example.com".into());
        let shown = format!("{s:?}");
        assert!(
            shown.contains("<redacted>") && shown.contains("bsp.example.com"),
            "{shown}"
        );
        assert!(
            !shown.contains("sk-very-secret") && !shown.contains("url-password"),
            "{shown}"
        );
        for p in SendProvider::ALL {
            let call = build(p, &s, &sample.request()).unwrap();
            let raw = format!(
                "{:?}{:?}",
                call.headers,
                String::from_utf8_lossy(&call.body)
            );
            assert!(raw.contains("sk-very-secret"), "{p:?} carries it: {raw}");
            let shown = format!("{call:?}");
            assert!(!shown.contains("sk-very-secret"), "{p:?}: {shown}");
            assert!(!shown.contains("url-password"), "{p:?}: {shown}");
            assert!(
                shown.contains("content-type") && shown.contains("bytes>"),
                "{shown}"
            );
            // Inside other values too.
            let nested = format!("{:?}", (Some(&call), vec![&s]));
            assert!(!nested.contains("sk-very-secret"), "{nested}");
        }
    }

    #[test]
    fn helpers() {
        assert_eq!(join("https://h/", "/a/b"), "https://h/a/b");
        assert_eq!(join("https://h//", "a"), "https://h/a");
        assert_eq!(bearer("tok"), "Bearer tok");
        assert_eq!(bearer("bearer tok"), "bearer tok");
        assert_eq!(bearer("Bearertok"), "Bearer Bearertok");
        assert_eq!(bearer("é"), "Bearer é");
        assert_eq!(snippet(b" \n "), None);
        assert_eq!(
            snippet("<p>\n  ünïcode  </p>".repeat(40).as_bytes())
                .unwrap()
                .chars()
                .count(),
            200
        );
        for t in ["Rate limit exceeded", "THROTTLED", "Too Many Requests"] {
            assert!(sounds_throttled(t), "{t}");
        }
        for t in ["Generate a separate accurate moderate request", "rated"] {
            assert!(!sounds_throttled(t), "{t}");
        }
    }
}
