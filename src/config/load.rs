//! Reading the layers: built-in defaults, then `wagate.toml`, then `WAGATE_*` variables.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use secrecy::SecretString;

use super::{Config, ConfigError, parse_roles};

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
    /// Reads the text of a config file over the defaults, without the environment and without
    /// validating; `path` only names the file in a syntax error. Public for the fuzz target.
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        toml::from_str::<Config>(text).map_err(|e| syntax(path, text, &e))
    }

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
            Ok(text) => Config::from_toml(&text, &path)?,
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
            log_format, ingress_auth, access_log,
            embedded_ingress_only, allow_private_targets,
            forwarder_concurrency, forwarder_endpoint_inflight, forwarder_host_inflight, forwarder_timeout_ms,
            forwarder_retry_schedule, forwarder_prefetch, sweeper_interval_ms,
            breaker_failure_threshold, breaker_cooldown_secs, breaker_first_cooldown_secs,
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
            ("WAGATE_SECRET_KEY", &mut cfg.secret_key),
            ("WAGATE_SECRET_KEY_PREVIOUS", &mut cfg.secret_key_previous),
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
}
