//! A Redis that is down at startup, comes up, dies and comes back: the Redis cache follows it,
//! and the breaker in front closes on its first probe. Runs a private `redis-server` so the
//! shared one is never stopped.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wagate::adapters::guarded_cache::{Clock, FAILURE_THRESHOLD, GuardedCache};
use wagate::adapters::redis_cache::RedisCache;
use wagate::domain::breaker::BreakerState;
use wagate::ports::Cache;

use crate::support;

/// A `redis-server` child on a fixed port, killed when dropped.
struct Server(Child);

impl Server {
    /// `None` when there is no `redis-server` binary to run (a failure if services are required).
    async fn start(port: u16) -> Option<Server> {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn();
        let server = match child {
            Ok(child) => Server(child),
            Err(e) => return support::unavailable(support::required(), "redis-server", "PATH", e),
        };
        // Redis serves as soon as it listens (nothing to load), so a TCP connect is readiness.
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not listen on {port}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Some(server)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

#[tokio::test]
async fn redis_cache_follows_a_server_that_goes_and_comes_back() {
    // Only where the real services are expected; the shared server itself is not used.
    if support::redis_url().await.is_none() {
        return;
    }
    let port = free_port();
    let now = Arc::new(Mutex::new(Instant::now()));
    let read = now.clone();
    let clock: Clock = Arc::new(move || *read.lock().unwrap());
    let cooldown = Duration::from_secs(5);
    let redis = RedisCache::connect(&format!("redis://127.0.0.1:{port}/"), "t:".into()).unwrap();
    let cache = GuardedCache::with_clock(redis, cooldown, clock);

    for _ in 0..FAILURE_THRESHOLD {
        assert!(
            cache.get("k").await.is_err(),
            "nothing listens on {port} yet"
        );
    }
    assert_eq!(cache.state(), BreakerState::Open);

    let Some(server) = Server::start(port).await else {
        return;
    };
    *now.lock().unwrap() += cooldown;
    cache
        .set("k", "v", cooldown)
        .await
        .expect("the first probe after Redis is up succeeds");
    assert_eq!(cache.state(), BreakerState::Closed);
    assert_eq!(cache.get("k").await.unwrap().as_deref(), Some("v"));

    drop(server);
    let started = Instant::now();
    assert!(cache.get("k").await.is_err(), "the server is gone");
    assert!(started.elapsed() < Duration::from_millis(1500));

    let Some(_server) = Server::start(port).await else {
        return;
    };
    assert_eq!(
        cache.get("k").await.unwrap(),
        None,
        "a fresh server, reached at once"
    );
}
