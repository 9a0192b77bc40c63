//! Meta WhatsApp Cloud API webhooks: `entry[].changes[].value` with `statuses[]` and `messages[]`.
//!
//! Each status or message becomes one event whose `raw` is a minimal Cloud API envelope holding
//! only that element (plus its `metadata`, and `contacts` for messages), so whatever consumes the
//! forwarded event can keep using a Meta parser.

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::{Parsed, event_time, non_empty, number, reference, reported, scalar_text, valid_id};
use crate::domain::campaign::RecipientId;
use crate::domain::event::{Event, EventError, InboundMessage, Provider, StatusEvent};
use crate::domain::phone::PhoneNumber;

const PROVIDER: Provider = Provider::Meta;

#[derive(Deserialize)]
struct Envelope {
    object: Option<String>,
    #[serde(default)]
    entry: Vec<Box<RawValue>>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    id: Value,
    #[serde(default)]
    changes: Vec<Box<RawValue>>,
}

#[derive(Deserialize)]
struct Change {
    field: Option<String>,
    value: Option<Box<RawValue>>,
}

#[derive(Deserialize)]
struct ChangeValue {
    metadata: Option<Box<RawValue>>,
    contacts: Option<Box<RawValue>>,
    #[serde(default)]
    statuses: Vec<Box<RawValue>>,
    #[serde(default)]
    messages: Vec<Box<RawValue>>,
    #[serde(default)]
    errors: Vec<Box<RawValue>>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Metadata {
    display_phone_number: Option<String>,
    /// Meta's id of the business number: one spelling, where the display number has many.
    phone_number_id: Value,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Contact {
    wa_id: Option<String>,
    profile: Profile,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Profile {
    name: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct RawStatus {
    id: Option<String>,
    status: Option<String>,
    timestamp: Value,
    recipient_id: Option<String>,
    /// `group` for a message sent to a group: `recipient_id` is then the group's id.
    recipient_type: Option<String>,
    errors: Vec<MetaError>,
    /// Echoed from the send. wagate's campaign sends put the recipient's reference there;
    /// other senders sharing the number may have put a campaign id.
    biz_opaque_callback_data: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct MetaError {
    code: Value,
    title: Option<String>,
    message: Option<String>,
    error_data: ErrorData,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct ErrorData {
    details: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct RawMessage {
    from: Option<String>,
    id: Option<String>,
    timestamp: Value,
    #[serde(rename = "type")]
    kind: Option<String>,
    text: Option<Body>,
    button: Option<ButtonReply>,
    interactive: Option<Interactive>,
}

#[derive(Deserialize)]
struct Body {
    body: Option<String>,
}

#[derive(Deserialize)]
struct ButtonReply {
    text: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Interactive {
    button_reply: Option<Titled>,
    list_reply: Option<Titled>,
}

#[derive(Deserialize)]
struct Titled {
    title: Option<String>,
}

/// Parses a Cloud API webhook body.
pub fn parse(body: &RawValue) -> Parsed {
    let mut out = Parsed::default();
    let envelope = match serde_json::from_str::<Envelope>(body.get()) {
        Ok(e)
            if e.object.as_deref() == Some("whatsapp_business_account") && !e.entry.is_empty() =>
        {
            e
        }
        _ => {
            out.reject(PROVIDER, "unknown_shape", body);
            return out;
        }
    };
    for raw_entry in &envelope.entry {
        let Ok(entry) = serde_json::from_str::<Entry>(raw_entry.get()) else {
            out.reject(PROVIDER, "unknown_shape", raw_entry);
            continue;
        };
        for raw_change in &entry.changes {
            parse_change(&entry.id, raw_change, &mut out);
        }
    }
    out
}

fn parse_change(entry_id: &Value, raw_change: &RawValue, out: &mut Parsed) {
    let Ok(change) = serde_json::from_str::<Change>(raw_change.get()) else {
        return out.reject(PROVIDER, "unknown_shape", raw_change);
    };
    if change.field.as_deref() != Some("messages") {
        return out.reject(PROVIDER, "unsupported_field", raw_change);
    }
    let Some(value) = change
        .value
        .as_ref()
        .and_then(|v| serde_json::from_str::<ChangeValue>(v.get()).ok())
    else {
        return out.reject(PROVIDER, "unknown_shape", raw_change);
    };
    let metadata: Metadata = value
        .metadata
        .as_ref()
        .and_then(|m| serde_json::from_str(m.get()).ok())
        .unwrap_or_default();
    let business = number(metadata.display_phone_number, "invalid_business_number")
        .and_then(|n| n.ok_or("missing_business_number"));
    if value.statuses.is_empty() && value.messages.is_empty() {
        let reason = if value.errors.is_empty() {
            "unknown_shape"
        } else {
            "provider_error"
        };
        return out.reject(PROVIDER, reason, raw_change);
    }
    // Digits, as projects register it; anything else names no number of ours.
    let phone_number_id = scalar_text(&metadata.phone_number_id)
        .filter(|id| !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_digit()));
    let ctx = Context {
        entry_id,
        metadata: value.metadata.as_deref(),
        contacts: value.contacts.as_deref(),
        business: business.as_ref().map_err(|e| *e),
        phone_number_id,
    };
    for raw in &value.statuses {
        match status_event(&ctx, raw) {
            Ok(e) => out.events.push(Event::Status(e)),
            Err(reason) => out.reject(PROVIDER, reason, &ctx.envelope("statuses", raw)),
        }
    }
    for raw in &value.messages {
        match inbound(&ctx, raw) {
            Ok(m) => out.events.push(Event::Inbound(m)),
            Err(reason) => out.reject(PROVIDER, reason, &ctx.envelope("messages", raw)),
        }
    }
}

struct Context<'a> {
    entry_id: &'a Value,
    metadata: Option<&'a RawValue>,
    contacts: Option<&'a RawValue>,
    business: Result<&'a PhoneNumber, &'static str>,
    phone_number_id: Option<String>,
}

impl Context<'_> {
    /// A Cloud API body carrying just `element` under `key`.
    fn envelope(&self, key: &str, element: &RawValue) -> Box<RawValue> {
        let mut s = String::with_capacity(element.get().len() + 256);
        s.push_str(r#"{"object":"whatsapp_business_account","entry":[{"id":"#);
        s.push_str(&serde_json::to_string(self.entry_id).unwrap_or_else(|_| "null".into()));
        s.push_str(r#","changes":[{"field":"messages","value":{"messaging_product":"whatsapp""#);
        if let Some(m) = self.metadata {
            s.push_str(r#","metadata":"#);
            s.push_str(m.get());
        }
        if let (Some(c), "messages") = (self.contacts, key) {
            s.push_str(r#","contacts":"#);
            s.push_str(c.get());
        }
        s.push_str(",\"");
        s.push_str(key);
        s.push_str("\":[");
        s.push_str(element.get());
        s.push_str("]}}]}]}");
        RawValue::from_string(s).expect("assembled from valid JSON fragments")
    }

    fn business(&self) -> Result<PhoneNumber, &'static str> {
        self.business.cloned()
    }
}

fn status_event(ctx: &Context, raw: &RawValue) -> Result<StatusEvent, &'static str> {
    let s: RawStatus = serde_json::from_str(raw.get()).map_err(|_| "unknown_shape")?;
    let wamid = valid_id(s.id).ok_or("missing_message_id")?;
    let status = reported(s.status.as_deref())?;
    let error = s.errors.into_iter().next().map(|e| EventError {
        code: scalar_text(&e.code),
        message: non_empty(e.error_data.details)
            .or(non_empty(e.message))
            .or(non_empty(e.title)),
    });
    // A group's id is not a phone number: such a status has no recipient number to keep.
    let to_group = s
        .recipient_type
        .is_some_and(|t| !t.trim().eq_ignore_ascii_case("individual"));
    let phone = match to_group {
        true => None,
        false => number(s.recipient_id, "invalid_phone")?,
    };
    // A recipient reference names a recipient, not a campaign: the campaign then comes from the
    // recipient's row. Anything else there keeps its earlier reading as a campaign id.
    let campaign_id =
        non_empty(s.biz_opaque_callback_data.clone()).filter(|v| RecipientId::parse(v).is_err());
    let reference = reference(s.biz_opaque_callback_data);
    Ok(StatusEvent {
        provider: PROVIDER,
        wamid,
        status,
        business_number: ctx.business()?,
        phone_number_id: ctx.phone_number_id.clone(),
        phone,
        campaign_id,
        reference,
        occurred_at: event_time(&s.timestamp)?,
        error,
        raw: ctx.envelope("statuses", raw),
    })
}

fn inbound(ctx: &Context, raw: &RawValue) -> Result<InboundMessage, &'static str> {
    let m: RawMessage = serde_json::from_str(raw.get()).map_err(|_| "unknown_shape")?;
    let message_id = valid_id(m.id).ok_or("missing_message_id")?;
    let from_raw = m.from.ok_or("missing_sender")?;
    let from = number(Some(from_raw.clone()), "invalid_sender")?.ok_or("missing_sender")?;
    let profile_name = ctx
        .contacts
        .and_then(|c| serde_json::from_str::<Vec<Contact>>(c.get()).ok())
        .and_then(|contacts| {
            contacts
                .into_iter()
                .find(|c| c.wa_id.as_deref() == Some(from_raw.as_str()))
                .and_then(|c| non_empty(c.profile.name))
        });
    let text = non_empty(
        m.text
            .and_then(|t| t.body)
            .or(m.button.and_then(|b| b.text))
            .or(m
                .interactive
                .and_then(|i| i.button_reply.or(i.list_reply).and_then(|t| t.title))),
    );
    Ok(InboundMessage {
        provider: PROVIDER,
        message_id,
        business_number: ctx.business()?,
        phone_number_id: ctx.phone_number_id.clone(),
        from,
        profile_name,
        kind: non_empty(m.kind).unwrap_or_else(|| "unknown".into()),
        text,
        occurred_at: event_time(&m.timestamp)?,
        raw: ctx.envelope("messages", raw),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::providers::raw_json;
    use crate::domain::status::{Reported, Status};
    use crate::domain::time::Timestamp;
    use serde_json::json;

    fn fixture(name: &str) -> Parsed {
        let path = format!(
            "{}/src/domain/providers/fixtures/meta/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        parse(&raw_json(&std::fs::read(path).unwrap()).unwrap())
    }

    fn statuses(p: &Parsed) -> Vec<&StatusEvent> {
        p.events
            .iter()
            .filter_map(|e| match e {
                Event::Status(s) => Some(s),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn sent_status() {
        let p = fixture("status_sent.json");
        assert!(p.rejected.is_empty());
        let s = statuses(&p);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].status, Reported::Sent);
        assert_eq!(s[0].business_number.as_str(), "+15550783881");
        assert_eq!(s[0].phone.as_ref().unwrap().as_str(), "+16505551234");
        assert_eq!(
            s[0].occurred_at,
            Some(Timestamp::from_millis(1_732_700_300_000))
        );
    }

    #[test]
    fn read_and_failed_in_one_body() {
        let p = fixture("status_read_and_failed.json");
        let s = statuses(&p);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].status, Reported::Read);
        assert_eq!(s[1].status, Reported::Failed);
        let err = s[1].error.as_ref().unwrap();
        assert_eq!(err.code.as_deref(), Some("131026"));
        assert_eq!(
            err.message.as_deref(),
            Some("Receiver is incapable of receiving this message")
        );
        // Each event's raw is a Cloud API body holding only that status.
        let raw: Value = serde_json::from_str(s[1].raw.get()).unwrap();
        let value = &raw["entry"][0]["changes"][0]["value"];
        assert_eq!(value["statuses"].as_array().unwrap().len(), 1);
        assert_eq!(value["statuses"][0]["status"], "failed");
        assert_eq!(value["metadata"]["phone_number_id"], "106540352242922");
        assert_eq!(raw["entry"][0]["id"], "102290129340398");
    }

    #[test]
    fn inbound_text_with_profile() {
        let p = fixture("inbound_text.json");
        let Event::Inbound(m) = &p.events[0] else {
            panic!("expected inbound")
        };
        assert_eq!(m.from.as_str(), "+16505551234");
        assert_eq!(m.profile_name.as_deref(), Some("Sheena Nelson"));
        assert_eq!(m.text.as_deref(), Some("Where is my order?"));
        assert_eq!(m.kind, "text");
        let raw: Value = serde_json::from_str(m.raw.get()).unwrap();
        assert_eq!(
            raw["entry"][0]["changes"][0]["value"]["contacts"][0]["wa_id"],
            "16505551234"
        );
    }

    #[test]
    fn interactive_reply_text() {
        let body = r#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{
            "messaging_product":"whatsapp","metadata":{"display_phone_number":"+1 555-078-3881","phone_number_id":"1"},
            "messages":[{"from":"16505551234","id":"wamid.I","timestamp":"1732700400","type":"interactive",
            "interactive":{"type":"button_reply","button_reply":{"id":"yes","title":"Yes please"}}}]}}]}]}"#;
        let p = parse(&raw_json(body.as_bytes()).unwrap());
        let Event::Inbound(m) = &p.events[0] else {
            panic!("expected inbound")
        };
        assert_eq!(m.text.as_deref(), Some("Yes please"));
        assert_eq!(m.business_number.as_str(), "+15550783881");
    }

    #[test]
    fn quarantines_other_fields_and_errors() {
        let body = r#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[
            {"field":"message_template_status_update","value":{"event":"APPROVED"}},
            {"field":"messages","value":{"metadata":{"display_phone_number":"15550783881"},
              "statuses":[{"id":"wamid.A","status":"deleted","timestamp":"1"},{"id":"wamid.B","status":"delivered","timestamp":"1"}]}},
            {"field":"messages","value":{"metadata":{"display_phone_number":"15550783881"},"errors":[{"code":131000}]}}
        ]}]}"#;
        let p = parse(&raw_json(body.as_bytes()).unwrap());
        // `deleted` is a status like the others now: only the other field and the error are
        // quarantined.
        let s = statuses(&p);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].status, Reported::Deleted);
        let reasons: Vec<_> = p.rejected.iter().map(|r| r.reason).collect();
        assert_eq!(reasons, ["unsupported_field", "provider_error"]);
    }

    #[test]
    fn not_a_meta_body() {
        for body in [
            r#"{"object":"page","entry":[]}"#,
            r#"[]"#,
            r#"{"entry":"x"}"#,
        ] {
            let p = parse(&raw_json(body.as_bytes()).unwrap());
            assert!(p.events.is_empty());
            assert_eq!(p.rejected[0].reason, "unknown_shape", "{body}");
        }
    }

    /// The `status_sent.json` fixture with fields of its one status (`status`) or of its
    /// `metadata` replaced; `null` removes a field.
    fn variant(status: Value, metadata: Value) -> Parsed {
        let path = format!(
            "{}/src/domain/providers/fixtures/meta/status_sent.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let mut body: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let value = &mut body["entry"][0]["changes"][0]["value"];
        for (target, patch) in [("/statuses/0", status), ("/metadata", metadata)] {
            for (k, v) in patch.as_object().unwrap() {
                let fields = value.pointer_mut(target).unwrap().as_object_mut().unwrap();
                match v {
                    Value::Null => fields.remove(k),
                    v => fields.insert(k.clone(), v.clone()),
                };
            }
        }
        parse(&raw_json(body.to_string().as_bytes()).unwrap())
    }

    fn only(p: &Parsed) -> &StatusEvent {
        assert!(p.rejected.is_empty(), "{:?}", p.rejected);
        let s = statuses(p);
        assert_eq!(s.len(), 1);
        s[0]
    }

    fn rejected(p: &Parsed) -> &'static str {
        assert!(p.events.is_empty());
        assert_eq!(p.rejected.len(), 1);
        p.rejected[0].reason
    }

    #[test]
    fn played_deleted_warning_and_unknown_words_are_events() {
        for (word, want, effect) in [
            ("played", Reported::Played, Some(Status::Read)),
            ("deleted", Reported::Deleted, None),
            ("warning", Reported::Warning, None),
            ("pending", Reported::Other("pending".into()), None),
        ] {
            let p = variant(json!({ "status": word }), json!({}));
            let e = only(&p);
            assert_eq!(e.status, want, "{word}");
            assert_eq!(e.status.effect(), effect, "{word}");
            assert_eq!(e.status.as_str(), word);
            assert_eq!(
                e.wamid,
                "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJEQjk5QzlBRjE0NzFCMDc2NjYA"
            );
        }
        // A `warning` carries its reason in `errors[]`, like a failure.
        let p = variant(
            json!({"status": "warning", "errors": [{"code": 131053, "title": "Media upload error"}]}),
            json!({}),
        );
        let err = only(&p).error.as_ref().unwrap();
        assert_eq!(err.code.as_deref(), Some("131053"));
        assert_eq!(err.message.as_deref(), Some("Media upload error"));
        assert_eq!(
            rejected(&variant(json!({"status": "x".repeat(100)}), json!({}))),
            "invalid_status"
        );
        assert_eq!(
            rejected(&variant(json!({"status": null}), json!({}))),
            "missing_status"
        );
    }

    #[test]
    fn unrepresentable_values_are_quarantined() {
        let cases = [
            (
                json!({"timestamp": "yesterday"}),
                json!({}),
                "invalid_timestamp",
            ),
            (
                json!({"timestamp": "99999999999999999999"}),
                json!({}),
                "invalid_timestamp",
            ),
            (
                json!({"timestamp": "253402300800000"}),
                json!({}),
                "invalid_timestamp",
            ),
            (json!({"timestamp": "0"}), json!({}), "invalid_timestamp"),
            (json!({"timestamp": false}), json!({}), "invalid_timestamp"),
            (
                json!({"recipient_id": "1".repeat(5000)}),
                json!({}),
                "invalid_phone",
            ),
            (
                json!({"recipient_id": "sixteen"}),
                json!({}),
                "invalid_phone",
            ),
            (
                json!({}),
                json!({"display_phone_number": "+1 555 CALL NOW"}),
                "invalid_business_number",
            ),
            (
                json!({}),
                json!({"display_phone_number": "5".repeat(5000)}),
                "invalid_business_number",
            ),
            (
                json!({}),
                json!({"display_phone_number": null}),
                "missing_business_number",
            ),
        ];
        for (status, metadata, reason) in cases {
            assert_eq!(
                rejected(&variant(status.clone(), metadata.clone())),
                reason,
                "{status} {metadata}"
            );
        }
    }

    #[test]
    fn echoed_reference() {
        let p = fixture("status_delivered_with_reference.json");
        let e = only(&p);
        assert_eq!(
            e.reference.as_deref(),
            Some("rcp_0193a1b2c3d47e8f9a0b1c2d3e4f5a6b")
        );
        // A recipient's reference is not a campaign id.
        assert_eq!(e.campaign_id, None);
        assert_eq!(e.status, Reported::Delivered);
        // Someone else's value is kept as both, as before references existed.
        let p = variant(
            json!({"biz_opaque_callback_data": " cmp_spring "}),
            json!({}),
        );
        assert_eq!(only(&p).reference.as_deref(), Some("cmp_spring"));
        assert_eq!(only(&p).campaign_id.as_deref(), Some("cmp_spring"));
        // Empty and oversized values are no reference; the status still counts.
        for value in [json!(""), json!("   "), json!("r".repeat(513))] {
            let p = variant(json!({"biz_opaque_callback_data": value}), json!({}));
            assert_eq!(only(&p).reference, None);
        }
        let p = variant(
            json!({"biz_opaque_callback_data": "r".repeat(512)}),
            json!({}),
        );
        assert_eq!(only(&p).reference.as_ref().map(String::len), Some(512));
        assert_eq!(only(&fixture("status_sent.json")).reference, None);
    }

    #[test]
    fn absent_values_stay_absent() {
        let p = variant(json!({"timestamp": null, "recipient_id": null}), json!({}));
        let e = only(&p);
        assert_eq!(e.occurred_at, None);
        assert_eq!(e.phone, None);
        // A group's status names the group, not a number: no phone, and not an error.
        let p = variant(
            json!({"recipient_type": "group", "recipient_id": "Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjM0MDQ2OTQyMzM4MjAZD"}),
            json!({}),
        );
        assert_eq!(only(&p).phone, None);
        let p = variant(json!({"recipient_type": "individual"}), json!({}));
        assert_eq!(only(&p).phone.as_ref().unwrap().as_str(), "+16505551234");
        assert_eq!(
            only(&p).occurred_at,
            Some(Timestamp::from_millis(1_732_700_300_000))
        );
    }

    #[test]
    fn inbound_values_are_checked_too() {
        let base = r#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{
            "messaging_product":"whatsapp","metadata":{"display_phone_number":"BUSINESS","phone_number_id":"1"},
            "messages":[{"from":"FROM","id":"wamid.I","timestamp":"TIME","type":"text","text":{"body":"hi"}}]}}]}]}"#;
        let body = |business: &str, from: &str, time: &str| {
            let b = base
                .replace("BUSINESS", business)
                .replace("FROM", from)
                .replace("TIME", time);
            parse(&raw_json(b.as_bytes()).unwrap())
        };
        assert!(
            body("15550783881", "16505551234", "1732700400")
                .rejected
                .is_empty()
        );
        assert_eq!(
            rejected(&body("15550783881", "16505551234", "never")),
            "invalid_timestamp"
        );
        assert_eq!(
            rejected(&body("15550783881", &"9".repeat(5000), "1732700400")),
            "invalid_sender"
        );
        assert_eq!(
            rejected(&body("1555078388x", "16505551234", "1732700400")),
            "invalid_business_number"
        );
    }

    #[test]
    fn events_carry_metas_id_of_the_business_number() {
        let p = fixture("status_sent.json");
        assert_eq!(only(&p).phone_number_id.as_deref(), Some("106540352242922"));
        let p = fixture("inbound_text.json");
        let Event::Inbound(m) = &p.events[0] else {
            panic!("expected a message")
        };
        assert_eq!(m.phone_number_id.as_deref(), Some("106540352242922"));
        // A number is read as its digits; anything but digits is no id.
        for (id, want) in [
            (json!(106540352242922u64), Some("106540352242922")),
            (json!("pn-1"), None),
            (json!(""), None),
            (json!(null), None),
        ] {
            let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "1",
                "changes": [{"field": "messages", "value": {"messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550783881", "phone_number_id": id},
                "statuses": [{"id": "wamid.X", "status": "sent", "timestamp": "1732700400",
                    "recipient_id": "16505551234"}]}}]}]});
            let p = parse(&raw_json(body.to_string().as_bytes()).unwrap());
            assert_eq!(only(&p).phone_number_id.as_deref(), want, "{id}");
        }
    }
}
