//! The forwarded request: its event type, its exact body bytes, and its headers (DESIGN.md,
//! "Forwarded request").

use serde::Serialize;
use serde_json::value::RawValue;

use crate::domain::event::{Event, EventError, InboundMessage, Provider, StatusEvent};
use crate::domain::phone::PhoneNumber;
use crate::domain::signing::{SigningSecret, standard_signature_header};
use crate::domain::status::{Reported, Status};
use crate::domain::time::Timestamp;

/// Every topic an endpoint can subscribe to, besides `*`.
pub const EVENT_TYPES: [&str; 4] = [
    "datagen.delivery",
    "datagen.user_message",
    "meta.delivery",
    "meta.user_message",
];

/// `User-Agent` of every forwarded request.
pub const USER_AGENT: &str = concat!("wagate/", env!("CARGO_PKG_VERSION"));

/// Header names, lowercase: HTTP/1 and HTTP/2 treat names without case, hyper writes them
/// lowercase anyway, and `http::HeaderName::from_static` accepts only lowercase.
pub mod header {
    pub const CONTENT_TYPE: &str = "content-type";
    pub const USER_AGENT: &str = "user-agent";
    pub const EVENT_TYPE: &str = "x-event-type";
    pub const EVENT_ID: &str = "x-event-id";
    pub const SEED_SIGNATURE: &str = "x-webhook-signature";
    pub const ATTEMPT_COUNT: &str = "x-attempt-count";
    pub const WEBHOOK_ID: &str = "webhook-id";
    pub const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
    pub const WEBHOOK_SIGNATURE: &str = "webhook-signature";
}

/// An event by reference, as a store's plan holds it (status rows and inbound rows apart).
#[derive(Debug, Clone, Copy)]
pub enum EventRef<'a> {
    Status(&'a StatusEvent),
    Inbound(&'a InboundMessage),
}

impl<'a> From<&'a Event> for EventRef<'a> {
    fn from(event: &'a Event) -> EventRef<'a> {
        match event {
            Event::Status(e) => EventRef::Status(e),
            Event::Inbound(m) => EventRef::Inbound(m),
        }
    }
}

impl<'a> EventRef<'a> {
    fn raw(self) -> &'a RawValue {
        match self {
            EventRef::Status(e) => &e.raw,
            EventRef::Inbound(m) => &m.raw,
        }
    }
}

/// The topic an event is forwarded under: `{provider}.delivery` for a status report,
/// `{provider}.user_message` for a message from a user.
pub fn event_type<'a>(event: impl Into<EventRef<'a>>) -> &'static str {
    let (provider, is_report) = match event.into() {
        EventRef::Status(e) => (e.provider, true),
        EventRef::Inbound(m) => (m.provider, false),
    };
    match (provider, is_report) {
        (Provider::Datagen, true) => "datagen.delivery",
        (Provider::Datagen, false) => "datagen.user_message",
        (Provider::Meta, true) => "meta.delivery",
        (Provider::Meta, false) => "meta.user_message",
    }
}

/// The body of a forwarded request, as exact bytes (what both signatures cover):
///
/// ```json
/// {"event_type": "meta.delivery", "event_id": "…", "timestamp": "2024-11-27T09:38:20.123Z",
///  "data": <the provider's JSON for this one event, verbatim>,
///  "message": {…}}
/// ```
///
/// `message` for a status report: `wamid`, `status` (this event's word, e.g. `played`),
/// `current_status` (the message's merged status after this event, so a receiver can handle
/// reports that arrive out of order; `null` only if the caller has none), `phone`,
/// `business_number`, `campaign_id` (the message's, as stored with its send or found through
/// the recipient an event echoed; else the one the event named), `occurred_at` (RFC 3339 or
/// `null`), `error` (`{"code","message"}` or `null`).
///
/// `message` for a user's message: `message_id`, `from`, `business_number` (which of the
/// customer's numbers it reached: the counterpart of a report's), `profile_name`, `type`
/// (`text`, `image`, `button`, ...), `text`, `occurred_at`. `current_status` is ignored.
///
/// `timestamp` is when the event was made a delivery, not the attempt's time (that is
/// `webhook-timestamp`): build the body once and send the same bytes on every attempt.
pub fn body<'a>(
    event: impl Into<EventRef<'a>>,
    current_status: Option<Status>,
    campaign_id: Option<&'a str>,
    event_id: &str,
    timestamp: Timestamp,
) -> Vec<u8> {
    let event = event.into();
    let message = match event {
        EventRef::Status(e) => Message::Status(StatusFields::new(e, current_status, campaign_id)),
        EventRef::Inbound(m) => Message::Inbound(InboundFields::new(m)),
    };
    let body = Body {
        event_type: event_type(event),
        event_id,
        timestamp: timestamp.to_rfc3339(),
        data: event.raw(),
        message,
    };
    serde_json::to_vec(&body).expect("the body's fields all serialize")
}

/// The headers of one attempt. `event_id` goes in `X-Event-ID` and `webhook-id` (the same on
/// every attempt, so receivers deduplicate on either); `attempt` counts from 1; `now` is the
/// attempt's time, signed as `webhook-timestamp` (whole seconds). `secrets` are the endpoint's
/// active secrets, newest first: `webhook-signature` carries one entry per secret, and
/// `X-Webhook-Signature`, which has room for one, is made with the newest (the one the owner
/// was last given). With no secret at all the two signature headers are left out.
pub fn headers(
    event_type: &str,
    event_id: &str,
    attempt: u32,
    body: &[u8],
    secrets: &[SigningSecret],
    now: Timestamp,
) -> Vec<(&'static str, String)> {
    let timestamp = now.millis().div_euclid(1000);
    let mut headers = vec![
        (header::CONTENT_TYPE, "application/json".to_owned()),
        (header::USER_AGENT, USER_AGENT.to_owned()),
        (header::EVENT_TYPE, event_type.to_owned()),
        (header::EVENT_ID, event_id.to_owned()),
    ];
    if let Some(newest) = secrets.first() {
        headers.push((header::SEED_SIGNATURE, newest.seed_signature(body)));
    }
    headers.extend([
        (header::ATTEMPT_COUNT, attempt.to_string()),
        (header::WEBHOOK_ID, event_id.to_owned()),
        (header::WEBHOOK_TIMESTAMP, timestamp.to_string()),
    ]);
    if !secrets.is_empty() {
        headers.push((
            header::WEBHOOK_SIGNATURE,
            standard_signature_header(secrets, event_id, timestamp, body),
        ));
    }
    headers
}

#[derive(Serialize)]
struct Body<'a> {
    event_type: &'static str,
    event_id: &'a str,
    timestamp: String,
    data: &'a RawValue,
    message: Message<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Message<'a> {
    Status(StatusFields<'a>),
    Inbound(InboundFields<'a>),
}

#[derive(Serialize)]
struct StatusFields<'a> {
    wamid: &'a str,
    status: &'a Reported,
    current_status: Option<Status>,
    phone: Option<&'a PhoneNumber>,
    business_number: &'a PhoneNumber,
    campaign_id: Option<&'a str>,
    occurred_at: Option<String>,
    error: Option<&'a EventError>,
}

impl<'a> StatusFields<'a> {
    fn new(
        e: &'a StatusEvent,
        current_status: Option<Status>,
        campaign_id: Option<&'a str>,
    ) -> StatusFields<'a> {
        StatusFields {
            wamid: &e.wamid,
            status: &e.status,
            current_status,
            phone: e.phone.as_ref(),
            business_number: &e.business_number,
            campaign_id: campaign_id.or(e.campaign_id.as_deref()),
            occurred_at: e.occurred_at.map(Timestamp::to_rfc3339),
            error: e.error.as_ref(),
        }
    }
}

#[derive(Serialize)]
struct InboundFields<'a> {
    message_id: &'a str,
    from: &'a PhoneNumber,
    business_number: &'a PhoneNumber,
    profile_name: Option<&'a str>,
    #[serde(rename = "type")]
    kind: &'a str,
    text: Option<&'a str>,
    occurred_at: Option<String>,
}

impl<'a> InboundFields<'a> {
    fn new(m: &'a InboundMessage) -> InboundFields<'a> {
        InboundFields {
            message_id: &m.message_id,
            from: &m.from,
            business_number: &m.business_number,
            profile_name: m.profile_name.as_deref(),
            kind: &m.kind,
            text: m.text.as_deref(),
            occurred_at: m.occurred_at.map(Timestamp::to_rfc3339),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENT_ID: &str = "01936f5e-8c2a-7b3e-9f10-2a3b4c5d6e7f";
    /// 2024-11-27T09:38:21.234Z.
    const MADE_AT: Timestamp = Timestamp::from_millis(1_732_700_301_234);
    /// Not compact and not ASCII: `data` must be these bytes, untouched.
    const META_RAW: &str = r#"{"id": "wamid.HBgLMTY0", "status": "played", "note": "Olá"}"#;
    const META_BODY: &str = r#"{"event_type":"meta.delivery","event_id":"01936f5e-8c2a-7b3e-9f10-2a3b4c5d6e7f","timestamp":"2024-11-27T09:38:21.234Z","data":{"id": "wamid.HBgLMTY0", "status": "played", "note": "Olá"},"message":{"wamid":"wamid.HBgLMTY0","status":"played","current_status":"read","phone":"+919812345678","business_number":"+15550783881","campaign_id":"camp-1","occurred_at":"2024-11-27T09:38:20.000Z","error":null}}"#;

    fn phone(s: &str) -> PhoneNumber {
        PhoneNumber::parse(s).unwrap()
    }

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).unwrap()
    }

    fn meta_played() -> Event {
        Event::Status(StatusEvent {
            provider: Provider::Meta,
            wamid: "wamid.HBgLMTY0".into(),
            status: Reported::Played,
            business_number: phone("+15550783881"),
            phone_number_id: None,
            phone: Some(phone("919812345678")),
            campaign_id: Some("camp-1".into()),
            reference: None,
            occurred_at: Some(Timestamp::from_millis(1_732_700_300_000)),
            error: None,
            raw: raw(META_RAW),
        })
    }

    fn datagen_failed() -> Event {
        Event::Status(StatusEvent {
            provider: Provider::Datagen,
            wamid: "410123751001143816805212".into(),
            status: Reported::Failed,
            business_number: phone("+15550783881"),
            phone_number_id: None,
            phone: None,
            campaign_id: None,
            reference: None,
            occurred_at: None,
            error: Some(EventError {
                code: Some("131026".into()),
                message: Some("Message undeliverable".into()),
            }),
            raw: raw(r#"{"status":"FAILED"}"#),
        })
    }

    fn inbound(provider: Provider) -> Event {
        Event::Inbound(InboundMessage {
            provider,
            message_id: "ABGGFlA5Fpa".into(),
            business_number: phone("+15550783881"),
            phone_number_id: None,
            from: phone("+919812345678"),
            profile_name: Some("Asha".into()),
            kind: "text".into(),
            text: Some("hi \"there\"".into()),
            occurred_at: Some(Timestamp::from_millis(1_732_700_300_000)),
            raw: raw(r#"{"type":"text"}"#),
        })
    }

    #[test]
    fn event_types() {
        assert_eq!(event_type(&meta_played()), "meta.delivery");
        assert_eq!(event_type(&datagen_failed()), "datagen.delivery");
        assert_eq!(event_type(&inbound(Provider::Meta)), "meta.user_message");
        assert_eq!(
            event_type(&inbound(Provider::Datagen)),
            "datagen.user_message"
        );
        for e in [meta_played(), inbound(Provider::Datagen)] {
            assert!(EVENT_TYPES.contains(&event_type(&e)));
        }
    }

    #[test]
    fn status_body_bytes() {
        let bytes = body(&meta_played(), Some(Status::Read), None, EVENT_ID, MADE_AT);
        assert_eq!(String::from_utf8(bytes).unwrap(), META_BODY);
    }

    #[test]
    fn failed_status_body_carries_the_error_and_the_merged_status() {
        let bytes = body(
            &datagen_failed(),
            Some(Status::Delivered),
            None,
            "e1",
            MADE_AT,
        );
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            r#"{"event_type":"datagen.delivery","event_id":"e1","timestamp":"2024-11-27T09:38:21.234Z","data":{"status":"FAILED"},"message":{"wamid":"410123751001143816805212","status":"failed","current_status":"delivered","phone":null,"business_number":"+15550783881","campaign_id":null,"occurred_at":null,"error":{"code":"131026","message":"Message undeliverable"}}}"#
        );
    }

    #[test]
    fn the_messages_campaign_comes_before_the_events() {
        let message = |bytes: Vec<u8>| -> serde_json::Value {
            serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()["message"].clone()
        };
        let stored = body(&datagen_failed(), None, Some("cmp_a"), "e1", MADE_AT);
        assert_eq!(message(stored)["campaign_id"], "cmp_a");
        let both = body(&meta_played(), None, Some("cmp_a"), "e1", MADE_AT);
        assert_eq!(message(both)["campaign_id"], "cmp_a");
        let named = body(&meta_played(), None, None, "e1", MADE_AT);
        assert_eq!(message(named)["campaign_id"], "camp-1");
    }

    #[test]
    fn inbound_body_bytes() {
        // `current_status` means nothing for a user's message and is not written.
        let bytes = body(
            &inbound(Provider::Meta),
            Some(Status::Read),
            None,
            "e2",
            MADE_AT,
        );
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            r#"{"event_type":"meta.user_message","event_id":"e2","timestamp":"2024-11-27T09:38:21.234Z","data":{"type":"text"},"message":{"message_id":"ABGGFlA5Fpa","from":"+919812345678","business_number":"+15550783881","profile_name":"Asha","type":"text","text":"hi \"there\"","occurred_at":"2024-11-27T09:38:20.000Z"}}"#
        );
    }

    /// The whole request for [`META_BODY`], signed with the two secrets of a rotation. The
    /// signatures were made with Python from the body text above: the `v1,` entries with the
    /// official `standardwebhooks` 1.1.0 (`Webhook(secret).sign(EVENT_ID, <1732700345 UTC>,
    /// META_BODY)`), the hex with `hmac.new(NEW.encode(), META_BODY.encode(), sha256)`.
    #[test]
    fn signed_headers() {
        const NEW: &str = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        const OLD: &str = "whsec_ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7";
        let secrets = [SigningSecret::new(NEW), SigningSecret::new(OLD)];
        // 1732700345.999 s: the signed timestamp is whole seconds, rounded down.
        let now = Timestamp::from_millis(1_732_700_345_999);
        let got = headers(
            "meta.delivery",
            EVENT_ID,
            2,
            META_BODY.as_bytes(),
            &secrets,
            now,
        );
        let user_agent = format!("wagate/{}", env!("CARGO_PKG_VERSION"));
        let want: Vec<(&str, String)> = [
            ("content-type", "application/json"),
            ("user-agent", user_agent.as_str()),
            ("x-event-type", "meta.delivery"),
            ("x-event-id", EVENT_ID),
            (
                "x-webhook-signature",
                "00a13ec5f3fe4d430266644a55e3b712cacf6f04f91d0a817f1c8d12fe748739",
            ),
            ("x-attempt-count", "2"),
            ("webhook-id", EVENT_ID),
            ("webhook-timestamp", "1732700345"),
            (
                "webhook-signature",
                "v1,TNV2pYVTUVkSfD0+eBNxlSLwjKU+HWq+FKjK2nJxUAc= \
                 v1,ClRuh6QaX+GRxCE4ydFsxWGECmbdy0qJstqosWLHYTU=",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.to_owned()))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn headers_without_a_secret_carry_no_signature() {
        let got = headers("meta.delivery", EVENT_ID, 1, b"{}", &[], MADE_AT);
        let names: Vec<&str> = got.iter().map(|(k, _)| *k).collect();
        assert!(!names.contains(&header::SEED_SIGNATURE));
        assert!(!names.contains(&header::WEBHOOK_SIGNATURE));
        assert!(names.contains(&header::WEBHOOK_ID));
        // Header names are lowercase, as `HeaderName::from_static` requires.
        assert!(
            names
                .iter()
                .all(|n| n.bytes().all(|b| !b.is_ascii_uppercase()))
        );
    }
}
