//! The sealed-secrets port: what the store holds of webhook signing secrets and BSP
//! credentials, counted by how each is kept, and re-sealing them all with the current key.
//!
//! Implemented by both SQL stores, on the same pools, with the store's own `Sealer`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::Serialize;

use super::StoreError;

/// Stored secrets by how they are kept: `clear`, or the id of the key that sealed them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SecretInventory {
    /// Endpoints' current and previous signing secrets.
    pub endpoint_secrets: BTreeMap<String, u64>,
    /// Projects' own BSP credentials.
    pub provider_credentials: BTreeMap<String, u64>,
}

impl SecretInventory {
    /// Every form and its count over both kinds of secret.
    pub fn totals(&self) -> BTreeMap<String, u64> {
        let mut all = self.endpoint_secrets.clone();
        for (form, n) in &self.provider_credentials {
            *all.entry(form.clone()).or_default() += n;
        }
        all
    }
}

/// What one re-sealing pass did, counted per stored secret.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ResealReport {
    /// Sealed again with the current key (or sealed for the first time).
    pub resealed: u64,
    /// Already sealed with the current key: left as they were.
    pub already_current: u64,
    /// Changed by someone else between the read and the write (an API call): left as the
    /// change wrote them; a second pass re-seals them if they need it.
    pub changed_meanwhile: u64,
    /// Sealed with a key this process does not hold, or altered: left as they were.
    pub unreadable: u64,
}

#[async_trait]
pub trait SealedSecrets: Send + Sync + 'static {
    async fn inventory(&self) -> Result<SecretInventory, StoreError>;

    /// One pass over every stored secret: each not sealed with the current key is opened and
    /// sealed with it, row by row, each write conditional on the value read. Idempotent, and
    /// safe beside a serving gateway and after a crash mid-pass: a row is either re-sealed or
    /// not, and the next pass finishes what this one left.
    async fn reseal(&self) -> Result<ResealReport, StoreError>;
}
