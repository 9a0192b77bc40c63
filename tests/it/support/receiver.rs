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
use axum::response::{IntoResponse, Response};
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
    /// The status code it was (or, while hanging, will be) answered with.
    pub answered: u16,
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
    /// Answer 200 with these bytes as the body, every time.
    Body(Bytes),
    /// Answer this code until then (an outage), then 200.
    DownUntil(Instant, u16),
}

#[derive(Default)]
struct Inner {
    scripts: HashMap<String, Script>,
    received: Vec<Received>,
}

#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    /// `https://localhost:{port}` when serving TLS, `http://{addr}` otherwise.
    base: String,
    inner: Arc<Mutex<Inner>>,
    _server: Arc<tokio::task::JoinHandle<()>>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = routes(&inner);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver {
            addr,
            base: format!("http://{addr}"),
            inner,
            _server: Arc::new(server),
        }
    }

    /// The same receiver behind TLS, with a certificate for `localhost` signed by a CA made for
    /// it; returns the receiver and the CA's PEM, which a client must trust to reach it.
    pub async fn start_tls() -> (Receiver, String) {
        let (ca_pem, config) = localhost_pki();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = routes(&inner);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    // A client that refuses the certificate ends its handshake here.
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        let receiver = Receiver {
            addr,
            base: format!("https://localhost:{}", addr.port()),
            inner,
            _server: Arc::new(server),
        };
        (receiver, ca_pem)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path)
    }

    /// `path` answers these codes, one per request, then 200.
    pub fn answer(&self, path: &str, codes: &[u16]) {
        self.inner
            .lock()
            .unwrap()
            .scripts
            .insert(path.into(), Script::Codes(codes.to_vec()));
    }

    /// `path` answers 200 with `body` (any bytes: a receiver's answer is untrusted).
    pub fn answer_body(&self, path: &str, body: &[u8]) {
        self.inner
            .lock()
            .unwrap()
            .scripts
            .insert(path.into(), Script::Body(Bytes::copy_from_slice(body)));
    }

    /// `path` answers `code` for the next `d` (from now), then 200: an outage of that length.
    pub fn down_for(&self, path: &str, d: Duration, code: u16) {
        self.inner
            .lock()
            .unwrap()
            .scripts
            .insert(path.into(), Script::DownUntil(Instant::now() + d, code));
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

    /// Every request, whatever its path (`a/b` for `/a/b`).
    pub fn all(&self) -> Vec<Received> {
        self.inner.lock().unwrap().received.clone()
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

fn routes(inner: &Arc<Mutex<Inner>>) -> Router {
    Router::new()
        .route("/{*path}", post(receive))
        .with_state(inner.clone())
}

/// A fresh CA and a `localhost` certificate it signed: (CA PEM, server TLS config).
fn localhost_pki() -> (String, rustls::ServerConfig) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    (ca.pem(), config)
}

async fn receive(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let script = {
        let mut g = inner.lock().unwrap();
        let script = match g.scripts.get_mut(&path) {
            Some(Script::Codes(codes)) if !codes.is_empty() => Script::Codes(vec![codes.remove(0)]),
            Some(Script::Hang(d)) => Script::Hang(*d),
            Some(Script::DownUntil(until, code)) if Instant::now() < *until => {
                Script::Codes(vec![*code])
            }
            Some(Script::Body(b)) => Script::Body(b.clone()),
            _ => Script::Codes(vec![200]),
        };
        let answered = match &script {
            Script::Codes(c) => c[0],
            Script::Hang(_) | Script::DownUntil(..) | Script::Body(_) => 200,
        };
        g.received.push(Received {
            path: path.clone(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                .collect(),
            body,
            at: Instant::now(),
            answered,
        });
        script
    };
    match script {
        Script::Codes(c) => StatusCode::from_u16(c[0]).unwrap().into_response(),
        Script::DownUntil(_, c) => StatusCode::from_u16(c).unwrap().into_response(),
        Script::Hang(d) => {
            tokio::time::sleep(d).await;
            StatusCode::OK.into_response()
        }
        Script::Body(b) => (StatusCode::OK, b).into_response(),
    }
}
