//! Outbound HTTP: the one way wagate calls other hosts (customers' webhook endpoints, BSPs'
//! send APIs, a campaign's `csv_url`), whatever client carries it.
//!
//! Every call is bounded (time and bytes read) and guarded against targets inside wagate's own
//! network by the adapter; callers get what happened as a value, never an error to unwind.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;

use crate::domain::delivery::TransportError;

/// One POST's result.
#[derive(Debug, Clone)]
pub struct Sent {
    /// `None` when no response came (see `error`).
    pub status: Option<u16>,
    pub retry_after: Option<String>,
    pub latency: Duration,
    /// The start of the body, for the attempt's record: lossy UTF-8, bounded.
    pub snippet: Option<String>,
    /// The body as read, bounded (a BSP's answer is parsed from it).
    pub body: Bytes,
    /// Set when no response came, or the body was cut short.
    pub error: Option<(TransportError, String)>,
}

/// A download's chunks; an `Err` ends it with a short reason.
pub type ByteStream = BoxStream<'static, Result<Bytes, String>>;

/// A GET's answer, its body still to be read.
pub struct Download {
    pub status: u16,
    pub content_length: Option<u64>,
    pub body: ByteStream,
}

#[async_trait]
pub trait Outbound: Send + Sync {
    /// Sends one POST with headers whose names are known at compile time (the forwarder's).
    async fn post(&self, url: &str, headers: &[(&'static str, String)], body: Bytes) -> Sent;

    /// [`post`](Self::post) with header names known only at run time (a BSP request built by
    /// the domain); a name or value that is not valid HTTP fails the request, unsent.
    async fn post_with(&self, url: &str, headers: &[(String, String)], body: Bytes) -> Sent;

    /// A GET whose body the caller streams (a recipients CSV); the adapter's timeout bounds
    /// the whole download.
    async fn get(&self, url: &str) -> Result<Download, (TransportError, String)>;
}
