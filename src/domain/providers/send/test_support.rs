//! Test helpers shared by the provider send tests: fixture files, one sample send, and the
//! parts of an [`HttpCall`] the tests look at.

use serde_json::Value;

use super::{HttpCall, ProviderSettings, SendRequest};
use crate::domain::campaign::Media;
use crate::domain::phone::PhoneNumber;

/// A recipient id as the sender passes it (`rcp_` + UUID v7).
pub const REFERENCE: &str = "rcp_0193a1b2c3d47e8f9a0b1c2d3e4f5a6b";

pub fn raw(provider: &str, name: &str) -> Vec<u8> {
    let path = format!(
        "{}/src/domain/providers/fixtures/send/{provider}/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn fixture(provider: &str, name: &str) -> Value {
    serde_json::from_slice(&raw(provider, name)).unwrap()
}

pub fn body_json(call: &HttpCall) -> Value {
    serde_json::from_slice(&call.body).unwrap()
}

pub fn header_of<'a>(call: &'a HttpCall, name: &str) -> Option<&'a str> {
    call.headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Compares as values (key order and spacing do not matter), showing both on failure.
pub fn assert_json_eq(got: &Value, want: &Value) {
    assert!(
        got == want,
        "request body differs\n got: {}\nwant: {}",
        serde_json::to_string_pretty(got).unwrap(),
        serde_json::to_string_pretty(want).unwrap()
    );
}

pub fn settings(credential: &str) -> ProviderSettings {
    ProviderSettings {
        credential: Some(credential.into()),
        ..ProviderSettings::default()
    }
}

/// The owned values behind one [`SendRequest`]: a two-parameter template, no media.
pub struct Sample {
    pub from: PhoneNumber,
    pub meta_id: Option<String>,
    pub to: PhoneNumber,
    pub params: Vec<String>,
    pub media: Option<Media>,
    pub user_name: Option<String>,
}

impl Sample {
    pub fn new() -> Sample {
        Sample {
            from: PhoneNumber::parse("+919812345678").unwrap(),
            meta_id: Some("106540352242922".into()),
            to: PhoneNumber::parse("+919876543210").unwrap(),
            params: vec!["Asha".into(), "SAVE20".into()],
            media: None,
            user_name: Some("Asha".into()),
        }
    }

    pub fn with_media(mut self, kind: &str, filename: Option<&str>) -> Sample {
        self.media = Some(Media {
            kind: kind.into(),
            url: "https://cdn.example.com/spring/banner.jpg".into(),
            filename: filename.map(Into::into),
        });
        self
    }

    pub fn request(&self) -> SendRequest<'_> {
        SendRequest {
            from: &self.from,
            from_meta_id: self.meta_id.as_deref(),
            to: &self.to,
            template: "spring_sale",
            language: "en",
            params: &self.params,
            media: self.media.as_ref(),
            user_name: self.user_name.as_deref(),
            reference: REFERENCE,
        }
    }
}
