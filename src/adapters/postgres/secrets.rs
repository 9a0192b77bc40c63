//! `SealedSecrets` on PostgreSQL: the shared queries on the store's pool.

use async_trait::async_trait;

use super::PgStore;
use crate::adapters::sql::classify;
use crate::adapters::sql::secrets::pg as q;
use crate::ports::StoreError;
use crate::ports::secrets::{ResealReport, SealedSecrets, SecretInventory};

#[async_trait]
impl SealedSecrets for PgStore {
    async fn inventory(&self) -> Result<SecretInventory, StoreError> {
        q::inventory(&self.pool).await.map_err(classify)
    }

    async fn reseal(&self) -> Result<ResealReport, StoreError> {
        q::reseal(&self.pool, &self.pool, &self.sealer)
            .await
            .map_err(classify)
    }
}
