//! Layered configuration: built-in defaults, then an optional `wagate.toml`, then `WAGATE_*` env.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

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
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Api, Role::Ingress, Role::Processor];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Api => "api",
            Role::Ingress => "ingress",
            Role::Processor => "processor",
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
                message: format!("unknown role `{s}` (known: api, ingress, processor)"),
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

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("invalid setting `{key}`: {message}")]
    Invalid { key: String, message: String },
}

/// The validated configuration. Every field has a default, so an empty environment runs the
/// embedded setup.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    #[serde(skip)]
    pub roles: BTreeSet<Role>,
    pub data_dir: PathBuf,
    /// `sqlite://path` or `postgres://…`; unset = `sqlite://<data_dir>/wagate.db`.
    pub database_url: Option<String>,
    /// Unset = the durable local queue inside the SQLite file.
    pub amqp_url: Option<String>,
    /// Unset = in-process memory cache only.
    pub redis_url: Option<String>,
    pub admin_token: Option<String>,
    /// When set, BSP webhooks must carry it (`Authorization: Bearer …` or `?token=…`): Karix
    /// and most BSPs sign nothing, so this is what keeps strangers from posting statuses.
    pub ingress_token: Option<String>,
    pub meta_app_secret: Option<String>,
    pub meta_verify_token: Option<String>,
    pub body_limit_bytes: usize,
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
    pub shutdown_timeout_secs: u64,
    pub log_format: String,
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
            amqp_prefix: "wagate".into(),
            amqp_queue_expires_ms: None,
            redis_prefix: "wagate:".into(),
            store_pool_size: 8,
            sqlite_synchronous: "full".into(),
            ingress_batch_max: 512,
            ingress_inflight: 2,
            ingress_publish_timeout_ms: 10_000,
            processor_batch_size: 2000,
            processor_flush_ms: 50,
            processor_concurrency: 0,
            processor_prefetch: 200,
            max_attempts: 10,
            queue_visibility_timeout_ms: 30_000,
            cache_memory_ttl_secs: 300,
            cache_redis_ttl_secs: 3600,
            cache_negative_ttl_secs: 30,
            dedupe_ttl_secs: 86_400,
            shutdown_timeout_secs: 30,
            log_format: "text".into(),
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
            Ok(text) => toml::from_str::<Config>(&text).map_err(|e| ConfigError::File {
                path: path.clone(),
                message: e.to_string(),
            })?,
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
            listen, data_dir, body_limit_bytes, amqp_prefix, redis_prefix, store_pool_size,
            sqlite_synchronous, ingress_batch_max, ingress_inflight, ingress_publish_timeout_ms,
            processor_batch_size, processor_flush_ms, processor_concurrency, processor_prefetch,
            max_attempts, queue_visibility_timeout_ms, cache_memory_ttl_secs, cache_redis_ttl_secs,
            cache_negative_ttl_secs, dedupe_ttl_secs, shutdown_timeout_secs, log_format,
        );
        env_optional!(cfg, env;
            database_url, amqp_url, redis_url, admin_token, ingress_token, meta_app_secret, meta_verify_token,
            amqp_queue_expires_ms,
        );
        if let Some(roles) = env("WAGATE_ROLES") {
            cfg.roles = parse_roles(&roles)?;
        }
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ConfigError> {
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
        if self.admin_token.as_deref().is_some_and(|t| t.len() < 8) {
            return invalid("admin_token", "must be at least 8 characters");
        }
        Ok(())
    }

    /// The store URL with the embedded default filled in.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("wagate.db").display()))
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

    pub fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
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
        std::fs::write(&file, "no_such_key = 1\n").unwrap();
        assert!(
            Config::load(Some(&file), env(&[])).is_err(),
            "unknown keys are typos"
        );
    }
}
