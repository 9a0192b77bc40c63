//! Outbound template sends, one file per BSP with the same shape: `build` (the HTTP request),
//! `classify` (the response → [`SendOutcome`]), and fixture tests beside them. No IO: the
//! sender worker performs the request.

use std::time::Duration;

use serde::{Deserialize, Serialize};

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
}

/// Where and how to reach one BSP: the server-wide defaults, overridden per project.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderSettings {
    /// `https://graph.facebook.com`, `https://rcmapi.instaalerts.zone`, ...
    pub base_url: Option<String>,
    /// The bearer token (Meta, Datagen) or API key (AiSensy, AiSensy-direct). A secret: never
    /// shown back, never logged.
    pub credential: Option<String>,
    /// Meta's Graph API version (`v21.0`), Karix's `metaData.version` (`v1.0.9`).
    pub api_version: Option<String>,
    /// Karix's `preferences.webHookDNId`: which configured webhook its status reports go to.
    pub webhook_dn_id: Option<String>,
}

impl ProviderSettings {
    /// `self` with every field `over` sets replaced by `over`'s.
    pub fn overridden_by(&self, over: &ProviderSettings) -> ProviderSettings {
        ProviderSettings {
            base_url: over.base_url.clone().or_else(|| self.base_url.clone()),
            credential: over.credential.clone().or_else(|| self.credential.clone()),
            api_version: over
                .api_version
                .clone()
                .or_else(|| self.api_version.clone()),
            webhook_dn_id: over
                .webhook_dn_id
                .clone()
                .or_else(|| self.webhook_dn_id.clone()),
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

/// An HTTP request to make, fully built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCall {
    pub url: String,
    /// Header names in lowercase.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
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
    /// Not accepted for a reason worth retrying (5xx).
    Retry { reason: String },
    /// Refused for good, with the provider's own code and title.
    Rejected { code: String, title: String },
}

/// Builds the request for `req` through `provider` with these settings.
pub fn build(
    provider: SendProvider,
    settings: &ProviderSettings,
    req: &SendRequest<'_>,
) -> Result<HttpCall, BuildError> {
    let _ = (provider, settings, req);
    unimplemented!("issue 7: provider request builders")
}

/// Reads a response: status code, `Retry-After` (already parsed), and the body.
pub fn classify(
    provider: SendProvider,
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
) -> SendOutcome {
    let _ = (provider, status, retry_after, body);
    unimplemented!("issue 7: provider response classifiers")
}
