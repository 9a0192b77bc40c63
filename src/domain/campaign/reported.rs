//! A recipient's status as a campaign reports it: its own state until the BSP accepted its
//! message, then the message's merged status. One mapping serves the counts, the export and
//! the recipients list's `status` filter, so the three agree on every recipient.

use serde::Serialize;

use super::RecipientStatus;
use crate::domain::status::Status;

/// The words of [`CampaignCounts`]: `sent`, `delivered`, `read` and `failed` follow the
/// message once sent, so `failed` holds both the sends a BSP refused and the sent messages it
/// later reported failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReportedStatus {
    Queued,
    Sending,
    Sent,
    Delivered,
    Read,
    Failed,
    Skipped,
    OptedOut,
    Cancelled,
    Unknown,
}

/// Which recipients a [`ReportedStatus`] holds, as a query selects them: every recipient whose
/// own status is `whole`, and the `sent` ones whose message is at one of `sent_with` (`None`
/// for a sent recipient with no message stored: the BSP gave no id, or none came back yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Members {
    pub whole: Option<RecipientStatus>,
    pub sent_with: &'static [Option<Status>],
}

impl ReportedStatus {
    pub const ALL: [ReportedStatus; 10] = [
        ReportedStatus::Queued,
        ReportedStatus::Sending,
        ReportedStatus::Sent,
        ReportedStatus::Delivered,
        ReportedStatus::Read,
        ReportedStatus::Failed,
        ReportedStatus::Skipped,
        ReportedStatus::OptedOut,
        ReportedStatus::Cancelled,
        ReportedStatus::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReportedStatus::Queued => "queued",
            ReportedStatus::Sending => "sending",
            ReportedStatus::Sent => "sent",
            ReportedStatus::Delivered => "delivered",
            ReportedStatus::Read => "read",
            ReportedStatus::Failed => "failed",
            ReportedStatus::Skipped => "skipped",
            ReportedStatus::OptedOut => "opted_out",
            ReportedStatus::Cancelled => "cancelled",
            ReportedStatus::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<ReportedStatus> {
        ReportedStatus::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// What a recipient in `status` reports, whose message (once the BSP accepted it) is at
    /// `message`.
    pub fn of(status: RecipientStatus, message: Option<Status>) -> ReportedStatus {
        match (status, message) {
            (RecipientStatus::Sent, Some(Status::Delivered)) => ReportedStatus::Delivered,
            (RecipientStatus::Sent, Some(Status::Read)) => ReportedStatus::Read,
            (RecipientStatus::Sent, Some(Status::Failed)) => ReportedStatus::Failed,
            (RecipientStatus::Sent, Some(Status::Sent) | None) => ReportedStatus::Sent,
            (RecipientStatus::Queued, _) => ReportedStatus::Queued,
            (RecipientStatus::Sending, _) => ReportedStatus::Sending,
            (RecipientStatus::Failed, _) => ReportedStatus::Failed,
            (RecipientStatus::Skipped, _) => ReportedStatus::Skipped,
            (RecipientStatus::OptedOut, _) => ReportedStatus::OptedOut,
            (RecipientStatus::Cancelled, _) => ReportedStatus::Cancelled,
            (RecipientStatus::Unknown, _) => ReportedStatus::Unknown,
        }
    }

    /// The recipients [`of`](Self::of) puts here, for a query to select (see the tests: the
    /// two are checked against each other for every combination).
    pub fn members(self) -> Members {
        let whole = |s| Members {
            whole: Some(s),
            sent_with: &[],
        };
        match self {
            ReportedStatus::Queued => whole(RecipientStatus::Queued),
            ReportedStatus::Sending => whole(RecipientStatus::Sending),
            ReportedStatus::Skipped => whole(RecipientStatus::Skipped),
            ReportedStatus::OptedOut => whole(RecipientStatus::OptedOut),
            ReportedStatus::Cancelled => whole(RecipientStatus::Cancelled),
            ReportedStatus::Unknown => whole(RecipientStatus::Unknown),
            ReportedStatus::Sent => Members {
                whole: None,
                sent_with: &[None, Some(Status::Sent)],
            },
            ReportedStatus::Delivered => Members {
                whole: None,
                sent_with: &[Some(Status::Delivered)],
            },
            ReportedStatus::Read => Members {
                whole: None,
                sent_with: &[Some(Status::Read)],
            },
            ReportedStatus::Failed => Members {
                whole: Some(RecipientStatus::Failed),
                sent_with: &[Some(Status::Failed)],
            },
        }
    }
}

/// Counts per reported status of one campaign (see [`ReportedStatus`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CampaignCounts {
    pub queued: u64,
    pub sending: u64,
    pub sent: u64,
    pub delivered: u64,
    pub read: u64,
    pub failed: u64,
    pub skipped: u64,
    pub opted_out: u64,
    pub cancelled: u64,
    pub unknown: u64,
}

impl CampaignCounts {
    /// Adds `n` recipients in `status` whose message (if the BSP accepted it) is at `message`.
    pub fn add(&mut self, status: RecipientStatus, message: Option<Status>, n: u64) {
        *self.slot(ReportedStatus::of(status, message)) += n;
    }

    fn slot(&mut self, r: ReportedStatus) -> &mut u64 {
        match r {
            ReportedStatus::Queued => &mut self.queued,
            ReportedStatus::Sending => &mut self.sending,
            ReportedStatus::Sent => &mut self.sent,
            ReportedStatus::Delivered => &mut self.delivered,
            ReportedStatus::Read => &mut self.read,
            ReportedStatus::Failed => &mut self.failed,
            ReportedStatus::Skipped => &mut self.skipped,
            ReportedStatus::OptedOut => &mut self.opted_out,
            ReportedStatus::Cancelled => &mut self.cancelled,
            ReportedStatus::Unknown => &mut self.unknown,
        }
    }

    /// Every recipient of the campaign, whatever its status.
    pub fn total(&self) -> u64 {
        self.queued
            + self.sending
            + self.sent
            + self.delivered
            + self.read
            + self.failed
            + self.skipped
            + self.opted_out
            + self.cancelled
            + self.unknown
    }

    /// Recipients not yet settled: a running campaign finishes when this reaches 0.
    pub fn outstanding(&self) -> u64 {
        self.queued + self.sending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every (recipient status, message status) a store can join: a message only for a `sent`
    /// recipient (the join's condition).
    fn combinations() -> Vec<(RecipientStatus, Option<Status>)> {
        let mut out = Vec::new();
        for s in RecipientStatus::ALL {
            out.push((s, None));
            if s == RecipientStatus::Sent {
                out.extend(Status::ALL.into_iter().map(|m| (s, Some(m))));
            }
        }
        out
    }

    fn selects(m: Members, (status, message): (RecipientStatus, Option<Status>)) -> bool {
        m.whole == Some(status)
            || (status == RecipientStatus::Sent && m.sent_with.contains(&message))
    }

    #[test]
    fn each_recipient_is_selected_by_the_status_it_is_counted_under_and_no_other() {
        for combo in combinations() {
            let counted = ReportedStatus::of(combo.0, combo.1);
            for r in ReportedStatus::ALL {
                assert_eq!(
                    selects(r.members(), combo),
                    r == counted,
                    "{combo:?} counted as {counted:?}, filtered by {r:?}"
                );
            }
        }
    }

    #[test]
    fn words_round_trip() {
        for r in ReportedStatus::ALL {
            assert_eq!(ReportedStatus::parse(r.as_str()), Some(r));
        }
        assert_eq!(ReportedStatus::parse("lost"), None);
    }

    #[test]
    fn counts_follow_the_message_status_once_sent() {
        let mut c = CampaignCounts::default();
        c.add(RecipientStatus::Sent, Some(Status::Read), 2);
        c.add(RecipientStatus::Sent, None, 1);
        c.add(RecipientStatus::Sent, Some(Status::Failed), 1);
        c.add(RecipientStatus::Failed, None, 1);
        c.add(RecipientStatus::Queued, None, 3);
        assert_eq!((c.read, c.sent, c.failed, c.queued), (2, 1, 2, 3));
        assert_eq!(c.outstanding(), 3);
        assert_eq!(c.total(), 8);
    }
}
