//! Datagen/Karix (RCM) webhooks: "DELIVERY EVENTS" status reports and "User initiated" messages.
//!
//! A body is one event object or a JSON array of them. Field names are Karix's; every field is
//! optional here because real payloads vary, and whatever is missing decides the quarantine
//! reason instead of failing the whole body.

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::{
    Parsed, event_time, non_empty, number, present, reference, reported, scalar_text, valid_id,
};
use crate::domain::event::{Event, EventError, InboundMessage, Provider, StatusEvent};
use crate::domain::status::Reported;

const PROVIDER: Provider = Provider::Datagen;

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Payload {
    events: Events,
    notification_attributes: Attributes,
    recipient: Party,
    sender: Party,
    event_content: Content,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Events {
    event_type: Option<String>,
    mid: Option<String>,
    timestamp: Value,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Attributes {
    status: Option<String>,
    reason: Option<String>,
    code: Value,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Party {
    to: Option<String>,
    from: Option<String>,
    reference: Reference,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Reference {
    parent_campaign_id: Option<String>,
    /// Echoed from the send: wagate's campaign sends put the recipient's reference in both.
    cust_ref: Option<String>,
    #[serde(rename = "messageTag1")]
    message_tag1: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Content {
    message: ContentMessage,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct ContentMessage {
    id: Option<String>,
    from: Option<String>,
    to: Option<String>,
    content_type: Option<String>,
    message_type: Option<String>,
    profile_name: Option<String>,
    text: Text,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Text {
    body: Option<String>,
}

enum Kind {
    Delivery,
    UserInitiated,
}

fn kind(event_type: Option<&str>) -> Option<Kind> {
    let folded = event_type?.trim().to_ascii_lowercase().replace('_', " ");
    match folded.as_str() {
        "delivery events" | "delivery event" | "delivery" => Some(Kind::Delivery),
        "user initiated" => Some(Kind::UserInitiated),
        _ => None,
    }
}

/// Parses a Datagen body: one event object, or an array of them.
pub fn parse(body: &RawValue) -> Parsed {
    let mut out = Parsed::default();
    match body.get().trim_start().as_bytes().first() {
        Some(b'[') => match serde_json::from_str::<Vec<Box<RawValue>>>(body.get()) {
            Ok(items) => items.iter().for_each(|item| parse_one(item, &mut out)),
            Err(_) => out.reject(PROVIDER, "unknown_shape", body),
        },
        Some(b'{') => parse_one(body, &mut out),
        _ => out.reject(PROVIDER, "unknown_shape", body),
    }
    out
}

fn parse_one(raw: &RawValue, out: &mut Parsed) {
    let Ok(p) = serde_json::from_str::<Payload>(raw.get()) else {
        return out.reject(PROVIDER, "unknown_shape", raw);
    };
    let result = match kind(p.events.event_type.as_deref()) {
        Some(Kind::Delivery) => status_event(p, raw).map(Event::Status),
        Some(Kind::UserInitiated) => inbound(p, raw).map(Event::Inbound),
        None => Err("unknown_shape"),
    };
    match result {
        Ok(event) => out.events.push(event),
        Err(reason) => out.reject(PROVIDER, reason, raw),
    }
}

fn status_event(p: Payload, raw: &RawValue) -> Result<StatusEvent, &'static str> {
    let wamid = valid_id(p.events.mid).ok_or("missing_message_id")?;
    let status = reported(p.notification_attributes.status.as_deref())?;
    let business_number =
        number(p.sender.from, "invalid_business_number")?.ok_or("missing_business_number")?;
    let phone = number(p.recipient.to, "invalid_phone")?;
    let occurred_at = event_time(&p.events.timestamp)?;
    let error = (status == Reported::Failed)
        .then(|| EventError {
            code: scalar_text(&p.notification_attributes.code),
            message: non_empty(p.notification_attributes.reason),
        })
        .filter(|e| e.code.is_some() || e.message.is_some());
    let r = p.recipient.reference;
    Ok(StatusEvent {
        provider: PROVIDER,
        wamid,
        status,
        business_number,
        phone_number_id: None,
        phone,
        campaign_id: non_empty(r.parent_campaign_id),
        reference: reference(r.cust_ref).or_else(|| reference(r.message_tag1)),
        occurred_at,
        error,
        raw: raw.to_owned(),
    })
}

fn inbound(p: Payload, raw: &RawValue) -> Result<InboundMessage, &'static str> {
    let m = p.event_content.message;
    let message_id = valid_id(m.id)
        .or(valid_id(p.events.mid))
        .ok_or("missing_message_id")?;
    // For user messages the roles swap: the business is the recipient. The first field present
    // decides; a present one that is not a number is not skipped over.
    let business_number = number(present(p.recipient.to).or(m.to), "invalid_business_number")?
        .ok_or("missing_business_number")?;
    let from =
        number(present(m.from).or(p.sender.from), "invalid_sender")?.ok_or("missing_sender")?;
    let occurred_at = event_time(&p.events.timestamp)?;
    Ok(InboundMessage {
        provider: PROVIDER,
        message_id,
        business_number,
        phone_number_id: None,
        from,
        profile_name: non_empty(m.profile_name),
        kind: non_empty(m.message_type)
            .or(non_empty(m.content_type))
            .unwrap_or_else(|| "unknown".to_owned())
            .to_ascii_lowercase(),
        text: non_empty(m.text.body),
        occurred_at,
        raw: raw.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::time::Timestamp;

    fn fixture(name: &str) -> Parsed {
        let path = format!(
            "{}/src/domain/providers/fixtures/datagen/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let body = std::fs::read(path).unwrap();
        parse(&crate::domain::providers::raw_json(&body).unwrap())
    }

    fn only_status(p: Parsed) -> StatusEvent {
        assert!(p.rejected.is_empty(), "{:?}", p.rejected);
        assert_eq!(p.events.len(), 1);
        match p.events.into_iter().next().unwrap() {
            Event::Status(s) => s,
            other => panic!("expected status, got {other:?}"),
        }
    }

    #[test]
    fn delivery_events() {
        for (file, want) in [
            ("delivery_sent.json", Reported::Sent),
            ("delivery_delivered.json", Reported::Delivered),
            ("delivery_read.json", Reported::Read),
        ] {
            let e = only_status(fixture(file));
            assert_eq!(e.status, want, "{file}");
            assert_eq!(
                e.wamid,
                "wamid.HBgMOTE5ODc2NTQzMjEwFQIAERgSM0E1RjQyNUE3QjE5QzA0RDQ2AA=="
            );
            assert_eq!(e.business_number.as_str(), "+919812345678");
            assert_eq!(e.phone.unwrap().as_str(), "+919876543210");
            assert_eq!(e.campaign_id.as_deref(), Some("cmp_spring_sale"));
            assert!(e.error.is_none());
            assert!(e.occurred_at.is_some());
        }
    }

    #[test]
    fn not_sent_is_failed_with_reason() {
        let e = only_status(fixture("delivery_failed.json"));
        assert_eq!(e.status, Reported::Failed);
        assert_eq!(
            e.error,
            Some(EventError {
                code: Some("131026".into()),
                message: Some("Message undeliverable".into())
            })
        );
        assert_eq!(
            e.occurred_at,
            Some(Timestamp::from_millis(1_732_700_100_000))
        );
    }

    #[test]
    fn user_initiated_is_inbound() {
        let p = fixture("user_initiated_text.json");
        let Event::Inbound(m) = &p.events[0] else {
            panic!("expected inbound")
        };
        assert_eq!(m.business_number.as_str(), "+919812345678");
        assert_eq!(m.from.as_str(), "+919876543210");
        assert_eq!(m.text.as_deref(), Some("Is the sale still on?"));
        assert_eq!(m.kind, "text");
        assert_eq!(m.profile_name.as_deref(), Some("Asha"));
        assert_eq!(p.events[0].priority(), 5);
    }

    #[test]
    fn batch_keeps_each_element_raw() {
        let p = fixture("batch.json");
        assert_eq!(p.events.len(), 3);
        assert!(p.rejected.is_empty());
        let raw: serde_json::Value = serde_json::from_str(p.events[1].raw().get()).unwrap();
        assert_eq!(raw["notificationAttributes"]["status"], "not sent");
    }

    #[test]
    fn case_and_spelling_variants() {
        let body = r#"{"events":{"eventType":"delivery events","mid":"wamid.X","timestamp":1732700000},
            "notificationAttributes":{"status":"DELIVERED"},"sender":{"from":"+91 98123 45678"},
            "recipient":{"to":"919876543210","extra":{"nested":true}},"unknownTopLevel":[1,2]}"#;
        let e = only_status(parse(
            &crate::domain::providers::raw_json(body.as_bytes()).unwrap(),
        ));
        assert_eq!(e.status, Reported::Delivered);
        assert_eq!(e.business_number.as_str(), "+919812345678");
        assert!(e.campaign_id.is_none());
    }

    #[test]
    fn quarantines_what_it_cannot_read() {
        let cases = [
            (r#"{"hello":"world"}"#, "unknown_shape"),
            (r#"[1]"#, "unknown_shape"),
            (r#""just a string""#, "unknown_shape"),
            (
                r#"{"events":{"eventType":"DELIVERY EVENTS"},"notificationAttributes":{"status":"read"},"sender":{"from":"919812345678"}}"#,
                "missing_message_id",
            ),
            (
                r#"{"events":{"eventType":"DELIVERY EVENTS","mid":"w1"},"notificationAttributes":{"status":"read"}}"#,
                "missing_business_number",
            ),
            (
                r#"{"events":{"eventType":"DELIVERY EVENTS","mid":"w1"},"notificationAttributes":{"status":"read"},"sender":{"from":"919812345678"},"recipient":7}"#,
                "unknown_shape",
            ),
        ];
        for (body, reason) in cases {
            let p = parse(&crate::domain::providers::raw_json(body.as_bytes()).unwrap());
            assert!(p.events.is_empty(), "{body}");
            assert_eq!(p.rejected.len(), 1, "{body}");
            assert_eq!(p.rejected[0].reason, reason, "{body}");
            let element = if body == "[1]" { "1" } else { body };
            assert_eq!(
                p.rejected[0].raw.get(),
                element,
                "each element is kept verbatim"
            );
        }
    }

    #[test]
    fn one_bad_element_does_not_spoil_a_batch() {
        let body = r#"[{"x":1},{"events":{"eventType":"DELIVERY EVENTS","mid":"w1"},"notificationAttributes":{"status":"read"},"sender":{"from":"919812345678"}}]"#;
        let p = parse(&crate::domain::providers::raw_json(body.as_bytes()).unwrap());
        assert_eq!(p.events.len(), 1);
        assert_eq!(p.rejected.len(), 1);
        assert_eq!(p.rejected[0].raw.get(), r#"{"x":1}"#);
    }

    /// A delivery event built from the `delivery_delivered.json` fixture's layout, with the
    /// given fields replaced (`null` removes one).
    fn variant(patch: serde_json::Value) -> Parsed {
        let path = format!(
            "{}/src/domain/providers/fixtures/datagen/delivery_delivered.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let mut body: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        merge(&mut body, patch);
        parse(&crate::domain::providers::raw_json(body.to_string().as_bytes()).unwrap())
    }

    fn merge(into: &mut serde_json::Value, patch: serde_json::Value) {
        match (into, patch) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                for (k, v) in b {
                    if v.is_null() {
                        a.remove(&k);
                    } else {
                        merge(a.entry(k).or_insert(serde_json::Value::Null), v);
                    }
                }
            }
            (slot, v) => *slot = v,
        }
    }

    fn rejected(p: Parsed) -> &'static str {
        assert!(p.events.is_empty(), "{:?}", p.events);
        assert_eq!(p.rejected.len(), 1);
        p.rejected[0].reason
    }

    #[test]
    fn every_status_word_reaches_the_history() {
        use serde_json::json;
        for (word, want) in [
            ("played", Reported::Played),
            ("DELETED", Reported::Deleted),
            ("warning", Reported::Warning),
            ("queued", Reported::Other("queued".into())),
            (" ENROUTE ", Reported::Other("ENROUTE".into())),
            ("Blocked-By-User", Reported::Other("Blocked-By-User".into())),
        ] {
            let e = only_status(variant(json!({"notificationAttributes": {"status": word}})));
            assert_eq!(e.status, want, "{word}");
        }
        assert_eq!(
            rejected(variant(
                json!({"notificationAttributes": {"status": "x".repeat(65)}})
            )),
            "invalid_status"
        );
        for word in [json!(""), json!("  ")] {
            assert_eq!(
                rejected(variant(json!({"notificationAttributes": {"status": word}}))),
                "missing_status"
            );
        }
    }

    #[test]
    fn unrepresentable_values_are_quarantined() {
        use serde_json::json;
        let cases = [
            (
                json!({"events": {"timestamp": "yesterday"}}),
                "invalid_timestamp",
            ),
            (
                json!({"events": {"timestamp": "99999999999999999"}}),
                "invalid_timestamp",
            ),
            (
                json!({"events": {"timestamp": -1732700000}}),
                "invalid_timestamp",
            ),
            (json!({"events": {"timestamp": 1e300}}), "invalid_timestamp"),
            (
                json!({"events": {"timestamp": {"s": 1}}}),
                "invalid_timestamp",
            ),
            (
                json!({"recipient": {"to": "9".repeat(5000)}}),
                "invalid_phone",
            ),
            (
                json!({"recipient": {"to": "not a number"}}),
                "invalid_phone",
            ),
            (json!({"recipient": {"to": "12345"}}), "invalid_phone"),
            (
                json!({"sender": {"from": "919812345678x"}}),
                "invalid_business_number",
            ),
            (
                json!({"sender": {"from": "1".repeat(5000)}}),
                "invalid_business_number",
            ),
            (json!({"sender": null}), "missing_business_number"),
            (json!({"sender": {"from": ""}}), "missing_business_number"),
        ];
        for (patch, reason) in cases {
            assert_eq!(rejected(variant(patch.clone())), reason, "{patch}");
        }
    }

    /// Absent is not invalid: the event goes in without the value.
    #[test]
    fn echoed_reference() {
        let e = only_status(fixture("delivery_with_reference.json"));
        assert_eq!(
            e.reference.as_deref(),
            Some("rcp_0193a1b2c3d47e8f9a0b1c2d3e4f5a6b")
        );
        assert_eq!(e.wamid, "410123751001143816805212");
        assert_eq!(e.campaign_id, None);
        use serde_json::json;
        // `messageTag1` stands in when `cust_ref` is empty; neither means none.
        let e = only_status(variant(
            json!({"recipient": {"reference": {"cust_ref": " ", "messageTag1": "rcp_x"}}}),
        ));
        assert_eq!(e.reference.as_deref(), Some("rcp_x"));
        assert_eq!(e.campaign_id.as_deref(), Some("cmp_spring_sale"));
        assert_eq!(
            only_status(fixture("delivery_delivered.json")).reference,
            None
        );
        let e = only_status(variant(
            json!({"recipient": {"reference": {"cust_ref": "c".repeat(513), "messageTag1": "t"}}}),
        ));
        assert_eq!(e.reference.as_deref(), Some("t"));
    }

    #[test]
    fn absent_values_stay_absent() {
        use serde_json::json;
        let e = only_status(variant(json!({"events": {"timestamp": null}})));
        assert_eq!(e.occurred_at, None);
        let e = only_status(variant(json!({"events": {"timestamp": ""}})));
        assert_eq!(e.occurred_at, None);
        let e = only_status(variant(json!({"recipient": {"to": null}})));
        assert_eq!(e.phone, None);
        let e = only_status(variant(json!({"recipient": {"to": ""}})));
        assert_eq!(e.phone, None);
        let e = only_status(variant(json!({"events": {"timestamp": 1732700000123u64}})));
        assert_eq!(
            e.occurred_at,
            Some(Timestamp::from_millis(1_732_700_000_123))
        );
    }

    #[test]
    fn inbound_values_are_checked_too() {
        let path = format!(
            "{}/src/domain/providers/fixtures/datagen/user_initiated_text.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let fixture: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let with = |patch: serde_json::Value| {
            let mut body = fixture.clone();
            merge(&mut body, patch);
            parse(&crate::domain::providers::raw_json(body.to_string().as_bytes()).unwrap())
        };
        use serde_json::json;
        assert!(with(json!({})).rejected.is_empty());
        assert_eq!(
            rejected(with(json!({"events": {"timestamp": "soon"}}))),
            "invalid_timestamp"
        );
        assert_eq!(
            rejected(with(json!({"recipient": {"to": "+91 98123 4567Z"}}))),
            "invalid_business_number"
        );
        assert_eq!(
            rejected(with(
                json!({"eventContent": {"message": {"from": "7".repeat(5000)}}})
            )),
            "invalid_sender"
        );
    }
}
