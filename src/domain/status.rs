//! The status order of an outbound message and the merge rule that keeps it from moving backwards.

use serde::{Deserialize, Serialize};

/// Delivery status of an outbound message, declared in merge order: a later variant always wins.
///
/// `failed` outranks `sent` (the send did not succeed), but `delivered`/`read` outrank `failed`:
/// when one of the user's devices failed and another got the message, the message *was*
/// delivered. Because the merge is a max, the final status does not depend on arrival order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Sent,
    Failed,
    Delivered,
    Read,
}

impl Status {
    pub const ALL: [Status; 4] = [
        Status::Sent,
        Status::Failed,
        Status::Delivered,
        Status::Read,
    ];

    /// The integer stored in the database; the store merges with `GREATEST`/`MAX` over it.
    pub fn rank(self) -> i16 {
        self as i16
    }

    pub fn from_rank(rank: i16) -> Option<Status> {
        Self::ALL.get(usize::try_from(rank).ok()?).copied()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Sent => "sent",
            Status::Failed => "failed",
            Status::Delivered => "delivered",
            Status::Read => "read",
        }
    }

    /// Reads a provider's status word. Providers differ in case and spelling (`DELIVERED`,
    /// `not sent`, `NOT_SENT`, `undelivered`), so this folds them; unknown words are `None`
    /// and the caller quarantines the event rather than guessing.
    pub fn parse_provider(word: &str) -> Option<Status> {
        let folded: String = word
            .trim()
            .chars()
            .map(|c| match c {
                '_' | '-' => ' ',
                c => c.to_ascii_lowercase(),
            })
            .collect();
        match folded.as_str() {
            "sent" => Some(Status::Sent),
            "delivered" => Some(Status::Delivered),
            "read" | "seen" => Some(Status::Read),
            "failed" | "not sent" | "undelivered" | "rejected" | "error" => Some(Status::Failed),
            _ => None,
        }
    }

    /// The merge rule: the maximum of the two.
    pub fn merge(self, other: Status) -> Status {
        self.max(other)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_sent_failed_delivered_read() {
        assert!(Status::Sent < Status::Failed);
        assert!(Status::Failed < Status::Delivered);
        assert!(Status::Delivered < Status::Read);
        assert_eq!(Status::Failed.merge(Status::Delivered), Status::Delivered);
        assert_eq!(Status::Read.merge(Status::Failed), Status::Read);
        assert_eq!(Status::Sent.merge(Status::Failed), Status::Failed);
    }

    #[test]
    fn rank_round_trips() {
        for s in Status::ALL {
            assert_eq!(Status::from_rank(s.rank()), Some(s));
        }
        assert_eq!(Status::from_rank(4), None);
        assert_eq!(Status::from_rank(-1), None);
    }

    #[test]
    fn provider_words_fold() {
        assert_eq!(Status::parse_provider("DELIVERED"), Some(Status::Delivered));
        assert_eq!(Status::parse_provider(" Not Sent "), Some(Status::Failed));
        assert_eq!(Status::parse_provider("NOT_SENT"), Some(Status::Failed));
        assert_eq!(Status::parse_provider("Read"), Some(Status::Read));
        assert_eq!(Status::parse_provider("deleted"), None);
        assert_eq!(Status::parse_provider(""), None);
    }
}
