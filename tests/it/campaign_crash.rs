//! The binary sending a campaign, stopped mid-run: with `kill -9` (one process, restarted; or
//! one of three sharing PostgreSQL + RabbitMQ + Redis, at random points) and with SIGTERM.
//! Whatever the stop, no recipient is sent twice to the BSP, every one is accounted for, and
//! the campaign finishes without an operator. Those the BSP accepted end with their webhooks'
//! status (the reference echoed in them repairs a send whose answer the crash lost); those it
//! never got are sent by a survivor or after the restart, or, if the crash caught their
//! request leaving, end `unknown` after the unknown timeout.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wagate::bench::mock_bsp::{self, MockBsp, MockConfig};

use crate::support::app::{ADMIN, Backend};
use crate::support::process::{Server, env_for, free_port, start, start_logging};

const RECIPIENTS: usize = 200;
/// The unknown timeout the crash tests run with: what they wait for is bounded by it.
const UNKNOWN_AFTER_SECS: &str = "4";

async fn call(method: reqwest::Method, url: String, token: &str, body: Option<Value>) -> Value {
    let client = wagate::adapters::outbound::client_builder()
        .build()
        .unwrap();
    let mut req = client.request(method, url).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    resp.json().await.unwrap_or(Value::Null)
}

fn kill(server: &Server, signal: &str) {
    let pid = server.child.id().unwrap();
    assert!(
        std::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
}

/// One project on a gateway reached at `base`, sending through the mock as Meta.
struct Tenant {
    base: String,
    key: String,
}

impl Tenant {
    async fn new(base: &str, mock: &MockBsp) -> Tenant {
        let project = call(
            reqwest::Method::POST,
            format!("{base}/v1/projects"),
            ADMIN,
            Some(json!({"id": "crash", "name": "Crash",
                "phone_numbers": [{"number": "+919812345678", "meta_phone_number_id": "919812345678"}]})),
        )
        .await;
        let key = project["api_key"].as_str().unwrap().to_owned();
        call(
            reqwest::Method::PUT,
            format!("{base}/v1/providers/meta"),
            &key,
            Some(json!({"base_url": mock.base_url(), "token": "t"})),
        )
        .await;
        Tenant {
            base: base.to_owned(),
            key,
        }
    }

    /// Creates and starts a campaign of `n` recipients, phones `+9197<run:02><i:06>`; one
    /// template per run, so the mock's duplicate count is per run.
    async fn start_campaign(&self, run: usize, n: usize) -> String {
        let c = call(
            reqwest::Method::POST,
            format!("{}/project/campaign", self.base),
            &self.key,
            Some(
                json!({"name": format!("crash {run}"), "template_id": format!("crash_{run}"),
                "provider": "meta", "sender": "+919812345678"}),
            ),
        )
        .await;
        let id = c["id"].as_str().unwrap().to_owned();
        let mut csv = String::from("phone\n");
        for i in 0..n {
            csv.push_str(&format!("+9197{run:02}{i:06}\n"));
        }
        let r = wagate::adapters::outbound::client_builder()
            .build()
            .unwrap()
            .post(format!("{}/project/campaign/{id}/recipients", self.base))
            .bearer_auth(&self.key)
            .header("content-type", "text/csv")
            .body(csv)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        call(
            reqwest::Method::POST,
            format!("{}/project/campaign/event/send", self.base),
            &self.key,
            Some(json!({"campaign_id": id})),
        )
        .await;
        id
    }

    /// Waits until the campaign is finished with every recipient `read` or `unknown`.
    async fn settled(&self, id: &str, n: usize, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let c = call(
                reqwest::Method::GET,
                format!("{}/project/campaign/{id}", self.base),
                &self.key,
                None,
            )
            .await;
            let counts = &c["counts"];
            if c["state"] == "finished"
                && counts["read"].as_u64().unwrap() + counts["unknown"].as_u64().unwrap()
                    == n as u64
            {
                return c;
            }
            assert!(
                Instant::now() < deadline,
                "not settled within {within:?}: {c}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// What the mock accepted ends `read` with the mock's id; what it never got is `unknown`.
    /// Returns how many are `unknown`.
    async fn check_export(&self, id: &str, mock: &MockBsp, n: usize) -> usize {
        let accepted: HashMap<String, String> =
            mock.sends().into_iter().map(|s| (s.to, s.id)).collect();
        let export = wagate::adapters::outbound::client_builder()
            .build()
            .unwrap()
            .get(format!("{}/project/campaign/{id}/messages.csv", self.base))
            .bearer_auth(&self.key)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let (mut rows, mut unknown) = (0, 0);
        for line in export.lines().skip(1) {
            rows += 1;
            let cells: Vec<&str> = line.split(',').collect();
            match accepted.get(cells[0]) {
                Some(wamid) => {
                    assert_eq!(cells[1], wamid, "{line}");
                    assert_eq!(cells[2], "read", "{line}");
                }
                None => {
                    assert_eq!(cells[2], "unknown", "never sent, so unknown: {line}");
                    unknown += 1;
                }
            }
        }
        assert_eq!(rows, n);
        unknown
    }
}

fn crash_env(env: &mut Vec<(String, String)>, listen: &str, rate: &str) {
    env.extend([
        ("WAGATE_LISTEN".into(), listen.to_owned()),
        ("WAGATE_ALLOW_PRIVATE_TARGETS".into(), "true".into()),
        ("WAGATE_SWEEPER_INTERVAL_MS".into(), "100".into()),
        // Slow enough that the stop lands mid-campaign.
        ("WAGATE_SEND_RATE_PER_NUMBER".into(), rate.to_owned()),
        (
            "WAGATE_SEND_UNKNOWN_AFTER_SECS".into(),
            UNKNOWN_AFTER_SECS.into(),
        ),
    ]);
}

async fn wait_accepted(mock: &MockBsp, at_least: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while mock.stats().accepted.meta < at_least {
        assert!(Instant::now() < deadline, "sending had not started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn kill_sender_mid_campaign(backend: Backend) {
    let Some((mut env, _dir)) = env_for(backend).await else {
        return;
    };
    let listen = format!("127.0.0.1:{}", free_port());
    crash_env(&mut env, &listen, "50");
    let base = format!("http://{listen}");
    // The mock retries its webhooks while the gateway is down.
    let mock = mock_bsp::start(MockConfig {
        webhook_target: Some(base.clone()),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let mut server = start(&env).await;
    let tenant = Tenant::new(&base, &mock).await;
    let id = tenant.start_campaign(0, RECIPIENTS).await;
    wait_accepted(&mock, 40).await;
    kill(&server, "-KILL");
    server.child.wait().await.unwrap();
    let at_kill = mock.stats().accepted.meta;
    let _restarted = start(&env).await;
    let campaign = tenant
        .settled(&id, RECIPIENTS, Duration::from_secs(90))
        .await;
    let stats = mock.stats();
    eprintln!(
        "{backend:?}: {at_kill} sends before the kill, {} in all; counts {}",
        stats.accepted.meta, campaign["counts"]
    );
    assert_eq!(
        stats.duplicate_sends, 0,
        "a recipient was sent twice: {stats:?}"
    );
    let unknown = tenant.check_export(&id, &mock, RECIPIENTS).await;
    // Only what was in flight: a claim takes what goes out at once (a tenth of a second of
    // the number's rate, 5 here) in each of the messages a sender holds (4).
    assert!(unknown <= 20, "{unknown} unknown: more than was in flight");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_kill_9_of_the_sender_sends_no_one_twice() {
    kill_sender_mid_campaign(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distributed_kill_9_of_the_sender_sends_no_one_twice() {
    kill_sender_mid_campaign(Backend::Distributed).await;
}

/// Three processes, each with every role, share PostgreSQL + RabbitMQ + Redis; in each of
/// three runs one of the two not receiving the mock's webhooks is killed at a random point
/// of a campaign, and started again for the next run. The survivors finish the campaign
/// within three minutes (within seconds, with the short unknown timeout set here), with no
/// recipient sent twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distributed_kill_9_of_one_of_three_senders_at_random_points() {
    const N: usize = 150;
    let Some((mut env, _dir)) = env_for(Backend::Distributed).await else {
        return;
    };
    // The rate is the number's, shared through Redis: a campaign lasts about three seconds.
    crash_env(&mut env, "127.0.0.1:0", "50");
    env.retain(|(k, _)| k != "WAGATE_LISTEN");
    let listens: Vec<String> = (0..3)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let env_of = |i: usize| {
        let mut e = env.clone();
        e.push(("WAGATE_LISTEN".into(), listens[i].clone()));
        e
    };
    let base = format!("http://{}", listens[0]);
    let mock = mock_bsp::start(MockConfig {
        webhook_target: Some(base.clone()),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let mut servers = Vec::new();
    for i in 0..3 {
        servers.push(start(&env_of(i)).await);
    }
    let tenant = Tenant::new(&base, &mock).await;
    for run in 0..3 {
        let victim = 1 + rand::random_range(0..2usize);
        let before = mock.stats().accepted.meta;
        let id = tenant.start_campaign(run, N).await;
        let started = Instant::now();
        let kill_after = rand::random_range(5..(N as u64 - 20));
        wait_accepted(&mock, before + kill_after).await;
        kill(&servers[victim], "-KILL");
        servers[victim].child.wait().await.unwrap();
        let campaign = tenant.settled(&id, N, Duration::from_secs(180)).await;
        let stats = mock.stats();
        let unknown = tenant.check_export(&id, &mock, N).await;
        eprintln!(
            "run {run}: killed process {victim} after {kill_after} sends; finished in {:?}; \
             counts {}",
            started.elapsed(),
            campaign["counts"]
        );
        assert_eq!(
            stats.duplicate_sends, 0,
            "a recipient was sent twice: {stats:?}"
        );
        assert!(unknown <= 20, "{unknown} unknown: more than was in flight");
        servers[victim] = start(&env_of(victim)).await;
    }
}

/// SIGTERM mid-campaign: the sender hands back what it had not claimed (and says so in its
/// log), so the restarted process sends it at once, not a lease later; nothing is in flight
/// when it exits, so nothing ends `unknown`.
async fn sigterm_hands_back_and_a_restart_sends_at_once(backend: Backend) {
    let Some((mut env, dir)) = env_for(backend).await else {
        return;
    };
    let listen = format!("127.0.0.1:{}", free_port());
    crash_env(&mut env, &listen, "20");
    env.push(("WAGATE_LOG".into(), "info".into()));
    let log = dir.dir.path().join("wagate.log");
    let base = format!("http://{listen}");
    let mock = mock_bsp::start(MockConfig {
        webhook_target: Some(base.clone()),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let mut server = start_logging(&env, &log).await;
    let tenant = Tenant::new(&base, &mock).await;
    let id = tenant.start_campaign(0, RECIPIENTS).await;
    wait_accepted(&mock, 30).await;
    kill(&server, "-TERM");
    server.child.wait().await.unwrap();
    let at_stop = mock.stats().accepted.meta;
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(
        said.contains("handed back recipients not yet claimed"),
        "the hand-back is logged: {said}"
    );
    let restarted_at = Instant::now();
    let _restarted = start_logging(&env, &log).await;
    // The rest takes (200 - sent) / 20 per second, about 8 s: handed back, it goes out at
    // once, not when its lease ends (20 s, and 300 s before).
    let campaign = tenant
        .settled(&id, RECIPIENTS, Duration::from_secs(15))
        .await;
    eprintln!(
        "{backend:?}: {at_stop} sent before SIGTERM, the rest within {:?} of the restart; \
         counts {}",
        restarted_at.elapsed(),
        campaign["counts"]
    );
    assert_eq!(mock.stats().duplicate_sends, 0);
    assert_eq!(tenant.check_export(&id, &mock, RECIPIENTS).await, 0);
}

crate::support::app::backend_cases!(sigterm_hands_back_and_a_restart_sends_at_once);
