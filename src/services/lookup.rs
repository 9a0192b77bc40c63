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

fn meta_id_key(id: &str) -> String {
    format!("pnid:{id}")
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

    /// Resolves Meta phone-number ids to the number that registered each and its project, as
    /// [`by_numbers`](Self::by_numbers) does numbers (cached the same way, absences too).
    pub async fn by_meta_ids(
        &self,
        ids: &[&str],
    ) -> Result<HashMap<String, Option<(ProjectId, PhoneNumber)>>, StoreError> {
        let keys: Vec<String> = ids.iter().map(|id| meta_id_key(id)).collect();
        let cached = self.tiers.get_many("project_lookup", &keys).await;
        let mut out = HashMap::with_capacity(ids.len());
        let (mut found, mut absent) = (Vec::new(), Vec::new());
        for ((id, key), hit) in ids.iter().zip(keys).zip(cached) {
            let number = match hit.as_deref().map(|v| v.split_once(' ')) {
                Some(Some((project, number))) => Some((
                    ProjectId::from_trusted(project.to_owned()),
                    PhoneNumber::from_trusted(number.to_owned()),
                )),
                // An absence, or a value this version does not write: ask the store.
                Some(None) if hit.as_deref() == Some(ABSENT) => None,
                _ => {
                    let n = self.store.number_by_meta_id(id).await?;
                    match &n {
                        Some((project, number)) => found.push((key, format!("{project} {number}"))),
                        None => absent.push((key, ABSENT.to_owned())),
                    }
                    n
                }
            };
            out.insert((*id).to_owned(), number);
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

    /// Drops cached answers for these Meta phone-number ids (just registered, or their number
    /// just removed), with the same reach as [`forget_numbers`](Self::forget_numbers).
    pub async fn forget_meta_ids(&self, ids: &[&str]) {
        for id in ids {
            self.tiers.delete(&meta_id_key(id)).await;
        }
    }

    /// Drops a key's cached answer (a key just issued, or just replaced).
    pub async fn forget_key(&self, key: &ApiKeyHash) {
        self.tiers.delete(&api_key_key(key)).await;
    }
}
