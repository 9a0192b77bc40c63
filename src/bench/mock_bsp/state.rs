//! The mock's memory: counters, every accepted send with the final status it will report, and
//! the keys that reveal a recipient sent twice (the gateway promises it never happens; this is
//! where tests and the load tool check it).

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::fate::Final;
use crate::domain::providers::send::SendProvider;

/// Counts by provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PerProvider {
    pub meta: u64,
    pub aisensy_direct: u64,
    pub datagen: u64,
    pub aisensy: u64,
}

impl PerProvider {
    pub fn get(&self, p: SendProvider) -> u64 {
        match p {
            SendProvider::Meta => self.meta,
            SendProvider::AisensyDirect => self.aisensy_direct,
            SendProvider::Datagen => self.datagen,
            SendProvider::Aisensy => self.aisensy,
        }
    }

    pub fn total(&self) -> u64 {
        self.meta + self.aisensy_direct + self.datagen + self.aisensy
    }
}

/// A snapshot of the counters (`GET /mock/stats`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MockStats {
    /// Sends accepted (answered 200), by provider.
    pub accepted: PerProvider,
    /// Answered 429, not accepted.
    pub throttled: u64,
    /// Refused for good (400), not accepted.
    pub rejected: u64,
    /// Refused for missing credentials (401).
    pub unauthorized: u64,
    /// Requests the mock could not read: bad JSON, missing fields, unknown sender (400).
    pub invalid: u64,
    /// Accepted sends whose reference, or whose (sender, recipient, template), an earlier
    /// accepted send already had. The gateway must keep this at 0.
    pub duplicate_sends: u64,
    /// Webhook requests answered 2xx, and the statuses they carried.
    pub webhook_posts: u64,
    pub webhook_statuses: u64,
    /// Webhook attempts that failed (each retry counts).
    pub webhook_post_failures: u64,
    /// Statuses given up on: retried past the deadline, or refused with a 4xx.
    pub webhook_statuses_dropped: u64,
    /// Statuses due but not yet posted (nor dropped).
    pub webhook_statuses_pending: u64,
    /// Why the latest failed webhook attempt failed.
    pub last_webhook_error: Option<String>,
}

/// One accepted send (`GET /mock/sends`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendRecord {
    pub provider: SendProvider,
    /// The per-recipient reference the request carried (Meta `biz_opaque_callback_data`,
    /// Karix `recipient.reference.cust_ref`, AiSensy `attributes.wagate_ref`).
    pub reference: Option<String>,
    /// The id the mock returned: the wamid, Karix `mid` or AiSensy `submitted_message_id`.
    pub id: String,
    /// The business number, E.164.
    pub from: String,
    /// The recipient, E.164.
    pub to: String,
    /// Template name, Karix template id or AiSensy campaign name.
    pub template: String,
    /// The final status the webhooks will report.
    pub final_status: Final,
    /// Counted in `duplicate_sends`.
    pub duplicate: bool,
}

#[derive(Default)]
pub struct Counters {
    pub accepted: [AtomicU64; 4],
    pub throttled: AtomicU64,
    pub rejected: AtomicU64,
    pub unauthorized: AtomicU64,
    pub invalid: AtomicU64,
    pub duplicate_sends: AtomicU64,
    pub webhook_posts: AtomicU64,
    pub webhook_statuses: AtomicU64,
    pub webhook_post_failures: AtomicU64,
    pub webhook_statuses_dropped: AtomicU64,
    pub webhook_statuses_pending: AtomicU64,
}

fn slot(p: SendProvider) -> usize {
    match p {
        SendProvider::Meta => 0,
        SendProvider::AisensyDirect => 1,
        SendProvider::Datagen => 2,
        SendProvider::Aisensy => 3,
    }
}

impl Counters {
    fn snapshot(&self) -> MockStats {
        let accepted = |p| self.accepted[slot(p)].load(Relaxed);
        MockStats {
            accepted: PerProvider {
                meta: accepted(SendProvider::Meta),
                aisensy_direct: accepted(SendProvider::AisensyDirect),
                datagen: accepted(SendProvider::Datagen),
                aisensy: accepted(SendProvider::Aisensy),
            },
            throttled: self.throttled.load(Relaxed),
            rejected: self.rejected.load(Relaxed),
            unauthorized: self.unauthorized.load(Relaxed),
            invalid: self.invalid.load(Relaxed),
            duplicate_sends: self.duplicate_sends.load(Relaxed),
            webhook_posts: self.webhook_posts.load(Relaxed),
            webhook_statuses: self.webhook_statuses.load(Relaxed),
            webhook_post_failures: self.webhook_post_failures.load(Relaxed),
            webhook_statuses_dropped: self.webhook_statuses_dropped.load(Relaxed),
            webhook_statuses_pending: self.webhook_statuses_pending.load(Relaxed),
            last_webhook_error: None,
        }
    }
}

/// Accepted sends and the keys seen. One lock: held for two set inserts and a push, it is far
/// from the bottleneck at the rates a 2-core machine reaches.
#[derive(Default)]
struct Ledger {
    references: HashSet<Box<str>>,
    recipients: HashSet<Box<str>>,
    records: Vec<SendRecord>,
}

/// Everything the handlers share.
pub struct State {
    pub counters: Counters,
    ledger: Mutex<Ledger>,
    last_webhook_error: Mutex<Option<String>>,
    /// Random per mock instance, so two mocks never hand out the same ids.
    nonce: u64,
}

impl State {
    pub fn new() -> State {
        State {
            counters: Counters::default(),
            ledger: Mutex::default(),
            last_webhook_error: Mutex::default(),
            nonce: rand::random(),
        }
    }

    /// Records and counts an accepted send; true when it repeats an earlier one.
    pub fn record(&self, mut send: SendRecord) -> bool {
        let recipient_key = format!("{}\u{0}{}\u{0}{}", send.from, send.to, send.template);
        let mut ledger = lock(&self.ledger);
        let new_reference = match &send.reference {
            Some(r) => ledger.references.insert(r.as_str().into()),
            None => true,
        };
        let new_recipient = ledger.recipients.insert(recipient_key.into_boxed_str());
        send.duplicate = !(new_reference && new_recipient);
        let duplicate = send.duplicate;
        let provider = send.provider;
        ledger.records.push(send);
        drop(ledger);
        self.counters.accepted[slot(provider)].fetch_add(1, Relaxed);
        if duplicate {
            self.counters.duplicate_sends.fetch_add(1, Relaxed);
        }
        duplicate
    }

    pub fn stats(&self) -> MockStats {
        MockStats {
            last_webhook_error: lock(&self.last_webhook_error).clone(),
            ..self.counters.snapshot()
        }
    }

    pub fn webhook_failed(&self, why: String) {
        self.counters.webhook_post_failures.fetch_add(1, Relaxed);
        *lock(&self.last_webhook_error) = Some(why);
    }

    pub fn sends(&self) -> Vec<SendRecord> {
        lock(&self.ledger).records.clone()
    }

    /// A Cloud API message id: `wamid.` and URL-safe base64, unique per instance and request.
    pub fn wamid(&self, seq: u64) -> String {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.nonce.to_be_bytes());
        bytes[8..].copy_from_slice(&seq.to_be_bytes());
        format!("wamid.{}", URL_SAFE_NO_PAD.encode(bytes))
    }

    /// A Karix `mid`: 24 digits.
    pub fn karix_mid(&self, seq: u64) -> String {
        format!("{:010}{:014}", self.nonce % 10_000_000_000, seq)
    }
}

/// A panic while holding one of these locks leaves plain data, still worth reading.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
