//! Checking the settings together, once they are all read.

use secrecy::ExposeSecret;

use super::{Config, ConfigError, Role};

impl Config {
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
            (
                "breaker_first_cooldown_secs",
                self.breaker_first_cooldown_secs,
            ),
            (
                "forwarder_host_inflight",
                self.forwarder_host_inflight as u64,
            ),
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
        self.seal_keys()?;
        self.check_ingress_auth()?;
        self.check_base_urls()?;
        self.check_roles_share_a_queue()
    }

    /// BSP webhooks move statuses and trigger forwarding, so an ingress anyone can reach must
    /// authenticate them, or be told explicitly not to (`ingress_auth = "none"`). On loopback
    /// (the embedded default, tests) only this host can post.
    fn check_ingress_auth(&self) -> Result<(), ConfigError> {
        if !matches!(self.ingress_auth.as_str(), "auto" | "none") {
            return Err(ConfigError::Invalid {
                key: "ingress_auth".into(),
                message: "must be `auto` or `none`".into(),
            });
        }
        if self.roles.contains(&Role::Ingress)
            && !self.listens_on_loopback()
            && self.ingress_auth == "auto"
            && self.ingress_token.is_none()
            && self.meta_app_secret.is_none()
        {
            return Err(ConfigError::Invalid {
                key: "ingress_auth".into(),
                message: format!(
                    "the `ingress` role listens on {}, which is not loopback, and nothing \
                     authenticates BSP webhooks: set WAGATE_INGRESS_TOKEN (and/or \
                     WAGATE_META_APP_SECRET), or WAGATE_INGRESS_AUTH=none to accept \
                     unauthenticated webhooks",
                    self.listen
                ),
            });
        }
        Ok(())
    }

    /// The server-wide BSP base URLs, checked at start: a typo would otherwise show up only as
    /// every send of a campaign failing.
    fn check_base_urls(&self) -> Result<(), ConfigError> {
        for (key, value) in [
            ("meta_base_url", &self.meta_base_url),
            ("datagen_base_url", &self.datagen_base_url),
            ("aisensy_base_url", &self.aisensy_base_url),
            ("aisensy_direct_base_url", &self.aisensy_direct_base_url),
        ] {
            let Some(value) = value.as_deref().map(str::trim).filter(|v| !v.is_empty()) else {
                continue;
            };
            let ok = url::Url::parse(value).is_ok_and(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.host_str().is_some_and(|h| !h.is_empty())
            });
            if !ok {
                return Err(ConfigError::Invalid {
                    key: key.into(),
                    message: format!(
                        "must be an http:// or https:// URL with a host, not `{}`",
                        value.chars().take(100).collect::<String>()
                    ),
                });
            }
        }
        Ok(())
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
}
