//! What the configuration may show of itself: URLs without passwords, secrets as `<redacted>`.

use secrecy::SecretString;

use super::Config;

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
            .field("ingress_auth", &self.ingress_auth)
            .field("secret_key", &secret(&self.secret_key))
            .field("secret_key_previous", &secret(&self.secret_key_previous))
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
            .field("access_log", &self.access_log)
            .field("embedded_ingress_only", &self.embedded_ingress_only)
            .field("allow_private_targets", &self.allow_private_targets)
            .field("forwarder_concurrency", &self.forwarder_concurrency)
            .field(
                "forwarder_endpoint_inflight",
                &self.forwarder_endpoint_inflight,
            )
            .field("forwarder_host_inflight", &self.forwarder_host_inflight)
            .field("forwarder_timeout_ms", &self.forwarder_timeout_ms)
            .field("forwarder_retry_schedule", &self.forwarder_retry_schedule)
            .field("forwarder_prefetch", &self.forwarder_prefetch)
            .field("sweeper_interval_ms", &self.sweeper_interval_ms)
            .field("breaker_failure_threshold", &self.breaker_failure_threshold)
            .field("breaker_cooldown_secs", &self.breaker_cooldown_secs)
            .field(
                "breaker_first_cooldown_secs",
                &self.breaker_first_cooldown_secs,
            )
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
