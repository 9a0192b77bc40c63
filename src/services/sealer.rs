//! The one place stored secrets are sealed and opened (webhook signing secrets, BSP
//! credentials): the store adapters call it on every write and read of those columns, the
//! endpoint cache on what it keeps in Redis. Without a key it stores in clear, as before.
//!
//! It holds the current key (`WAGATE_SECRET_KEY`), which seals, and the previous ones
//! (`WAGATE_SECRET_KEY_PREVIOUS`), which only open, so a rotation can run while the gateway
//! serves. The nonces come from the system's secure random source.

use ring::rand::{SecureRandom, SystemRandom};

use crate::domain::sealing::{self, Form, NonceBytes, SealError, SealKey};

pub struct Sealer {
    current: Option<SealKey>,
    previous: Vec<SealKey>,
    rng: SystemRandom,
}

impl Sealer {
    /// Stores secrets in clear (no key configured); still reads values written in clear.
    pub fn clear() -> Sealer {
        Sealer {
            current: None,
            previous: Vec::new(),
            rng: SystemRandom::new(),
        }
    }

    /// Seals with `current`; opens with it or any of `previous`.
    pub fn new(current: SealKey, previous: Vec<SealKey>) -> Sealer {
        let previous = previous
            .into_iter()
            .filter(|k| k.id() != current.id())
            .collect();
        Sealer {
            current: Some(current),
            previous,
            rng: SystemRandom::new(),
        }
    }

    /// `plain` as it is to be stored at `context` (see `sealing::*_context`).
    pub fn seal(&self, plain: &str, context: &str) -> String {
        match &self.current {
            Some(key) => {
                let mut nonce: NonceBytes = Default::default();
                self.rng
                    .fill(&mut nonce)
                    .expect("the system's random source does not fail once it has started");
                sealing::seal(key, nonce, plain, context)
            }
            None => plain.to_owned(),
        }
    }

    /// The clear text of a stored value.
    pub fn open(&self, stored: &str, context: &str) -> Result<String, SealError> {
        let keys: Vec<&SealKey> = self.current.iter().chain(&self.previous).collect();
        sealing::open(&keys, stored, context)
    }

    /// Whether `stored` is already as this sealer would write it: sealed with the current key
    /// (or, without a key, anything: nothing is re-sealed then).
    pub fn is_current(&self, stored: &str) -> bool {
        match (&self.current, sealing::form(stored)) {
            (None, _) => true,
            (Some(key), Form::Sealed { key_id }) => key_id == key.id(),
            (Some(_), Form::Clear) => false,
        }
    }

    /// Whether this sealer opens what the key `key_id` sealed.
    pub fn holds(&self, key_id: &str) -> bool {
        self.current
            .iter()
            .chain(&self.previous)
            .any(|k| k.id() == key_id)
    }

    /// The id of the key that seals, if any.
    pub fn current_key_id(&self) -> Option<&str> {
        self.current.as_ref().map(SealKey::id)
    }

    /// How secrets are stored, for the startup log.
    pub fn describe(&self) -> String {
        match &self.current {
            None => "clear (WAGATE_SECRET_KEY is not set)".into(),
            Some(key) if self.previous.is_empty() => {
                format!("sealed with AES-256-GCM, key {}", key.id())
            }
            Some(key) => format!(
                "sealed with AES-256-GCM, key {}; also opening keys {}",
                key.id(),
                self.previous
                    .iter()
                    .map(SealKey::id)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// A new random key, base64, for `WAGATE_SECRET_KEY`.
pub fn generate_key() -> String {
    use base64::Engine;
    let mut key = [0u8; sealing::KEY_BYTES];
    SystemRandom::new()
        .fill(&mut key)
        .expect("the system's random source does not fail once it has started");
    base64::engine::general_purpose::STANDARD.encode(key)
}

impl Default for Sealer {
    fn default() -> Sealer {
        Sealer::clear()
    }
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> SealKey {
        SealKey::parse(&hex::encode([byte; 32])).unwrap()
    }

    #[test]
    fn seals_with_fresh_nonces_and_opens_with_current_or_previous_keys() {
        let old = Sealer::new(key(1), vec![]);
        let sealed_old = old.seal("whsec_x", "endpoint:ep_1");
        assert_ne!(
            sealed_old,
            old.seal("whsec_x", "endpoint:ep_1"),
            "fresh nonce"
        );
        assert!(old.is_current(&sealed_old));
        let rotating = Sealer::new(key(2), vec![key(1), key(2)]);
        assert_eq!(
            rotating.open(&sealed_old, "endpoint:ep_1").unwrap(),
            "whsec_x"
        );
        assert!(!rotating.is_current(&sealed_old));
        assert!(!rotating.is_current("whsec_x"), "clear values get sealed");
        let sealed_new = rotating.seal("whsec_x", "endpoint:ep_1");
        assert!(rotating.is_current(&sealed_new));
        assert!(rotating.describe().contains(key(1).id()));
        assert!(rotating.holds(key(1).id()) && !old.holds(key(2).id()));
        let generated = generate_key();
        assert_ne!(generated, generate_key());
        assert!(SealKey::parse(&generated).is_ok());
        // The old key alone cannot read what the new one sealed.
        assert!(matches!(
            old.open(&sealed_new, "endpoint:ep_1"),
            Err(SealError::UnknownKey(_))
        ));
    }

    #[test]
    fn without_a_key_values_stay_clear() {
        let clear = Sealer::clear();
        assert_eq!(clear.seal("tok", "provider:a:meta"), "tok");
        assert_eq!(clear.open("tok", "provider:a:meta").unwrap(), "tok");
        assert!(clear.is_current("tok"));
        assert!(clear.describe().starts_with("clear"));
        let sealed = Sealer::new(key(1), vec![]).seal("tok", "provider:a:meta");
        assert!(clear.open(&sealed, "provider:a:meta").is_err());
    }
}
