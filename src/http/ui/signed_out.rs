//! Sessions ended by signing out. A session cookie is valid by its signature alone, so a copy
//! taken before sign-out (a shared machine, a proxy log) would stay valid until it expires;
//! signing out records the session's nonce until then, here and in the shared cache, so every
//! process of a set refuses it.
//!
//! The shared cache (Redis) carries it between processes and across restarts; without one (the
//! embedded set, a single process) the record is this process's, and a restart forgets it. If
//! the shared cache cannot be reached, only this process's record is consulted: the dashboard
//! stays usable, and the API key behind a session is still checked on every request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::session::Session;
use crate::ports::Cache;

/// Sign-outs remembered in process at most; past it, those closest to expiring are dropped.
const MAX_LOCAL: usize = 100_000;

pub struct SignedOut {
    /// Nonce → the session's expiry (unix seconds).
    local: Mutex<HashMap<String, i64>>,
    shared: Option<Arc<dyn Cache>>,
}

fn key(nonce: &str) -> String {
    format!("ui:signed-out:{nonce}")
}

impl SignedOut {
    pub fn new(shared: Option<Arc<dyn Cache>>) -> SignedOut {
        SignedOut {
            local: Mutex::default(),
            shared,
        }
    }

    /// Ends `session` for every process, until it would have expired anyway.
    pub async fn record(&self, session: &Session, now: i64) {
        {
            let mut local = self.local.lock().expect("signed-out lock");
            local.retain(|_, expires| *expires > now);
            if local.len() >= MAX_LOCAL
                && let Some(soonest) = local
                    .iter()
                    .min_by_key(|(_, e)| **e)
                    .map(|(n, _)| n.clone())
            {
                local.remove(&soonest);
            }
            local.insert(session.nonce.clone(), session.expires);
        }
        if let Some(cache) = &self.shared {
            let ttl = Duration::from_secs(u64::try_from(session.expires - now).unwrap_or(0).max(1));
            if let Err(e) = cache.set(&key(&session.nonce), "1", ttl).await {
                tracing::warn!(error = %e, "dashboard sign-out not shared: other processes accept the session until it expires");
            }
        }
    }

    pub async fn contains(&self, session: &Session) -> bool {
        if self
            .local
            .lock()
            .expect("signed-out lock")
            .contains_key(&session.nonce)
        {
            return true;
        }
        match &self.shared {
            Some(cache) => matches!(cache.get(&key(&session.nonce)).await, Ok(Some(_))),
            None => false,
        }
    }
}
