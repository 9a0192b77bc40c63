//! Workload tests: determinism, the expected state, and that every body parses as intended.

use std::collections::{BTreeMap, HashSet};

use super::*;
use crate::domain::event::Event;
use crate::domain::providers::{Parsed, datagen, meta, raw_json};

const BUSINESS: &str = "919812345678";

fn spec(seed: u64, duplicate_rate: f64) -> Spec {
    Spec {
        events: 3000,
        seed,
        duplicate_rate,
        meta_share: 0.5,
        inbound_share: 0.05,
        business_number: BUSINESS.into(),
    }
}

fn all(w: &Workload) -> Vec<bool> {
    vec![true; w.requests.len()]
}

fn status_items(w: &Workload) -> impl Iterator<Item = (u32, Status)> + '_ {
    w.requests
        .iter()
        .flat_map(|r| &r.items)
        .filter_map(|i| match *i {
            Item::Status { message, status } => Some((message, status)),
            Item::Inbound { .. } => None,
        })
}

#[test]
fn same_seed_same_workload() {
    let a = Workload::generate(&spec(7, 0.1));
    let b = Workload::generate(&spec(7, 0.1));
    let bodies = |w: &Workload| {
        w.requests
            .iter()
            .map(|r| r.body.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(bodies(&a), bodies(&b));
    assert_ne!(bodies(&a), bodies(&Workload::generate(&spec(8, 0.1))));
}

#[test]
fn exact_event_count_and_shapes() {
    let w = Workload::generate(&spec(1, 0.1));
    assert_eq!(w.events(), 3000);
    let inbound = w.requests.iter().flat_map(|r| &r.items);
    let inbound = inbound
        .filter(|i| matches!(i, Item::Inbound { .. }))
        .count();
    assert_eq!(inbound, 150);
    let meta = w
        .requests
        .iter()
        .filter(|r| r.format == Format::Meta)
        .count();
    let share = meta as f64 / w.requests.len() as f64;
    assert!((0.4..0.6).contains(&share), "meta share {share}");
    for r in &w.requests {
        let max = if r.format == Format::Meta { 3 } else { 10 };
        assert!((1..=max).contains(&r.items.len()));
    }
    let batches = w
        .requests
        .iter()
        .filter(|r| r.format == Format::Datagen && r.items.len() > 1);
    assert!(batches.count() > 0, "some Datagen bodies are arrays");
}

#[test]
fn events_arrive_out_of_order() {
    let w = Workload::generate(&spec(2, 0.0));
    let mut first: BTreeMap<u32, Status> = BTreeMap::new();
    for (message, status) in status_items(&w) {
        first.entry(message).or_insert(status);
    }
    let late_sent = first.values().filter(|s| **s != Status::Sent).count();
    assert!(
        late_sent > first.len() / 4,
        "{late_sent} of {}",
        first.len()
    );
}

#[test]
fn expected_status_is_the_max_over_emitted_events() {
    let w = Workload::generate(&spec(3, 0.3));
    let expected = w.expected(&all(&w));
    let mut emitted: BTreeMap<u32, Vec<Status>> = BTreeMap::new();
    for (message, status) in status_items(&w) {
        emitted.entry(message).or_default().push(status);
    }
    assert_eq!(expected.status.len(), emitted.len());
    for (message, statuses) in &emitted {
        assert_eq!(
            expected.status.get(message),
            statuses.iter().max(),
            "message {message}: {statuses:?}"
        );
    }
    let lifecycles: HashSet<Vec<Status>> = emitted
        .values()
        .map(|s| {
            let mut s = s.clone();
            s.sort();
            s.dedup();
            s
        })
        .collect();
    assert!(lifecycles.contains(&vec![Status::Sent, Status::Failed, Status::Delivered]));
    assert!(expected.status.values().any(|s| *s == Status::Failed));
}

#[test]
fn duplicates_do_not_change_expected_distinct_events() {
    let w = Workload::generate(&spec(4, 0.5));
    let distinct: HashSet<(u32, Status)> = status_items(&w).collect();
    assert!(
        status_items(&w).count() > distinct.len() + 500,
        "duplicates are emitted"
    );
    let expected = w.expected(&all(&w));
    assert_eq!(expected.history, distinct);

    // Sending every request twice changes nothing.
    let mut twice = w.clone();
    twice.requests.extend(w.requests.iter().cloned());
    assert_eq!(twice.expected(&all(&twice)), expected);
}

#[test]
fn refused_requests_are_not_expected() {
    let w = Workload::generate(&spec(5, 0.1));
    let accepted: Vec<bool> = (0..w.requests.len()).map(|i| i % 3 != 0).collect();
    let expected = w.expected(&accepted);
    let mut want_history = HashSet::new();
    let mut want_inbound = HashSet::new();
    for (r, _) in w.requests.iter().zip(&accepted).filter(|(_, ok)| **ok) {
        for item in &r.items {
            match *item {
                Item::Status { message, status } => want_history.insert((message, status)),
                Item::Inbound { message } => want_inbound.insert(message),
            };
        }
    }
    assert_eq!(expected.history, want_history);
    assert_eq!(expected.inbound, want_inbound);
    assert!(expected.history.len() < status_items(&w).collect::<HashSet<_>>().len());
}

/// The guard against generating bodies the server would quarantine: each body parses with the
/// server's own parser into exactly the events the workload counts on.
#[test]
fn every_body_parses_into_the_expected_events() {
    let w = Workload::generate(&spec(6, 0.2));
    let business = format!("+{BUSINESS}");
    for (i, r) in w.requests.iter().enumerate() {
        let raw = raw_json(&r.body).expect("valid JSON");
        let parsed: Parsed = match r.format {
            Format::Datagen => datagen::parse(&raw),
            Format::Meta => meta::parse(&raw),
        };
        assert!(
            parsed.rejected.is_empty(),
            "request {i} rejected: {:?}",
            parsed.rejected
        );
        let mut got: Vec<(String, Option<Status>)> = Vec::new();
        for event in &parsed.events {
            assert_eq!(event.business_number().as_str(), business, "request {i}");
            match event {
                Event::Status(e) => {
                    let m = w
                        .outbound
                        .iter()
                        .find(|m| m.wamid == e.wamid)
                        .expect("known wamid");
                    assert_eq!(e.campaign_id.as_deref(), Some(m.campaign_id.as_str()));
                    assert_eq!(e.phone.as_ref().unwrap().as_str(), format!("+{}", m.phone));
                    let status = e
                        .status
                        .effect()
                        .expect("the bench sends the four statuses");
                    let at = m.at[status.rank() as usize] * 1000;
                    assert_eq!(e.occurred_at.map(|t| t.millis()), Some(at));
                    assert_eq!(e.error.is_some(), status == Status::Failed);
                    got.push((e.wamid.clone(), Some(status)));
                }
                Event::Inbound(m) => {
                    let u = w
                        .inbound
                        .iter()
                        .find(|u| u.id == m.message_id)
                        .expect("known id");
                    assert_eq!(m.from.as_str(), format!("+{}", u.from));
                    assert_eq!(m.text.as_deref(), Some(u.text));
                    got.push((m.message_id.clone(), None));
                }
            }
        }
        let mut want: Vec<(String, Option<Status>)> = r
            .items
            .iter()
            .map(|item| match *item {
                Item::Status { message, status } => {
                    (w.outbound[message as usize].wamid.clone(), Some(status))
                }
                Item::Inbound { message } => (w.inbound[message as usize].id.clone(), None),
            })
            .collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "request {i}");
    }
}

#[test]
fn ids_are_unique_and_look_like_wamids() {
    let w = Workload::generate(&spec(9, 0.1));
    let ids: HashSet<&str> = w
        .outbound
        .iter()
        .map(|m| m.wamid.as_str())
        .chain(w.inbound.iter().map(|m| m.id.as_str()))
        .collect();
    assert_eq!(ids.len(), w.outbound.len() + w.inbound.len());
    assert!(
        ids.iter()
            .all(|id| id.starts_with("wamid.") && id.len() > 40)
    );
}
