//! One file per BSP, each the same shape: raw payload types, `parse(body) -> Parsed`, fixture tests.

pub mod datagen;
pub mod meta;
pub mod send;

use serde_json::value::RawValue;

use super::event::{Event, Provider, Rejected};
use super::phone::PhoneNumber;
use super::status::Reported;
use super::time::Timestamp;

/// What a webhook body turned into: events to enqueue and parts to quarantine.
#[derive(Debug, Default)]
pub struct Parsed {
    pub events: Vec<Event>,
    pub rejected: Vec<Rejected>,
}

impl Parsed {
    fn reject(&mut self, provider: Provider, reason: &'static str, raw: &RawValue) {
        self.rejected.push(Rejected {
            provider,
            reason,
            raw: raw.to_owned(),
        });
    }
}

/// The body is not JSON at all: the one case answered with 400 instead of quarantine.
#[derive(Debug, thiserror::Error)]
#[error("request body is not valid JSON: {0}")]
pub struct InvalidJson(#[from] pub serde_json::Error);

/// Parses the body as JSON without interpreting it, so each provider can then read it typed and
/// still keep the verbatim text of each element.
pub fn raw_json(body: &[u8]) -> Result<Box<RawValue>, InvalidJson> {
    Ok(serde_json::from_slice(body)?)
}

/// Empty strings mean "absent" in Datagen payloads (`"reason": ""`). NUL characters are
/// dropped: PostgreSQL text cannot hold them, and one would make a whole batch fail to store.
fn non_empty(s: Option<String>) -> Option<String> {
    s.map(|s| s.replace('\0', "").trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// A code may be a JSON number (Meta) or a string (Datagen); both become text.
fn scalar_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => non_empty(Some(s.clone())),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Provider ids are opaque, but an empty or absurdly long one is a malformed payload.
fn valid_id(id: Option<String>) -> Option<String> {
    non_empty(id).filter(|s| s.len() <= 512)
}

/// An echoed send reference: any non-empty value that fits (the same bound as ids), whether or
/// not it is one of wagate's; the caller decides.
fn reference(value: Option<String>) -> Option<String> {
    valid_id(value)
}

/// A text field with something in it (Datagen writes `""` for "absent").
fn present(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty())
}

/// A phone number field: `Ok(None)` when absent or empty; a value that is there but is not a
/// phone number is `invalid` (the caller's quarantine reason), never quietly dropped.
fn number(
    field: Option<String>,
    invalid: &'static str,
) -> Result<Option<PhoneNumber>, &'static str> {
    match present(field) {
        None => Ok(None),
        Some(s) => PhoneNumber::parse(&s).map(Some).map_err(|_| invalid),
    }
}

/// The event time, or `invalid_timestamp` for a value that is not a time wagate can represent.
fn event_time(value: &serde_json::Value) -> Result<Option<Timestamp>, &'static str> {
    Timestamp::parse_provider(value).map_err(|_| "invalid_timestamp")
}

/// The status word, read as in `status.rs`'s table; unknown words are kept, unreadable ones
/// (`invalid_status`) and absent ones (`missing_status`) are not.
fn reported(word: Option<&str>) -> Result<Reported, &'static str> {
    Reported::parse_provider(word.ok_or("missing_status")?).map_err(|e| e.reason())
}
