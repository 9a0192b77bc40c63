//! Projects (a customer of wagate), their business numbers and API keys.

use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::phone::{InvalidPhone, PhoneNumber};

/// A project id: 1 to 64 of `a-z`, `0-9`, `-`, `_`. The customer chooses it (the seed's
/// `project_owner_id`), so it is validated, not generated.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ProjectId(String);

impl ProjectId {
    pub fn parse(s: &str) -> Result<ProjectId, ProjectError> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if ok {
            Ok(ProjectId(s.to_owned()))
        } else {
            Err(ProjectError::InvalidId(s.to_owned()))
        }
    }

    /// For values read back from the store, which only ever holds parsed ids.
    pub fn from_trusted(s: String) -> ProjectId {
        ProjectId(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ProjectId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProjectError {
    #[error("project id `{0}` must be 1 to 64 characters of a-z, 0-9, '-' and '_'")]
    InvalidId(String),
    #[error("project name must be 1 to 200 characters, without control characters")]
    InvalidName,
    #[error("meta_phone_number_id must be 1 to 32 digits (the id Meta shows for the number)")]
    InvalidMetaId,
    #[error("a project needs at least one business phone number, and at most 100")]
    NoNumbers,
    #[error(transparent)]
    InvalidPhone(#[from] InvalidPhone),
}

/// One of a project's WhatsApp business numbers. Meta's Cloud API addresses a number by its
/// phone-number id, not by the number itself, so sending through Meta needs it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct BusinessNumber {
    pub number: PhoneNumber,
    pub meta_phone_number_id: Option<String>,
}

impl BusinessNumber {
    pub fn parse(number: &str, meta_phone_number_id: Option<&str>) -> Result<Self, ProjectError> {
        let number = PhoneNumber::parse(number)?;
        let meta_phone_number_id = match meta_phone_number_id {
            None => None,
            Some(id)
                if !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_digit()) =>
            {
                Some(id.to_owned())
            }
            Some(_) => return Err(ProjectError::InvalidMetaId),
        };
        Ok(BusinessNumber {
            number,
            meta_phone_number_id,
        })
    }
}

impl From<PhoneNumber> for BusinessNumber {
    fn from(number: PhoneNumber) -> BusinessNumber {
        BusinessNumber {
            number,
            meta_phone_number_id: None,
        }
    }
}

/// A validated request to create a project.
#[derive(Debug, Clone)]
pub struct NewProject {
    pub id: ProjectId,
    pub name: String,
    /// Sorted, one entry per number.
    pub numbers: Vec<BusinessNumber>,
}

impl NewProject {
    /// A project whose numbers are plain strings (no Meta ids).
    pub fn parse(id: &str, name: &str, numbers: &[String]) -> Result<NewProject, ProjectError> {
        let numbers = numbers
            .iter()
            .map(|n| BusinessNumber::parse(n, None))
            .collect::<Result<Vec<_>, _>>()?;
        NewProject::new(id, name, numbers)
    }

    pub fn new(
        id: &str,
        name: &str,
        mut numbers: Vec<BusinessNumber>,
    ) -> Result<NewProject, ProjectError> {
        let id = ProjectId::parse(id)?;
        let name = parse_name(name)?;
        if numbers.is_empty() || numbers.len() > 100 {
            return Err(ProjectError::NoNumbers);
        }
        numbers.sort();
        // Two spellings of one number collapse; the one that carries a Meta id wins.
        numbers.dedup_by(|later, kept| {
            let same = later.number == kept.number;
            if same && kept.meta_phone_number_id.is_none() {
                kept.meta_phone_number_id = later.meta_phone_number_id.take();
            }
            same
        });
        Ok(NewProject { id, name, numbers })
    }
}

/// 1 to 200 characters once trimmed, none of them control characters (a NUL cannot be stored
/// in PostgreSQL text, and a newline in a name breaks every log line that shows it).
fn parse_name(name: &str) -> Result<String, ProjectError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(ProjectError::InvalidName);
    }
    Ok(name.to_owned())
}

/// A project as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub id: ProjectId,
    pub name: String,
    /// Sorted by number.
    pub numbers: Vec<BusinessNumber>,
    pub created_at: super::time::Timestamp,
}

/// A project API key. Shown once at creation; only its hash is stored. The key carries 256 random
/// bits, so a plain SHA-256 (not a slow password hash) is enough to make the stored hash useless.
pub struct ApiKey(String);

impl ApiKey {
    pub fn generate() -> ApiKey {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        ApiKey(format!("wgk_{}", hex::encode(bytes)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> ApiKeyHash {
        ApiKeyHash::of(&self.0)
    }
}

/// The stored form of an API key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ApiKeyHash(String);

impl ApiKeyHash {
    pub fn of(presented: &str) -> ApiKeyHash {
        ApiKeyHash(hex::encode(Sha256::digest(presented.as_bytes())))
    }

    /// A hash read back from the store.
    pub fn from_stored(hash: String) -> ApiKeyHash {
        ApiKeyHash(hash)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_and_normalizes() {
        let p = NewProject::parse(
            "acme_1",
            " Acme ",
            &["+91 98123 45678".into(), "919812345678".into()],
        )
        .unwrap();
        assert_eq!(p.name, "Acme");
        assert_eq!(p.numbers.len(), 1, "spellings of one number collapse");
        assert!(NewProject::parse("a", "x\0y", &["+919812345678".into()]).is_err());
        let with_id = vec![
            BusinessNumber::parse("+919812345678", None).unwrap(),
            BusinessNumber::parse("919812345678", Some("106540352242922")).unwrap(),
        ];
        let p = NewProject::new("a", "x", with_id).unwrap();
        assert_eq!(p.numbers.len(), 1);
        assert_eq!(
            p.numbers[0].meta_phone_number_id.as_deref(),
            Some("106540352242922")
        );
        assert!(BusinessNumber::parse("+919812345678", Some("12ab")).is_err());
        assert!(NewProject::parse("Acme", "x", &["+919812345678".into()]).is_err());
        assert!(NewProject::parse("a", "", &["+919812345678".into()]).is_err());
        assert!(NewProject::parse("a", "x", &[]).is_err());
        assert!(NewProject::parse("a", "x", &["nope".into()]).is_err());
    }

    #[test]
    fn keys_hash_stably_and_differ() {
        let a = ApiKey::generate();
        let b = ApiKey::generate();
        assert_ne!(a.as_str(), b.as_str());
        assert_eq!(a.hash(), ApiKeyHash::of(a.as_str()));
        assert_ne!(a.hash(), b.hash());
        assert!(a.as_str().starts_with("wgk_"));
    }
}
