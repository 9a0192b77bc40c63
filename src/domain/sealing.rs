//! Secrets at rest: the sealed form of a stored secret, `enc:v1:<key id>:<base64url(nonce ‖
//! ciphertext ‖ tag)>`, made and opened with AES-256-GCM (`ring`). The nonce is the caller's
//! (see `services::sealer`), so everything here is a pure function of its inputs.
//!
//! A stored value that does not start with `enc:` is read as it is: rows written before
//! secrets were sealed, or by a process without a key, keep working. The key id names which
//! key sealed a value, so a process holding several keys (during a rotation) opens each with
//! the right one. The associated data binds a value to the prefix and to its place (an
//! endpoint's id, a project's provider), so a sealed value copied into another row does not
//! open there.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use sha2::{Digest, Sha256};

/// What every sealed value starts with; a value without `enc:` is clear text.
pub const PREFIX: &str = "enc:v1:";

/// The nonce a seal takes: 96 random bits, as AES-GCM wants.
pub type NonceBytes = [u8; NONCE_LEN];

/// Bytes of a key.
pub const KEY_BYTES: usize = 32;

/// One AES-256 key, with the id its sealed values carry. `Debug` shows only the id.
pub struct SealKey {
    id: String,
    key: LessSafeKey,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "must be {KEY_BYTES} bytes written as 64 hex digits or as base64 (`openssl rand -base64 32` makes one); got {0}"
)]
pub struct BadKey(String);

impl SealKey {
    /// A key as configured: 64 hex digits, or base64 (standard or URL-safe, padded or not) of
    /// 32 bytes. The error never repeats the text.
    pub fn parse(text: &str) -> Result<SealKey, BadKey> {
        let text = text.trim();
        let bytes = if text.len() == 2 * KEY_BYTES && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(text).map_err(|_| BadKey("invalid hex".into()))?
        } else {
            [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
                .iter()
                .find_map(|engine| engine.decode(text).ok())
                .ok_or_else(|| BadKey("neither hex nor base64".into()))?
        };
        if bytes.len() != KEY_BYTES {
            return Err(BadKey(format!("{} bytes", bytes.len())));
        }
        if bytes.iter().all(|&b| b == 0) {
            return Err(BadKey("all zeros".into()));
        }
        Ok(SealKey::from_bytes(&bytes))
    }

    fn from_bytes(bytes: &[u8]) -> SealKey {
        // The id is a hash of the key, so it needs no configuring and says nothing about it.
        let digest = Sha256::new()
            .chain_update(b"wagate secret key id\0")
            .chain_update(bytes)
            .finalize();
        SealKey {
            id: hex::encode(&digest[..4]),
            key: LessSafeKey::new(
                UnboundKey::new(&AES_256_GCM, bytes).expect("AES-256 takes a 32-byte key"),
            ),
        }
    }

    /// Eight hex digits naming the key in the values it seals.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealKey({}, <redacted>)", self.id)
    }
}

/// How a stored value is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form<'a> {
    Clear,
    Sealed { key_id: &'a str },
}

/// Whether `stored` is sealed, and with which key (as far as its prefix tells).
pub fn form(stored: &str) -> Form<'_> {
    match stored
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.split_once(':'))
    {
        Some((key_id, _)) => Form::Sealed { key_id },
        None if stored.starts_with("enc:") => Form::Sealed { key_id: "?" },
        None => Form::Clear,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error(
        "a stored secret is sealed with key {0}, which this process does not hold (set WAGATE_SECRET_KEY, or WAGATE_SECRET_KEY_PREVIOUS during a rotation)"
    )]
    UnknownKey(String),
    #[error(
        "a stored secret sealed with key {0} does not open: it was altered, or moved from another row"
    )]
    Corrupt(String),
    #[error("a stored secret starts with `enc:` but is not in a sealed form this version reads")]
    Unsupported,
}

/// The associated data: the header (`enc:v1:<id>:`) and the value's place.
fn aad(key_id: &str, context: &str) -> Vec<u8> {
    format!("{PREFIX}{key_id}:{context}").into_bytes()
}

/// `plain` sealed with `key` under `nonce`, for the place `context`. A nonce must never be
/// used twice with one key: give a fresh random one each time.
pub fn seal(key: &SealKey, nonce: NonceBytes, plain: &str, context: &str) -> String {
    let mut data = plain.as_bytes().to_vec();
    key.key
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad(&key.id, context)),
            &mut data,
        )
        .expect("a secret is far below AES-GCM's size limit");
    let mut out = Vec::with_capacity(NONCE_LEN + data.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&data);
    format!("{PREFIX}{}:{}", key.id, URL_SAFE_NO_PAD.encode(out))
}

/// The clear text of `stored`: itself when clear, else opened with whichever of `keys` sealed
/// it, for the place `context`.
pub fn open(keys: &[&SealKey], stored: &str, context: &str) -> Result<String, SealError> {
    if !stored.starts_with("enc:") {
        return Ok(stored.to_owned());
    }
    let (key_id, data) = stored
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.split_once(':'))
        .ok_or(SealError::Unsupported)?;
    let key = keys
        .iter()
        .find(|k| k.id == key_id)
        .ok_or_else(|| SealError::UnknownKey(key_id.to_owned()))?;
    let corrupt = || SealError::Corrupt(key_id.to_owned());
    let mut bytes = URL_SAFE_NO_PAD.decode(data).map_err(|_| corrupt())?;
    if bytes.len() < NONCE_LEN + AES_256_GCM.tag_len() {
        return Err(corrupt());
    }
    let mut sealed = bytes.split_off(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(&bytes).map_err(|_| corrupt())?;
    let plain = key
        .key
        .open_in_place(nonce, Aad::from(aad(key_id, context)), &mut sealed)
        .map_err(|_| corrupt())?;
    String::from_utf8(plain.to_vec()).map_err(|_| corrupt())
}

/// The place of an endpoint's signing secrets (current and previous share it: a secret
/// rotation moves one column into the other).
pub fn endpoint_context(endpoint_id: &str) -> String {
    format!("endpoint:{endpoint_id}")
}

/// The place of a project's credential for one BSP.
pub fn provider_context(project_id: &str, provider: &str) -> String {
    format!("provider:{project_id}:{provider}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn key(text: &str) -> SealKey {
        SealKey::parse(text).unwrap()
    }

    #[test]
    fn keys_parse_from_hex_or_base64_and_never_echo() {
        let from_hex = key(HEX);
        let bytes = hex::decode(HEX).unwrap();
        for text in [
            STANDARD.encode(&bytes),
            STANDARD_NO_PAD.encode(&bytes),
            URL_SAFE.encode(&bytes),
            URL_SAFE_NO_PAD.encode(&bytes),
            format!("  {HEX}\n"),
        ] {
            assert_eq!(key(&text).id(), from_hex.id(), "{text}");
        }
        assert_eq!(from_hex.id().len(), 8);
        let other = key(&"ab".repeat(32));
        assert_ne!(other.id(), from_hex.id());
        for bad in [
            "",
            "short",
            &"ab".repeat(31),
            &STANDARD.encode([7u8; 16]),
            &"00".repeat(32),
            "not base64 at all!",
        ] {
            let e = SealKey::parse(bad).unwrap_err().to_string();
            assert!(e.contains("32 bytes"), "{e}");
            assert!(
                bad.len() < 8 || !e.contains(bad),
                "the key is not echoed: {e}"
            );
        }
        let debug = format!("{from_hex:?}");
        assert!(
            debug.contains("<redacted>") && !debug.contains(HEX),
            "{debug}"
        );
    }

    #[test]
    fn seals_and_opens_with_the_right_key_and_place() {
        let k = key(HEX);
        let sealed = seal(&k, [9; NONCE_LEN], "whsec_abc", "endpoint:ep_1");
        assert!(
            sealed.starts_with(&format!("enc:v1:{}:", k.id())),
            "{sealed}"
        );
        assert!(!sealed.contains("whsec_abc"));
        assert_eq!(form(&sealed), Form::Sealed { key_id: k.id() });
        assert_eq!(open(&[&k], &sealed, "endpoint:ep_1").unwrap(), "whsec_abc");
        // A fresh nonce gives a different value for the same secret.
        let again = seal(&k, [10; NONCE_LEN], "whsec_abc", "endpoint:ep_1");
        assert_ne!(again, sealed);
        assert_eq!(open(&[&k], &again, "endpoint:ep_1").unwrap(), "whsec_abc");
        // Another row's place does not open it.
        assert_eq!(
            open(&[&k], &sealed, "endpoint:ep_2"),
            Err(SealError::Corrupt(k.id().into()))
        );
        // Nor does a key that did not seal it, even given the sealing key's id.
        let other = key(&"ab".repeat(32));
        assert_eq!(
            open(&[&other], &sealed, "endpoint:ep_1"),
            Err(SealError::UnknownKey(k.id().into()))
        );
        let forged = sealed.replacen(k.id(), other.id(), 1);
        assert_eq!(
            open(&[&other], &forged, "endpoint:ep_1"),
            Err(SealError::Corrupt(other.id().into()))
        );
        // With several keys, the one named opens it.
        assert_eq!(
            open(&[&other, &k], &sealed, "endpoint:ep_1").unwrap(),
            "whsec_abc"
        );
    }

    #[test]
    fn altered_or_truncated_values_do_not_open() {
        let k = key(HEX);
        let sealed = seal(&k, [1; NONCE_LEN], "token", "provider:acme:meta");
        let (head, data) = sealed.rsplit_once(':').unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(data).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let flipped = format!("{head}:{}", URL_SAFE_NO_PAD.encode(&bytes));
        for bad in [
            flipped,
            format!("{head}:{}", &data[..10]),
            format!("{head}:***"),
            format!("{head}:"),
        ] {
            assert_eq!(
                open(&[&k], &bad, "provider:acme:meta"),
                Err(SealError::Corrupt(k.id().into())),
                "{bad}"
            );
        }
        for odd in ["enc:v2:abc:def", "enc:", "enc:v1:nocolon"] {
            assert_eq!(form(odd), Form::Sealed { key_id: "?" }, "{odd}");
            assert_eq!(open(&[&k], odd, "x"), Err(SealError::Unsupported), "{odd}");
        }
    }

    #[test]
    fn clear_values_read_as_they_are() {
        assert_eq!(form("whsec_abc"), Form::Clear);
        assert_eq!(
            open(&[], "whsec_abc", "endpoint:ep_1").unwrap(),
            "whsec_abc"
        );
        assert_eq!(open(&[], "", "x").unwrap(), "");
        let k = key(HEX);
        let sealed = seal(&k, [0; NONCE_LEN], "", "x");
        assert_eq!(open(&[&k], &sealed, "x").unwrap(), "");
        assert!(matches!(
            open(&[], &sealed, "x"),
            Err(SealError::UnknownKey(_))
        ));
    }
}
