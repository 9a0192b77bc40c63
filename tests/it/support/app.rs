//! `TestApp`: a real wagate on 127.0.0.1:0 with ingress and API, plus a processor the test
//! drives step by step, on either backend set.

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use wagate::app::{App, processor};
use wagate::config::{Config, Role};
use wagate::metrics::Metrics;
use wagate::ports::Consumer;
use wagate::workers::processor::Processor;

pub const ADMIN: &str = "test-admin-token";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite store + local queue + memory cache.
    Embedded,
    /// PostgreSQL + RabbitMQ + Redis.
    Distributed,
}

/// What keeps a test's backends its own, removed when dropped: the data dir and, on the
/// distributed set, the PostgreSQL database. (Queues expire; Redis keys sit under a unique
/// prefix.)
pub struct Isolation {
    pub dir: tempfile::TempDir,
    pub db: Option<super::TestDb>,
}

/// A config for `backend` with fresh isolation (temp dir, database, queue and key prefixes);
/// `None` when a service is missing (and not required). Keep the `Isolation` for as long as the
/// config is in use.
pub async fn config(backend: Backend) -> Option<(Config, Isolation)> {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_path_buf(),
        admin_token: Some(ADMIN.into()),
        sqlite_synchronous: "normal".into(),
        processor_flush_ms: 5,
        // Test receivers listen on 127.0.0.1; the guard itself is tested with this off.
        allow_private_targets: true,
        ..Config::default()
    };
    let mut db = None;
    if backend == Backend::Distributed {
        let created = db.insert(super::postgres_db().await?);
        c.database_url = Some(created.url().to_owned());
        c.amqp_url = Some(super::amqp_url().await?);
        c.redis_url = Some(super::redis_url().await?);
        c.amqp_prefix = super::unique("t");
        c.amqp_queue_expires_ms = Some(120_000);
        c.redis_prefix = format!("{}:", super::unique("t"));
    }
    Some((c, Isolation { dir, db }))
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub config: Config,
    processor: Processor,
    consumer: Mutex<Option<Box<dyn Consumer>>>,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
    _isolation: Isolation,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Option<TestApp> {
        Self::spawn_with(backend, |_| {}).await
    }

    /// Starts ingress + API with `tweak` applied to the config; the processor does not run
    /// until the test calls `process`.
    pub async fn spawn_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Option<TestApp> {
        let (mut config, isolation) = config(backend).await?;
        config.roles = [Role::Api, Role::Ingress].into_iter().collect();
        tweak(&mut config);
        Some(Self::start(config, isolation).await)
    }

    /// Stops the app (gracefully) and starts it again with the same config, data and address,
    /// as a restarted `wagate serve` would be.
    pub async fn restart(self) -> TestApp {
        self.restart_with(|_| {}).await
    }

    /// [`restart`](Self::restart) with `tweak` applied to the config first (a redeploy with
    /// changed settings).
    pub async fn restart_with(self, tweak: impl FnOnce(&mut Config)) -> TestApp {
        let TestApp {
            addr,
            mut config,
            shutdown,
            server,
            _isolation,
            ..
        } = self;
        shutdown.cancel();
        server.await.unwrap().unwrap();
        config.listen = addr;
        tweak(&mut config);
        Self::start(config, _isolation).await
    }

    async fn start(config: Config, isolation: Isolation) -> TestApp {
        // One set of backends, as in one `wagate serve` process: the processor shares the
        // app's caches.
        let metrics = Metrics::new();
        let backends = wagate::adapters::build(&config, &metrics)
            .await
            .expect("backends");
        let processor = processor(&config, &backends, &metrics, CancellationToken::new());
        let app = App::build_with(config.clone(), backends, metrics)
            .await
            .expect("app builds");
        let addr = app.local_addr();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(app.run(shutdown.clone()));
        TestApp {
            addr,
            client: wagate::adapters::outbound::client_builder()
                .build()
                .unwrap(),
            config,
            processor,
            consumer: Mutex::new(None),
            shutdown,
            server,
            _isolation: isolation,
        }
    }

    /// The app's store (the test processor's handle on it).
    pub fn store(&self) -> std::sync::Arc<dyn wagate::ports::Store> {
        self.processor.store.clone()
    }

    /// The queue the app publishes to (through the test processor's own connection).
    pub fn queue(&self) -> std::sync::Arc<dyn wagate::ports::Queue> {
        self.processor.queue.clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Runs the processor until the queue has nothing more; returns the events it handled.
    pub async fn process(&self) -> usize {
        let mut slot = self.consumer.lock().await;
        if slot.is_none() {
            *slot = Some(self.processor.queue.consumer("events", 200).await.unwrap());
        }
        let consumer = slot.as_mut().unwrap();
        let mut events = 0;
        while let Some(report) = self
            .processor
            .step(&mut **consumer, Some(Duration::from_millis(300)))
            .await
            .unwrap()
        {
            events += report.events;
        }
        events
    }

    pub async fn create_project(&self, id: &str, numbers: &[&str]) -> String {
        let (status, body) = self
            .send(
                self.client
                    .post(self.url("/v1/projects"))
                    .bearer_auth(ADMIN)
                    .json(&json!({
                        "id": id, "name": format!("Project {id}"), "phone_numbers": numbers,
                    })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["api_key"].as_str().unwrap().to_owned()
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, body)
    }

    pub async fn post_raw(
        &self,
        path: &str,
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, Value) {
        self.send(
            self.client
                .post(self.url(path))
                .header("content-type", "application/json")
                .body(body),
        )
        .await
    }

    /// `method path` with `key` as bearer and `body` as JSON, if any.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, self.url(path)).bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.send(req).await
    }

    pub async fn get(&self, path: &str, key: &str) -> (StatusCode, Value) {
        self.send(self.client.get(self.url(path)).bearer_auth(key))
            .await
    }

    /// Creates, for the project of `key`, an endpoint at `url` taking every event; returns it
    /// as the API answered (with its `id` and `shared_secret`).
    pub async fn create_endpoint(&self, key: &str, url: &str) -> Value {
        let (status, e) = self
            .call(
                reqwest::Method::POST,
                "/webhook/config",
                key,
                Some(serde_json::json!({"webhook_url": url, "topics": ["*"]})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{e}");
        e
    }

    /// The server's `/metrics` exposition, as a scraper reads it.
    pub async fn metrics(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        self.server.await.unwrap().unwrap();
    }
}

pub fn fixture(path: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/src/domain/providers/fixtures/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// Runs each named `async fn(&TestApp)` as two tests, `embedded::<name>` and
/// `distributed::<name>`, each on a fresh app of that backend set.
macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $(#[tokio::test]
            async fn $case() {
                let Some(app) = crate::support::app::TestApp::spawn(crate::support::app::Backend::Embedded).await else { return };
                super::$case(&app).await;
                app.stop().await;
            })*
        }
        mod distributed {
            $(#[tokio::test]
            async fn $case() {
                let Some(app) = crate::support::app::TestApp::spawn(crate::support::app::Backend::Distributed).await else { return };
                super::$case(&app).await;
                app.stop().await;
            })*
        }
    };
}
pub(crate) use on_both_backends;

/// Runs each named `async fn(Backend)` as two multi-threaded tests, `embedded::<name>` and
/// `distributed::<name>`: for cases that start their own apps (every role running for real).
macro_rules! backend_cases {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                super::$case(crate::support::app::Backend::Embedded).await;
            })*
        }
        mod distributed {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                super::$case(crate::support::app::Backend::Distributed).await;
            })*
        }
    };
}
pub(crate) use backend_cases;
