//! Which project a business number or an API key belongs to: memory → Redis → store, with
//! negative caching (the seed's ProjectLookupCache).

use std::collections::HashMap;
use std::time::Duration;

use super::Tiers;
use crate::domain::phone::PhoneNumber;
use crate::domain::project::{ApiKeyHash, ProjectId};
use crate::ports::{Store, StoreError};

/// Absences are cached too, so a stream of webhooks for an unregistered number does not
/// become a stream of store queries. Short-lived, and with Redis kept only there, where the
/// process that creates the project can delete them.
const ABSENT: &str = Tiers::ABSENT;

pub struct ProjectLookup {
    store: std::sync::Arc<dyn Store>,
    tiers: Tiers,
    negative_ttl: Duration,
}

fn number_key(n: &PhoneNumber) -> String {
    format!("num:{n}")
}

fn api_key_key(h: &ApiKeyHash) -> String {
    format!("key:{}", h.as_str())
}

impl ProjectLookup {
    pub fn new(
        store: std::sync::Arc<dyn Store>,
        tiers: Tiers,
        negative_ttl: Duration,
    ) -> ProjectLookup {
        ProjectLookup {
            store,
            tiers,
            negative_ttl,
        }
    }

    /// Resolves many numbers at once: one round trip per cache layer, then the store for what
    /// no layer knew.
    pub async fn by_numbers(
        &self,
        numbers: &[&PhoneNumber],
    ) -> Result<HashMap<PhoneNumber, Option<ProjectId>>, StoreError> {
        let keys: Vec<String> = numbers.iter().map(|n| number_key(n)).collect();
        let cached = self.tiers.get_many("project_lookup", &keys).await;
        let mut out = HashMap::with_capacity(numbers.len());
        let (mut found, mut absent) = (Vec::new(), Vec::new());
        for ((n, key), hit) in numbers.iter().zip(keys).zip(cached) {
            let project = match hit {
                Some(v) if v == ABSENT => None,
                Some(v) => Some(ProjectId::from_trusted(v)),
                None => {
                    let p = self.store.project_by_number(n).await?;
                    match &p {
                        Some(id) => found.push((key, id.to_string())),
                        None => absent.push((key, ABSENT.to_owned())),
                    }
                    p
                }
            };
            out.insert((*n).clone(), project);
        }
        self.tiers.set_many(&found, None).await;
        self.tiers
            .set_invalidatable(&absent, Some(self.negative_ttl))
            .await;
        Ok(out)
    }

    pub async fn by_key(&self, hash: &ApiKeyHash) -> Result<Option<ProjectId>, StoreError> {
        let key = api_key_key(hash);
        let cached = self
            .tiers
            .get_many("api_key", std::slice::from_ref(&key))
            .await;
        match cached.into_iter().next().flatten() {
            Some(v) if v == ABSENT => Ok(None),
            Some(v) => Ok(Some(ProjectId::from_trusted(v))),
            None => {
                // Keys are rotated, and the old one must stop working at once everywhere:
                // a key is cached only where a rotation can invalidate it.
                let p = self.store.project_by_key(hash).await?;
                match &p {
                    Some(id) => {
                        let found = [(key, id.to_string())];
                        self.tiers.set_invalidatable(&found, None).await
                    }
                    None => {
                        let absent = [(key, ABSENT.to_owned())];
                        self.tiers
                            .set_invalidatable(&absent, Some(self.negative_ttl))
                            .await
                    }
                }
                Ok(p)
            }
        }
    }

    /// Drops cached answers for these numbers (just registered: a cached "absent" must not hide
    /// them; or just removed). Other processes' memory may keep a removed number's old
    /// project for up to the memory TTL; an added one is visible everywhere at once, since
    /// absences are never kept where this cannot reach them.
    pub async fn forget_numbers(&self, numbers: &[PhoneNumber]) {
        for n in numbers {
            self.tiers.delete(&number_key(n)).await;
        }
    }

    /// Drops a key's cached answer (a key just issued, or just replaced).
    pub async fn forget_key(&self, key: &ApiKeyHash) {
        self.tiers.delete(&api_key_key(key)).await;
    }
}
