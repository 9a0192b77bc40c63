//! The workload's vocabulary, shared by the generator (`workload`) and the body renderer
//! (`payload`): the messages a run is about and the events of them a body carries. A leaf: it
//! imports neither, so the dependency between those two goes one way.

use crate::domain::status::Status;

/// One event inside a body, by index into the workload's `outbound` or `inbound` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Item {
    Status { message: u32, status: Status },
    Inbound { message: u32 },
}

/// A template message the business sent, whose status webhooks the workload replays.
#[derive(Debug, Clone)]
pub struct Outbound {
    pub wamid: String,
    /// Digits only, as BSPs write it.
    pub phone: String,
    pub campaign_id: String,
    /// Unix seconds of each status, indexed by [`Status::rank`]; duplicates reuse them.
    pub at: [i64; 4],
}

/// A message a user sent to the business number.
#[derive(Debug, Clone)]
pub struct UserMessage {
    pub id: String,
    pub from: String,
    pub name: &'static str,
    pub text: &'static str,
    pub at: i64,
}
