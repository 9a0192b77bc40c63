//! Test harness: reaching the real services, with a fresh database, queue prefix or key prefix
//! per test so tests never see each other's data or what earlier runs left behind.

#![allow(dead_code)]

use std::time::Duration;

pub use postgres::TestDb;

pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

/// Whether a missing service fails the test (`WAGATE_TEST_REQUIRE_SERVICES=1`, as `.ci/run` sets
/// through `scripts/test --require-services`) instead of skipping it. Any other value than `0`,
/// `1` or unset is a mistake that would otherwise pass as "skip": refuse it.
pub fn required() -> bool {
    match std::env::var("WAGATE_TEST_REQUIRE_SERVICES").as_deref() {
        Ok("1") => true,
        Ok("0") | Ok("") | Err(_) => false,
        Ok(other) => panic!("WAGATE_TEST_REQUIRE_SERVICES={other:?}: want 1 (fail) or 0 (skip)"),
    }
}

/// Skips (returns `None`) or fails, as `required` says.
pub fn unavailable<T>(
    required: bool,
    service: &str,
    at: &str,
    err: impl std::fmt::Display,
) -> Option<T> {
    if required {
        panic!(
            "{service} at {at} is required (WAGATE_TEST_REQUIRE_SERVICES=1) but unavailable: {err}"
        );
    }
    eprintln!(
        "SKIPPED: {service} at {at} unavailable ({err}); set WAGATE_TEST_REQUIRE_SERVICES=1 to fail instead"
    );
    None
}

fn env_or(key: &str, default: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| default.to_owned())
}

/// A new, empty PostgreSQL database of this test's own, dropped with the returned guard: keep it
/// alive for as long as the test uses the database.
pub async fn postgres_db() -> Option<TestDb> {
    TestDb::create().await
}

/// The RabbitMQ URL, if the broker answers. Tests isolate themselves with a unique
/// `amqp_prefix` and an `x-expires` on their queues.
pub async fn amqp_url() -> Option<String> {
    let url = env_or(
        "WAGATE_TEST_AMQP_URL",
        "amqp://guest:guest@127.0.0.1:5672/%2f",
    );
    amqp_probe(url, required()).await
}

/// `url` if a connection opens (the broker up, the vhost there, the login accepted).
async fn amqp_probe(url: String, required: bool) -> Option<String> {
    match tokio::time::timeout(
        Duration::from_secs(5),
        lapin::Connection::connect(&url, lapin::ConnectionProperties::default()),
    )
    .await
    {
        Ok(Ok(c)) => {
            let _ = c.close(200, "probe".into()).await;
            Some(url)
        }
        Ok(Err(e)) => unavailable(required, "RabbitMQ", &url, e),
        Err(e) => unavailable(required, "RabbitMQ", &url, e),
    }
}

/// The Redis URL, if Redis answers. Tests isolate themselves with a unique key prefix.
pub async fn redis_url() -> Option<String> {
    let url = env_or("WAGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/");
    redis_probe(url, required()).await
}

/// `url` if Redis answers a `PING` there (up, and the login, if any, accepted).
async fn redis_probe(url: String, required: bool) -> Option<String> {
    let probe = async {
        let client = redis::Client::open(url.as_str())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    match tokio::time::timeout(Duration::from_secs(5), probe).await {
        Ok(Ok(_)) => Some(url),
        Ok(Err(e)) => unavailable(required, "Redis", &url, e),
        Err(e) => unavailable(required, "Redis", &url, e),
    }
}
pub mod app;
pub mod events;
pub mod postgres;
pub mod process;
pub mod proxy;
pub mod receiver;

#[cfg(test)]
mod tests {
    use super::*;

    // Where nothing listens: what a stopped service looks like.
    const DEAD_AMQP: &str = "amqp://guest:guest@127.0.0.1:1/%2f";
    const DEAD_REDIS: &str = "redis://127.0.0.1:1/";

    #[tokio::test]
    #[should_panic(expected = "RabbitMQ at amqp://guest:guest@127.0.0.1:1/%2f is required")]
    async fn a_missing_broker_fails_when_required() {
        amqp_probe(DEAD_AMQP.into(), true).await;
    }

    #[tokio::test]
    #[should_panic(expected = "Redis at redis://127.0.0.1:1/ is required")]
    async fn a_missing_redis_fails_when_required() {
        redis_probe(DEAD_REDIS.into(), true).await;
    }

    #[tokio::test]
    async fn missing_services_skip_when_not_required() {
        assert_eq!(amqp_probe(DEAD_AMQP.into(), false).await, None);
        assert_eq!(redis_probe(DEAD_REDIS.into(), false).await, None);
    }
}
