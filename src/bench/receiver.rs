//! The forward bench's webhook receiver: one path per endpoint, every request's two signatures
//! verified with the domain's own functions, and each (endpoint, event) receipt recorded with its
//! ingress-to-delivery latency.
//!
//! The hot path takes no lock: the plan (wamid → event, event → endpoint) is built before the
//! run and only read, and each event's receipt lives in its own slot of atomics.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde::Deserialize;

use crate::domain::delivery::header;
use crate::domain::signing::{
    SigningSecret, VerifyError, verify_seed_signature, verify_standard_signature,
};

/// How far `webhook-timestamp` may be from the receiver's clock: the Standard Webhooks
/// libraries' default.
pub const TIMESTAMP_TOLERANCE: Duration = Duration::from_secs(300);

/// Why a request was refused (answered 401 and counted in `bad_signatures`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("header `{0}` is missing or not text")]
    MissingHeader(&'static str),
    #[error("`x-webhook-signature` does not match the body")]
    SeedSignature,
    #[error("`webhook-signature`: {0}")]
    StandardSignature(VerifyError),
    #[error("the body is not a forwarded event: {0}")]
    Body(String),
    #[error("`webhook-id`, `x-event-id` and the body's `event_id` differ")]
    IdMismatch,
}

/// What a verified request says it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub event_id: String,
    /// `message.wamid`: present for status reports, absent for users' messages.
    pub wamid: Option<String>,
}

#[derive(Deserialize)]
struct ForwardedBody {
    event_id: String,
    #[serde(default)]
    message: Option<MessageFields>,
}

#[derive(Deserialize)]
struct MessageFields {
    #[serde(default)]
    wamid: Option<String>,
}

fn text<'h>(headers: &'h HeaderMap, name: &'static str) -> Result<&'h str, Rejection> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .ok_or(Rejection::MissingHeader(name))
}

/// Checks one forwarded request as a careful client would: both signatures over the exact body
/// bytes, and the event id the same in `webhook-id`, `X-Event-ID` and the body. `now` is Unix
/// seconds.
pub fn verify(
    secret: &SigningSecret,
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
) -> Result<Verified, Rejection> {
    if !verify_seed_signature(secret, body, text(headers, header::SEED_SIGNATURE)?) {
        return Err(Rejection::SeedSignature);
    }
    let webhook_id = text(headers, header::WEBHOOK_ID)?;
    verify_standard_signature(
        secret,
        webhook_id,
        text(headers, header::WEBHOOK_TIMESTAMP)?,
        text(headers, header::WEBHOOK_SIGNATURE)?,
        body,
        now,
        TIMESTAMP_TOLERANCE,
    )
    .map_err(Rejection::StandardSignature)?;
    let parsed: ForwardedBody =
        serde_json::from_slice(body).map_err(|e| Rejection::Body(e.to_string()))?;
    if parsed.event_id != webhook_id || text(headers, header::EVENT_ID)? != webhook_id {
        return Err(Rejection::IdMismatch);
    }
    Ok(Verified {
        event_id: parsed.event_id,
        wamid: parsed.message.and_then(|m| m.wamid),
    })
}

/// One endpoint of the run: its secret, known once the endpoint is created, and whether it
/// hangs.
struct Endpoint {
    secret: OnceLock<SigningSecret>,
    slow: bool,
}

/// One event of the run: where it must arrive, when it was posted, and its first receipt.
struct EventSlot {
    endpoint: u32,
    /// Nanoseconds since the receiver's epoch, plus one (0: not posted yet).
    sent_ns: AtomicU64,
    /// The `event_id` of the first receipt.
    first_id: OnceLock<Box<str>>,
    /// Ingress-to-delivery of the first receipt, microseconds (`u32::MAX`: none yet).
    latency_us: AtomicU32,
}

#[derive(Default)]
struct Counters {
    healthy_delivered: AtomicU64,
    slow_delivered: AtomicU64,
    /// The same (endpoint, event id) again at a healthy endpoint.
    duplicates: AtomicU64,
    /// Repeats at a hanging endpoint: its retries after the gateway's timeout are expected.
    slow_repeats: AtomicU64,
    bad_signatures: AtomicU64,
    /// Verified requests that are not an expected delivery: an unknown wamid, the right wamid
    /// at the wrong endpoint, or a second event id for one wamid.
    unexpected: AtomicU64,
    /// Nanoseconds since the epoch of the last healthy first receipt.
    last_healthy_ns: AtomicU64,
}

/// The receiver's state, shared by its connections and read by the driver.
pub struct Receiver {
    epoch: Instant,
    hold: Duration,
    endpoints: Vec<Endpoint>,
    wamids: HashMap<Box<str>, u32>,
    events: Vec<EventSlot>,
    counters: Counters,
    first_problem: OnceLock<String>,
}

/// A snapshot of the counters, for progress lines and the summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub healthy_delivered: u64,
    pub slow_delivered: u64,
    pub duplicates: u64,
    pub slow_repeats: u64,
    pub bad_signatures: u64,
    pub unexpected: u64,
}

/// What the receipts say about the events the gateway accepted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Receipts {
    /// Accepted events for healthy endpoints.
    pub healthy_expected: u64,
    /// Of those, how many never arrived.
    pub missing: u64,
    /// Healthy first receipts' ingress-to-delivery latencies, microseconds, sorted.
    pub latencies_us: Vec<u32>,
    /// From the epoch to the last healthy first receipt (`None`: nothing arrived).
    pub last_healthy: Option<Duration>,
}

impl Receiver {
    /// `events[i]` is event `i`'s wamid and the endpoint it must reach; `slow[e]` says whether
    /// endpoint `e` hangs for `hold` before answering. Latencies count from `epoch`.
    pub fn new(
        events: Vec<(String, u32)>,
        slow: &[bool],
        hold: Duration,
        epoch: Instant,
    ) -> Receiver {
        let mut wamids = HashMap::with_capacity(events.len());
        let mut slots = Vec::with_capacity(events.len());
        for (i, (wamid, endpoint)) in events.into_iter().enumerate() {
            wamids.insert(wamid.into_boxed_str(), i as u32);
            slots.push(EventSlot {
                endpoint,
                sent_ns: AtomicU64::new(0),
                first_id: OnceLock::new(),
                latency_us: AtomicU32::new(u32::MAX),
            });
        }
        Receiver {
            epoch,
            hold,
            endpoints: slow
                .iter()
                .map(|&slow| Endpoint {
                    secret: OnceLock::new(),
                    slow,
                })
                .collect(),
            wamids,
            events: slots,
            counters: Counters::default(),
            first_problem: OnceLock::new(),
        }
    }

    /// The secret the gateway returned for endpoint `e`; set once.
    pub fn set_secret(&self, e: usize, secret: SigningSecret) {
        // A second call would be the driver's bug; the first secret stays.
        let _ = self.endpoints[e].secret.set(secret);
    }

    /// Records that event `i` is being posted now.
    pub fn mark_sent(&self, i: usize, at: Instant) {
        let ns = at.saturating_duration_since(self.epoch).as_nanos() as u64;
        self.events[i].sent_ns.store(ns + 1, Relaxed);
    }

    fn is_slow(&self, e: usize) -> bool {
        self.endpoints[e].slow
    }

    /// Verifies and records one request to endpoint `e`, received at `now`. The answer's
    /// status, and whether to hold it first.
    pub fn handle(
        &self,
        e: usize,
        headers: &HeaderMap,
        body: &[u8],
        now: Instant,
    ) -> (StatusCode, bool) {
        let Some(endpoint) = self.endpoints.get(e) else {
            return (StatusCode::NOT_FOUND, false);
        };
        let Some(secret) = endpoint.secret.get() else {
            self.problem(format!("endpoint {e} called before it was created"));
            self.counters.unexpected.fetch_add(1, Relaxed);
            return (StatusCode::NOT_FOUND, false);
        };
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        match verify(secret, headers, body, unix) {
            Ok(v) => {
                self.record(e, &v, now);
                (StatusCode::OK, endpoint.slow)
            }
            Err(r) => {
                self.counters.bad_signatures.fetch_add(1, Relaxed);
                self.problem(format!("endpoint {e}: {r}"));
                (StatusCode::UNAUTHORIZED, false)
            }
        }
    }

    fn record(&self, e: usize, v: &Verified, now: Instant) {
        let c = &self.counters;
        let slot = v.wamid.as_deref().and_then(|w| self.wamids.get(w));
        let Some(&i) = slot.filter(|&&i| self.events[i as usize].endpoint as usize == e) else {
            c.unexpected.fetch_add(1, Relaxed);
            self.problem(format!(
                "endpoint {e}: event {} (wamid {:?}) was not sent to it",
                v.event_id, v.wamid
            ));
            return;
        };
        let slot = &self.events[i as usize];
        let slow = self.is_slow(e);
        if slot.first_id.set(v.event_id.as_str().into()).is_err() {
            let again = slot.first_id.get().is_some_and(|id| **id == *v.event_id);
            match (again, slow) {
                (true, true) => c.slow_repeats.fetch_add(1, Relaxed),
                (true, false) => c.duplicates.fetch_add(1, Relaxed),
                (false, _) => {
                    self.problem(format!(
                        "endpoint {e}: a second event id {} for one wamid",
                        v.event_id
                    ));
                    c.unexpected.fetch_add(1, Relaxed)
                }
            };
            return;
        }
        let at_ns = now.saturating_duration_since(self.epoch).as_nanos() as u64;
        let sent_ns = slot.sent_ns.load(Relaxed).saturating_sub(1);
        let us = at_ns.saturating_sub(sent_ns) / 1000;
        slot.latency_us
            .store(u32::try_from(us).unwrap_or(u32::MAX - 1), Relaxed);
        if slow {
            c.slow_delivered.fetch_add(1, Relaxed);
        } else {
            c.healthy_delivered.fetch_add(1, Relaxed);
            c.last_healthy_ns.fetch_max(at_ns, Relaxed);
        }
    }

    fn problem(&self, what: String) {
        let _ = self.first_problem.set(what);
    }

    /// The first thing that went wrong, to show the user.
    pub fn first_problem(&self) -> Option<&str> {
        self.first_problem.get().map(String::as_str)
    }

    pub fn counts(&self) -> Counts {
        let c = &self.counters;
        Counts {
            healthy_delivered: c.healthy_delivered.load(Relaxed),
            slow_delivered: c.slow_delivered.load(Relaxed),
            duplicates: c.duplicates.load(Relaxed),
            slow_repeats: c.slow_repeats.load(Relaxed),
            bad_signatures: c.bad_signatures.load(Relaxed),
            unexpected: c.unexpected.load(Relaxed),
        }
    }

    /// Events posted to healthy endpoints whose POST the gateway accepted (`accepted[i]`).
    pub fn healthy_expected(&self, accepted: &[bool]) -> u64 {
        self.events
            .iter()
            .zip(accepted)
            .filter(|(s, ok)| **ok && !self.is_slow(s.endpoint as usize))
            .count() as u64
    }

    /// Gathers the receipts of the healthy endpoints' accepted events.
    pub fn receipts(&self, accepted: &[bool]) -> Receipts {
        let mut out = Receipts::default();
        for (slot, _) in self
            .events
            .iter()
            .zip(accepted)
            .filter(|(s, ok)| **ok && !self.is_slow(s.endpoint as usize))
        {
            out.healthy_expected += 1;
            match slot.latency_us.load(Relaxed) {
                u32::MAX => out.missing += 1,
                us => out.latencies_us.push(us),
            }
        }
        out.latencies_us.sort_unstable();
        let last = self.counters.last_healthy_ns.load(Relaxed);
        out.last_healthy = (last > 0).then(|| Duration::from_nanos(last));
        out
    }

    /// Serves `POST /e/{endpoint}` on `listen` until the runtime ends; returns the bound address.
    pub async fn serve(self: Arc<Self>, listen: SocketAddr) -> anyhow::Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let app = Router::new()
            .route("/e/{endpoint}", post(receive))
            .with_state(self);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(addr)
    }

    /// The URL of endpoint `e` on a receiver bound at `addr`.
    pub fn url(addr: SocketAddr, e: usize) -> String {
        format!("http://{addr}/e/{e}")
    }
}

async fn receive(
    State(r): State<Arc<Receiver>>,
    Path(e): Path<usize>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let (status, hold) = r.handle(e, &headers, &body, Instant::now());
    if hold {
        tokio::time::sleep(r.hold).await;
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::delivery;
    use crate::domain::time::Timestamp;

    const SECRET: &str = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const OTHER: &str = "whsec_ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7";
    const ID: &str = "01936f5e-8c2a-7b3e-9f10-2a3b4c5d6e7f";

    fn body(event_id: &str, wamid: &str) -> Vec<u8> {
        format!(
            r#"{{"event_type":"meta.delivery","event_id":"{event_id}","timestamp":"2024-11-27T09:38:21.234Z","data":{{}},"message":{{"wamid":"{wamid}","status":"sent"}}}}"#
        )
        .into_bytes()
    }

    /// The headers the gateway sends, made by the domain's own function.
    fn signed(secret: &str, event_id: &str, body: &[u8], now: Timestamp) -> HeaderMap {
        let secrets = [SigningSecret::new(secret)];
        let mut map = HeaderMap::new();
        for (k, v) in delivery::headers("meta.delivery", event_id, 1, body, &secrets, now) {
            map.insert(k, v.parse().unwrap());
        }
        map
    }

    fn now() -> (Timestamp, i64) {
        let t = Timestamp::now();
        (t, t.millis() / 1000)
    }

    #[test]
    fn a_signed_request_verifies() {
        let (t, unix) = now();
        let b = body(ID, "wamid.A");
        let h = signed(SECRET, ID, &b, t);
        let v = verify(&SigningSecret::new(SECRET), &h, &b, unix).unwrap();
        assert_eq!(v.event_id, ID);
        assert_eq!(v.wamid.as_deref(), Some("wamid.A"));
    }

    #[test]
    fn a_tampered_body_fails() {
        let (t, unix) = now();
        let b = body(ID, "wamid.A");
        let h = signed(SECRET, ID, &b, t);
        let tampered = body(ID, "wamid.B");
        assert_eq!(
            verify(&SigningSecret::new(SECRET), &h, &tampered, unix),
            Err(Rejection::SeedSignature)
        );
    }

    #[test]
    fn the_standard_signature_is_checked_on_its_own() {
        let (t, unix) = now();
        let b = body(ID, "wamid.A");
        let mut h = signed(SECRET, ID, &b, t);
        // Signed for another timestamp: the seed signature still matches, this one must not.
        let other = signed(SECRET, ID, &b, t.plus(Duration::from_secs(5)));
        h.insert(
            header::WEBHOOK_SIGNATURE,
            other[header::WEBHOOK_SIGNATURE].clone(),
        );
        assert_eq!(
            verify(&SigningSecret::new(SECRET), &h, &b, unix),
            Err(Rejection::StandardSignature(VerifyError::NoMatch))
        );
        let stale = signed(SECRET, ID, &b, Timestamp::from_millis(1_000_000));
        assert_eq!(
            verify(&SigningSecret::new(SECRET), &stale, &b, unix),
            Err(Rejection::StandardSignature(VerifyError::TooOld))
        );
    }

    #[test]
    fn a_wrong_secret_fails() {
        let (t, unix) = now();
        let b = body(ID, "wamid.A");
        let h = signed(OTHER, ID, &b, t);
        assert_eq!(
            verify(&SigningSecret::new(SECRET), &h, &b, unix),
            Err(Rejection::SeedSignature)
        );
    }

    #[test]
    fn ids_must_agree() {
        let (t, unix) = now();
        let secret = SigningSecret::new(SECRET);
        // Signed (both ways) for another webhook-id than the body's event_id.
        let b = body(ID, "wamid.A");
        let h = signed(SECRET, "another-id", &b, t);
        assert_eq!(verify(&secret, &h, &b, unix), Err(Rejection::IdMismatch));
        // X-Event-ID alone differs (it is not signed).
        let mut h = signed(SECRET, ID, &b, t);
        h.insert(header::EVENT_ID, "another-id".parse().unwrap());
        assert_eq!(verify(&secret, &h, &b, unix), Err(Rejection::IdMismatch));
        let mut h = signed(SECRET, ID, &b, t);
        h.remove(header::WEBHOOK_ID);
        assert_eq!(
            verify(&secret, &h, &b, unix),
            Err(Rejection::MissingHeader(header::WEBHOOK_ID))
        );
    }

    /// Two endpoints, the second slow; events 0 and 2 go to endpoint 0, event 1 to endpoint 1.
    fn receiver(epoch: Instant) -> Receiver {
        let plan = vec![
            ("wamid.0".to_owned(), 0),
            ("wamid.1".to_owned(), 1),
            ("wamid.2".to_owned(), 0),
        ];
        let r = Receiver::new(plan, &[false, true], Duration::ZERO, epoch);
        r.set_secret(0, SigningSecret::new(SECRET));
        r.set_secret(1, SigningSecret::new(OTHER));
        r
    }

    fn deliver(r: &Receiver, e: usize, secret: &str, id: &str, wamid: &str, at: Instant) -> u16 {
        let b = body(id, wamid);
        let h = signed(secret, id, &b, Timestamp::now());
        let (status, _) = r.handle(e, &h, &b, at);
        status.as_u16()
    }

    #[test]
    fn receipts_count_duplicates_latency_and_misses() {
        let epoch = Instant::now();
        let r = receiver(epoch);
        for i in 0..3 {
            r.mark_sent(i, epoch + Duration::from_millis(10 * i as u64));
        }
        let at = |ms| epoch + Duration::from_millis(ms);
        assert_eq!(deliver(&r, 0, SECRET, "e0", "wamid.0", at(7)), 200);
        assert_eq!(deliver(&r, 0, SECRET, "e0", "wamid.0", at(9)), 200);
        // The slow endpoint's retries are not duplicates.
        assert_eq!(deliver(&r, 1, OTHER, "e1", "wamid.1", at(30)), 200);
        assert_eq!(deliver(&r, 1, OTHER, "e1", "wamid.1", at(40)), 200);
        // Signed with the other endpoint's secret; the right wamid at the wrong endpoint.
        assert_eq!(deliver(&r, 0, OTHER, "e2", "wamid.2", at(50)), 401);
        assert_eq!(deliver(&r, 1, OTHER, "e2", "wamid.2", at(50)), 200);
        assert_eq!(deliver(&r, 0, SECRET, "e9", "wamid.unknown", at(50)), 200);
        assert_eq!(deliver(&r, 5, SECRET, "e0", "wamid.0", at(50)), 404);
        assert_eq!(
            r.counts(),
            Counts {
                healthy_delivered: 1,
                slow_delivered: 1,
                duplicates: 1,
                slow_repeats: 1,
                bad_signatures: 1,
                unexpected: 2,
            }
        );
        let got = r.receipts(&[true, true, true]);
        assert_eq!((got.healthy_expected, got.missing), (2, 1));
        assert_eq!(got.latencies_us, vec![7000]);
        assert_eq!(got.last_healthy, Some(Duration::from_millis(7)));
        // An event whose POST was refused is not expected.
        assert_eq!(r.receipts(&[true, true, false]).missing, 0);
        assert_eq!(r.healthy_expected(&[false, true, true]), 1);

        // A second event id for a wamid already delivered is not a duplicate but unexpected.
        assert_eq!(deliver(&r, 0, SECRET, "e0-bis", "wamid.0", at(60)), 200);
        assert_eq!(r.counts().unexpected, 3);
        assert_eq!(r.counts().duplicates, 1);
        assert!(r.first_problem().is_some());
    }
}
