//! After the load: wait until the server has processed what it accepted, then compare what it
//! holds with what the accepted requests imply (nothing lost, nothing backwards).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::bail;

use super::api::{Api, MessageOut, Stats};
use super::workload::{Expected, Workload};
use crate::domain::status::Status;

const POLL_EVERY: Duration = Duration::from_millis(50);

pub struct Drain {
    /// Seconds from the last accepted request until the stats first showed everything applied;
    /// `None` if that did not happen within the timeout.
    pub secs: Option<f64>,
    pub stats: Option<Stats>,
}

/// Polls `GET /v1/stats` until it counts at least the expected history events and inbound
/// messages, or `timeout` after `since` has passed.
pub async fn wait_for_drain(
    api: &Api,
    api_key: &str,
    expected: &Expected,
    since: Instant,
    timeout: Duration,
) -> Drain {
    let want_history = expected.history.len() as u64;
    let want_inbound = expected.inbound.len() as u64;
    let deadline = since + timeout;
    let mut last: Option<Stats> = None;
    let mut errors = 0u64;
    let mut next_report = Instant::now();
    loop {
        match api.stats(api_key).await {
            Ok(s) => {
                if s.history_events >= want_history && s.inbound_messages >= want_inbound {
                    let secs = since.elapsed().as_secs_f64();
                    return Drain {
                        secs: Some(secs),
                        stats: Some(s),
                    };
                }
                if Instant::now() >= next_report {
                    eprintln!(
                        "draining: history events {}/{want_history}, inbound {}/{want_inbound}",
                        s.history_events, s.inbound_messages
                    );
                    next_report += Duration::from_secs(1);
                }
                last = Some(s);
            }
            Err(e) => {
                errors += 1;
                if errors == 1 || errors.is_multiple_of(20) {
                    eprintln!("draining: stats failed ({errors} so far): {e:#}");
                }
            }
        }
        if Instant::now() >= deadline {
            eprintln!("draining: not complete after {}s", timeout.as_secs());
            return Drain {
                secs: None,
                stats: last,
            };
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// Every message of the project, paging `GET /v1/messages` to the end.
pub async fn list_messages(
    api: &Api,
    api_key: &str,
    expected_messages: usize,
) -> anyhow::Result<Vec<MessageOut>> {
    // A cursor that cycles would page forever; no correct listing is this long.
    let cap = expected_messages * 4 + 10_000;
    let mut all = Vec::with_capacity(expected_messages);
    let mut cursor: Option<String> = None;
    loop {
        let page = api.messages(api_key, cursor.as_deref()).await?;
        let empty = page.data.is_empty();
        all.extend(page.data);
        match page.next_cursor {
            Some(next) if !empty && cursor.as_deref() != Some(next.as_str()) => cursor = Some(next),
            Some(next) if !empty => bail!("GET /v1/messages returned cursor {next} twice"),
            _ => return Ok(all),
        }
        if all.len() > cap {
            bail!("GET /v1/messages listed over {cap} messages and did not end");
        }
    }
}

/// What the comparison found. Every count is zero for a correct server.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Expected (wamid, status) events missing from histories, plus expected inbound messages
    /// missing from the stats.
    pub events_lost: u64,
    /// Expected messages not listed at all (their events are counted in `events_lost`).
    pub messages_missing: u64,
    /// Messages whose status is below the max of their accepted events.
    pub backwards: u64,
    /// The same status more than once in one message's history.
    pub history_duplicates: u64,
    /// One wamid listed more than once: a paging bug.
    pub listed_twice: u64,
    /// History events from refused requests that the server applied anyway: allowed.
    pub unexpected_events: u64,
}

pub fn compare(
    workload: &Workload,
    expected: &Expected,
    listed: &[MessageOut],
    inbound_seen: u64,
) -> Verdict {
    let index: HashMap<&str, u32> = workload
        .outbound
        .iter()
        .enumerate()
        .map(|(i, m)| (m.wamid.as_str(), i as u32))
        .collect();
    let mut v = Verdict::default();
    let mut seen: HashMap<u32, &MessageOut> = HashMap::new();
    let mut history: HashSet<(u32, Status)> = HashSet::new();
    for m in listed {
        let Some(&i) = index.get(m.wamid.as_str()) else {
            continue;
        };
        if seen.insert(i, m).is_some() {
            v.listed_twice += 1;
            continue;
        }
        for e in &m.events {
            match Status::parse_provider(&e.status) {
                Some(s) if !history.insert((i, s)) => v.history_duplicates += 1,
                Some(s) if !expected.history.contains(&(i, s)) => v.unexpected_events += 1,
                _ => {}
            }
        }
    }
    let history_lost = expected.history.difference(&history).count() as u64;
    let inbound_lost = (expected.inbound.len() as u64).saturating_sub(inbound_seen);
    v.events_lost = history_lost + inbound_lost;
    for (i, want) in &expected.status {
        match seen.get(i) {
            None => v.messages_missing += 1,
            // An unreadable status cannot be shown to be at least the expected one.
            Some(m) => match Status::parse_provider(&m.status) {
                Some(got) if got >= *want => {}
                _ => v.backwards += 1,
            },
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::api::HistoryOut;
    use crate::bench::workload::Spec;

    fn setup() -> (Workload, Expected, Vec<MessageOut>) {
        let w = Workload::generate(&Spec {
            events: 400,
            seed: 11,
            duplicate_rate: 0.2,
            meta_share: 0.5,
            inbound_share: 0.05,
            business_number: "919812345678".into(),
        });
        let expected = w.expected(&vec![true; w.requests.len()]);
        // What a correct server lists: one message per wamid, its max status, distinct history.
        let mut listed: Vec<MessageOut> = expected
            .status
            .iter()
            .map(|(i, s)| MessageOut {
                wamid: w.outbound[*i as usize].wamid.clone(),
                status: s.as_str().into(),
                events: Vec::new(),
            })
            .collect();
        for m in &mut listed {
            let i = w.outbound.iter().position(|o| o.wamid == m.wamid).unwrap() as u32;
            for s in Status::ALL {
                if expected.history.contains(&(i, s)) {
                    m.events.push(HistoryOut {
                        status: s.as_str().into(),
                    });
                }
            }
        }
        (w, expected, listed)
    }

    #[test]
    fn a_correct_server_has_a_clean_verdict() {
        let (w, expected, listed) = setup();
        let inbound = expected.inbound.len() as u64;
        assert_eq!(compare(&w, &expected, &listed, inbound), Verdict::default());
    }

    #[test]
    fn losses_backwards_and_duplicates_are_counted() {
        let (w, expected, mut listed) = setup();
        let inbound = expected.inbound.len() as u64;
        listed.sort_by_key(|m| std::cmp::Reverse(m.events.len()));
        // The first two have three-event lifecycles, so their status is above `sent`.
        listed[0].events.pop();
        listed[1].status = "sent".into();
        listed[1].events.push(HistoryOut {
            status: "SENT".into(),
        });
        let dropped = listed.pop().unwrap();
        let v = compare(&w, &expected, &listed, inbound - 1);
        let want_lost = 1 + dropped.events.len() as u64 + 1;
        assert_eq!(v.events_lost, want_lost, "{v:?}");
        assert_eq!(v.messages_missing, 1);
        assert_eq!(
            v.backwards, 1,
            "a message missing its `read` event still says read"
        );
        assert_eq!(v.history_duplicates, 1);
    }
}
