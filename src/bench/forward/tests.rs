//! The forward bench's pure parts: the request plan and the summary maths.

use std::collections::HashSet;

use super::*;
use crate::domain::event::Event;
use crate::domain::providers::{datagen, meta, raw_json};

fn numbers(n: usize) -> Vec<String> {
    (0..n).map(|e| format!("91800000000{e}")).collect()
}

#[test]
fn the_plan_spreads_distinct_events_round_robin() {
    let nums = numbers(3);
    let p = plan(&nums, 100, 4, 0.5, 7);
    assert_eq!((p.events.len(), p.event_count()), (100, 100));
    assert_eq!(p.posts.len(), 25);
    let wamids: HashSet<&str> = p.events.iter().map(|(w, _)| w.as_str()).collect();
    assert_eq!(wamids.len(), 100, "every event its own wamid");
    let mut formats = HashSet::new();
    for (r, post) in p.posts.iter().enumerate() {
        formats.insert(post.format == Format::Meta);
        let project = r % 3;
        // The body holds exactly the planned events, for the project's business number.
        let raw = raw_json(&post.body).unwrap();
        let parsed = match post.format {
            Format::Meta => meta::parse(&raw),
            Format::Datagen => datagen::parse(&raw),
        };
        assert!(parsed.rejected.is_empty());
        let got: Vec<(String, String)> = parsed
            .events
            .iter()
            .map(|e| match e {
                Event::Status(s) => (s.wamid.clone(), s.business_number.as_str().to_owned()),
                Event::Inbound(_) => panic!("only status events are planned"),
            })
            .collect();
        let want: Vec<(String, String)> = post
            .events
            .clone()
            .map(|i| {
                assert_eq!(p.events[i].1 as usize, project);
                (p.events[i].0.clone(), format!("+{}", nums[project]))
            })
            .collect();
        assert_eq!(got, want);
    }
    assert_eq!(formats.len(), 2, "both formats at an even share");
}

#[test]
fn the_last_request_takes_what_is_left_and_the_seed_replays() {
    let p = plan(&numbers(2), 10, 4, 0.0, 1);
    let sizes: Vec<usize> = p.posts.iter().map(|r| r.events.len()).collect();
    assert_eq!(sizes, [4, 4, 2]);
    assert!(p.posts.iter().all(|r| r.format == Format::Datagen));
    let again = plan(&numbers(2), 10, 4, 0.0, 1);
    assert_eq!(p.events, again.events);
    assert_eq!(p.posts[2].body, again.posts[2].body);
    assert_ne!(plan(&numbers(2), 10, 4, 0.0, 2).events, p.events);
}

#[test]
fn nearest_rank_percentiles_and_rates() {
    let us: Vec<u32> = (1..=200).map(|i| i * 500).collect();
    assert_eq!(percentile_ms(&us, 0.50), 50.0);
    assert_eq!(percentile_ms(&us, 0.99), 99.0);
    assert_eq!(percentile_ms(&us, 1.0), 100.0);
    assert_eq!(percentile_ms(&[1234], 0.5), 1.234);
    assert_eq!(percentile_ms(&[], 0.99), 0.0);
    assert_eq!(per_sec(3, 2.0), 1.5);
    assert_eq!(per_sec(3, 0.0), 0.0);
}

fn measured_summary(receipts: &Receipts, counts: Counts, accepted: u64) -> ForwardSummary {
    let args = ForwardArgs {
        endpoints: 4,
        slow_endpoints: 1,
        ..ForwardArgs::from_defaults()
    };
    let posted = Posted {
        accepted: vec![true; 10],
        events_accepted: accepted,
        ..Posted::default()
    };
    summarize(Measured {
        args: &args,
        seed: 9,
        posted: &posted,
        post_secs: 2.0,
        counts,
        receipts,
        since_first: Duration::from_millis(500),
        timed_out: false,
        rss: (Some(1), Some(2)),
    })
}

#[test]
fn the_summary_rates_deliveries_from_the_first_post_to_the_last_receipt() {
    let receipts = Receipts {
        healthy_expected: 8,
        missing: 0,
        latencies_us: vec![1000, 2000, 3000, 4000, 5000, 6000, 7000, 80_000],
        last_healthy: Some(Duration::from_millis(4500)),
    };
    let s = measured_summary(&receipts, Counts::default(), 10);
    // 8 deliveries over 4 s (0.5 s to 4.5 s after the epoch).
    assert_eq!(s.forwards_per_sec, 2.0);
    assert_eq!((s.delivered, s.events, s.events_accepted), (8, 10, 10));
    assert_eq!(s.posted_per_sec, 5.0);
    assert_eq!(
        (s.latency_p50_ms, s.latency_p99_ms, s.latency_max_ms),
        (4.0, 80.0, 80.0)
    );
    assert_eq!((s.endpoints, s.slow_endpoints, s.seed), (4, 1, 9));
    assert!(s.failures().is_empty(), "{:?}", s.failures());
    let line = serde_json::to_value(&s).unwrap();
    for field in [
        "events",
        "endpoints",
        "slow_endpoints",
        "forwards_per_sec",
        "latency_p50_ms",
        "latency_p99_ms",
        "latency_max_ms",
        "duplicates",
        "missing",
        "bad_signatures",
        "server_rss_start_bytes",
        "server_rss_end_bytes",
        "seed",
    ] {
        assert!(line.get(field).is_some(), "{field} missing from {line}");
    }
}

#[test]
fn losses_duplicates_and_bad_signatures_fail_the_run() {
    let receipts = Receipts {
        healthy_expected: 3,
        missing: 1,
        latencies_us: vec![10, 20],
        last_healthy: Some(Duration::from_millis(400)),
    };
    let counts = Counts {
        duplicates: 2,
        bad_signatures: 3,
        ..Counts::default()
    };
    let s = measured_summary(&receipts, counts, 10);
    assert_eq!(
        s.forwards_per_sec, 0.0,
        "no time between first post and last receipt"
    );
    assert_eq!(
        s.failures(),
        ["missing 1", "duplicates 2", "bad_signatures 3"]
    );
    let none = measured_summary(&Receipts::default(), Counts::default(), 0);
    assert_eq!(none.failures(), ["the gateway accepted no event"]);
}
