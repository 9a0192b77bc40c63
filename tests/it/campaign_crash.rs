//! The binary sending a campaign, killed with `kill -9` mid-run: after a restart no recipient
//! was sent twice to the BSP, and every one is accounted for. Those the BSP accepted end with
//! their webhooks' status (the reference echoed in them repairs a send whose answer the crash
//! lost); those it never got are sent after the restart, or, if the crash caught them between
//! claim and answer, end `unknown`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wagate::bench::mock_bsp::{self, MockConfig};

use crate::support::app::{ADMIN, Backend};
use crate::support::process::{env_for, free_port, start};

const RECIPIENTS: usize = 200;

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

async fn kill_sender_mid_campaign(backend: Backend) {
    let Some((mut env, _dir)) = env_for(backend).await else {
        return;
    };
    let listen = format!("127.0.0.1:{}", free_port());
    env.extend([
        ("WAGATE_LISTEN".into(), listen.clone()),
        ("WAGATE_ALLOW_PRIVATE_TARGETS".into(), "true".into()),
        ("WAGATE_SWEEPER_INTERVAL_MS".into(), "100".into()),
        // Slow enough that the kill lands mid-campaign.
        ("WAGATE_SEND_RATE_PER_NUMBER".into(), "50".into()),
        ("WAGATE_SEND_UNKNOWN_AFTER_SECS".into(), "3".into()),
    ]);
    let base = format!("http://{listen}");
    // The mock retries its webhooks while the gateway is down.
    let mock = mock_bsp::start(MockConfig {
        webhook_target: Some(base.clone()),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let mut server = start(&env).await;
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
    let c = call(
        reqwest::Method::POST,
        format!("{base}/project/campaign"),
        &key,
        Some(
            json!({"name": "crash", "template_id": "crash", "provider": "meta",
            "sender": "+919812345678"}),
        ),
    )
    .await;
    let id = c["id"].as_str().unwrap().to_owned();
    let mut csv = String::from("phone\n");
    for i in 0..RECIPIENTS {
        csv.push_str(&format!("+91970000{i:04}\n"));
    }
    let client = wagate::adapters::outbound::client_builder()
        .build()
        .unwrap();
    let r = client
        .post(format!("{base}/project/campaign/{id}/recipients"))
        .bearer_auth(&key)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    call(
        reqwest::Method::POST,
        format!("{base}/project/campaign/event/send"),
        &key,
        Some(json!({"campaign_id": id})),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while mock.stats().accepted.meta < 40 {
        assert!(Instant::now() < deadline, "sending had not started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pid = server.child.id().unwrap();
    assert!(
        std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    server.child.wait().await.unwrap();
    let at_kill = mock.stats().accepted.meta;
    let _restarted = start(&env).await;
    let deadline = Instant::now() + Duration::from_secs(90);
    let campaign = loop {
        let c = call(
            reqwest::Method::GET,
            format!("{base}/project/campaign/{id}"),
            &key,
            None,
        )
        .await;
        let counts = &c["counts"];
        let done = c["state"] == "finished"
            && counts["read"].as_u64().unwrap() + counts["unknown"].as_u64().unwrap()
                == RECIPIENTS as u64;
        if done {
            break c;
        }
        assert!(
            Instant::now() < deadline,
            "not settled after the restart: {c}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let stats = mock.stats();
    eprintln!(
        "{backend:?}: {at_kill} sends before the kill, {} in all; counts {}",
        stats.accepted.meta, campaign["counts"]
    );
    assert_eq!(
        stats.duplicate_sends, 0,
        "a recipient was sent twice: {stats:?}"
    );
    // What the mock accepted ends `read` with the mock's id; what it never got is `unknown`.
    let accepted: HashMap<String, String> =
        mock.sends().into_iter().map(|s| (s.to, s.id)).collect();
    let export = client
        .get(format!("{base}/project/campaign/{id}/messages.csv"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut rows = 0;
    for line in export.lines().skip(1) {
        rows += 1;
        let cells: Vec<&str> = line.split(',').collect();
        match accepted.get(cells[0]) {
            Some(wamid) => {
                assert_eq!(cells[1], wamid, "{line}");
                assert_eq!(cells[2], "read", "{line}");
            }
            None => assert_eq!(cells[2], "unknown", "never sent, so unknown: {line}"),
        }
    }
    assert_eq!(rows, RECIPIENTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_kill_9_of_the_sender_sends_no_one_twice() {
    kill_sender_mid_campaign(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distributed_kill_9_of_the_sender_sends_no_one_twice() {
    kill_sender_mid_campaign(Backend::Distributed).await;
}
