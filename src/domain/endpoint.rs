//! Webhook endpoints a project registers: ids, topics, target URLs, shared secrets, and the
//! delivery rows the forwarder keeps per endpoint. Parsed once at the edge, valid after.

mod target;

use super::ids::prefixed_id;
use super::signing::SigningSecret;

pub use target::is_forbidden_target;

use super::project::ProjectId;
use super::time::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("webhook_url {0}")]
    InvalidUrl(&'static str),
    #[error(
        "unknown topic `{0}` (known: datagen.delivery, datagen.user_message, meta.delivery, meta.user_message, *)"
    )]
    UnknownTopic(String),
    #[error("topics must list 1 to 10 topics")]
    TopicCount,
    #[error("description must be at most 500 characters, without control characters")]
    InvalidDescription,
    #[error("shared_secret must be `whsec_` followed by the base64 of 24 to 64 bytes")]
    InvalidSecret,
    #[error("`{0}` is not an id of this kind")]
    InvalidId(String),
}

impl EndpointError {
    /// The message, naming `field` where it names `webhook_url`: a URL error is about whichever
    /// field held the URL (`csv_url`, `base_url`).
    pub fn for_field(&self, field: &str) -> String {
        match self {
            EndpointError::InvalidUrl(why) => format!("{field} {why}"),
            other => other.to_string(),
        }
    }
}

const MAX_URL_BYTES: usize = 2048;
const MAX_TOPICS: usize = 10;
const MAX_DESCRIPTION: usize = 500;

prefixed_id!(
    /// An endpoint's id: `ep_` + UUID v7.
    EndpointId,
    "ep_",
    EndpointError::InvalidId
);
prefixed_id!(
    /// One event's delivery to one endpoint: `dl_` + UUID v7. (Not the queue's `DeliveryId`,
    /// which names one receipt of a queue message.)
    WebhookDeliveryId,
    "dl_",
    EndpointError::InvalidId
);

impl WebhookDeliveryId {
    /// Every id generated before `t` sorts below this string: a UUID v7 starts with its
    /// creation time in milliseconds, as 12 hex digits. (Time-ordered ids let pruning walk the
    /// primary key instead of an index of its own.)
    pub fn bound_before(t: Timestamp) -> String {
        format!("dl_{:012x}", t.millis().max(0))
    }
}

/// What an endpoint subscribes to: an event type, or `*` for all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Topic {
    DatagenDelivery,
    DatagenUserMessage,
    MetaDelivery,
    MetaUserMessage,
    All,
}

impl Topic {
    pub const ALL: [Topic; 5] = [
        Topic::DatagenDelivery,
        Topic::DatagenUserMessage,
        Topic::MetaDelivery,
        Topic::MetaUserMessage,
        Topic::All,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Topic::DatagenDelivery => "datagen.delivery",
            Topic::DatagenUserMessage => "datagen.user_message",
            Topic::MetaDelivery => "meta.delivery",
            Topic::MetaUserMessage => "meta.user_message",
            Topic::All => "*",
        }
    }

    pub fn parse(s: &str) -> Result<Topic, EndpointError> {
        Topic::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| EndpointError::UnknownTopic(s.chars().take(64).collect()))
    }
}

impl serde::Serialize for Topic {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// 1 to 10 distinct topics, sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics(Vec<Topic>);

impl Topics {
    pub fn parse<S: AsRef<str>>(words: &[S]) -> Result<Topics, EndpointError> {
        let mut topics = words
            .iter()
            .map(|w| Topic::parse(w.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        topics.sort();
        topics.dedup();
        if topics.is_empty() || words.len() > MAX_TOPICS {
            return Err(EndpointError::TopicCount);
        }
        Ok(Topics(topics))
    }

    /// The stored comma list. A word no longer known is skipped rather than failing the read.
    pub fn from_stored(list: &str) -> Topics {
        let mut topics: Vec<Topic> = list
            .split(',')
            .filter_map(|w| Topic::parse(w).ok())
            .collect();
        topics.sort();
        topics.dedup();
        Topics(topics)
    }

    pub fn to_stored(&self) -> String {
        self.0
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn as_slice(&self) -> &[Topic] {
        &self.0
    }

    /// Whether an event of type `topic` goes to this endpoint.
    pub fn accepts(&self, topic: Topic) -> bool {
        self.0.iter().any(|t| *t == topic || *t == Topic::All)
    }
}

/// An `http://` or `https://` URL with a host and no user info, at most 2 KiB, in the
/// normalized form the `url` crate writes. Whether its host may be targeted is a separate
/// question (it needs DNS): see [`is_forbidden_target`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(String);

impl WebhookUrl {
    pub fn parse(s: &str) -> Result<WebhookUrl, EndpointError> {
        if s.len() > MAX_URL_BYTES {
            return Err(EndpointError::InvalidUrl("must be at most 2048 bytes"));
        }
        let u = url::Url::parse(s.trim())
            .map_err(|_| EndpointError::InvalidUrl("is not a valid absolute URL"))?;
        if !matches!(u.scheme(), "http" | "https") {
            return Err(EndpointError::InvalidUrl(
                "must start with https:// or http://",
            ));
        }
        if u.host_str().is_none_or(str::is_empty) {
            return Err(EndpointError::InvalidUrl("must name a host"));
        }
        if !u.username().is_empty() || u.password().is_some() {
            // Credentials in a URL end up in logs and in the forwarder's errors.
            return Err(EndpointError::InvalidUrl(
                "must not carry a user name or password",
            ));
        }
        let normalized = String::from(u);
        if normalized.len() > MAX_URL_BYTES {
            return Err(EndpointError::InvalidUrl("must be at most 2048 bytes"));
        }
        Ok(WebhookUrl(normalized))
    }

    pub fn from_trusted(s: String) -> WebhookUrl {
        WebhookUrl(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The host and port a request to this URL connects to.
    pub fn host_and_port(&self) -> Option<(url::Host<String>, u16)> {
        let u = url::Url::parse(&self.0).ok()?;
        Some((u.host()?.to_owned(), u.port_or_known_default()?))
    }
}

/// The key both signatures of a forwarded request are made with: `whsec_` + base64 (standard
/// alphabet, padded) of 24 to 64 bytes, so Standard Webhooks libraries accept it as it is.
/// Never printed: `Debug` hides it; [`SharedSecret::expose`] is for the API's create and
/// rotate responses and for signing.
#[derive(Clone, PartialEq, Eq)]
pub struct SharedSecret(String);

impl SharedSecret {
    /// A secret the customer chose: the signing side's rules (`whsec_` + padded base64 of 24
    /// to 64 bytes), so any Standard Webhooks library verifies it.
    pub fn parse(s: &str) -> Result<SharedSecret, EndpointError> {
        SigningSecret::parse(s)
            .map(|k| SharedSecret(k.as_str().to_owned()))
            .map_err(|_| EndpointError::InvalidSecret)
    }

    /// `whsec_` + base64 of 32 random bytes.
    pub fn generate() -> SharedSecret {
        SharedSecret(SigningSecret::generate().as_str().to_owned())
    }

    /// The key that signs with it.
    pub fn signing(&self) -> SigningSecret {
        SigningSecret::new(self.0.clone())
    }

    pub fn from_trusted(s: String) -> SharedSecret {
        SharedSecret(s)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedSecret(<redacted>)")
    }
}

/// An optional description: at most 500 characters once trimmed, no control characters. Empty
/// means none.
fn parse_description(s: &str) -> Result<Option<String>, EndpointError> {
    let s = s.trim();
    if s.chars().count() > MAX_DESCRIPTION || s.chars().any(char::is_control) {
        return Err(EndpointError::InvalidDescription);
    }
    Ok((!s.is_empty()).then(|| s.to_owned()))
}

/// A validated request to create an endpoint.
#[derive(Debug, Clone)]
pub struct EndpointIn {
    pub url: WebhookUrl,
    pub topics: Topics,
    pub description: Option<String>,
    /// `None`: generate one.
    pub secret: Option<SharedSecret>,
}

impl EndpointIn {
    pub fn parse<S: AsRef<str>>(
        url: &str,
        topics: &[S],
        description: Option<&str>,
        secret: Option<&str>,
    ) -> Result<EndpointIn, EndpointError> {
        Ok(EndpointIn {
            url: WebhookUrl::parse(url)?,
            topics: Topics::parse(topics)?,
            description: description.map(parse_description).transpose()?.flatten(),
            secret: secret.map(SharedSecret::parse).transpose()?,
        })
    }
}

/// A validated change to an endpoint; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct EndpointPatch {
    pub url: Option<WebhookUrl>,
    pub topics: Option<Topics>,
    /// `Some(None)` clears the description.
    pub description: Option<Option<String>>,
    /// `Some(true)` re-enables (and forgets why it was disabled).
    pub enabled: Option<bool>,
}

impl EndpointPatch {
    pub fn parse<S: AsRef<str>>(
        url: Option<&str>,
        topics: Option<&[S]>,
        description: Option<&str>,
        enabled: Option<bool>,
    ) -> Result<EndpointPatch, EndpointError> {
        Ok(EndpointPatch {
            url: url.map(WebhookUrl::parse).transpose()?,
            topics: topics.map(Topics::parse).transpose()?,
            description: description.map(parse_description).transpose()?,
            enabled,
        })
    }
}

/// Why an endpoint disabled through the API is disabled.
pub const DISABLED_BY_REQUEST: &str = "disabled through the API";

/// The previous secret during a rotation: it keeps signing, beside the new one, until then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousSecret {
    pub secret: SharedSecret,
    pub expires_at: Timestamp,
}

/// An endpoint as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub id: EndpointId,
    pub project_id: ProjectId,
    pub url: WebhookUrl,
    pub topics: Topics,
    pub description: Option<String>,
    pub secret: SharedSecret,
    pub previous_secret: Option<PreviousSecret>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Endpoint {
    /// A new, enabled endpoint; its secret is the one given or a fresh one.
    pub fn create(project: ProjectId, input: EndpointIn, now: Timestamp) -> Endpoint {
        Endpoint {
            id: EndpointId::generate(),
            project_id: project,
            url: input.url,
            topics: input.topics,
            description: input.description,
            secret: input.secret.unwrap_or_else(SharedSecret::generate),
            previous_secret: None,
            enabled: true,
            disabled_reason: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// The previous secret, while it still signs.
    pub fn active_previous(&self, now: Timestamp) -> Option<&PreviousSecret> {
        self.previous_secret.as_ref().filter(|p| p.expires_at > now)
    }

    /// The secrets a request made `now` is signed with: the current one first.
    pub fn signing_secrets(&self, now: Timestamp) -> Vec<&SharedSecret> {
        std::iter::once(&self.secret)
            .chain(self.active_previous(now).map(|p| &p.secret))
            .collect()
    }
}

/// Where a delivery stands: waiting for its next attempt, done, or given up on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    Pending,
    Succeeded,
    Dead,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 3] = [
        DeliveryStatus::Pending,
        DeliveryStatus::Succeeded,
        DeliveryStatus::Dead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Succeeded => "succeeded",
            DeliveryStatus::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryStatus> {
        DeliveryStatus::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

#[cfg(test)]
mod tests;
