//! The status webhook bodies the mock posts: Cloud API envelopes (Meta, AiSensy-direct, and
//! AiSensy, whose own format is not public) with one entry per business number, and Karix
//! delivery events (an array when there are several). Pure.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::value::RawValue;

use super::fate::Word;

/// Where a message's statuses go, and in which shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Cloud API envelope to `/v1/ingest/meta` (Meta, AiSensy-direct).
    Meta,
    /// Cloud API envelope to the AiSensy path.
    Aisensy,
    /// Karix delivery events to `/datagen-webhook`.
    Datagen,
}

pub const ROUTES: [Route; 3] = [Route::Meta, Route::Aisensy, Route::Datagen];

/// What a message's webhooks echo back.
#[derive(Debug, Clone)]
pub enum Echo {
    /// `biz_opaque_callback_data` (Cloud API shape).
    Opaque(Option<String>),
    /// Karix `recipient.reference`, verbatim.
    Karix(Option<Box<RawValue>>),
}

/// One accepted message's statuses, due for posting.
#[derive(Debug, Clone)]
pub struct Due {
    pub route: Route,
    /// The id the send returned.
    pub id: String,
    /// The business number as the webhook writes it (digits for Meta, as sent for Karix).
    pub from: String,
    /// Meta's `phone_number_id` (Cloud API shape only).
    pub phone_number_id: String,
    /// The recipient as the webhook writes it.
    pub to: String,
    pub echo: Echo,
    /// Unix seconds of the send; each status's time is this plus its offset.
    pub at_secs: u64,
    pub statuses: Vec<Word>,
}

#[derive(Serialize)]
struct MetaEnvelope<'a> {
    object: &'static str,
    entry: Vec<MetaEntry<'a>>,
}

#[derive(Serialize)]
struct MetaEntry<'a> {
    id: &'a str,
    changes: [MetaChange<'a>; 1],
}

#[derive(Serialize)]
struct MetaChange<'a> {
    field: &'static str,
    value: MetaValue<'a>,
}

#[derive(Serialize)]
struct MetaValue<'a> {
    messaging_product: &'static str,
    metadata: MetaMetadata<'a>,
    statuses: Vec<MetaStatus<'a>>,
}

#[derive(Serialize)]
struct MetaMetadata<'a> {
    display_phone_number: &'a str,
    phone_number_id: &'a str,
}

#[derive(Serialize)]
struct MetaStatus<'a> {
    id: &'a str,
    status: &'static str,
    timestamp: String,
    recipient_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    biz_opaque_callback_data: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pricing: Option<Pricing>,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<[MetaError; 1]>,
}

#[derive(Serialize)]
struct Pricing {
    billable: bool,
    pricing_model: &'static str,
    category: &'static str,
}

#[derive(Serialize)]
struct MetaError {
    code: u32,
    title: &'static str,
    message: &'static str,
    error_data: ErrorData,
}

#[derive(Serialize)]
struct ErrorData {
    details: &'static str,
}

const UNDELIVERABLE: &str = "Message undeliverable";
const UNDELIVERABLE_CODE: u32 = 131_026;

/// A Cloud API webhook carrying `items`: one entry per business number.
pub fn meta_body(items: &[(&Due, Word)]) -> Vec<u8> {
    // phone_number_id → (display number, statuses)
    let mut by_number: BTreeMap<&str, (&str, Vec<MetaStatus>)> = BTreeMap::new();
    for &(due, word) in items {
        let failed = word == Word::Failed;
        by_number
            .entry(due.phone_number_id.as_str())
            .or_insert_with(|| (due.from.as_str(), Vec::new()))
            .1
            .push(MetaStatus {
                id: &due.id,
                status: word.as_str(),
                timestamp: (due.at_secs + word.offset_secs()).to_string(),
                recipient_id: &due.to,
                biz_opaque_callback_data: match &due.echo {
                    Echo::Opaque(r) => r.as_deref(),
                    Echo::Karix(_) => None,
                },
                pricing: (!failed).then_some(Pricing {
                    billable: true,
                    pricing_model: "CBP",
                    category: "marketing",
                }),
                errors: failed.then_some([MetaError {
                    code: UNDELIVERABLE_CODE,
                    title: UNDELIVERABLE,
                    message: UNDELIVERABLE,
                    error_data: ErrorData {
                        details: "Message failed to send because delivering it was not possible.",
                    },
                }]),
            });
    }
    let entry = by_number
        .into_iter()
        .map(|(id, (display, statuses))| MetaEntry {
            id,
            changes: [MetaChange {
                field: "messages",
                value: MetaValue {
                    messaging_product: "whatsapp",
                    metadata: MetaMetadata {
                        display_phone_number: display,
                        phone_number_id: id,
                    },
                    statuses,
                },
            }],
        })
        .collect();
    to_json(&MetaEnvelope {
        object: "whatsapp_business_account",
        entry,
    })
}

#[derive(Serialize)]
struct KarixEvent<'a> {
    channel: &'static str,
    events: KarixEvents<'a>,
    #[serde(rename = "notificationAttributes")]
    attributes: KarixAttributes,
    recipient: KarixRecipient<'a>,
    sender: KarixSender<'a>,
}

#[derive(Serialize)]
struct KarixEvents<'a> {
    #[serde(rename = "eventType")]
    event_type: &'static str,
    mid: &'a str,
    timestamp: String,
}

#[derive(Serialize)]
struct KarixAttributes {
    status: &'static str,
    reason: &'static str,
    code: &'static str,
}

#[derive(Serialize)]
struct KarixRecipient<'a> {
    to: &'a str,
    recipient_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reference: Option<&'a RawValue>,
}

#[derive(Serialize)]
struct KarixSender<'a> {
    from: &'a str,
}

/// Karix delivery events for `items`: one object, or an array when there are several.
pub fn datagen_body(items: &[(&Due, Word)]) -> Vec<u8> {
    let events: Vec<KarixEvent> = items
        .iter()
        .map(|&(due, word)| {
            let failed = word == Word::Failed;
            KarixEvent {
                channel: "WABA",
                events: KarixEvents {
                    event_type: "DELIVERY EVENTS",
                    mid: &due.id,
                    timestamp: (due.at_secs + word.offset_secs()).to_string(),
                },
                attributes: KarixAttributes {
                    status: word.as_str(),
                    reason: if failed { UNDELIVERABLE } else { "" },
                    code: if failed { "131026" } else { "" },
                },
                recipient: KarixRecipient {
                    to: &due.to,
                    recipient_type: "individual",
                    reference: match &due.echo {
                        Echo::Karix(r) => r.as_deref(),
                        Echo::Opaque(_) => None,
                    },
                },
                sender: KarixSender { from: &due.from },
            }
        })
        .collect();
    match events.as_slice() {
        [one] => to_json(one),
        _ => to_json(&events),
    }
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("webhook bodies are plain structs of strings and numbers")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::Event;
    use crate::domain::providers::{datagen, meta, raw_json};

    fn due(route: Route, id: &str, from: &str, echo: Echo) -> Due {
        Due {
            route,
            id: id.into(),
            from: from.into(),
            phone_number_id: format!("pn-{from}"),
            to: "919876543210".into(),
            echo,
            at_secs: 1_732_700_000,
            statuses: vec![],
        }
    }

    fn business_numbers(parsed: crate::domain::providers::Parsed) -> Vec<(String, String)> {
        assert!(parsed.rejected.is_empty(), "{:?}", parsed.rejected);
        parsed
            .events
            .into_iter()
            .map(|e| match e {
                Event::Status(s) => (s.wamid, s.business_number.as_str().to_owned()),
                Event::Inbound(_) => panic!("inbound"),
            })
            .collect()
    }

    #[test]
    fn one_meta_post_carries_several_business_numbers() {
        let a = due(Route::Meta, "w1", "919812345678", Echo::Opaque(None));
        let b = due(
            Route::Meta,
            "w2",
            "919812345679",
            Echo::Opaque(Some("r".into())),
        );
        let body = meta_body(&[(&a, Word::Sent), (&b, Word::Read), (&a, Word::Delivered)]);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["entry"].as_array().unwrap().len(), 2);
        let got = business_numbers(meta::parse(&raw_json(&body).unwrap()));
        assert_eq!(
            got,
            [
                ("w1".into(), "+919812345678".into()),
                ("w1".into(), "+919812345678".into()),
                ("w2".into(), "+919812345679".into()),
            ]
        );
        // Absent references are left out, not sent as null.
        assert!(!String::from_utf8(body).unwrap().contains("null"));
    }

    #[test]
    fn karix_posts_are_an_object_alone_and_an_array_batched() {
        let reference = RawValue::from_string(r#"{"cust_ref":"r1"}"#.into()).unwrap();
        let a = due(
            Route::Datagen,
            "1001",
            "919812345678",
            Echo::Karix(Some(reference)),
        );
        let one = datagen_body(&[(&a, Word::Sent)]);
        assert_eq!(one.first(), Some(&b'{'));
        let two = datagen_body(&[(&a, Word::Delivered), (&a, Word::Read)]);
        assert_eq!(two.first(), Some(&b'['));
        assert_eq!(
            business_numbers(datagen::parse(&raw_json(&two).unwrap())).len(),
            2
        );
        let v: serde_json::Value = serde_json::from_slice(&one).unwrap();
        assert_eq!(v["recipient"]["reference"]["cust_ref"], "r1");
        assert_eq!(v["events"]["timestamp"], "1732700000");
    }
}
