//! Delivering an event to a customer's webhook endpoint, without IO: what an attempt's result
//! means ([`outcome`]), when to try again ([`schedule`]), and the exact request ([`request`]).
//! The forwarder does the HTTP; everything it decides is decided here.

pub mod outbox;
pub mod outcome;
pub mod request;
pub mod schedule;

pub use outcome::{MAX_RETRY_AFTER, Outcome, TransportError, parse_retry_after};
pub use request::{EVENT_TYPES, EventRef, USER_AGENT, body, event_type, header, headers};
pub use schedule::{BadSchedule, DeadLetterReason, Decision, RetrySchedule};
