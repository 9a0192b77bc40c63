//! Roles in separate processes sharing PostgreSQL + RabbitMQ + Redis: one ingress/API process
//! and two processors end in exactly the state the workload implies, as one process would.

use serde_json::Value;

use crate::support::app::{ADMIN, Backend};
use crate::support::process::{env_for, start_with};

async fn applied_count(base: &str) -> f64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with("wagate_processor_applied_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processors_reach_the_state_of_one() {
    let Some((env, _dir)) = env_for(Backend::Distributed).await else {
        return;
    };
    let front = start_with(&env, &["--roles", "api,ingress"]).await;
    let p1 = start_with(&env, &["--roles", "processor"]).await;
    let p2 = start_with(&env, &["--roles", "processor"]).await;
    // The load tool checks the final state against the workload's own expectation: every
    // accepted event in its message's history once, every status the max of its events.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_wagate"))
        .args([
            "bench",
            "ingest",
            "--target",
            &front.base,
            "--events",
            "6000",
            "--concurrency",
            "16",
        ])
        .args([
            "--seed",
            "42",
            "--healthz-secs",
            "0",
            "--drain-timeout-secs",
            "60",
        ])
        .env("WAGATE_ADMIN_TOKEN", ADMIN)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["events_accepted"], 6000, "{summary}");
    assert_eq!(summary["events_lost"], 0, "{summary}");
    assert_eq!(summary["backwards"], 0, "{summary}");
    assert_eq!(summary["history_duplicates"], 0, "{summary}");
    assert_eq!(summary["messages_missing"], 0, "{summary}");
    assert!(summary["drain_secs"].is_number(), "drained: {summary}");
    let (a, b) = (applied_count(&p1.base).await, applied_count(&p2.base).await);
    assert!(
        a > 0.0 && b > 0.0,
        "both processors took part: {a} and {b} events"
    );
}
