//! The webhook client against real local servers, plain and TLS.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use futures_util::StreamExt;

use super::*;

/// A local receiver; counts the requests it gets, so refusals can be shown to send nothing.
struct Receiver {
    port: u16,
    hits: Arc<AtomicUsize>,
}

fn routes(hits: Arc<AtomicUsize>) -> Router {
    let count = move || {
        hits.fetch_add(1, Ordering::SeqCst);
    };
    let c = count.clone();
    let ok = move |headers: HeaderMap| {
        c();
        let sig = headers
            .get("webhook-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        async move { format!("hello {sig}") }
    };
    let c = count.clone();
    let big = move || {
        c();
        async { "x".repeat(50 * 1024) }
    };
    let c = count.clone();
    let busy = move || {
        c();
        async {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "7")],
                "busy",
            )
        }
    };
    let c = count.clone();
    let moved = move || {
        c();
        async { (StatusCode::FOUND, [(header::LOCATION, "/ok")], "") }
    };
    let c = count.clone();
    let endless = move || {
        c();
        let chunk = bytes::Bytes::from(vec![b'x'; 1024]);
        let chunks = futures_util::stream::repeat(chunk).map(Ok::<_, std::io::Error>);
        async move { axum::body::Body::from_stream(chunks) }
    };
    let hang = move || {
        count();
        std::future::pending::<&'static str>()
    };
    Router::new()
        .route("/ok", post(ok))
        .route("/big", post(big))
        .route("/busy", post(busy))
        .route("/moved", post(moved))
        .route("/endless", post(endless))
        .route("/hang", post(hang))
}

async fn receiver() -> Receiver {
    let hits = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = routes(hits.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver { port, hits }
}

fn client(allow_private_targets: bool) -> HttpOutbound {
    HttpOutbound::new(OutboundConfig {
        timeout: Duration::from_millis(500),
        connect_timeout: Duration::from_millis(500),
        allow_private_targets,
        extra_root_certs_pem: None,
    })
    .unwrap()
}

async fn post_to(c: &HttpOutbound, url: &str) -> Sent {
    let headers = [("webhook-id", "evt_1".to_owned())];
    c.post(url, &headers, bytes::Bytes::from_static(b"{}"))
        .await
}

fn error_kind(sent: &Sent) -> Option<TransportError> {
    sent.error.as_ref().map(|(k, _)| *k)
}

#[tokio::test]
async fn a_200_comes_back_with_its_body_and_headers_were_sent() {
    let r = receiver().await;
    let sent = post_to(&client(true), &format!("http://127.0.0.1:{}/ok", r.port)).await;
    assert_eq!(sent.status, Some(200));
    assert_eq!(sent.snippet.as_deref(), Some("hello evt_1"));
    assert!(sent.error.is_none(), "{:?}", sent.error);
    assert!(sent.latency > Duration::ZERO);
}

#[tokio::test]
async fn a_large_body_is_cut_to_a_1kb_snippet() {
    let r = receiver().await;
    let sent = post_to(&client(true), &format!("http://127.0.0.1:{}/big", r.port)).await;
    assert_eq!(sent.status, Some(200));
    assert_eq!(sent.snippet.as_deref().map(str::len), Some(SNIPPET_BYTES));
    assert!(sent.error.is_none(), "{:?}", sent.error);
}

#[tokio::test]
async fn an_endless_body_is_not_read_to_the_end() {
    let r = receiver().await;
    let sent = post_to(
        &client(true),
        &format!("http://127.0.0.1:{}/endless", r.port),
    )
    .await;
    assert_eq!(sent.status, Some(200));
    assert!(
        sent.error.is_none(),
        "stopped early, not timed out: {:?}",
        sent.error
    );
    assert_eq!(sent.snippet.as_deref().map(str::len), Some(SNIPPET_BYTES));
}

#[tokio::test]
async fn retry_after_is_passed_on() {
    let r = receiver().await;
    let sent = post_to(&client(true), &format!("http://127.0.0.1:{}/busy", r.port)).await;
    assert_eq!(sent.status, Some(503));
    assert_eq!(sent.retry_after.as_deref(), Some("7"));
    assert_eq!(sent.snippet.as_deref(), Some("busy"));
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let r = receiver().await;
    let sent = post_to(&client(true), &format!("http://127.0.0.1:{}/moved", r.port)).await;
    assert_eq!(sent.status, Some(302));
    assert_eq!(
        r.hits.load(Ordering::SeqCst),
        1,
        "only the redirecting call"
    );
}

#[tokio::test]
async fn a_hanging_receiver_times_out() {
    let r = receiver().await;
    let sent = post_to(&client(true), &format!("http://127.0.0.1:{}/hang", r.port)).await;
    assert_eq!(sent.status, None);
    assert_eq!(error_kind(&sent), Some(TransportError::Timeout), "{sent:?}");
    assert!(sent.latency >= Duration::from_millis(500));
}

#[tokio::test]
async fn a_closed_port_is_a_connect_error() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let sent = post_to(&client(true), &format!("http://127.0.0.1:{port}/ok")).await;
    assert_eq!(error_kind(&sent), Some(TransportError::Connect), "{sent:?}");
}

#[tokio::test]
async fn a_connect_timeout_is_a_connect_error_not_a_timeout() {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = socket.local_addr().unwrap().port();
    // Never accepted: once its accept queue is full the kernel drops further SYNs, so a
    // connect hangs until its timeout, and no byte of the request can have left.
    let _listener = socket.listen(1).unwrap();
    let mut held = Vec::new();
    while let Ok(Ok(s)) = tokio::time::timeout(
        Duration::from_millis(200),
        tokio::net::TcpStream::connect(("127.0.0.1", port)),
    )
    .await
    {
        held.push(s);
        assert!(held.len() < 100, "the accept queue never filled");
    }
    let c = HttpOutbound::new(OutboundConfig {
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_millis(300),
        allow_private_targets: true,
        extra_root_certs_pem: None,
    })
    .unwrap();
    let sent = post_to(&c, &format!("http://127.0.0.1:{port}/ok")).await;
    assert_eq!(error_kind(&sent), Some(TransportError::Connect), "{sent:?}");
    assert!(sent.latency < Duration::from_secs(4), "{sent:?}");
}

#[tokio::test]
async fn an_unknown_host_is_a_dns_error_with_either_resolver() {
    // `.invalid` never resolves (RFC 2606).
    for allow in [true, false] {
        let sent = post_to(&client(allow), "http://wagate-test.invalid/ok").await;
        assert_eq!(error_kind(&sent), Some(TransportError::Dns), "{sent:?}");
    }
}

#[tokio::test]
async fn loopback_is_refused_by_name_and_by_literal_address() {
    let r = receiver().await;
    let c = client(false);
    for host in ["localhost", "127.0.0.1", "[::1]"] {
        let sent = post_to(&c, &format!("http://{host}:{}/ok", r.port)).await;
        assert_eq!(
            error_kind(&sent),
            Some(TransportError::NotAllowed),
            "{host}: {sent:?}"
        );
        assert_eq!(sent.status, None);
    }
    assert_eq!(
        r.hits.load(Ordering::SeqCst),
        0,
        "nothing reached the receiver"
    );
}

#[tokio::test]
async fn error_texts_carry_no_header_values() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let headers = [("webhook-signature", "v1,SECRETSIG".to_owned())];
    let sent = client(true)
        .post(
            &format!("http://127.0.0.1:{port}/ok"),
            &headers,
            bytes::Bytes::new(),
        )
        .await;
    let (_, text) = sent.error.expect("an error");
    assert!(!text.contains("SECRETSIG"), "{text}");
    assert!(text.starts_with("connect"), "{text}");
}

// HTTPS, with the CA in `WEBHOOK_CA_FILE` and without it, is tested end to end through the
// forwarder: tests/it/forwarding.rs.

#[test]
fn a_pem_without_certificates_is_refused() {
    let built = HttpOutbound::new(OutboundConfig {
        extra_root_certs_pem: Some(b"not a pem".to_vec()),
        ..OutboundConfig::default()
    });
    assert!(built.is_err());
}
