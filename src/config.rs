//! Layered configuration: built-in defaults, then an optional `wagate.toml`, then `WAGATE_*` env.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// A process role; `wagate serve` runs all of them unless `--roles` picks a subset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Projects, messages and admin endpoints.
    Api,
    /// BSP webhooks in, durably enqueued.
    Ingress,
    /// Applies queued events to the store.
    Processor,
    /// Delivers events to the projects' webhook endpoints, and re-queues due deliveries.
    Forwarder,
    /// Sends campaign recipients through their BSPs; starts scheduled campaigns, queues due
    /// recipients, finishes campaigns.
    Sender,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Api,
        Role::Ingress,
        Role::Processor,
        Role::Forwarder,
        Role::Sender,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Api => "api",
            Role::Ingress => "ingress",
            Role::Processor => "processor",
            Role::Forwarder => "forwarder",
            Role::Sender => "sender",
        }
    }
}

impl FromStr for Role {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Role, ConfigError> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s.trim())
            .ok_or_else(|| ConfigError::Invalid {
                key: "roles".into(),
                message: format!(
                    "unknown role `{s}` (known: api, ingress, processor, forwarder, sender)"
                ),
            })
    }
}

/// Parses `api,ingress` (or `all`).
pub fn parse_roles(s: &str) -> Result<BTreeSet<Role>, ConfigError> {
    if s.trim() == "all" {
        return Ok(Role::ALL.into_iter().collect());
    }
    let roles = s
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(Role::from_str)
        .collect::<Result<BTreeSet<_>, _>>()?;
    if roles.is_empty() {
        return Err(ConfigError::Invalid {
            key: "roles".into(),
            message: "at least one role is needed".into(),
        });
    }
    Ok(roles)
}

/// `roles` in `wagate.toml`: a list (`["api", "ingress"]`) or the same string `--roles` takes.
fn deserialize_roles<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeSet<Role>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Roles {
        List(Vec<String>),
        Text(String),
    }
    let text = match Roles::deserialize(d)? {
        Roles::List(list) => list.join(","),
        Roles::Text(text) => text,
    };
    parse_roles(&text).map_err(serde::de::Error::custom)
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{path}, line {line}, column {column}: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("invalid setting `{key}`: {message}")]
    Invalid { key: String, message: String },
}

/// The validated configuration. Every field has a default, so an empty environment runs the
/// embedded setup. Its `Debug` shows no token and no password inside a URL.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    #[serde(deserialize_with = "deserialize_roles")]
    pub roles: BTreeSet<Role>,
    pub data_dir: PathBuf,
    /// `sqlite://path` or `postgres://…`; unset = `sqlite://<data_dir>/wagate.db`.
    pub database_url: Option<String>,
    /// Unset = the durable local queue inside the SQLite file.
    pub amqp_url: Option<String>,
    /// Unset = in-process memory cache only.
    pub redis_url: Option<String>,
    pub admin_token: Option<SecretString>,
    /// When set, BSP webhooks must carry it (`Authorization: Bearer …` or `?token=…`): Karix
    /// and most BSPs sign nothing, so this is what keeps strangers from posting statuses.
    pub ingress_token: Option<SecretString>,
    pub meta_app_secret: Option<SecretString>,
    pub meta_verify_token: Option<SecretString>,
    pub body_limit_bytes: usize,
    /// A connection must deliver a request's headers within this long (and an idle keep-alive
    /// connection is closed after it), so a client trickling headers cannot hold a connection.
    pub http_header_timeout_ms: u64,
    /// A whole request, body included, must be answered within this long, else 408.
    pub http_request_timeout_ms: u64,
    /// Requests served at once; more get 503 at once rather than queueing without bound.
    pub http_max_concurrent_requests: usize,
    /// Prefix of every RabbitMQ exchange and queue name.
    pub amqp_prefix: String,
    /// Deletes unused RabbitMQ queues after this long (`x-expires`); for tests, not production.
    pub amqp_queue_expires_ms: Option<u64>,
    /// Prefix of every Redis key.
    pub redis_prefix: String,
    pub store_pool_size: u32,
    /// `full` fsyncs the WAL at every commit (survives power loss); `normal` survives a process
    /// crash but not power loss.
    pub sqlite_synchronous: String,
    pub ingress_batch_max: usize,
    /// Micro-batches being made durable at once. Few is right on both backends: SQLite commits
    /// one at a time anyway, and the broker's cost is per message, so fewer, fuller messages
    /// beat more pipelining (measured: 1–2 beat 4 and 8 by 30–40% on RabbitMQ).
    pub ingress_inflight: usize,
    pub ingress_publish_timeout_ms: u64,
    pub processor_batch_size: usize,
    pub processor_flush_ms: u64,
    /// Processor loops; 0 = by backend (1 on SQLite, which has one writer, 2 on PostgreSQL).
    pub processor_concurrency: usize,
    pub processor_prefetch: u16,
    pub max_attempts: u32,
    pub queue_visibility_timeout_ms: u64,
    pub cache_memory_ttl_secs: u64,
    pub cache_redis_ttl_secs: u64,
    pub cache_negative_ttl_secs: u64,
    pub dedupe_ttl_secs: u64,
    /// Days raw provider payloads are kept before a processor empties them (0 = forever).
    pub raw_payload_retention_days: u64,
    /// Bytes all in-process caches may weigh together (see `memory_budgets`).
    pub cache_memory_max_bytes: u64,
    /// How often freed memory is handed back to the kernel (`malloc_trim`); 0 = never.
    pub memory_trim_interval_ms: u64,
    pub shutdown_timeout_secs: u64,
    pub log_format: String,
    /// Lets an `ingress` process without `processor` start on the embedded queue: the events
    /// wait in the file until a processor opens it later (the processor benchmark fills a
    /// backlog this way). Off by default, since events would otherwise be stranded.
    pub embedded_ingress_only: bool,
    /// Lets webhook endpoints target loopback, private, link-local and other internal
    /// addresses. Off by default: a customer's URL must not reach wagate's own network. For
    /// tests and local development.
    pub allow_private_targets: bool,
    /// Webhook requests in flight at once, over all endpoints.
    pub forwarder_concurrency: usize,
    /// Webhook requests in flight at once to one endpoint; the excess is deferred, so a slow
    /// endpoint cannot take every slot.
    pub forwarder_endpoint_inflight: usize,
    /// A webhook request's whole time, connect to last byte read.
    pub forwarder_timeout_ms: u64,
    /// Delays between attempts (`3s,3s` = the seed's 3 attempts 3 s apart), each spread ±10%.
    pub forwarder_retry_schedule: String,
    /// Forward queue messages (each names up to 64 deliveries) a forwarder holds at once.
    pub forwarder_prefetch: u16,
    /// How often the sweeper looks for due deliveries (retries, lost queue messages).
    pub sweeper_interval_ms: u64,
    /// Consecutive failures (timeouts, connection errors, 408/429/5xx) that open an endpoint
    /// URL's circuit breaker.
    pub breaker_failure_threshold: u32,
    /// How long an open breaker defers deliveries before letting one probe through.
    pub breaker_cooldown_secs: u64,
    /// A PEM file of extra root certificates the forwarder trusts beside the system's, for
    /// receivers behind a private CA.
    pub webhook_ca_file: Option<PathBuf>,
    /// BSP send requests in flight at once.
    pub sender_concurrency: usize,
    /// Send queue messages (each names up to 50 recipients) a sender holds at once.
    pub sender_prefetch: u16,
    /// A send request's whole time. One that times out may have been accepted, so its
    /// recipient waits for the BSP's webhook (or `send_unknown_after_secs`), never a resend.
    pub send_timeout_ms: u64,
    /// A recipient `sending` this long with no answer and no webhook becomes `unknown`.
    pub send_unknown_after_secs: u64,
    /// Sends refused for now (throttled, 5xx) are retried with backoff up to this many
    /// attempts, then the recipient fails.
    pub send_max_attempts: u32,
    /// The first retry's delay of a send refused for now (then doubling up to a minute).
    pub send_retry_backoff_ms: u64,
    /// Messages per second per sender number (Meta's base tier: 80).
    pub send_rate_per_number: u32,
    /// Per-number rates: `+919812345678=200,+15550001111=1000`.
    pub send_rate_overrides: String,
    /// Country code (digits, e.g. `91`) given to CSV phones written in national form.
    pub default_country_code: Option<String>,
    /// Inbound texts that opt a phone out of the project's campaigns (case-insensitive).
    pub opt_out_keywords: String,
    /// Inbound texts that opt it back in.
    pub opt_in_keywords: String,
    /// Largest recipients CSV, uploaded or fetched from `csv_url`.
    pub csv_max_bytes: u64,
    pub meta_base_url: Option<String>,
    pub meta_token: Option<SecretString>,
    pub meta_api_version: Option<String>,
    pub datagen_base_url: Option<String>,
    pub datagen_token: Option<SecretString>,
    pub datagen_webhook_dn_id: Option<String>,
    pub aisensy_base_url: Option<String>,
    pub aisensy_api_key: Option<SecretString>,
    pub aisensy_direct_base_url: Option<String>,
    pub aisensy_direct_api_key: Option<SecretString>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            roles: Role::ALL.into_iter().collect(),
            data_dir: PathBuf::from("./wagate-data"),
            database_url: None,
            amqp_url: None,
            redis_url: None,
            admin_token: None,
            ingress_token: None,
            meta_app_secret: None,
            meta_verify_token: None,
            body_limit_bytes: 1024 * 1024,
            http_header_timeout_ms: 10_000,
            http_request_timeout_ms: 30_000,
            http_max_concurrent_requests: 1024,
            amqp_prefix: "wagate".into(),
            amqp_queue_expires_ms: None,
            redis_prefix: "wagate:".into(),
            store_pool_size: 8,
            sqlite_synchronous: "full".into(),
            ingress_batch_max: 512,
            ingress_inflight: 2,
            ingress_publish_timeout_ms: 10_000,
            processor_batch_size: 2000,
            processor_flush_ms: 10,
            processor_concurrency: 0,
            processor_prefetch: 200,
            max_attempts: 10,
            queue_visibility_timeout_ms: 30_000,
            cache_memory_ttl_secs: 300,
            cache_redis_ttl_secs: 3600,
            cache_negative_ttl_secs: 30,
            dedupe_ttl_secs: 86_400,
            cache_memory_max_bytes: 64 * 1024 * 1024,
            memory_trim_interval_ms: 5_000,
            raw_payload_retention_days: 30,
            shutdown_timeout_secs: 30,
            log_format: "text".into(),
            embedded_ingress_only: false,
            allow_private_targets: false,
            forwarder_concurrency: 100,
            forwarder_endpoint_inflight: 20,
            forwarder_timeout_ms: 15_000,
            forwarder_retry_schedule: "3s,3s".into(),
            forwarder_prefetch: 128,
            sweeper_interval_ms: 500,
            breaker_failure_threshold: 10,
            breaker_cooldown_secs: 300,
            webhook_ca_file: None,
            sender_concurrency: 200,
            sender_prefetch: 4,
            send_timeout_ms: 15_000,
            send_unknown_after_secs: 600,
            send_max_attempts: 10,
            send_retry_backoff_ms: 1000,
            send_rate_per_number: 80,
            send_rate_overrides: String::new(),
            default_country_code: None,
            opt_out_keywords: "STOP,UNSUBSCRIBE".into(),
            opt_in_keywords: "START,SUBSCRIBE".into(),
            csv_max_bytes: 256 * 1024 * 1024,
            meta_base_url: None,
            meta_token: None,
            meta_api_version: None,
            datagen_base_url: None,
            datagen_token: None,
            datagen_webhook_dn_id: None,
            aisensy_base_url: None,
            aisensy_api_key: None,
            aisensy_direct_base_url: None,
            aisensy_direct_api_key: None,
        }
    }
}

/// Applies `WAGATE_<FIELD>` for each listed field, parsing with `FromStr`.
macro_rules! env_overrides {
    ($cfg:ident, $env:ident; $($field:ident),* $(,)?) => {
        $(
            let key = concat!("WAGATE_", stringify!($field)).to_ascii_uppercase();
            if let Some(v) = $env(&key) {
                $cfg.$field = parse_value(&key, &v)?;
            }
        )*
    };
}

macro_rules! env_optional {
    ($cfg:ident, $env:ident; $($field:ident),* $(,)?) => {
        $(
            let key = concat!("WAGATE_", stringify!($field)).to_ascii_uppercase();
            if let Some(v) = $env(&key) {
                $cfg.$field = if v.is_empty() { None } else { Some(parse_value(&key, &v)?) };
            }
        )*
    };
}

/// A TOML error as `file, line L, column C: message` (toml's own text spans several lines).
fn syntax(path: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    let at = e.span().map_or(0, |s| s.start).min(text.len());
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    ConfigError::Syntax {
        path: path.to_path_buf(),
        line,
        column,
        message: e.message().trim().replace('\n', "; "),
    }
}

fn parse_value<T: FromStr>(key: &str, v: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    v.trim().parse().map_err(|e: T::Err| ConfigError::Invalid {
        key: key.to_owned(),
        message: e.to_string(),
    })
}

impl Config {
    /// Loads defaults, then `file` (or `WAGATE_CONFIG`, or `./wagate.toml` if present), then the
    /// environment as read by `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let explicit = file
            .map(Path::to_path_buf)
            .or_else(|| env("WAGATE_CONFIG").map(PathBuf::from));
        let path = explicit
            .clone()
            .unwrap_or_else(|| PathBuf::from("wagate.toml"));
        let mut cfg = match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str::<Config>(&text).map_err(|e| syntax(&path, &text, &e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => {
                Config::default()
            }
            Err(e) => {
                return Err(ConfigError::File {
                    path,
                    message: e.to_string(),
                });
            }
        };
        env_overrides!(cfg, env;
            listen, data_dir, body_limit_bytes, http_header_timeout_ms, http_request_timeout_ms,
            http_max_concurrent_requests, amqp_prefix, redis_prefix, store_pool_size,
            sqlite_synchronous, ingress_batch_max, ingress_inflight, ingress_publish_timeout_ms,
            processor_batch_size, processor_flush_ms, processor_concurrency, processor_prefetch,
            max_attempts, queue_visibility_timeout_ms, cache_memory_ttl_secs, cache_redis_ttl_secs,
            cache_negative_ttl_secs, dedupe_ttl_secs, cache_memory_max_bytes, memory_trim_interval_ms, raw_payload_retention_days, shutdown_timeout_secs,
            log_format,
            embedded_ingress_only, allow_private_targets,
            forwarder_concurrency, forwarder_endpoint_inflight, forwarder_timeout_ms,
            forwarder_retry_schedule, forwarder_prefetch, sweeper_interval_ms,
            breaker_failure_threshold, breaker_cooldown_secs,
            sender_concurrency, sender_prefetch, send_timeout_ms, send_unknown_after_secs,
            send_max_attempts, send_retry_backoff_ms, send_rate_per_number, send_rate_overrides, opt_out_keywords,
            opt_in_keywords, csv_max_bytes,
        );
        env_optional!(cfg, env;
            database_url, amqp_url, redis_url, amqp_queue_expires_ms, webhook_ca_file,
            default_country_code, meta_base_url, meta_api_version, datagen_base_url,
            datagen_webhook_dn_id, aisensy_base_url, aisensy_direct_base_url,
        );
        for (key, field) in [
            ("WAGATE_ADMIN_TOKEN", &mut cfg.admin_token),
            ("WAGATE_INGRESS_TOKEN", &mut cfg.ingress_token),
            ("WAGATE_META_APP_SECRET", &mut cfg.meta_app_secret),
            ("WAGATE_META_VERIFY_TOKEN", &mut cfg.meta_verify_token),
            ("WAGATE_META_TOKEN", &mut cfg.meta_token),
            ("WAGATE_DATAGEN_TOKEN", &mut cfg.datagen_token),
            ("WAGATE_AISENSY_API_KEY", &mut cfg.aisensy_api_key),
            (
                "WAGATE_AISENSY_DIRECT_API_KEY",
                &mut cfg.aisensy_direct_api_key,
            ),
        ] {
            if let Some(v) = env(key) {
                *field = (!v.is_empty()).then(|| SecretString::from(v));
            }
        }
        if let Some(roles) = env("WAGATE_ROLES") {
            cfg.roles = parse_roles(&roles)?;
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks the values together. `load` calls it; call it again after overriding fields
    /// (as `wagate serve --roles` does).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| {
            Err(ConfigError::Invalid {
                key: key.into(),
                message: message.into(),
            })
        };
        if let Some(url) = &self.database_url
            && !(url.starts_with("sqlite:")
                || url.starts_with("postgres://")
                || url.starts_with("postgresql://"))
        {
            return invalid("database_url", "must start with sqlite: or postgres://");
        }
        if let Some(url) = &self.amqp_url
            && !(url.starts_with("amqp://") || url.starts_with("amqps://"))
        {
            return invalid("amqp_url", "must start with amqp:// or amqps://");
        }
        if let Some(url) = &self.redis_url
            && !(url.starts_with("redis://") || url.starts_with("rediss://"))
        {
            return invalid("redis_url", "must start with redis:// or rediss://");
        }
        if !matches!(self.sqlite_synchronous.as_str(), "full" | "normal") {
            return invalid("sqlite_synchronous", "must be `full` or `normal`");
        }
        if !matches!(self.log_format.as_str(), "text" | "json") {
            return invalid("log_format", "must be `text` or `json`");
        }
        for (key, v) in [
            ("ingress_batch_max", self.ingress_batch_max),
            ("ingress_inflight", self.ingress_inflight),
            ("processor_batch_size", self.processor_batch_size),
            ("body_limit_bytes", self.body_limit_bytes),
            (
                "http_max_concurrent_requests",
                self.http_max_concurrent_requests,
            ),
            (
                "http_header_timeout_ms",
                self.http_header_timeout_ms as usize,
            ),
            (
                "http_request_timeout_ms",
                self.http_request_timeout_ms as usize,
            ),
        ] {
            if v == 0 {
                return invalid(key, "must be at least 1");
            }
        }
        if self.processor_prefetch == 0 || self.store_pool_size == 0 || self.max_attempts == 0 {
            return invalid(
                "processor_prefetch/store_pool_size/max_attempts",
                "must be at least 1",
            );
        }
        for (key, v) in [
            ("forwarder_concurrency", self.forwarder_concurrency as u64),
            (
                "forwarder_endpoint_inflight",
                self.forwarder_endpoint_inflight as u64,
            ),
            ("forwarder_timeout_ms", self.forwarder_timeout_ms),
            ("forwarder_prefetch", u64::from(self.forwarder_prefetch)),
            ("sweeper_interval_ms", self.sweeper_interval_ms),
            (
                "breaker_failure_threshold",
                u64::from(self.breaker_failure_threshold),
            ),
            ("breaker_cooldown_secs", self.breaker_cooldown_secs),
            ("sender_concurrency", self.sender_concurrency as u64),
            ("sender_prefetch", u64::from(self.sender_prefetch)),
            ("send_timeout_ms", self.send_timeout_ms),
            ("send_unknown_after_secs", self.send_unknown_after_secs),
            ("send_max_attempts", u64::from(self.send_max_attempts)),
            ("send_retry_backoff_ms", self.send_retry_backoff_ms),
            ("send_rate_per_number", u64::from(self.send_rate_per_number)),
            ("csv_max_bytes", self.csv_max_bytes),
        ] {
            if v == 0 {
                return invalid(key, "must be at least 1");
            }
        }
        if let Err(e) = self.send_rates() {
            return invalid("send_rate_overrides", &e);
        }
        if self
            .default_country_code
            .as_deref()
            .is_some_and(|cc| !crate::domain::phone::is_country_code(cc))
        {
            return invalid("default_country_code", "must be a country code, like 91");
        }
        if let Err(e) = self.retry_schedule() {
            return invalid("forwarder_retry_schedule", &e.to_string());
        }
        if self.cache_memory_max_bytes < 1024 * 1024 {
            return invalid("cache_memory_max_bytes", "must be at least 1048576 (1 MiB)");
        }
        if self
            .admin_token
            .as_ref()
            .is_some_and(|t| t.expose_secret().len() < 8)
        {
            return invalid("admin_token", "must be at least 8 characters");
        }
        self.check_roles_share_a_queue()
    }

    /// With the embedded queue (no `amqp_url`), events only move inside one process: the queue
    /// lives in a local SQLite file and each process starting on it takes over its claims. So a
    /// process running `ingress` must run `processor` too, or what it accepts would wait in a
    /// file nothing reads. The other subsets are safe: `processor` alone drains what an earlier
    /// process left; `api` alone reads the store.
    fn check_roles_share_a_queue(&self) -> Result<(), ConfigError> {
        if self.amqp_url.is_none()
            && !self.embedded_ingress_only
            && self.roles.contains(&Role::Ingress)
            && !self.roles.contains(&Role::Processor)
        {
            return Err(ConfigError::Invalid {
                key: "roles".into(),
                message: "the `ingress` role without `processor` needs a shared queue: with the \
                          embedded queue nothing would process the events it accepts. Run both \
                          roles in this process, or set WAGATE_AMQP_URL so a processor elsewhere \
                          reads them (WAGATE_EMBEDDED_INGRESS_ONLY=true accepts into the file for \
                          a processor started later)"
                    .into(),
            });
        }
        Ok(())
    }

    /// The store URL with the embedded default filled in.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("wagate.db").display()))
    }

    /// The forwarder's retry schedule, parsed.
    pub fn retry_schedule(
        &self,
    ) -> Result<crate::domain::delivery::RetrySchedule, crate::domain::delivery::BadSchedule> {
        crate::domain::delivery::RetrySchedule::parse(&self.forwarder_retry_schedule)
    }

    /// `send_rate_overrides`, parsed: (number, messages per second).
    pub fn send_rates(&self) -> Result<Vec<(crate::domain::phone::PhoneNumber, u32)>, String> {
        let mut out = Vec::new();
        for item in self.send_rate_overrides.split(',').map(str::trim) {
            if item.is_empty() {
                continue;
            }
            let (number, rate) = item
                .split_once('=')
                .ok_or_else(|| format!("`{item}` is not NUMBER=RATE"))?;
            let number =
                crate::domain::phone::PhoneNumber::parse(number).map_err(|e| e.to_string())?;
            let rate: u32 = rate
                .trim()
                .parse()
                .ok()
                .filter(|r| (1..=10_000).contains(r))
                .ok_or_else(|| format!("`{rate}` is not a rate from 1 to 10000"))?;
            out.push((number, rate));
        }
        Ok(out)
    }

    /// The server-wide settings of one BSP (a project's own override them field by field).
    pub fn provider_defaults(
        &self,
        provider: crate::domain::providers::send::SendProvider,
    ) -> crate::domain::providers::send::ProviderSettings {
        use crate::domain::providers::send::{ProviderSettings, SendProvider};
        let secret = |s: &Option<SecretString>| s.as_ref().map(|s| s.expose_secret().to_owned());
        match provider {
            SendProvider::Meta => ProviderSettings {
                base_url: self.meta_base_url.clone(),
                credential: secret(&self.meta_token),
                api_version: self.meta_api_version.clone(),
                webhook_dn_id: None,
            },
            SendProvider::Datagen => ProviderSettings {
                base_url: self.datagen_base_url.clone(),
                credential: secret(&self.datagen_token),
                api_version: None,
                webhook_dn_id: self.datagen_webhook_dn_id.clone(),
            },
            SendProvider::Aisensy => ProviderSettings {
                base_url: self.aisensy_base_url.clone(),
                credential: secret(&self.aisensy_api_key),
                ..ProviderSettings::default()
            },
            SendProvider::AisensyDirect => ProviderSettings {
                base_url: self.aisensy_direct_base_url.clone(),
                credential: secret(&self.aisensy_direct_api_key),
                ..ProviderSettings::default()
            },
        }
    }

    /// The opt-out and opt-in keywords, split.
    pub fn opt_keywords(&self) -> (Vec<String>, Vec<String>) {
        let split = |s: &str| {
            s.split(',')
                .map(|k| k.trim().to_owned())
                .filter(|k| !k.is_empty())
                .collect()
        };
        (split(&self.opt_out_keywords), split(&self.opt_in_keywords))
    }

    pub fn is_embedded_store(&self) -> bool {
        self.database_url().starts_with("sqlite:")
    }

    /// `processor_concurrency`, with 0 resolved for the configured store.
    pub fn processor_concurrency(&self) -> usize {
        match (self.processor_concurrency, self.is_embedded_store()) {
            (0, true) => 1,
            (0, false) => 2,
            (n, _) => n,
        }
    }

    /// `cache_memory_max_bytes` split into (lookups, dedupe marks). Lookups get an eighth:
    /// a project lookup or key entry weighs ~700 bytes, so 8 MiB of the default holds ~12,000
    /// numbers and keys, more than any deployment has; webhook endpoints get a sixteenth
    /// ([`endpoint_cache_budget`](Self::endpoint_cache_budget)); dedupe marks (17–39 bytes
    /// each, see `RecentMarks`) get the rest: 52 MiB, of which two power-of-two tables use 36 MB
    /// for 0.9–1.8 million recent events. A full dedupe cache costs only store work.
    pub fn memory_budgets(&self) -> (u64, u64) {
        let lookups = self.cache_memory_max_bytes / 8;
        (
            lookups,
            self.cache_memory_max_bytes - lookups - self.endpoint_cache_budget(),
        )
    }

    /// Bytes of endpoint configurations kept in memory: 4 MiB of the default, ~4,000
    /// endpoints of ~1 KB.
    pub fn endpoint_cache_budget(&self) -> u64 {
        self.cache_memory_max_bytes / 16
    }

    pub fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }
}

/// `url` with its password replaced, fit for logs and `Debug`. What does not parse as a URL is
/// hidden whole, since a password could sit anywhere in it.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("redacted"));
            }
            u.to_string()
        }
        Err(_) => "<unparseable URL, hidden>".into(),
    }
}

/// `host:port` of a backend URL (the scheme's usual port when none is given), for errors that
/// must say what could not be reached.
pub fn endpoint(url: &str) -> String {
    let Ok(u) = url::Url::parse(url) else {
        return redact_url(url);
    };
    let port = u.port().or(match u.scheme() {
        "postgres" | "postgresql" => Some(5432),
        "amqp" => Some(5672),
        "amqps" => Some(5671),
        "redis" | "rediss" => Some(6379),
        _ => None,
    });
    match (u.host_str(), port) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        // PostgreSQL also takes `postgres:///db?host=/run/postgresql` (a Unix socket).
        (None, _) => redact_url(url),
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = |u: &Option<String>| u.as_deref().map(redact_url);
        let secret = |t: &Option<SecretString>| t.as_ref().map(|_| "<redacted>");
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("roles", &self.roles)
            .field("data_dir", &self.data_dir)
            .field("database_url", &url(&self.database_url))
            .field("amqp_url", &url(&self.amqp_url))
            .field("redis_url", &url(&self.redis_url))
            .field("admin_token", &secret(&self.admin_token))
            .field("ingress_token", &secret(&self.ingress_token))
            .field("meta_app_secret", &secret(&self.meta_app_secret))
            .field("meta_verify_token", &secret(&self.meta_verify_token))
            .field("body_limit_bytes", &self.body_limit_bytes)
            .field("http_header_timeout_ms", &self.http_header_timeout_ms)
            .field("http_request_timeout_ms", &self.http_request_timeout_ms)
            .field(
                "http_max_concurrent_requests",
                &self.http_max_concurrent_requests,
            )
            .field("amqp_prefix", &self.amqp_prefix)
            .field("amqp_queue_expires_ms", &self.amqp_queue_expires_ms)
            .field("redis_prefix", &self.redis_prefix)
            .field("store_pool_size", &self.store_pool_size)
            .field("sqlite_synchronous", &self.sqlite_synchronous)
            .field("ingress_batch_max", &self.ingress_batch_max)
            .field("ingress_inflight", &self.ingress_inflight)
            .field(
                "ingress_publish_timeout_ms",
                &self.ingress_publish_timeout_ms,
            )
            .field("processor_batch_size", &self.processor_batch_size)
            .field("processor_flush_ms", &self.processor_flush_ms)
            .field("processor_concurrency", &self.processor_concurrency)
            .field("processor_prefetch", &self.processor_prefetch)
            .field("max_attempts", &self.max_attempts)
            .field(
                "queue_visibility_timeout_ms",
                &self.queue_visibility_timeout_ms,
            )
            .field("cache_memory_ttl_secs", &self.cache_memory_ttl_secs)
            .field("cache_redis_ttl_secs", &self.cache_redis_ttl_secs)
            .field("cache_negative_ttl_secs", &self.cache_negative_ttl_secs)
            .field("dedupe_ttl_secs", &self.dedupe_ttl_secs)
            .field("cache_memory_max_bytes", &self.cache_memory_max_bytes)
            .field("memory_trim_interval_ms", &self.memory_trim_interval_ms)
            .field(
                "raw_payload_retention_days",
                &self.raw_payload_retention_days,
            )
            .field("shutdown_timeout_secs", &self.shutdown_timeout_secs)
            .field("log_format", &self.log_format)
            .field("embedded_ingress_only", &self.embedded_ingress_only)
            .field("allow_private_targets", &self.allow_private_targets)
            .field("forwarder_concurrency", &self.forwarder_concurrency)
            .field(
                "forwarder_endpoint_inflight",
                &self.forwarder_endpoint_inflight,
            )
            .field("forwarder_timeout_ms", &self.forwarder_timeout_ms)
            .field("forwarder_retry_schedule", &self.forwarder_retry_schedule)
            .field("forwarder_prefetch", &self.forwarder_prefetch)
            .field("sweeper_interval_ms", &self.sweeper_interval_ms)
            .field("breaker_failure_threshold", &self.breaker_failure_threshold)
            .field("breaker_cooldown_secs", &self.breaker_cooldown_secs)
            .field("webhook_ca_file", &self.webhook_ca_file)
            .field("sender_concurrency", &self.sender_concurrency)
            .field("sender_prefetch", &self.sender_prefetch)
            .field("send_timeout_ms", &self.send_timeout_ms)
            .field("send_unknown_after_secs", &self.send_unknown_after_secs)
            .field("send_max_attempts", &self.send_max_attempts)
            .field("send_retry_backoff_ms", &self.send_retry_backoff_ms)
            .field("send_rate_per_number", &self.send_rate_per_number)
            .field("send_rate_overrides", &self.send_rate_overrides)
            .field("default_country_code", &self.default_country_code)
            .field("opt_out_keywords", &self.opt_out_keywords)
            .field("opt_in_keywords", &self.opt_in_keywords)
            .field("csv_max_bytes", &self.csv_max_bytes)
            .field("meta_base_url", &self.meta_base_url)
            .field("datagen_base_url", &self.datagen_base_url)
            .field("aisensy_base_url", &self.aisensy_base_url)
            .field("aisensy_direct_base_url", &self.aisensy_direct_base_url)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_are_embedded() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.toml");
        assert!(
            Config::load(Some(&missing), env(&[])).is_err(),
            "a named file must exist"
        );
        let empty = dir.path().join("empty.toml");
        std::fs::write(&empty, "").unwrap();
        let cfg = Config::load(Some(&empty), env(&[])).unwrap();
        assert_eq!(cfg.listen.to_string(), "127.0.0.1:8080");
        assert!(cfg.is_embedded_store() && cfg.amqp_url.is_none() && cfg.redis_url.is_none());
        assert_eq!(cfg.roles.len(), Role::ALL.len());
    }

    #[test]
    fn file_then_env() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("wagate.toml");
        std::fs::write(&file, "listen = \"0.0.0.0:9000\"\nprocessor_batch_size = 50\nredis_url = \"redis://127.0.0.1/\"\n").unwrap();
        let cfg = Config::load(
            Some(&file),
            env(&[
                ("WAGATE_PROCESSOR_BATCH_SIZE", "75"),
                ("WAGATE_REDIS_URL", ""),
                ("WAGATE_ROLES", "ingress,processor"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.listen.port(), 9000);
        assert_eq!(cfg.processor_batch_size, 75, "env beats file");
        assert_eq!(cfg.redis_url, None, "empty env unsets");
        assert_eq!(
            cfg.roles,
            [Role::Ingress, Role::Processor].into_iter().collect()
        );
        assert!(cfg.is_embedded_store());
        assert!(cfg.database_url().ends_with("wagate-data/wagate.db"));
    }

    #[test]
    fn rejects_bad_values() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("wagate.toml");
        std::fs::write(&file, "").unwrap();
        for (k, v) in [
            ("WAGATE_LISTEN", "nowhere"),
            ("WAGATE_DATABASE_URL", "mysql://x"),
            ("WAGATE_PROCESSOR_BATCH_SIZE", "0"),
            ("WAGATE_ROLES", "api,cook"),
            ("WAGATE_ADMIN_TOKEN", "short"),
        ] {
            assert!(
                Config::load(Some(&file), env(&[(k, v)])).is_err(),
                "{k}={v}"
            );
        }
        std::fs::write(&file, "listen = \"0.0.0.0:1\"\nroles = [\"api\",\n").unwrap();
        let err = Config::load(Some(&file), env(&[])).unwrap_err().to_string();
        assert!(
            err.contains("wagate.toml, line 2, column") && !err.contains('\n'),
            "{err}"
        );
        std::fs::write(&file, "no_such_key = 1\n").unwrap();
        assert!(
            Config::load(Some(&file), env(&[])).is_err(),
            "unknown keys are typos"
        );
    }

    #[test]
    fn roles_from_the_file_as_list_or_string_env_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("wagate.toml");
        std::fs::write(&file, "roles = [\"api\", \"processor\"]\n").unwrap();
        let cfg = Config::load(Some(&file), env(&[])).unwrap();
        assert_eq!(
            cfg.roles,
            [Role::Api, Role::Processor].into_iter().collect()
        );
        std::fs::write(&file, "roles = \"api, processor\"\n").unwrap();
        let cfg = Config::load(Some(&file), env(&[])).unwrap();
        assert_eq!(
            cfg.roles,
            [Role::Api, Role::Processor].into_iter().collect()
        );
        std::fs::write(&file, "roles = \"all\"\n").unwrap();
        assert_eq!(
            Config::load(Some(&file), env(&[])).unwrap().roles.len(),
            Role::ALL.len()
        );
        let cfg = Config::load(Some(&file), env(&[("WAGATE_ROLES", "api")])).unwrap();
        assert_eq!(cfg.roles, [Role::Api].into_iter().collect(), "env wins");
        for bad in ["roles = [\"api\", \"cook\"]", "roles = []", "roles = 3"] {
            std::fs::write(&file, bad).unwrap();
            let err = Config::load(Some(&file), env(&[])).unwrap_err().to_string();
            assert!(err.contains("wagate.toml"), "{bad}: {err}");
        }
    }

    #[test]
    fn ingress_without_processor_needs_a_shared_queue() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("wagate.toml");
        std::fs::write(&file, "").unwrap();
        for roles in ["ingress", "api,ingress"] {
            let err = Config::load(Some(&file), env(&[("WAGATE_ROLES", roles)]))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("WAGATE_AMQP_URL") && err.contains("processor"),
                "{roles}: {err}"
            );
        }
        for roles in [
            "all",
            "ingress,processor",
            "processor",
            "api",
            "api,processor",
        ] {
            assert!(
                Config::load(Some(&file), env(&[("WAGATE_ROLES", roles)])).is_ok(),
                "{roles} on the embedded queue"
            );
        }
        let shared = env(&[
            ("WAGATE_ROLES", "api,ingress"),
            ("WAGATE_AMQP_URL", "amqp://127.0.0.1:5672/%2f"),
        ]);
        assert!(
            Config::load(Some(&file), shared).is_ok(),
            "a broker is shared"
        );
        // A field set after loading (as `--roles` does) is checked by `validate`.
        let mut cfg = Config::load(Some(&file), env(&[])).unwrap();
        cfg.roles = [Role::Ingress].into_iter().collect();
        assert!(cfg.validate().is_err());
    }

    #[test]
    fn http_limits_have_defaults_and_env_overrides() {
        let cfg = Config::default();
        assert_eq!(
            (
                cfg.http_header_timeout_ms,
                cfg.http_request_timeout_ms,
                cfg.http_max_concurrent_requests
            ),
            (10_000, 30_000, 1024)
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("wagate.toml");
        std::fs::write(&file, "http_request_timeout_ms = 5000\n").unwrap();
        let cfg = Config::load(
            Some(&file),
            env(&[
                ("WAGATE_HTTP_HEADER_TIMEOUT_MS", "2000"),
                ("WAGATE_HTTP_MAX_CONCURRENT_REQUESTS", "8"),
            ]),
        )
        .unwrap();
        assert_eq!(
            (
                cfg.http_header_timeout_ms,
                cfg.http_request_timeout_ms,
                cfg.http_max_concurrent_requests
            ),
            (2000, 5000, 8)
        );
        assert!(
            Config::load(
                Some(&file),
                env(&[("WAGATE_HTTP_MAX_CONCURRENT_REQUESTS", "0")])
            )
            .is_err()
        );
    }

    #[test]
    fn private_targets_are_refused_unless_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("wagate.toml");
        std::fs::write(&file, "").unwrap();
        assert!(
            !Config::load(Some(&file), env(&[]))
                .unwrap()
                .allow_private_targets
        );
        let on = env(&[("WAGATE_ALLOW_PRIVATE_TARGETS", "true")]);
        assert!(Config::load(Some(&file), on).unwrap().allow_private_targets);
        let bad = env(&[("WAGATE_ALLOW_PRIVATE_TARGETS", "yes please")]);
        assert!(Config::load(Some(&file), bad).is_err());
        std::fs::write(&file, "allow_private_targets = true\n").unwrap();
        let cfg = Config::load(Some(&file), env(&[])).unwrap();
        assert!(cfg.allow_private_targets);
        assert!(format!("{cfg:?}").contains("allow_private_targets: true"));
    }

    #[test]
    fn debug_shows_no_secret() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("wagate.toml");
        std::fs::write(
            &file,
            "admin_token = \"admin-SECRET-1\"\nmeta_app_secret = \"app-SECRET-3\"\n",
        )
        .unwrap();
        let cfg = Config::load(
            Some(&file),
            env(&[
                ("WAGATE_INGRESS_TOKEN", "ingress-SECRET-2"),
                ("WAGATE_META_VERIFY_TOKEN", "verify-SECRET-4"),
                (
                    "WAGATE_DATABASE_URL",
                    "postgres://wagate:pg-SECRET-5@db.internal:6432/wagate",
                ),
                ("WAGATE_AMQP_URL", "amqp://guest:mq-SECRET-6@mq:5672/%2f"),
                ("WAGATE_REDIS_URL", "redis://:redis-SECRET-7@cache/0"),
            ]),
        )
        .unwrap();
        assert_eq!(
            cfg.ingress_token.as_ref().map(|t| t.expose_secret()),
            Some("ingress-SECRET-2")
        );
        let shown = format!("{cfg:?} {cfg:#?}");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(
            shown.contains("db.internal:6432"),
            "the rest is kept: {shown}"
        );
        assert_eq!(
            endpoint(cfg.database_url.as_deref().unwrap()),
            "db.internal:6432"
        );
        assert_eq!(endpoint(cfg.redis_url.as_deref().unwrap()), "cache:6379");
        assert_eq!(endpoint("postgres://localhost/x"), "localhost:5432");
        assert!(!redact_url("postgres://u:p%40ss word@h/x").contains("ss"));
    }
}
