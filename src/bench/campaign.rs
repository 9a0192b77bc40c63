//! `wagate bench campaign`: a closed loop through a running gateway. It runs the mock BSP and a
//! signature-checking receiver in-process, points a fresh project's provider at the mock,
//! uploads a CSV of N recipients, starts the campaign, and waits until every message is final
//! and every status event was forwarded; then checks the export against what the mock decided.
//!
//! The mock lives in this process, so its cost (accepting sends, posting webhooks) is on the
//! same two cores as the gateway's: the figures bound the gateway from below.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::api::Api;
use super::mock_bsp::{self, Final, MockConfig};
use super::receiver::verify;
use crate::domain::signing::SigningSecret;

/// Options of `wagate bench campaign`. No `Debug`: it holds the admin token.
#[derive(Clone, clap::Args)]
pub struct CampaignArgs {
    /// Base URL of the wagate gateway (run it with WAGATE_ALLOW_PRIVATE_TARGETS=true: the mock
    /// BSP and the receiver listen on this machine).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub target: String,
    /// Recipients in the campaign's CSV.
    #[arg(long, default_value_t = 10_000)]
    pub recipients: usize,
    /// The provider the campaign sends through: meta, datagen, aisensy or aisensy_direct.
    #[arg(long, default_value = "meta")]
    pub provider: String,
    /// The campaign's own rate limit (messages/s); the server's per-number rate otherwise.
    #[arg(long)]
    pub rate: Option<u32>,
    /// Share of messages the mock reports `failed`; of the rest, `--read-rate` end read.
    #[arg(long, default_value_t = 0.1)]
    pub fail_rate: f64,
    #[arg(long, default_value_t = 0.7)]
    pub read_rate: f64,
    /// Share of sends the mock answers 429.
    #[arg(long, default_value_t = 0.0)]
    pub throttle_rate: f64,
    /// Where the mock BSP and the receiver listen (the gateway must reach both).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub mock_listen: SocketAddr,
    #[arg(long, default_value = "127.0.0.1:0")]
    pub receiver_listen: SocketAddr,
    /// How long to wait for every message to be final and every event forwarded.
    #[arg(long, default_value_t = 300)]
    pub timeout_secs: u64,
    /// Admin token, to create the run's project.
    #[arg(long, env = "WAGATE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The send path alone: the mock posts no status webhooks, so the run ends when every
    /// recipient is recorded `sent`, and nothing is processed or forwarded meanwhile.
    #[arg(long)]
    pub sends_only: bool,
}

/// The JSON line `wagate bench campaign` prints.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CampaignSummary {
    pub recipients: usize,
    pub provider: String,
    pub import_rows_per_sec: f64,
    pub sends_per_sec: f64,
    pub seconds_to_final: f64,
    pub forwarded: u64,
    pub forwards_expected: u64,
    pub duplicate_sends: u64,
    pub wrong_final_status: u64,
    pub missing: u64,
    pub bad_signatures: u64,
    pub server_rss_start_bytes: Option<u64>,
    pub server_rss_end_bytes: Option<u64>,
}

impl CampaignSummary {
    pub fn clean(&self) -> bool {
        self.duplicate_sends == 0
            && self.wrong_final_status == 0
            && self.missing == 0
            && self.bad_signatures == 0
            && self.forwarded == self.forwards_expected
    }
}

/// Counts verified deliveries by event id.
#[derive(Default)]
struct Sink {
    secret: OnceLock<SigningSecret>,
    seen: Mutex<HashSet<String>>,
    bad: std::sync::atomic::AtomicU64,
}

async fn receive(
    State(sink): State<Arc<Sink>>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> StatusCode {
    let Some(secret) = sink.secret.get() else {
        return StatusCode::SERVICE_UNAVAILABLE;
    };
    let now = crate::domain::time::Timestamp::now().millis() / 1000;
    match verify(secret, &headers, &body, now) {
        Ok(v) => {
            sink.seen.lock().expect("not poisoned").insert(v.event_id);
            StatusCode::OK
        }
        Err(_) => {
            sink.bad.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            StatusCode::BAD_REQUEST
        }
    }
}

const BUSINESS: &str = "+919700000001";
const META_ID: &str = "919700000001";

fn phone(i: usize) -> String {
    format!("+91960{i:07}")
}

pub async fn run_campaign(args: &CampaignArgs) -> anyhow::Result<CampaignSummary> {
    let api = Api::new(&args.target, 16)?;
    api.healthz().await?;
    let rss_start = api.server_rss().await;
    let mock = mock_bsp::start(MockConfig {
        listen: args.mock_listen,
        webhook_target: (!args.sends_only).then(|| args.target.trim_end_matches('/').to_owned()),
        fail_rate: args.fail_rate,
        read_rate: args.read_rate,
        throttle_rate: args.throttle_rate,
        seed: args.seed,
        ..MockConfig::default()
    })
    .await?;
    let sink = Arc::new(Sink::default());
    let listener = tokio::net::TcpListener::bind(args.receiver_listen).await?;
    let receiver = listener.local_addr()?;
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(sink.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let run_id = format!("bench{}", crate::domain::time::Timestamp::now().millis());
    let admin = args.admin_token.as_deref().unwrap_or_default();
    let (_, project) = call(
        &api,
        "POST",
        "/v1/projects",
        admin,
        Some(json!({"id": run_id, "name": "wagate bench campaign",
            "phone_numbers": [{"number": BUSINESS, "meta_phone_number_id": META_ID}]})),
        StatusCode::CREATED,
    )
    .await?;
    let key = project["api_key"].as_str().context("api_key")?.to_owned();
    let base = match args.provider.as_str() {
        // AiSensy's project URL names the sender; the mock reads that segment as its id.
        "aisensy_direct" => format!("{}/aisensy-direct/{META_ID}", mock.base_url()),
        _ => mock.base_url(),
    };
    let credential = match args.provider.as_str() {
        "aisensy" => format!("mock-{META_ID}"),
        _ => "bench".to_owned(),
    };
    call(
        &api,
        "PUT",
        &format!("/v1/providers/{}", args.provider),
        &key,
        Some(json!({"base_url": base, "credential": credential})),
        StatusCode::OK,
    )
    .await?;
    let (_, endpoint) = call(
        &api,
        "POST",
        "/webhook/config",
        &key,
        Some(json!({"webhook_url": format!("http://{receiver}/hook"), "topics": ["*"]})),
        StatusCode::CREATED,
    )
    .await?;
    let secret = endpoint["shared_secret"]
        .as_str()
        .context("shared_secret")?;
    let _ = sink
        .secret
        .set(SigningSecret::parse(secret).context("secret")?);
    let mut campaign = json!({
        "name": "bench", "template_id": "bench_template", "provider": args.provider,
        "sender": BUSINESS, "params": [{"column": "name", "fallback": "there"}],
    });
    if let Some(rate) = args.rate {
        campaign["rate_limit_per_second"] = json!(rate);
    }
    let (_, c) = call(
        &api,
        "POST",
        "/project/campaign",
        &key,
        Some(campaign),
        StatusCode::CREATED,
    )
    .await?;
    let id = c["id"].as_str().context("campaign id")?.to_owned();

    let mut csv = String::with_capacity(args.recipients * 32 + 16);
    csv.push_str("phone,name\n");
    for i in 0..args.recipients {
        csv.push_str(&phone(i));
        csv.push_str(&format!(",User {i}\n"));
    }
    let started = Instant::now();
    let resp = api
        .client()
        .post(api.url(&format!("/project/campaign/{id}/recipients")))
        .bearer_auth(&key)
        .header("content-type", "text/csv")
        .timeout(Duration::from_secs(900))
        .body(csv)
        .send()
        .await
        .context("uploading the CSV")?;
    if !resp.status().is_success() {
        bail!(
            "upload failed: {} {}",
            resp.status(),
            resp.text().await.unwrap_or_default()
        );
    }
    let import: Value = resp.json().await?;
    let import_secs = started.elapsed().as_secs_f64();
    eprintln!("imported {} rows in {import_secs:.2} s", import["accepted"]);

    let sent_at = Instant::now();
    call(
        &api,
        "POST",
        "/project/campaign/event/send",
        &key,
        Some(json!({"campaign_id": id})),
        StatusCode::ACCEPTED,
    )
    .await?;
    let deadline = sent_at + Duration::from_secs(args.timeout_secs);
    let n = args.recipients as u64;
    let mut all_sent_secs = None;
    let mut last_report = Instant::now();
    // The campaign's counts read every recipient and its message on the server: while sends
    // are still going out, they are read once a second, so the load tool does not become
    // the server's main load; the mock's own tally says when the last send arrived.
    let mut last_read: Option<Instant> = None;
    let final_secs = loop {
        let stats = mock.stats();
        let accepted = stats.accepted.total();
        if all_sent_secs.is_none() && accepted >= n {
            all_sent_secs = Some(sent_at.elapsed().as_secs_f64());
        }
        if accepted < n
            && last_read.is_some_and(|t| t.elapsed() < Duration::from_secs(1))
            && Instant::now() <= deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        last_read = Some(Instant::now());
        let (_, c) = call(
            &api,
            "GET",
            &format!("/project/campaign/{id}"),
            &key,
            None,
            StatusCode::OK,
        )
        .await?;
        let finals: &[&str] = if args.sends_only {
            &["sent"]
        } else {
            &["delivered", "read", "failed"]
        };
        let settled: u64 = finals
            .iter()
            .map(|k| c["counts"][k].as_u64().unwrap_or(0))
            .sum();
        let expected = expected_forwards(&mock.sends(), args.sends_only);
        let forwarded = sink.seen.lock().expect("not poisoned").len() as u64;
        if settled >= n && accepted >= n && forwarded >= expected {
            break sent_at.elapsed().as_secs_f64();
        }
        if last_report.elapsed() >= Duration::from_secs(2) {
            last_report = Instant::now();
            eprintln!(
                "{:>6.1} s: sent {accepted}/{n}, final {settled}/{n}, forwarded {forwarded}/{expected}",
                sent_at.elapsed().as_secs_f64()
            );
        }
        if Instant::now() > deadline {
            eprintln!("timed out: {}", c["counts"]);
            break sent_at.elapsed().as_secs_f64();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let sends = mock.sends();
    let finals: HashMap<&str, &str> = sends
        .iter()
        .map(|s| (s.to.as_str(), final_word(s.final_status, args.sends_only)))
        .collect();
    let export = api
        .client()
        .get(api.url(&format!("/project/campaign/{id}/messages.csv")))
        .bearer_auth(&key)
        .timeout(Duration::from_secs(900))
        .send()
        .await?
        .text()
        .await?;
    let mut wrong = 0;
    let mut missing = 0;
    for line in export.lines().skip(1) {
        let cells: Vec<&str> = line.split(',').collect();
        match finals.get(cells[0]) {
            Some(f) if *f == cells.get(2).copied().unwrap_or("") => {}
            Some(_) => wrong += 1,
            None => missing += 1,
        }
    }
    let stats = mock.stats();
    let forwarded = sink.seen.lock().expect("not poisoned").len() as u64;
    let rss_end = api.server_rss().await;
    let summary = CampaignSummary {
        recipients: args.recipients,
        provider: args.provider.clone(),
        import_rows_per_sec: (args.recipients as f64 / import_secs).round(),
        sends_per_sec: (n as f64 / all_sent_secs.unwrap_or(final_secs)).round(),
        seconds_to_final: (final_secs * 100.0).round() / 100.0,
        forwarded,
        forwards_expected: expected_forwards(&sends, args.sends_only),
        duplicate_sends: stats.duplicate_sends,
        wrong_final_status: wrong,
        missing: missing + n.saturating_sub(stats.accepted.total()),
        bad_signatures: sink.bad.load(std::sync::atomic::Ordering::Relaxed),
        server_rss_start_bytes: rss_start,
        server_rss_end_bytes: rss_end,
    };
    mock.shutdown().await;
    Ok(summary)
}

/// Distinct status events the mock's webhooks carry: sent, then delivered and read, or failed.
fn expected_forwards(sends: &[mock_bsp::SendRecord], sends_only: bool) -> u64 {
    if sends_only {
        return 0;
    }
    sends
        .iter()
        .map(|s| match s.final_status {
            Final::Read => 3,
            Final::Delivered | Final::Failed => 2,
        })
        .sum()
}

/// The status a recipient ends in: the mock's fate for it, or `sent` when no webhook tells.
fn final_word(f: Final, sends_only: bool) -> &'static str {
    if sends_only {
        return "sent";
    }
    match f {
        Final::Delivered => "delivered",
        Final::Read => "read",
        Final::Failed => "failed",
    }
}

async fn call(
    api: &Api,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
    expect: StatusCode,
) -> anyhow::Result<(StatusCode, Value)> {
    let method = reqwest::Method::from_bytes(method.as_bytes())?;
    let mut req = api
        .client()
        .request(method.clone(), api.url(path))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req
        .send()
        .await
        .with_context(|| format!("{method} {path}"))?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    if status != expect {
        bail!("{method} {path}: {status} {text}");
    }
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}
