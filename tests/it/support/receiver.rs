//! A customer's webhook receiver for tests: records every request per path and answers as
//! each path is scripted to (a list of status codes, then 200; or hang).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::Value;
use wagate::domain::signing::{SigningSecret, verify_seed_signature, verify_standard_signature};

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Bytes,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a forwarded body is JSON")
    }

    /// Both signatures check out with `secret` (the string the API returned).
    pub fn verifies(&self, secret: &str) -> bool {
        let secret = SigningSecret::new(secret.to_owned());
        let now = wagate::domain::time::Timestamp::now().millis() / 1000;
        verify_seed_signature(&secret, &self.body, self.header("x-webhook-signature"))
            && verify_standard_signature(
                &secret,
                self.header("webhook-id"),
                self.header("webhook-timestamp"),
                self.header("webhook-signature"),
                &self.body,
                now,
                Duration::from_secs(300),
            )
            .is_ok()
    }
}

#[derive(Debug, Clone)]
enum Script {
    /// Answer these codes in turn, then 200.
    Codes(Vec<u16>),
    /// Hold the request this long, then 200.
    Hang(Duration),
}

#[derive(Default)]
struct Inner {
    scripts: HashMap<String, Script>,
    received: Vec<Received>,
}

#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    _server: Arc<tokio::task::JoinHandle<()>>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new()
            .route("/{path}", post(receive))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver {
            addr,
            inner,
            _server: Arc::new(server),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{}", self.addr, path)
    }

    /// `path` answers these codes, one per request, then 200.
    pub fn answer(&self, path: &str, codes: &[u16]) {
        self.inner
            .lock()
            .unwrap()
            .scripts
            .insert(path.into(), Script::Codes(codes.to_vec()));
    }

    /// `path` holds every request for `d` before answering.
    pub fn hang(&self, path: &str, d: Duration) {
        self.inner
            .lock()
            .unwrap()
            .scripts
            .insert(path.into(), Script::Hang(d));
    }

    pub fn received(&self, path: &str) -> Vec<Received> {
        self.inner
            .lock()
            .unwrap()
            .received
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// Waits (up to `within`) until `path` has received at least `n` requests; returns them.
    pub async fn wait_for(&self, path: &str, n: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.received(path);
            if got.len() >= n || Instant::now() >= deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn receive(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let script = {
        let mut g = inner.lock().unwrap();
        g.received.push(Received {
            path: path.clone(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                .collect(),
            body,
            at: Instant::now(),
        });
        match g.scripts.get_mut(&path) {
            Some(Script::Codes(codes)) if !codes.is_empty() => Script::Codes(vec![codes.remove(0)]),
            Some(Script::Hang(d)) => Script::Hang(*d),
            _ => Script::Codes(vec![200]),
        }
    };
    match script {
        Script::Codes(c) => StatusCode::from_u16(c[0]).unwrap(),
        Script::Hang(d) => {
            tokio::time::sleep(d).await;
            StatusCode::OK
        }
    }
}
