//! Test harness: reaching the real services, with a fresh database, queue prefix or key prefix
//! per test so tests never see each other's data or what earlier runs left behind.

#![allow(dead_code)]

use std::time::Duration;

pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

fn required() -> bool {
    std::env::var("WAGATE_TEST_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// Skips (returns `None`) or fails, as `WAGATE_TEST_REQUIRE_SERVICES` says.
fn unavailable(service: &str, url: &str, err: impl std::fmt::Display) -> Option<String> {
    if required() {
        panic!(
            "{service} at {url} is required (WAGATE_TEST_REQUIRE_SERVICES=1) but unreachable: {err}"
        );
    }
    eprintln!(
        "SKIPPED: {service} at {url} unreachable ({err}); set WAGATE_TEST_REQUIRE_SERVICES=1 to fail instead"
    );
    None
}

fn env_or(key: &str, default: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| default.to_owned())
}

/// A URL to a new, empty PostgreSQL database of this test's own.
pub async fn postgres_url() -> Option<String> {
    use sqlx::Connection;
    let admin = env_or(
        "WAGATE_TEST_POSTGRES_URL",
        "postgres://postgres@127.0.0.1:5432/test",
    );
    let connect = tokio::time::timeout(Duration::from_secs(5), sqlx::PgConnection::connect(&admin));
    let mut conn = match connect.await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return unavailable("PostgreSQL", &admin, e),
        Err(e) => return unavailable("PostgreSQL", &admin, e),
    };
    let name = unique("wagate_t_");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    Some(format!("{base}/{name}"))
}

/// The RabbitMQ URL, if the broker answers. Tests isolate themselves with a unique
/// `amqp_prefix` and an `x-expires` on their queues.
pub async fn amqp_url() -> Option<String> {
    let url = env_or(
        "WAGATE_TEST_AMQP_URL",
        "amqp://guest:guest@127.0.0.1:5672/%2f",
    );
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
        Ok(Err(e)) => unavailable("RabbitMQ", &url, e),
        Err(e) => unavailable("RabbitMQ", &url, e),
    }
}

/// The Redis URL, if Redis answers. Tests isolate themselves with a unique key prefix.
pub async fn redis_url() -> Option<String> {
    let url = env_or("WAGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/");
    let probe = async {
        let client = redis::Client::open(url.as_str())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    match tokio::time::timeout(Duration::from_secs(5), probe).await {
        Ok(Ok(_)) => Some(url),
        Ok(Err(e)) => unavailable("Redis", &url, e),
        Err(e) => unavailable("Redis", &url, e),
    }
}
pub mod app;
pub mod events;
pub mod process;
pub mod proxy;
