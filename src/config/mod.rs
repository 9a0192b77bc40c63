//! Layered configuration: built-in defaults, then an optional `wagate.toml`, then `WAGATE_*` env.
//!
//! The settings are one struct, [`Config`], here with their defaults; reading them is in
//! `load`, checking them together in `validate`, what is computed from them in `derived`, and
//! what they may show of themselves (logs, `Debug`) in `redact`.

mod derived;
mod load;
mod redact;
mod roles;
mod validate;

pub use redact::{endpoint, redact_url};
pub use roles::{Role, parse_roles};

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;

use roles::deserialize_roles;

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
    /// `auto`: a process running `ingress` on a non-loopback address refuses to start unless
    /// `ingress_token` or `meta_app_secret` is set. `none`: it may take unauthenticated
    /// webhooks anywhere (said at start).
    pub ingress_auth: String,
    /// Seals webhook signing secrets and BSP credentials in the store (32 bytes, hex or
    /// base64). Unset: they are stored in clear.
    pub secret_key: Option<SecretString>,
    /// Keys that only open what they sealed (comma list): the old key during a rotation.
    pub secret_key_previous: Option<SecretString>,
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
    /// The access log's level: one line per request at `info` when true, at `debug` when false
    /// (so `WAGATE_LOG=wagate::access=debug` shows it without a restart of the setting).
    pub access_log: bool,
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
    /// Webhook requests in flight at once to one host and port, over all its endpoints (one
    /// slow receiver registered many times, or a project's many slow endpoints on one host,
    /// cannot take every slot either).
    pub forwarder_host_inflight: usize,
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
    /// The longest an open breaker defers deliveries before letting one probe through.
    pub breaker_cooldown_secs: u64,
    /// How long a breaker stays open the first time; each failed probe doubles it, up to
    /// `breaker_cooldown_secs`.
    pub breaker_first_cooldown_secs: u64,
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
    /// A recipient `sending` this long with no answer and no webhook becomes `unknown` (or,
    /// under a campaign's `unknown_policy: resend`, is queued again); the BSP's webhook
    /// echoing its reference settles it sooner. Bounds how long a crash can hold a campaign
    /// back from `finished`.
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
            ingress_auth: "auto".into(),
            secret_key: None,
            secret_key_previous: None,
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
            access_log: false,
            embedded_ingress_only: false,
            allow_private_targets: false,
            forwarder_concurrency: 100,
            forwarder_endpoint_inflight: 20,
            forwarder_host_inflight: 50,
            forwarder_timeout_ms: 15_000,
            forwarder_retry_schedule: "3s,3s".into(),
            forwarder_prefetch: 128,
            sweeper_interval_ms: 500,
            breaker_failure_threshold: 10,
            breaker_cooldown_secs: 300,
            breaker_first_cooldown_secs: 5,
            webhook_ca_file: None,
            sender_concurrency: 200,
            sender_prefetch: 4,
            send_timeout_ms: 15_000,
            send_unknown_after_secs: 120,
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

#[cfg(test)]
mod tests;
