//! Builders for domain events in tests.

use serde_json::value::RawValue;
use wagate::domain::apply::Incoming;
use wagate::domain::event::{Event, EventError, InboundMessage, Provider, StatusEvent};
use wagate::domain::phone::PhoneNumber;
use wagate::domain::project::ProjectId;
use wagate::domain::status::Reported;
use wagate::domain::time::Timestamp;

pub const BUSINESS: &str = "+919812345678";

pub fn phone(s: &str) -> PhoneNumber {
    PhoneNumber::parse(s).unwrap()
}

pub fn status(wamid: &str, status: impl Into<Reported>, at_ms: i64) -> Event {
    let status = status.into();
    let raw = serde_json::json!({"mid": wamid, "status": status}).to_string();
    let error = (status == Reported::Failed).then(|| EventError {
        code: Some("131026".into()),
        message: Some("undeliverable".into()),
    });
    Event::Status(StatusEvent {
        provider: Provider::Datagen,
        wamid: wamid.to_owned(),
        status,
        business_number: phone(BUSINESS),
        phone_number_id: None,
        phone: Some(phone("+919876543210")),
        campaign_id: Some("cmp_1".into()),
        reference: None,
        occurred_at: Some(Timestamp::from_millis(at_ms)),
        error,
        raw: RawValue::from_string(raw).unwrap(),
    })
}

pub fn inbound(id: &str, at_ms: i64) -> Event {
    Event::Inbound(InboundMessage {
        provider: Provider::Meta,
        message_id: id.to_owned(),
        business_number: phone(BUSINESS),
        phone_number_id: None,
        from: phone("+919876543210"),
        profile_name: Some("Asha".into()),
        kind: "text".into(),
        text: Some(format!("hello {id}")),
        occurred_at: Some(Timestamp::from_millis(at_ms)),
        raw: RawValue::from_string(format!(r#"{{"id":"{id}"}}"#)).unwrap(),
    })
}

pub fn incoming(project: &str, event: Event, received_ms: i64) -> Incoming {
    Incoming {
        project_id: ProjectId::parse(project).unwrap(),
        event,
        received_at: Timestamp::from_millis(received_ms),
    }
}

/// A small deterministic PRNG so shuffles are reproducible from a printed seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i + 1));
        }
    }
}
