//! Opt-out keywords: an inbound message that is exactly `STOP` (or another configured word)
//! opts its sender out of the project's campaigns; `START` opts back in.

use super::OptOutChange;
use crate::domain::event::InboundMessage;
use crate::domain::project::ProjectId;
use crate::domain::time::Timestamp;

/// Keywords that opt a phone out, unless configured otherwise.
pub const DEFAULT_STOP: &[&str] = &["STOP", "UNSUBSCRIBE"];
/// Keywords that opt a phone back in, unless configured otherwise.
pub const DEFAULT_START: &[&str] = &["START", "SUBSCRIBE"];

/// `DEFAULT_STOP` as owned strings, for configuration defaults.
pub fn default_stop() -> Vec<String> {
    DEFAULT_STOP.iter().map(|k| (*k).to_owned()).collect()
}

/// `DEFAULT_START` as owned strings, for configuration defaults.
pub fn default_start() -> Vec<String> {
    DEFAULT_START.iter().map(|k| (*k).to_owned()).collect()
}

/// `Some(true)` when the whole message (trimmed, in any case) is a stop keyword,
/// `Some(false)` when it is a start keyword, `None` otherwise. A message that merely contains a
/// keyword ("please don't stop") is not one: opting someone out by accident loses a customer's
/// customer. A word in both lists stops, the safer reading. Blank keywords match nothing.
pub fn keyword<S: AsRef<str>>(text: &str, stop: &[S], start: &[S]) -> Option<bool> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let is = |k: &S| {
        let k = k.as_ref().trim();
        !k.is_empty() && same_ignoring_case(k, text)
    };
    if stop.iter().any(is) {
        Some(true)
    } else if start.iter().any(is) {
        Some(false)
    } else {
        None
    }
}

fn same_ignoring_case(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
        || a.chars()
            .flat_map(char::to_lowercase)
            .eq(b.chars().flat_map(char::to_lowercase))
}

/// The opt-out (or opt-in) an inbound message asks for, if its text is a keyword. It takes
/// effect at the time the user sent it, or when wagate received it if the BSP gave no time,
/// so that of a STOP and a START replayed out of order the later one still wins.
pub fn opt_out_changes<S: AsRef<str>>(
    project: &ProjectId,
    inbound: &InboundMessage,
    stop: &[S],
    start: &[S],
    received_at: Timestamp,
) -> Option<OptOutChange> {
    let opted_out = keyword(inbound.text.as_deref()?, stop, start)?;
    Some(OptOutChange {
        project_id: project.clone(),
        phone: inbound.from.clone(),
        opted_out,
        at: inbound.occurred_at.unwrap_or(received_at),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::value::RawValue;

    use super::*;
    use crate::domain::event::Provider;
    use crate::domain::phone::PhoneNumber;

    #[test]
    fn whole_messages_in_any_case_are_keywords() {
        for (text, want) in [
            ("STOP", Some(true)),
            ("  stop \n", Some(true)),
            ("Unsubscribe", Some(true)),
            ("start", Some(false)),
            ("SubScribe ", Some(false)),
            ("stop please", None),
            ("please stop", None),
            ("STOP.", None),
            ("", None),
            ("   ", None),
        ] {
            assert_eq!(keyword(text, DEFAULT_STOP, DEFAULT_START), want, "{text:?}");
        }
    }

    #[test]
    fn configured_keywords_replace_the_defaults() {
        let stop = vec!["  Arrêter ".to_owned(), "ΣΤΟΠ".to_owned(), String::new()];
        let start = vec!["reprendre".to_owned()];
        assert_eq!(keyword("ARRÊTER", &stop, &start), Some(true));
        assert_eq!(keyword("στοπ", &stop, &start), Some(true));
        assert_eq!(keyword("Reprendre", &stop, &start), Some(false));
        assert_eq!(keyword("STOP", &stop, &start), None);
        assert_eq!(default_stop(), ["STOP", "UNSUBSCRIBE"]);
        assert_eq!(default_start(), ["START", "SUBSCRIBE"]);
    }

    #[test]
    fn a_word_in_both_lists_stops() {
        assert_eq!(keyword("halt", &["halt"], &["halt"]), Some(true));
    }

    fn inbound(text: Option<&str>, occurred_at: Option<Timestamp>) -> InboundMessage {
        InboundMessage {
            provider: Provider::Meta,
            message_id: "wamid.in1".to_owned(),
            business_number: PhoneNumber::parse("+911111111111").unwrap(),
            phone_number_id: None,
            from: PhoneNumber::parse("+919812345678").unwrap(),
            profile_name: None,
            kind: "text".to_owned(),
            text: text.map(str::to_owned),
            occurred_at,
            raw: RawValue::from_string("{}".to_owned()).unwrap(),
        }
    }

    #[test]
    fn an_inbound_keyword_changes_its_senders_opt_out() {
        let project = ProjectId::parse("acme").unwrap();
        let sent = Timestamp::from_millis(1_000);
        let received = Timestamp::from_millis(2_000);
        let change = opt_out_changes(
            &project,
            &inbound(Some("Stop"), Some(sent)),
            DEFAULT_STOP,
            DEFAULT_START,
            received,
        );
        assert_eq!(
            change,
            Some(OptOutChange {
                project_id: project.clone(),
                phone: PhoneNumber::parse("+919812345678").unwrap(),
                opted_out: true,
                at: sent,
            })
        );
        let change = opt_out_changes(
            &project,
            &inbound(Some("start"), None),
            DEFAULT_STOP,
            DEFAULT_START,
            received,
        )
        .unwrap();
        assert_eq!((change.opted_out, change.at), (false, received));
        for text in [None, Some("hello")] {
            let none = opt_out_changes(
                &project,
                &inbound(text, None),
                DEFAULT_STOP,
                DEFAULT_START,
                received,
            );
            assert_eq!(none, None, "{text:?}");
        }
    }
}
