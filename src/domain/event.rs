//! Normalized events: what every provider's webhook becomes, and what travels on the queue.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::phone::PhoneNumber;
use super::status::Reported;
use super::time::Timestamp;

/// The BSP an event came from (and, later, the one a campaign sends through).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    Datagen,
    Meta,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Datagen => "datagen",
            Provider::Meta => "meta",
        }
    }

    pub fn parse(s: &str) -> Option<Provider> {
        match s {
            "datagen" => Some(Provider::Datagen),
            "meta" => Some(Provider::Meta),
            _ => None,
        }
    }
}

/// Why a provider reported a failure, as the provider worded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventError {
    pub code: Option<String>,
    pub message: Option<String>,
}

/// A delivery status report for one outbound message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusEvent {
    pub provider: Provider,
    pub wamid: String,
    /// What the provider reported; the message's status follows [`Reported::effect`].
    pub status: Reported,
    /// Our customer's WhatsApp number: it decides which project the event belongs to, unless
    /// `phone_number_id` does.
    pub business_number: PhoneNumber,
    /// The provider's own id of the business number (Meta's `metadata.phone_number_id`), when
    /// it sends one: a project that registered it as the number's `meta_phone_number_id` owns
    /// the event whatever the display number says. Absent in tasks queued by earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number_id: Option<String>,
    /// The end user the message went to, when the provider says.
    pub phone: Option<PhoneNumber>,
    pub campaign_id: Option<String>,
    /// What the BSP echoed of the per-recipient reference a campaign send carried (Meta
    /// `biz_opaque_callback_data`, Karix `recipient.reference.cust_ref`): how a send whose
    /// response was lost finds its recipient. Whatever non-empty value came, up to 512 bytes;
    /// the caller decides whether it is one of ours. Absent in tasks queued by earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    pub occurred_at: Option<Timestamp>,
    pub error: Option<EventError>,
    /// The provider's own JSON for this one event, kept verbatim for audit and forwarding.
    pub raw: Box<RawValue>,
}

impl StatusEvent {
    /// See [`Event::dedupe_key`].
    pub fn dedupe_key(&self) -> String {
        format!("s:{}:{}", self.wamid, self.status.key_text())
    }
}

/// A message a WhatsApp user sent to a business number.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InboundMessage {
    pub provider: Provider,
    pub message_id: String,
    pub business_number: PhoneNumber,
    /// As in [`StatusEvent::phone_number_id`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number_id: Option<String>,
    pub from: PhoneNumber,
    pub profile_name: Option<String>,
    /// The provider's message type: `text`, `image`, `button`, ...
    pub kind: String,
    pub text: Option<String>,
    pub occurred_at: Option<Timestamp>,
    pub raw: Box<RawValue>,
}

impl InboundMessage {
    /// See [`Event::dedupe_key`].
    pub fn dedupe_key(&self) -> String {
        format!("i:{}", self.message_id)
    }
}

/// One unit of work for the processor. Externally tagged on purpose: serde's internally tagged
/// enums buffer their content, which `RawValue` cannot pass through.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    Status(StatusEvent),
    Inbound(InboundMessage),
}

impl Event {
    pub fn provider(&self) -> Provider {
        match self {
            Event::Status(e) => e.provider,
            Event::Inbound(m) => m.provider,
        }
    }

    pub fn business_number(&self) -> &PhoneNumber {
        match self {
            Event::Status(e) => &e.business_number,
            Event::Inbound(m) => &m.business_number,
        }
    }

    /// See [`StatusEvent::phone_number_id`].
    pub fn phone_number_id(&self) -> Option<&str> {
        match self {
            Event::Status(e) => e.phone_number_id.as_deref(),
            Event::Inbound(m) => m.phone_number_id.as_deref(),
        }
    }

    /// The event naming `number` as its business number: the registered spelling, once the
    /// event's `phone_number_id` has found the project that registered it.
    pub fn with_business_number(mut self, number: PhoneNumber) -> Event {
        match &mut self {
            Event::Status(e) => e.business_number = number,
            Event::Inbound(m) => m.business_number = number,
        }
        self
    }

    /// The natural key the store enforces unique: a status event is its history key (wamid,
    /// reported kind, and the word for an unknown one), an inbound message its id.
    pub fn dedupe_key(&self) -> String {
        match self {
            Event::Status(e) => e.dedupe_key(),
            Event::Inbound(m) => m.dedupe_key(),
        }
    }

    pub fn raw(&self) -> &RawValue {
        match self {
            Event::Status(e) => &e.raw,
            Event::Inbound(m) => &m.raw,
        }
    }

    /// User messages jump the queue (the seed's priority 5 against 0 for status events): a person
    /// is waiting on a reply, nobody waits on a `read` receipt.
    pub fn priority(&self) -> u8 {
        match self {
            Event::Status(_) => 0,
            Event::Inbound(_) => 5,
        }
    }
}

/// Something a provider sent that wagate could not turn into an event. Kept, never dropped.
#[derive(Debug, Clone)]
pub struct Rejected {
    pub provider: Provider,
    pub reason: &'static str,
    pub raw: Box<RawValue>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::status::Status;

    fn status(wamid: &str, status: Reported) -> Event {
        Event::Status(StatusEvent {
            provider: Provider::Meta,
            wamid: wamid.into(),
            status,
            business_number: PhoneNumber::parse("+15550783881").unwrap(),
            phone_number_id: None,
            phone: None,
            campaign_id: None,
            reference: None,
            occurred_at: None,
            error: None,
            raw: RawValue::from_string("{}".into()).unwrap(),
        })
    }

    #[test]
    fn dedupe_keys_follow_the_history_key() {
        // Known kinds keep the keys earlier versions made.
        assert_eq!(
            status("w", Status::Delivered.into()).dedupe_key(),
            "s:w:delivered"
        );
        assert_eq!(status("w", Reported::Played).dedupe_key(), "s:w:played");
        let a = status("w", Reported::Other("queued".into())).dedupe_key();
        let b = status("w", Reported::Other("enroute".into())).dedupe_key();
        assert_ne!(a, b, "two unknown words are two events");
        // An unknown word cannot spell another wamid's key.
        assert_ne!(
            status("w", Reported::Other("x:read".into())).dedupe_key(),
            status("w:x", Reported::Read).dedupe_key()
        );
    }
}
