//! Renders workload events as the JSON bodies Datagen/Karix and Meta's Cloud API send.
//!
//! Field sets follow `fixtures/`: the fields the parsers read, plus the ones real BSPs add and the
//! parsers must ignore. Variation (status word case, `not sent`, numeric timestamps, unknown
//! fields) is drawn from the workload's seeded generator, so it is reproducible too.

use rand::Rng;
use rand::rngs::StdRng;
use serde_json::{Value, json};

use super::model::{Item, Outbound, UserMessage};
use crate::domain::status::Status;

/// What every body of one workload shares.
pub(super) struct Ctx<'a> {
    pub business_number: &'a str,
    pub waba_id: String,
    pub phone_number_id: String,
    pub outbound: &'a [Outbound],
    pub inbound: &'a [UserMessage],
}

/// One object for a single event, an array (a Karix batch) for more.
pub(super) fn datagen(ctx: &Ctx, items: &[Item], rng: &mut StdRng) -> Vec<u8> {
    let mut objects: Vec<Value> = items
        .iter()
        .map(|item| match *item {
            Item::Status { message, status } => datagen_status(ctx, message, status, rng),
            Item::Inbound { message } => datagen_inbound(ctx, message, rng),
        })
        .collect();
    let body = if objects.len() == 1 {
        objects.remove(0)
    } else {
        Value::Array(objects)
    };
    serde_json::to_vec(&body).expect("JSON values always serialize")
}

fn datagen_status(ctx: &Ctx, message: u32, status: Status, rng: &mut StdRng) -> Value {
    let m = &ctx.outbound[message as usize];
    let at = m.at[status.rank() as usize];
    let (reason, code) = match status {
        Status::Failed => ("Message undeliverable", "131026"),
        _ => ("", ""),
    };
    let event_type = if rng.random_bool(0.9) {
        "DELIVERY EVENTS"
    } else {
        "delivery events"
    };
    let mut v = json!({
        "channel": "WABA",
        "events": { "eventType": event_type, "mid": m.wamid, "timestamp": timestamp(at, rng) },
        "notificationAttributes": { "status": datagen_word(status, rng), "reason": reason, "code": code },
        "recipient": {
            "to": m.phone,
            "recipient_type": "individual",
            "reference": { "cust_ref": "", "messageTag1": "", "parent_campaign_id": m.campaign_id }
        },
        "sender": { "from": ctx.business_number }
    });
    maybe_extra(&mut v, rng);
    v
}

fn datagen_inbound(ctx: &Ctx, message: u32, rng: &mut StdRng) -> Value {
    let m = &ctx.inbound[message as usize];
    let mut v = json!({
        "channel": "WABA",
        "events": { "eventType": "User initiated", "mid": m.id, "timestamp": timestamp(m.at, rng) },
        "eventContent": {
            "message": {
                "id": m.id,
                "from": m.from,
                "to": ctx.business_number,
                "contentType": "text",
                "messageType": "text",
                "profileName": m.name,
                "text": { "body": m.text }
            }
        },
        "recipient": { "to": ctx.business_number },
        "sender": { "from": m.from }
    });
    maybe_extra(&mut v, rng);
    v
}

/// Karix's spellings: mostly lowercase, sometimes shouted, and `not sent` for a failure.
fn datagen_word(status: Status, rng: &mut StdRng) -> &'static str {
    let roll = rng.random_range(0..10);
    match (status, roll) {
        (Status::Failed, 0..3) => "not sent",
        (Status::Failed, 3) => "NOT SENT",
        (Status::Failed, 4) => "FAILED",
        (Status::Sent, 0) => "SENT",
        (Status::Delivered, 0) => "DELIVERED",
        (Status::Delivered, 1) => "Delivered",
        (Status::Read, 0) => "READ",
        (s, _) => s.as_str(),
    }
}

/// Unix seconds as a string (as both providers document), sometimes as a number.
fn timestamp(at: i64, rng: &mut StdRng) -> Value {
    if rng.random_bool(0.9) {
        Value::String(at.to_string())
    } else {
        Value::from(at)
    }
}

/// Fields no parser knows, which must be ignored rather than quarantined.
fn maybe_extra(v: &mut Value, rng: &mut StdRng) {
    if rng.random_bool(0.1) {
        v["x_bsp_meta"] =
            json!({ "region": "ap-south-1", "retry": rng.random_range(0..3), "tags": [] });
    }
}

/// A Cloud API body: statuses in one change, user messages (with contacts) in another, as Meta
/// sends them.
pub(super) fn meta(ctx: &Ctx, items: &[Item], rng: &mut StdRng) -> Vec<u8> {
    let mut statuses = Vec::new();
    let mut messages = Vec::new();
    let mut contacts = Vec::new();
    for item in items {
        match *item {
            Item::Status { message, status } => {
                statuses.push(meta_status(ctx, message, status, rng))
            }
            Item::Inbound { message } => {
                let m = &ctx.inbound[message as usize];
                contacts.push(json!({ "profile": { "name": m.name }, "wa_id": m.from }));
                messages.push(json!({
                    "from": m.from, "id": m.id, "timestamp": m.at.to_string(),
                    "type": "text", "text": { "body": m.text }
                }));
            }
        }
    }
    let metadata = json!({
        "display_phone_number": ctx.business_number,
        "phone_number_id": ctx.phone_number_id
    });
    let mut changes = Vec::new();
    if !statuses.is_empty() {
        changes.push(json!({ "field": "messages", "value": {
            "messaging_product": "whatsapp", "metadata": metadata, "statuses": statuses
        }}));
    }
    if !messages.is_empty() {
        changes.push(json!({ "field": "messages", "value": {
            "messaging_product": "whatsapp", "metadata": metadata,
            "contacts": contacts, "messages": messages
        }}));
    }
    let body = json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": ctx.waba_id, "changes": changes }]
    });
    serde_json::to_vec(&body).expect("JSON values always serialize")
}

fn meta_status(ctx: &Ctx, message: u32, status: Status, rng: &mut StdRng) -> Value {
    let m = &ctx.outbound[message as usize];
    let mut v = json!({
        "id": m.wamid,
        "status": status.as_str(),
        "timestamp": m.at[status.rank() as usize].to_string(),
        "recipient_id": m.phone,
        "biz_opaque_callback_data": m.campaign_id
    });
    match status {
        Status::Failed => {
            v["errors"] = json!([{
                "code": 131026,
                "title": "Message undeliverable",
                "message": "Message undeliverable",
                "error_data": { "details": "Receiver is incapable of receiving this message" }
            }]);
        }
        Status::Sent if rng.random_bool(0.5) => {
            v["conversation"] = json!({
                "id": format!("{:032x}", rng.random::<u128>()),
                "expiration_timestamp": (m.at[0] + 86_400).to_string(),
                "origin": { "type": "marketing" }
            });
            v["pricing"] = json!({
                "billable": true, "pricing_model": "PMP", "category": "marketing", "type": "regular"
            });
        }
        _ => {}
    }
    v
}
