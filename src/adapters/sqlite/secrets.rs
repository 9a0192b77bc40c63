//! `SealedSecrets` on SQLite: the shared queries, reading on the readers, each re-sealed value
//! written on the one writer.

use async_trait::async_trait;

use super::store::SqliteStore;
use crate::adapters::sql::classify;
use crate::adapters::sql::secrets::lite as q;
use crate::ports::StoreError;
use crate::ports::secrets::{ResealReport, SealedSecrets, SecretInventory};

#[async_trait]
impl SealedSecrets for SqliteStore {
    async fn inventory(&self) -> Result<SecretInventory, StoreError> {
        q::inventory(&self.db.read).await.map_err(classify)
    }

    async fn reseal(&self) -> Result<ResealReport, StoreError> {
        q::reseal(&self.db.read, &self.db.write, &self.sealer)
            .await
            .map_err(classify)
    }
}
