//! What applied events mean for campaigns: a status echoing one of our references settles
//! that recipient's send (a crash after the BSP accepted it left it `sending`), and an inbound
//! STOP or START opts the phone out of, or back into, the project's campaigns.
//!
//! Both are idempotent writes, so the processor makes them for every event of a batch, new or
//! already seen: a redelivered batch repairs what a crash interrupted.

use crate::domain::apply::Incoming;
use crate::domain::campaign::opt_out::opt_out_changes;
use crate::domain::campaign::{OptOutChange, RecipientId};
use crate::domain::event::Event;
use crate::ports::campaigns::EchoedReference;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct FollowUps {
    pub echoes: Vec<EchoedReference>,
    pub opt_outs: Vec<OptOutChange>,
}

impl FollowUps {
    pub fn is_empty(&self) -> bool {
        self.echoes.is_empty() && self.opt_outs.is_empty()
    }
}

/// The campaign follow-ups of these events, each resolved to its project.
pub fn follow_ups(items: &[Incoming], stop: &[String], start: &[String]) -> FollowUps {
    let mut out = FollowUps::default();
    for i in items {
        match &i.event {
            Event::Status(e) => {
                // Only our own references: a BSP may echo its customer's other references too.
                if let Some(recipient) = e
                    .reference
                    .as_deref()
                    .and_then(|r| RecipientId::parse(r).ok())
                {
                    out.echoes.push(EchoedReference {
                        recipient,
                        project_id: i.project_id.clone(),
                        provider_message_id: e.wamid.clone(),
                        at: i.received_at,
                    });
                }
            }
            Event::Inbound(m) => {
                if let Some(change) = opt_out_changes(&i.project_id, m, stop, start, i.received_at)
                {
                    out.opt_outs.push(change);
                }
            }
        }
    }
    out
}
