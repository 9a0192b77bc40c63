//! The ingest workload: seeded webhook bodies, serialized up front, and the final state they imply.
//!
//! Generation is pure: the same [`Spec`] always gives byte-identical bodies, so a run that finds a
//! loss can be replayed exactly. Every status event goes into one list that is shuffled as a whole,
//! which both interleaves messages and delivers each message's lifecycle out of order.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

pub use super::model::{Item, Outbound, UserMessage};
use super::payload::{self, Ctx};
use crate::domain::status::Status;

/// Where a body goes: each provider has its own ingress path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Datagen,
    Meta,
}

impl Format {
    pub fn path(self) -> &'static str {
        match self {
            Format::Datagen => "/v1/ingest/datagen",
            Format::Meta => "/v1/ingest/meta",
        }
    }
}

/// A ready-to-send request: the body is built before the clock starts.
#[derive(Debug, Clone)]
pub struct Request {
    pub format: Format,
    pub body: Bytes,
    pub items: Vec<Item>,
}

#[derive(Debug, Clone)]
pub struct Spec {
    /// Total events across all bodies, duplicates and inbound messages included.
    pub events: usize,
    pub seed: u64,
    pub duplicate_rate: f64,
    /// Share of request bodies in Meta's format; the rest are Datagen's.
    pub meta_share: f64,
    /// Share of events that are inbound user messages.
    pub inbound_share: f64,
    /// The project's business number, digits only (`919812345678`).
    pub business_number: String,
}

#[derive(Debug, Clone)]
pub struct Workload {
    pub business_number: String,
    pub outbound: Vec<Outbound>,
    pub inbound: Vec<UserMessage>,
    pub requests: Vec<Request>,
}

/// What the server must hold once everything accepted has been processed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    /// Per outbound message: the max status over its accepted events.
    pub status: HashMap<u32, Status>,
    /// Every distinct (message, status) event that was accepted.
    pub history: HashSet<(u32, Status)>,
    /// Every inbound message that was accepted.
    pub inbound: HashSet<u32>,
}

/// Arbitrary but fixed, so a seed reproduces timestamps too (mid-2025).
const EPOCH: i64 = 1_750_000_000;
const CAMPAIGNS: u32 = 5;

impl Workload {
    pub fn generate(spec: &Spec) -> Workload {
        let mut rng = StdRng::seed_from_u64(spec.seed);
        let n_inbound =
            ((spec.events as f64) * spec.inbound_share.clamp(0.0, 1.0)).round() as usize;
        let n_status = spec.events - n_inbound.min(spec.events);
        let dup = spec.duplicate_rate.clamp(0.0, 1.0);

        let mut outbound = Vec::new();
        let mut status_items = Vec::with_capacity(n_status + 3);
        while status_items.len() < n_status {
            let message = outbound.len() as u32;
            let m = new_outbound(&mut rng, &spec.business_number, outbound.len());
            for &status in lifecycle(&mut rng) {
                status_items.push(Item::Status { message, status });
                if rng.random_bool(dup) {
                    status_items.push(Item::Status { message, status });
                }
            }
            outbound.push(m);
        }
        // The last message may lose the tail of its lifecycle: the expected state is computed
        // from what is emitted, so the exact event count wins.
        status_items.truncate(n_status);

        let mut inbound = Vec::new();
        let mut items = status_items;
        let mut inbound_items = 0;
        while inbound_items < n_inbound {
            let message = inbound.len() as u32;
            inbound.push(new_user_message(&mut rng, inbound.len()));
            let copies = if rng.random_bool(dup) { 2 } else { 1 };
            for _ in 0..copies.min(n_inbound - inbound_items) {
                items.push(Item::Inbound { message });
                inbound_items += 1;
            }
        }
        items.shuffle(&mut rng);

        let ctx = Ctx {
            business_number: &spec.business_number,
            waba_id: format!("1{:014}", rng.random_range(0..100_000_000_000_000u64)),
            phone_number_id: format!("1{:014}", rng.random_range(0..100_000_000_000_000u64)),
            outbound: &outbound,
            inbound: &inbound,
        };
        let meta_share = spec.meta_share.clamp(0.0, 1.0);
        let mut requests = Vec::new();
        let mut rest = items.as_slice();
        while !rest.is_empty() {
            let format = if rng.random_bool(meta_share) {
                Format::Meta
            } else {
                Format::Datagen
            };
            let size = match format {
                Format::Meta => rng.random_range(1..=3),
                Format::Datagen if rng.random_bool(0.8) => 1,
                Format::Datagen => rng.random_range(2..=10),
            };
            let (chunk, tail) = rest.split_at(size.min(rest.len()));
            rest = tail;
            let body = match format {
                Format::Datagen => payload::datagen(&ctx, chunk, &mut rng),
                Format::Meta => payload::meta(&ctx, chunk, &mut rng),
            };
            requests.push(Request {
                format,
                body: Bytes::from(body),
                items: chunk.to_vec(),
            });
        }
        Workload {
            business_number: spec.business_number.clone(),
            outbound,
            inbound,
            requests,
        }
    }

    pub fn events(&self) -> usize {
        self.requests.iter().map(|r| r.items.len()).sum()
    }

    /// The state implied by the requests the server accepted (`accepted[i]` for request `i`).
    /// Events of refused requests are not expected; the server holding them anyway is fine.
    pub fn expected(&self, accepted: &[bool]) -> Expected {
        let mut out = Expected::default();
        let taken = self.requests.iter().zip(accepted).filter(|(_, ok)| **ok);
        for item in taken.flat_map(|(r, _)| &r.items) {
            match *item {
                Item::Status { message, status } => {
                    out.history.insert((message, status));
                    out.status
                        .entry(message)
                        .and_modify(|s| *s = s.merge(status))
                        .or_insert(status);
                }
                Item::Inbound { message } => {
                    out.inbound.insert(message);
                }
            }
        }
        out
    }
}

/// Mostly read, some only delivered, some failed, a few failed on one device but delivered to
/// another: the case where a naive last-write-wins store goes backwards.
fn lifecycle(rng: &mut StdRng) -> &'static [Status] {
    use Status::*;
    match rng.random_range(0..100) {
        0..70 => &[Sent, Delivered, Read],
        70..85 => &[Sent, Delivered],
        85..95 => &[Sent, Failed],
        _ => &[Sent, Failed, Delivered],
    }
}

fn new_outbound(rng: &mut StdRng, business_number: &str, index: usize) -> Outbound {
    let phone = indian_mobile(rng);
    let sent = EPOCH + index as i64;
    let delivered = sent + rng.random_range(1..30);
    let read = delivered + rng.random_range(1..600);
    let failed = sent + rng.random_range(1..10);
    Outbound {
        // Real wamids encode the recipient; the business number keeps runs on one server apart.
        wamid: wamid(rng, &format!("{business_number}{phone}")),
        phone,
        campaign_id: format!("cmp_bench_{}", rng.random_range(0..CAMPAIGNS)),
        at: [sent, failed, delivered, read],
    }
}

fn new_user_message(rng: &mut StdRng, index: usize) -> UserMessage {
    const NAMES: [&str; 6] = ["Asha", "Ravi", "Priya", "Arjun", "Meera", "Kabir"];
    const TEXTS: [&str; 5] = [
        "Is the sale still on?",
        "Where is my order?",
        "STOP",
        "Yes please",
        "Can I change the delivery address?",
    ];
    let from = indian_mobile(rng);
    UserMessage {
        id: wamid(rng, &from),
        from,
        name: NAMES[rng.random_range(0..NAMES.len())],
        text: TEXTS[rng.random_range(0..TEXTS.len())],
        at: EPOCH + 50 + index as i64,
    }
}

/// `91` and a ten-digit mobile number starting 6 to 9, digits only.
fn indian_mobile(rng: &mut StdRng) -> String {
    format!(
        "91{}{:09}",
        rng.random_range(6..=9),
        rng.random_range(0..1_000_000_000u32)
    )
}

fn wamid(rng: &mut StdRng, prefix: &str) -> String {
    use base64::Engine;
    let mut bytes = prefix.as_bytes().to_vec();
    let mut random = [0u8; 16];
    rng.fill(&mut random[..]);
    bytes.extend_from_slice(&random);
    format!(
        "wamid.{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

#[cfg(test)]
mod tests;
