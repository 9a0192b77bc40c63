//! Statuses: what one provider event reported, and the merged status of a message with its
//! merge rule that keeps it from moving backwards.
//!
//! # From the provider's word to the message's status
//!
//! Words are folded first (trimmed, case ignored, `_`/`-` read as a space), then:
//!
//! | provider word                                                  | reported     | effect on the message |
//! |----------------------------------------------------------------|--------------|-----------------------|
//! | `sent`                                                         | `sent`       | `sent`                |
//! | `failed`, `not sent`, `undelivered`, `rejected`, `error`       | `failed`     | `failed`              |
//! | `delivered`                                                    | `delivered`  | `delivered`           |
//! | `read`, `seen`                                                 | `read`       | `read`                |
//! | `played` (Meta: a voice message was played)                    | `played`     | `read`                |
//! | `deleted` (Meta: the user deleted the message)                 | `deleted`    | none                  |
//! | `warning` (Meta: e.g. an item in the message is unavailable)   | `warning`    | none                  |
//! | any other word, from any provider                              | the word, as sent (trimmed) | none   |
//!
//! Every report is kept in the message's history under its own word; only those with an effect
//! move the status. A report with no effect on a message not yet stored creates it as `sent`
//! (the provider reported on it, so it was sent), and `sent` never lowers a stored status.
//! Unknown words are kept rather than quarantined: a provider that adds a status word should
//! not make its events disappear from the history until wagate learns the word.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

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

    /// The status a provider's word moves a message to; `None` for words that move nothing
    /// (`deleted`, `warning`, unknown words). See the module's table.
    pub fn parse_provider(word: &str) -> Option<Status> {
        Reported::parse_provider(word).ok()?.effect()
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

/// What one provider event reported about a message: one row of the message's history.
///
/// Variants are declared in the order of their [`code`](Reported::code), so the derived order
/// sorts by code, then (for `Other`) by word. Build `Other` through
/// [`parse_provider`](Reported::parse_provider): it never holds a word that folds to a known one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reported {
    Sent,
    Failed,
    Delivered,
    Read,
    Played,
    Deleted,
    Warning,
    /// A word wagate does not know, trimmed but otherwise as the provider sent it.
    Other(String),
}

/// Why a status word cannot be kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadStatus {
    #[error("the status word is empty")]
    Empty,
    /// Longer than [`Reported::MAX_WORD`] characters, or with control characters: not a status
    /// word, and not something to store as one.
    #[error("the status word is not a readable word")]
    Unreadable,
}

impl BadStatus {
    /// The quarantine reason.
    pub fn reason(self) -> &'static str {
        match self {
            BadStatus::Empty => "missing_status",
            BadStatus::Unreadable => "invalid_status",
        }
    }
}

impl Reported {
    /// Longest unknown word kept (in characters).
    pub const MAX_WORD: usize = 64;

    /// Reads a provider's status word (see the module's table).
    pub fn parse_provider(word: &str) -> Result<Reported, BadStatus> {
        let word = word.trim();
        if word.is_empty() {
            return Err(BadStatus::Empty);
        }
        if word.chars().count() > Self::MAX_WORD || word.chars().any(char::is_control) {
            return Err(BadStatus::Unreadable);
        }
        let folded: String = word
            .chars()
            .map(|c| match c {
                '_' | '-' => ' ',
                c => c.to_ascii_lowercase(),
            })
            .collect();
        Ok(match folded.as_str() {
            "sent" => Reported::Sent,
            "delivered" => Reported::Delivered,
            "read" | "seen" => Reported::Read,
            "failed" | "not sent" | "undelivered" | "rejected" | "error" => Reported::Failed,
            "played" => Reported::Played,
            "deleted" => Reported::Deleted,
            "warning" => Reported::Warning,
            _ => Reported::Other(word.to_owned()),
        })
    }

    /// What this report does to the message's status; `None` leaves it as it is.
    pub fn effect(&self) -> Option<Status> {
        match self {
            Reported::Sent => Some(Status::Sent),
            Reported::Failed => Some(Status::Failed),
            Reported::Delivered => Some(Status::Delivered),
            Reported::Read | Reported::Played => Some(Status::Read),
            Reported::Deleted | Reported::Warning | Reported::Other(_) => None,
        }
    }

    /// The status to merge into the message: the effect, or `sent` for a report without one.
    /// `sent` is the least status, so merging it never changes a stored message; and a message
    /// first seen through such a report was sent, or the provider would not report on it.
    pub fn merged(&self) -> Status {
        self.effect().unwrap_or(Status::Sent)
    }

    /// The word the history shows: the canonical word, or the unknown word as sent.
    pub fn as_str(&self) -> &str {
        match self {
            Reported::Sent => "sent",
            Reported::Failed => "failed",
            Reported::Delivered => "delivered",
            Reported::Read => "read",
            Reported::Played => "played",
            Reported::Deleted => "deleted",
            Reported::Warning => "warning",
            Reported::Other(word) => word,
        }
    }

    /// The history's kind code, stored in `message_events.status_rank`. The first four are
    /// [`Status::rank`], so rows written before these kinds existed read the same.
    pub fn code(&self) -> i16 {
        match self {
            Reported::Sent => 0,
            Reported::Failed => 1,
            Reported::Delivered => 2,
            Reported::Read => 3,
            Reported::Played => 4,
            Reported::Deleted => 5,
            Reported::Warning => 6,
            Reported::Other(_) => 7,
        }
    }

    /// The rest of the history key (`message_events.status_word`): the word for `Other`, empty
    /// for the kinds the code names.
    pub fn key_word(&self) -> &str {
        match self {
            Reported::Other(word) => word,
            _ => "",
        }
    }

    /// Reads a stored history key back; `None` for a code this version does not know.
    pub fn from_stored(code: i16, word: &str) -> Option<Reported> {
        Some(match code {
            0 => Reported::Sent,
            1 => Reported::Failed,
            2 => Reported::Delivered,
            3 => Reported::Read,
            4 => Reported::Played,
            5 => Reported::Deleted,
            6 => Reported::Warning,
            7 => Reported::Other(word.to_owned()),
            _ => return None,
        })
    }

    /// The word inside a dedupe key: known words as they are (the keys earlier versions made),
    /// unknown words with `%` and `:` escaped, so `s:{wamid}:{word}` splits at its last `:` and
    /// no unknown word can spell another key.
    pub fn key_text(&self) -> Cow<'_, str> {
        match self {
            Reported::Other(word) if word.contains(['%', ':']) => {
                Cow::Owned(word.replace('%', "%25").replace(':', "%3A"))
            }
            _ => Cow::Borrowed(self.as_str()),
        }
    }
}

impl From<Status> for Reported {
    fn from(s: Status) -> Reported {
        match s {
            Status::Sent => Reported::Sent,
            Status::Failed => Reported::Failed,
            Status::Delivered => Reported::Delivered,
            Status::Read => Reported::Read,
        }
    }
}

impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// On the queue and in the API a report is its word: `"delivered"` is what the previous
/// version's `Status` wrote, so queued messages from before a deploy still decode.
impl Serialize for Reported {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Reported {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let word = Cow::<'de, str>::deserialize(d)?;
        // Exact words only: `Other` never holds a word that folds to a known one, so an exact
        // match is the one way a known word was written.
        Ok(match word.as_ref() {
            "sent" => Reported::Sent,
            "failed" => Reported::Failed,
            "delivered" => Reported::Delivered,
            "read" => Reported::Read,
            "played" => Reported::Played,
            "deleted" => Reported::Deleted,
            "warning" => Reported::Warning,
            _ => Reported::Other(word.into_owned()),
        })
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
        assert_eq!(Status::parse_provider("played"), Some(Status::Read));
        assert_eq!(Status::parse_provider("deleted"), None);
        assert_eq!(Status::parse_provider(""), None);
    }

    /// The module's table, row by row: word → reported → effect, and the merge it makes.
    #[test]
    fn mapping_and_merge_effect() {
        use Reported::*;
        let other = |w: &str| Other(w.to_owned());
        let table: [(&str, Reported, &str, Option<Status>); 14] = [
            ("sent", Sent, "sent", Some(Status::Sent)),
            ("FAILED", Failed, "failed", Some(Status::Failed)),
            ("not sent", Failed, "failed", Some(Status::Failed)),
            ("Undelivered", Failed, "failed", Some(Status::Failed)),
            ("delivered", Delivered, "delivered", Some(Status::Delivered)),
            ("read", Read, "read", Some(Status::Read)),
            ("seen", Read, "read", Some(Status::Read)),
            ("played", Played, "played", Some(Status::Read)),
            ("PLAYED", Played, "played", Some(Status::Read)),
            ("deleted", Deleted, "deleted", None),
            ("warning", Warning, "warning", None),
            (" queued ", other("queued"), "queued", None),
            ("ENROUTE", other("ENROUTE"), "ENROUTE", None),
            (
                "blocked by user",
                other("blocked by user"),
                "blocked by user",
                None,
            ),
        ];
        for (word, reported, shown, effect) in table {
            let got = Reported::parse_provider(word).unwrap();
            assert_eq!(got, reported, "{word}");
            assert_eq!(got.as_str(), shown, "{word}");
            assert_eq!(got.effect(), effect, "{word}");
        }
        // Played ranks with read: it beats delivered and failed, and read does not beat it.
        let merge = |s: Status, r: Reported| s.merge(r.merged());
        assert_eq!(merge(Status::Delivered, Played), Status::Read);
        assert_eq!(merge(Status::Failed, Played), Status::Read);
        assert_eq!(merge(Status::Read, Played), Status::Read);
        // The others never move a status, whatever it is.
        for s in Status::ALL {
            for r in [Deleted, Warning, other("queued")] {
                assert_eq!(merge(s, r.clone()), s, "{s} + {r}");
            }
        }
        // ...and a message first seen through one of them is `sent`.
        assert_eq!(Deleted.merged(), Status::Sent);
    }

    #[test]
    fn unreadable_words_are_refused() {
        assert_eq!(Reported::parse_provider("  "), Err(BadStatus::Empty));
        assert_eq!(
            Reported::parse_provider(&"x".repeat(65)),
            Err(BadStatus::Unreadable)
        );
        assert!(Reported::parse_provider(&"x".repeat(64)).is_ok());
        assert_eq!(
            Reported::parse_provider("que\0ued"),
            Err(BadStatus::Unreadable)
        );
        assert_eq!(BadStatus::Empty.reason(), "missing_status");
        assert_eq!(BadStatus::Unreadable.reason(), "invalid_status");
    }

    #[test]
    fn stored_keys_round_trip() {
        let all = [
            Reported::Sent,
            Reported::Failed,
            Reported::Delivered,
            Reported::Read,
            Reported::Played,
            Reported::Deleted,
            Reported::Warning,
            Reported::Other("queued".into()),
        ];
        for r in &all {
            assert_eq!(
                Reported::from_stored(r.code(), r.key_word()).as_ref(),
                Some(r)
            );
        }
        // Codes of the kinds `Status` names are its ranks: rows of earlier versions read alike.
        for s in Status::ALL {
            assert_eq!(Reported::from(s).code(), s.rank());
        }
        assert_eq!(Reported::from_stored(8, ""), None);
        let codes: std::collections::BTreeSet<i16> = all.iter().map(Reported::code).collect();
        assert_eq!(codes.len(), all.len(), "one code per kind");
    }

    #[test]
    fn wire_form_is_the_word_and_reads_the_old_encoding() {
        // What the previous version's `Status` wrote.
        let old: Reported = serde_json::from_str(r#""delivered""#).unwrap();
        assert_eq!(old, Reported::Delivered);
        for r in [
            Reported::Read,
            Reported::Played,
            Reported::Warning,
            Reported::Other("Queued:x".into()),
        ] {
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(serde_json::from_str::<Reported>(&json).unwrap(), r);
        }
        assert_eq!(
            serde_json::to_string(&Reported::Played).unwrap(),
            r#""played""#
        );
    }

    #[test]
    fn dedupe_words_cannot_collide() {
        assert_eq!(Reported::Read.key_text(), "read");
        assert_eq!(Reported::Other("a:b%".into()).key_text(), "a%3Ab%25");
        assert_eq!(Reported::Other("queued".into()).key_text(), "queued");
    }
}
