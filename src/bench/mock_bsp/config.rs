//! The mock BSP's options: `wagate mock-bsp` flags and the [`MockConfig`] they turn into, which
//! in-process users (tests, `wagate bench campaign`) build directly.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::domain::phone::{InvalidPhone, PhoneNumber};

/// Where the mock posts AiSensy's status webhooks. AiSensy's own webhook format is not public,
/// so the mock reports its sends in the Cloud API shape, which the gateway's Meta ingress reads.
pub const DEFAULT_AISENSY_WEBHOOK_PATH: &str = "/v1/ingest/meta";

/// Everything the mock does, in-process form.
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// `127.0.0.1:0` picks a free port ([`super::MockBsp::base_url`] tells which).
    pub listen: SocketAddr,
    /// The gateway's base URL (`http://127.0.0.1:8080`); `None`: post no webhooks.
    pub webhook_target: Option<String>,
    /// Share of accepted sends whose final status is `failed`.
    pub fail_rate: f64,
    /// Share of status webhooks posted twice.
    pub duplicate_rate: f64,
    /// Shuffle the order of each message's statuses (read before delivered, ...).
    pub reorder: bool,
    /// Wait before each webhook post.
    pub delay: Duration,
    /// Share of sends answered 429 (not accepted).
    pub throttle_rate: f64,
    /// Share of sends refused for good (400, e.g. Meta 132001).
    pub reject_rate: f64,
    /// Share of the sends not failed that end `read`; the rest stop at `delivered`.
    pub read_rate: f64,
    /// Meta `phone_number_id` → business number. Unmapped ids made of digits are the number.
    pub meta_numbers: HashMap<String, PhoneNumber>,
    /// AiSensy `apiKey` → business number. Unmapped keys `mock-<digits>` are `+<digits>`.
    pub aisensy_numbers: HashMap<String, PhoneNumber>,
    /// Signs Meta-shaped posts with `X-Hub-Signature-256` when set.
    pub meta_app_secret: Option<String>,
    /// Path (under the target) AiSensy's Meta-shaped webhooks go to.
    pub aisensy_webhook_path: String,
    /// Seeds every random choice; with the same arrival order a run repeats.
    pub seed: u64,
    /// Webhook poster tasks.
    pub posters: usize,
    /// The most messages whose statuses share one webhook post.
    pub batch: usize,
    /// How long a webhook post is retried (target down) before its statuses are dropped.
    pub retry_for: Duration,
}

impl Default for MockConfig {
    fn default() -> MockConfig {
        MockConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            webhook_target: None,
            fail_rate: 0.0,
            duplicate_rate: 0.0,
            reorder: false,
            delay: Duration::ZERO,
            throttle_rate: 0.0,
            reject_rate: 0.0,
            read_rate: 1.0,
            meta_numbers: HashMap::new(),
            aisensy_numbers: HashMap::new(),
            meta_app_secret: None,
            aisensy_webhook_path: DEFAULT_AISENSY_WEBHOOK_PATH.to_owned(),
            seed: 0,
            posters: 4,
            batch: 100,
            retry_for: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--{0} must be between 0 and 1, got {1}")]
    Rate(&'static str, f64),
    #[error("`{0}` is not KEY=+NUMBER")]
    Mapping(String),
    #[error(transparent)]
    Phone(#[from] InvalidPhone),
    #[error("--posters and --batch must be at least 1")]
    Zero,
    #[error("--webhook-target `{0}` is not an http(s) URL")]
    Target(String),
}

impl MockConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, rate) in [
            ("fail-rate", self.fail_rate),
            ("duplicate-rate", self.duplicate_rate),
            ("throttle-rate", self.throttle_rate),
            ("reject-rate", self.reject_rate),
            ("read-rate", self.read_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(ConfigError::Rate(name, rate));
            }
        }
        if self.posters == 0 || self.batch == 0 {
            return Err(ConfigError::Zero);
        }
        if let Some(t) = &self.webhook_target
            && url::Url::parse(t)
                .map(|u| !matches!(u.scheme(), "http" | "https"))
                .unwrap_or(true)
        {
            return Err(ConfigError::Target(t.clone()));
        }
        Ok(())
    }
}

/// `wagate mock-bsp`: serves the four BSP send APIs and posts their status webhooks back.
#[derive(Debug, Clone, clap::Args)]
pub struct MockBspArgs {
    /// Address to listen on; point the gateway's provider base URLs at it.
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub listen: SocketAddr,
    /// The gateway's base URL, where status webhooks go.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub webhook_target: String,
    /// Post no status webhooks at all.
    #[arg(long)]
    pub no_webhooks: bool,
    /// Share of accepted sends that end `failed` (error 131026).
    #[arg(long, default_value_t = 0.0)]
    pub fail_rate: f64,
    /// Share of status webhooks posted twice.
    #[arg(long, default_value_t = 0.0)]
    pub duplicate_rate: f64,
    /// Shuffle each message's statuses (e.g. read before delivered).
    #[arg(long)]
    pub reorder: bool,
    /// Milliseconds to wait before each webhook post.
    #[arg(long, default_value_t = 0)]
    pub delay_ms: u64,
    /// Share of sends answered 429 (not accepted; the gateway should retry them).
    #[arg(long, default_value_t = 0.0)]
    pub throttle_rate: f64,
    /// Share of sends refused for good with 400 (Meta 132001, template does not exist).
    #[arg(long, default_value_t = 0.0)]
    pub reject_rate: f64,
    /// Share of the sends not failed that reach `read`; the rest stop at `delivered`.
    #[arg(long, default_value_t = 1.0)]
    pub read_rate: f64,
    /// Meta phone_number_id → business number, `ID=+NUMBER` (repeatable). Unmapped ids made
    /// of digits are taken as the number itself.
    #[arg(long = "meta-number", value_name = "ID=+NUMBER")]
    pub meta_numbers: Vec<String>,
    /// AiSensy apiKey → business number, `APIKEY=+NUMBER` (repeatable). Unmapped keys of the
    /// form `mock-<digits>` mean `+<digits>`.
    #[arg(long = "aisensy-number", value_name = "APIKEY=+NUMBER")]
    pub aisensy_numbers: Vec<String>,
    /// Sign Meta-shaped webhooks with X-Hub-Signature-256 (the gateway's WAGATE_META_APP_SECRET).
    #[arg(long, env = "WAGATE_META_APP_SECRET", hide_env_values = true)]
    pub meta_app_secret: Option<String>,
    /// Path AiSensy's webhooks (Cloud API shape: AiSensy's own is not public) are posted to.
    #[arg(long, default_value = DEFAULT_AISENSY_WEBHOOK_PATH)]
    pub aisensy_webhook_path: String,
    /// Seed of the random choices; random when absent.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Webhook poster tasks.
    #[arg(long, default_value_t = 4)]
    pub posters: usize,
    /// The most messages whose statuses share one webhook post.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Seconds a failing webhook post is retried before its statuses are dropped.
    #[arg(long, default_value_t = 300)]
    pub retry_secs: u64,
}

impl MockBspArgs {
    pub fn into_config(self) -> Result<MockConfig, ConfigError> {
        let config = MockConfig {
            listen: self.listen,
            webhook_target: (!self.no_webhooks).then_some(self.webhook_target),
            fail_rate: self.fail_rate,
            duplicate_rate: self.duplicate_rate,
            reorder: self.reorder,
            delay: Duration::from_millis(self.delay_ms),
            throttle_rate: self.throttle_rate,
            reject_rate: self.reject_rate,
            read_rate: self.read_rate,
            meta_numbers: mappings(&self.meta_numbers)?,
            aisensy_numbers: mappings(&self.aisensy_numbers)?,
            meta_app_secret: self.meta_app_secret,
            aisensy_webhook_path: self.aisensy_webhook_path,
            seed: self.seed.unwrap_or_else(rand::random),
            posters: self.posters,
            batch: self.batch,
            retry_for: Duration::from_secs(self.retry_secs),
        };
        config.validate()?;
        Ok(config)
    }
}

/// Reads `KEY=+NUMBER` pairs.
pub fn mappings(pairs: &[String]) -> Result<HashMap<String, PhoneNumber>, ConfigError> {
    pairs
        .iter()
        .map(|pair| {
            let (key, number) = pair
                .split_once('=')
                .filter(|(k, n)| !k.trim().is_empty() && !n.trim().is_empty())
                .ok_or_else(|| ConfigError::Mapping(pair.clone()))?;
            Ok((key.trim().to_owned(), PhoneNumber::parse(number)?))
        })
        .collect()
}
