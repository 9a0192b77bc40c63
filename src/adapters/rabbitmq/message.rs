//! What the adapter keeps in AMQP message headers (attempt, due time, why it was parked), and how
//! a `DeliveryId` names a delivery on one incarnation of a consumer's channel.

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString};

use super::topology::Target;
use crate::ports::DeliveryId;
use crate::ports::queue::MAX_PRIORITY;

/// Deliveries so far; absent means 1. Classic queues only flag a redelivery, they do not count.
const ATTEMPT: &str = "x-wagate-attempt";
/// Epoch milliseconds before which the message must not reach a caller.
const DUE: &str = "x-wagate-due";
/// Why a message was dead-lettered.
const REASON: &str = "x-wagate-reason";
/// Epoch milliseconds when this copy was published: with the due time, when it became ready,
/// which is what a queue's age is measured from (see `age`).
const QUEUED: &str = "x-wagate-queued";

/// AMQP delivery mode 2: the broker writes the message to disk before confirming it.
const PERSISTENT: u8 = 2;

/// The adapter's per-message bookkeeping, carried in headers so it survives any consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub attempt: u32,
    pub due_ms: Option<i64>,
    pub reason: Option<String>,
}

impl Meta {
    pub fn first() -> Meta {
        Meta::attempt(1)
    }

    pub fn attempt(attempt: u32) -> Meta {
        Meta {
            attempt,
            due_ms: None,
            reason: None,
        }
    }

    /// Reads the headers leniently: a missing or odd value means "first attempt, due now".
    pub fn read(properties: &BasicProperties) -> Meta {
        let Some(headers) = properties.headers() else {
            return Meta::first();
        };
        let h = headers.inner();
        Meta {
            attempt: h
                .get(ATTEMPT)
                .and_then(int)
                .and_then(|a| u32::try_from(a).ok())
                .filter(|a| *a >= 1)
                .unwrap_or(1),
            due_ms: h.get(DUE).and_then(int),
            reason: match h.get(REASON) {
                Some(AMQPValue::LongString(s)) => {
                    Some(String::from_utf8_lossy(s.as_bytes()).into())
                }
                _ => None,
            },
        }
    }

    fn table(&self) -> FieldTable {
        let mut t = FieldTable::default();
        if self.attempt != 1 {
            t.insert(
                ATTEMPT.into(),
                AMQPValue::LongLongInt(i64::from(self.attempt)),
            );
        }
        if let Some(due) = self.due_ms {
            t.insert(DUE.into(), AMQPValue::LongLongInt(due));
        }
        if let Some(r) = &self.reason {
            t.insert(
                REASON.into(),
                AMQPValue::LongString(LongString::from(r.as_str())),
            );
        }
        t
    }
}

fn int(v: &AMQPValue) -> Option<i64> {
    match *v {
        AMQPValue::ShortShortInt(i) => Some(i.into()),
        AMQPValue::ShortShortUInt(i) => Some(i.into()),
        AMQPValue::ShortInt(i) => Some(i.into()),
        AMQPValue::ShortUInt(i) => Some(i.into()),
        AMQPValue::LongInt(i) => Some(i.into()),
        AMQPValue::LongUInt(i) => Some(i.into()),
        AMQPValue::LongLongInt(i) => Some(i),
        _ => None,
    }
}

/// One message for [`super::publish`]: where it goes and what it carries.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    pub target: Target,
    pub payload: &'a [u8],
    pub priority: u8,
    pub meta: Meta,
}

impl Message<'_> {
    /// Stamped with the time of this publish: a copy made ready again (a redelivery counted, a
    /// redrive) is as old as the copy, and one still delayed is ready at its due time instead.
    pub fn properties(&self, queued_ms: i64) -> BasicProperties {
        let mut headers = self.meta.table();
        headers.insert(QUEUED.into(), AMQPValue::LongLongInt(queued_ms));
        BasicProperties::default()
            .with_delivery_mode(PERSISTENT)
            .with_priority(self.priority.min(MAX_PRIORITY))
            .with_headers(headers)
    }
}

/// When a delivered message became ready for consumers (epoch ms): published, or due if later.
/// `None` for a message published without the stamp (by an older wagate).
pub fn ready_ms(properties: &BasicProperties) -> Option<i64> {
    let h = properties.headers().as_ref()?.inner();
    let queued = h.get(QUEUED).and_then(int)?;
    Some(
        h.get(DUE)
            .and_then(int)
            .map_or(queued, |due| due.max(queued)),
    )
}

/// Delivery tags count up from 1 on each channel; 48 bits of them outlast any channel.
const TAG_BITS: u32 = 48;
const TAG_MASK: u64 = (1 << TAG_BITS) - 1;

/// A delivery id is the consumer's channel generation over the delivery tag, so an ack for a
/// delivery from a channel that has since died is recognised and dropped, never applied to
/// whatever carries the same tag on the new channel.
pub fn delivery_id(generation: u16, tag: u64) -> DeliveryId {
    DeliveryId((u64::from(generation) << TAG_BITS) | (tag & TAG_MASK))
}

pub fn split(id: DeliveryId) -> (u16, u64) {
    ((id.0 >> TAG_BITS) as u16, id.0 & TAG_MASK)
}

#[cfg(test)]
mod tests {
    use lapin::types::ShortString;

    use super::*;

    #[test]
    fn meta_round_trips_through_headers() {
        let m = Meta {
            attempt: 4,
            due_ms: Some(1_700_000_000_123),
            reason: Some("cannot parse".into()),
        };
        let msg = Message {
            target: Target::Work,
            payload: b"x",
            priority: 12,
            meta: m.clone(),
        };
        let p = msg.properties(1_700_000_000_000);
        assert_eq!(Meta::read(&p), m);
        assert_eq!(
            ready_ms(&p),
            Some(1_700_000_000_123),
            "due after it was queued"
        );
        assert_eq!(*p.priority(), Some(MAX_PRIORITY));
        assert_eq!(*p.delivery_mode(), Some(2));
    }

    #[test]
    fn missing_or_odd_headers_mean_first_attempt() {
        assert_eq!(Meta::read(&BasicProperties::default()), Meta::first());
        let mut t = FieldTable::default();
        t.insert(ATTEMPT.into(), AMQPValue::LongString("two".into()));
        t.insert(DUE.into(), AMQPValue::LongUInt(7));
        let m = Meta::read(&BasicProperties::default().with_headers(t));
        assert_eq!(m.attempt, 1);
        assert_eq!(m.due_ms, Some(7));
        let first = Message {
            target: Target::Work,
            payload: b"",
            priority: 0,
            meta: Meta::first(),
        };
        let p = first.properties(42);
        let headers = p.headers().as_ref().unwrap().inner();
        assert_eq!(
            headers.keys().collect::<Vec<_>>(),
            [&ShortString::from(QUEUED)]
        );
        assert_eq!(ready_ms(&p), Some(42));
        assert_eq!(ready_ms(&BasicProperties::default()), None);
    }

    #[test]
    fn delivery_ids_carry_the_generation() {
        let id = delivery_id(7, 123_456);
        assert_eq!(split(id), (7, 123_456));
        assert_ne!(delivery_id(8, 123_456), id);
        assert_eq!(split(delivery_id(u16::MAX, TAG_MASK)), (u16::MAX, TAG_MASK));
    }
}
