//! The `Outbound` port on reqwest: one pooled client per use (webhooks, BSP sends, CSV
//! downloads), TLS on rustls with ring, no redirects, bounded response reads, and the
//! private-address guard applied at connect time.

use std::error::Error as StdError;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use async_trait::async_trait;
use futures_util::StreamExt;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::domain::delivery::TransportError;
use crate::domain::endpoint::is_forbidden_target;
pub use crate::ports::outbound::Sent;
use crate::ports::outbound::{Download, Outbound};

/// The most of a response body read: enough for any error page worth keeping, and a receiver
/// streaming gigabytes back cannot hold a worker.
pub const MAX_BODY_READ: usize = 10 * 1024;

/// The most of the body kept with the attempt.
pub const SNIPPET_BYTES: usize = 1024;

/// Idle connections kept per host. Several endpoints may share a host (one customer's URLs
/// for many projects), so all of a forwarder's requests in flight (100 by default) can go to
/// one host: keeping fewer idle made every request past the cap open a new connection (seen as
/// `connect` in profiles of the load tool's run, whose endpoints all share one host).
const IDLE_PER_HOST: usize = 128;

/// How long an idle pooled connection is kept: long enough to carry a steady stream to the
/// same receiver, short enough that thousands of quiet hosts do not pile up sockets.
const POOL_IDLE: Duration = Duration::from_secs(60);

pub struct OutboundConfig {
    /// The whole request, connect to last body byte read (the seed: 15 s).
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Lets requests reach loopback and private addresses (tests, local development).
    pub allow_private_targets: bool,
    /// PEM certificates trusted beside the system's roots.
    pub extra_root_certs_pem: Option<Vec<u8>>,
}

impl Default for OutboundConfig {
    fn default() -> OutboundConfig {
        OutboundConfig {
            timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(5),
            allow_private_targets: false,
            extra_root_certs_pem: None,
        }
    }
}

/// Cheap to clone: clones share one connection pool.
#[derive(Clone)]
pub struct HttpOutbound {
    http: reqwest::Client,
    allow_private_targets: bool,
}

/// Makes ring the process's rustls crypto provider, which every reqwest client in the process
/// needs before it is built (reqwest is built without its aws-lc default). Idempotent.
pub fn install_tls_provider() {
    // `Err` means a provider is already installed, which is all this asks for.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The one way to start a reqwest client in this crate (and its tests): a client built
/// before a crypto provider is installed panics, so this installs ring first.
pub fn client_builder() -> reqwest::ClientBuilder {
    install_tls_provider();
    reqwest::Client::builder()
}

/// The host resolved to an address the forwarder does not send to.
#[derive(Debug, thiserror::Error)]
#[error("{0} resolves to an address that is not allowed")]
struct ForbiddenAddress(String);

/// The host did not resolve (kept apart from connect errors, which reqwest reports alike).
#[derive(Debug, thiserror::Error)]
#[error("{0} did not resolve: {1}")]
struct LookupFailed(String, std::io::Error);

/// Resolves with the system resolver and drops refused addresses, so a name that passed the
/// config-time check cannot be re-pointed at an internal address later (DNS rebinding): the
/// addresses checked are the ones connected to.
struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| LookupFailed(host.clone(), e))?
                .collect();
            let allowed: Vec<SocketAddr> = addrs
                .iter()
                .copied()
                .filter(|a| !is_forbidden_target(a.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(Box::new(ForbiddenAddress(host)) as Box<dyn StdError + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

impl HttpOutbound {
    pub fn new(cfg: OutboundConfig) -> anyhow::Result<HttpOutbound> {
        let mut builder = client_builder()
            .redirect(reqwest::redirect::Policy::none())
            // A proxy from the environment would make the address check meaningless.
            .no_proxy()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.connect_timeout)
            .pool_max_idle_per_host(IDLE_PER_HOST)
            .pool_idle_timeout(POOL_IDLE)
            .tcp_nodelay(true)
            .user_agent(crate::domain::delivery::USER_AGENT);
        if !cfg.allow_private_targets {
            builder = builder.dns_resolver(Arc::new(GuardedResolver));
        }
        if let Some(pem) = &cfg.extra_root_certs_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .context("reading the extra root certificates")?;
            anyhow::ensure!(!certs.is_empty(), "no certificate in the extra root PEM");
            builder = builder.tls_certs_merge(certs);
        }
        Ok(HttpOutbound {
            http: builder
                .build()
                .context("building the webhook HTTP client")?,
            allow_private_targets: cfg.allow_private_targets,
        })
    }
}

#[async_trait]
impl Outbound for HttpOutbound {
    /// Sends one POST and reads at most [`MAX_BODY_READ`] of the answer. Never fails: a
    /// request that got no response comes back with `error` set.
    async fn post(
        &self,
        url: &str,
        headers: &[(&'static str, String)],
        body: bytes::Bytes,
    ) -> Sent {
        let started = Instant::now();
        // One map of the right size, filled once: adding the headers one by one to the
        // request builder grew its map and re-parsed each name (seen in profiles).
        let mut map = reqwest::header::HeaderMap::with_capacity(headers.len());
        for (name, value) in headers {
            match reqwest::header::HeaderValue::from_str(value) {
                Ok(v) => {
                    map.append(reqwest::header::HeaderName::from_static(name), v);
                }
                Err(_) => {
                    return failed(
                        started,
                        TransportError::Other,
                        format!("bad value for {name}"),
                    );
                }
            }
        }
        self.post_map(started, url, map, body).await
    }

    /// [`post`](Self::post) with header names known only at run time (a BSP request built by
    /// the domain); a name or value that is not valid HTTP fails the request, unsent.
    async fn post_with(&self, url: &str, headers: &[(String, String)], body: bytes::Bytes) -> Sent {
        let started = Instant::now();
        let mut map = reqwest::header::HeaderMap::with_capacity(headers.len());
        for (name, value) in headers {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes());
            let value = reqwest::header::HeaderValue::from_str(value);
            match (name, value) {
                (Ok(n), Ok(v)) => {
                    map.append(n, v);
                }
                _ => return failed(started, TransportError::Other, "bad header".to_owned()),
            }
        }
        self.post_map(started, url, map, body).await
    }

    /// A GET whose body the caller streams (a recipients CSV), through the same address guard
    /// and redirect policy as webhooks; the client's timeout bounds the whole download.
    async fn get(&self, url: &str) -> Result<Download, (TransportError, String)> {
        let url = self.check_literal(url)?;
        let response = self.http.get(url).send().await.map_err(|e| classify(&e))?;
        let status = response.status().as_u16();
        let content_length = response.content_length();
        // reqwest's `bytes_stream` needs a feature (and its dependencies) for this one use.
        let body = futures_util::stream::unfold(Some(response), |response| async move {
            let mut response = response?;
            match response.chunk().await {
                Ok(Some(chunk)) => Some((Ok(chunk), Some(response))),
                Ok(None) => None,
                Err(e) => Some((Err(classify(&e).1), None)),
            }
        })
        .boxed();
        Ok(Download {
            status,
            content_length,
            body,
        })
    }
}

impl HttpOutbound {
    async fn post_map(
        &self,
        started: Instant,
        url: &str,
        map: reqwest::header::HeaderMap,
        body: bytes::Bytes,
    ) -> Sent {
        let url = match self.check_literal(url) {
            Ok(url) => url,
            Err((kind, text)) => return failed(started, kind, text),
        };
        let request = self.http.post(url).headers(map).body(body);
        let mut response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                let (kind, text) = classify(&e);
                return failed(started, kind, text);
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(64).collect());
        let mut buf = Vec::new();
        let mut error = None;
        while buf.len() < MAX_BODY_READ {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = MAX_BODY_READ - buf.len();
                    buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
                Ok(None) => break,
                Err(e) => {
                    // The status arrived, so the attempt has an answer; a body cut short is
                    // noted but does not change what the status means.
                    error = Some(classify(&e));
                    break;
                }
            }
        }
        let snippet = (!buf.is_empty())
            .then(|| String::from_utf8_lossy(&buf[..buf.len().min(SNIPPET_BYTES)]).into_owned());
        Sent {
            status: Some(status),
            retry_after,
            latency: started.elapsed(),
            snippet,
            body: buf.into(),
            error,
        }
    }

    /// Parses the URL (once, for reqwest too). reqwest does not ask the resolver about
    /// IP-literal hosts, so those are checked here.
    fn check_literal(&self, url: &str) -> Result<url::Url, (TransportError, String)> {
        let parsed =
            url::Url::parse(url).map_err(|_| (TransportError::Other, "invalid URL".to_owned()))?;
        let ip = match parsed.host() {
            Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
            Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
            _ => return Ok(parsed),
        };
        if !self.allow_private_targets && is_forbidden_target(ip) {
            return Err((
                TransportError::NotAllowed,
                format!("{ip} is not an address webhooks may target"),
            ));
        }
        Ok(parsed)
    }
}

/// A request that got no response.
fn failed(started: Instant, kind: TransportError, text: String) -> Sent {
    Sent {
        status: None,
        retry_after: None,
        latency: started.elapsed(),
        snippet: None,
        body: bytes::Bytes::new(),
        error: Some((kind, text)),
    }
}

/// Maps a reqwest error to its kind, with a short text made from the error chain (reqwest's
/// errors carry the URL, never header values; the URL is dropped too, being on the endpoint).
fn classify(e: &reqwest::Error) -> (TransportError, String) {
    let kind = if has::<ForbiddenAddress>(e) {
        TransportError::NotAllowed
    } else if e.is_connect() && e.is_timeout() {
        // The connect timeout: no connection, so no byte of the request left (a BSP send is
        // retried, not left uncertain). A timeout once connected stays `Timeout`.
        TransportError::Connect
    } else if e.is_timeout() {
        TransportError::Timeout
    } else if has::<LookupFailed>(e) || e.is_dns() {
        TransportError::Dns
    } else if has::<rustls::Error>(e) {
        TransportError::Tls
    } else if e.is_connect() {
        TransportError::Connect
    } else {
        TransportError::Other
    };
    let text = innermost(e).to_string();
    let text: String = text.chars().take(200).collect();
    (kind, format!("{}: {text}", kind.as_str()))
}

/// Whether the chain holds an error of type `T`, looking inside `io::Error`s too: rustls
/// errors reach reqwest wrapped in two of them, and an `io::Error`'s `source` skips what it
/// wraps.
fn has<T: StdError + 'static>(e: &(dyn StdError + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(err) = next {
        let mut inner: &(dyn StdError + 'static) = err;
        loop {
            if inner.is::<T>() {
                return true;
            }
            match inner
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
            {
                Some(wrapped) => inner = wrapped,
                None => break,
            }
        }
        next = err.source();
    }
    false
}

fn innermost<'a>(e: &'a (dyn StdError + 'static)) -> &'a (dyn StdError + 'static) {
    let mut current = e;
    while let Some(next) = current.source() {
        current = next;
    }
    current
}

#[cfg(test)]
mod tests;
