//! HMAC-SHA256 signatures: checks on what providers sign, the two signatures wagate puts on a
//! forwarded request (the seed's `X-Webhook-Signature` and Standard Webhooks'
//! `webhook-signature`), endpoints' shared secrets, and a receiver's verification of both.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Verifies Meta's `X-Hub-Signature-256: sha256=<hex>` over the exact body bytes, in constant time.
pub fn verify_meta_signature(app_secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    let Some(hex_sig) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let mut mac = HmacSha256::new_from_slice(app_secret).expect("HMAC takes keys of any length");
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// Hex HMAC-SHA256 of `body`, as Meta (and the seed's forwarder) sign.
pub fn hmac_sha256_hex(key: &[u8], body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Compares two secrets without leaking, through timing, how long a prefix matched.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // HMAC both under a fixed key: equal inputs give equal tags, and `verify_slice` compares in
    // constant time whatever the lengths of the originals.
    let tag = |x: &[u8]| {
        let mut m = HmacSha256::new_from_slice(b"wagate-compare").expect("any key length");
        m.update(x);
        m.finalize().into_bytes()
    };
    let mut m = HmacSha256::new_from_slice(b"wagate-compare").expect("any key length");
    m.update(a);
    m.verify_slice(&tag(b)).is_ok()
}

/// The prefix Standard Webhooks libraries strip before base64-decoding a secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// Random bytes in a generated secret (the issue asks for at least 24).
const GENERATED_SECRET_BYTES: usize = 32;

/// Bytes a customer-supplied secret may decode to: below 24 is guessable, above 64 is longer
/// than SHA-256's block, which HMAC would hash down anyway.
const SUPPLIED_SECRET_BYTES: std::ops::RangeInclusive<usize> = 24..=64;

/// Reads the key out of a stored secret as leniently as the Python Standard Webhooks library
/// does (padding optional), so a secret it accepts signs the same here.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a customer-supplied shared secret is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadSecret {
    #[error("the shared secret must start with `whsec_`")]
    MissingPrefix,
    #[error(
        "the part of the shared secret after `whsec_` must be standard base64 \
         (A-Z, a-z, 0-9, `+`, `/`, padded with `=`)"
    )]
    NotBase64,
    #[error("the shared secret must encode 24 to 64 bytes, not {0}")]
    Length(usize),
}

/// An endpoint's shared secret and the Standard Webhooks key it stands for.
///
/// `X-Webhook-Signature` is keyed by the whole string (`whsec_` included), as the seed signs;
/// `webhook-signature` by the base64-decoded part after `whsec_`, as every Standard Webhooks
/// library reads a secret. A stored secret without the prefix (one the seed's customers chose,
/// like `secret_for_hmac`), or one whose rest is not base64, keys both by its raw bytes: that
/// keeps old endpoints delivering, though a Standard Webhooks library cannot verify them.
#[derive(Clone)]
pub struct SigningSecret {
    text: String,
    key: Vec<u8>,
}

impl SigningSecret {
    /// A secret as the store holds it; never fails (see the type's rules for odd secrets).
    pub fn new(text: impl Into<String>) -> SigningSecret {
        let text = text.into();
        let key = text
            .strip_prefix(SECRET_PREFIX)
            .and_then(|rest| LENIENT.decode(rest).ok())
            .filter(|key| !key.is_empty())
            .unwrap_or_else(|| text.as_bytes().to_vec());
        SigningSecret { text, key }
    }

    /// A fresh secret: `whsec_` and standard padded base64 of 32 random bytes.
    pub fn generate() -> SigningSecret {
        let mut bytes = [0u8; GENERATED_SECRET_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        SigningSecret {
            text: format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes)),
            key: bytes.to_vec(),
        }
    }

    /// A secret a customer supplied: `whsec_` and standard, padded base64 of 24 to 64 bytes, so
    /// every Standard Webhooks library (some insist on padding) reads it as wagate does.
    pub fn parse(supplied: &str) -> Result<SigningSecret, BadSecret> {
        let rest = supplied
            .strip_prefix(SECRET_PREFIX)
            .ok_or(BadSecret::MissingPrefix)?;
        let key = STANDARD.decode(rest).map_err(|_| BadSecret::NotBase64)?;
        if !SUPPLIED_SECRET_BYTES.contains(&key.len()) {
            return Err(BadSecret::Length(key.len()));
        }
        Ok(SigningSecret {
            text: supplied.to_owned(),
            key,
        })
    }

    /// The secret as stored and shown to its owner (once, on create and rotate).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// `X-Webhook-Signature`: hex HMAC-SHA256 of the exact body bytes, keyed by the whole string.
    pub fn seed_signature(&self, body: &[u8]) -> String {
        hmac_sha256_hex(self.text.as_bytes(), body)
    }

    /// One `webhook-signature` entry: `v1,` and base64 HMAC-SHA256 of `{id}.{timestamp}.{body}`.
    pub fn standard_signature(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        format!(
            "v1,{}",
            STANDARD.encode(
                self.standard_mac(msg_id, timestamp, body)
                    .finalize()
                    .into_bytes()
            )
        )
    }

    fn standard_mac(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }
}

/// Secrets end up in logs through `{:?}`; this one shows only that it is there.
impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret(..)")
    }
}

/// The `webhook-signature` value: one `v1,` entry per active secret, space-separated, in the
/// order given (newest first during a rotation), so a receiver holding either secret verifies.
pub fn standard_signature_header(
    secrets: &[SigningSecret],
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    secrets
        .iter()
        .map(|s| s.standard_signature(msg_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A receiver's check of `X-Webhook-Signature` (hex, either case), in constant time.
pub fn verify_seed_signature(secret: &SigningSecret, body: &[u8], header: &str) -> bool {
    let Ok(sig) = hex::decode(header.trim()) else {
        return false;
    };
    let mut mac =
        HmacSha256::new_from_slice(secret.text.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// Why a Standard Webhooks signature does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("`webhook-timestamp` is not a number of seconds")]
    BadTimestamp,
    #[error("the message is older than the tolerance allows")]
    TooOld,
    #[error("the message is dated further ahead than the tolerance allows")]
    TooNew,
    #[error("no `v1` signature matches")]
    NoMatch,
}

/// A receiver's check of the Standard Webhooks trio: the timestamp within `tolerance` of `now`
/// (Unix seconds) either way, then any `v1,` entry of `signature_header` matching, compared in
/// constant time. Entries of other versions are skipped, as the specification asks.
pub fn verify_standard_signature(
    secret: &SigningSecret,
    msg_id: &str,
    timestamp_header: &str,
    signature_header: &str,
    body: &[u8],
    now: i64,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    let timestamp: i64 = timestamp_header
        .trim()
        .parse()
        .map_err(|_| VerifyError::BadTimestamp)?;
    let tolerance = i64::try_from(tolerance.as_secs()).unwrap_or(i64::MAX);
    if timestamp < now.saturating_sub(tolerance) {
        return Err(VerifyError::TooOld);
    }
    if timestamp > now.saturating_add(tolerance) {
        return Err(VerifyError::TooNew);
    }
    let matched = signature_header
        .split(' ')
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|sig| STANDARD.decode(sig).ok())
        .any(|sig| {
            secret
                .standard_mac(msg_id, timestamp, body)
                .verify_slice(&sig)
                .is_ok()
        });
    if matched {
        Ok(())
    } else {
        Err(VerifyError::NoMatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_signature() {
        let body = br#"{"object":"whatsapp_business_account"}"#;
        let good = format!("sha256={}", hmac_sha256_hex(b"app-secret", body));
        assert!(verify_meta_signature(b"app-secret", body, Some(&good)));
        assert!(!verify_meta_signature(b"other", body, Some(&good)));
        assert!(!verify_meta_signature(b"app-secret", b"{}", Some(&good)));
        assert!(!verify_meta_signature(b"app-secret", body, None));
        assert!(!verify_meta_signature(
            b"app-secret",
            body,
            Some("sha256=zz")
        ));
        assert!(!verify_meta_signature(
            b"app-secret",
            body,
            Some(&good[7..])
        ));
    }

    #[test]
    fn known_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn compares() {
        assert!(constant_time_eq(b"token", b"token"));
        assert!(!constant_time_eq(b"token", b"tokem"));
        assert!(!constant_time_eq(b"token", b"token2"));
        assert!(!constant_time_eq(b"", b"x"));
    }

    // Fixed vectors. The `v1,` strings were made with the official Python library
    // (`pip install standardwebhooks`, version 1.1.0):
    //     from standardwebhooks.webhooks import Webhook
    //     Webhook(NEW).sign(MSG_ID, datetime.fromtimestamp(TS, tz=timezone.utc), BODY)
    // and likewise for OLD, and for PLAIN as `Webhook(PLAIN.encode())` (raw bytes as the key:
    // the library would base64-decode a string). The hex strings with Python's
    // `hmac.new(secret.encode(), BODY.encode(), hashlib.sha256).hexdigest()`.
    /// `whsec_` + base64 of the bytes 0 to 31.
    const NEW: &str = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    /// `whsec_` + base64 of the bytes 100 to 123 (24 bytes: no padding).
    const OLD: &str = "whsec_ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7";
    const PLAIN: &str = "secret_for_hmac";
    const MSG_ID: &str = "01936f5e-8c2a-7b3e-9f10-2a3b4c5d6e7f";
    const TS: i64 = 1_732_700_300;
    /// Not ASCII on purpose: the signature covers UTF-8 bytes.
    const BODY: &str = r#"{"event_type":"meta.delivery","event_id":"01936f5e-8c2a-7b3e-9f10-2a3b4c5d6e7f","data":{"status":"delivered","note":"café"}}"#;
    const STD_NEW: &str = "v1,OJ0qo5QPWmCphQCTWN9HI20DjDJSP04vIjgoX04bfvc=";
    const STD_OLD: &str = "v1,zn0kvLUwuvEgKJ0R+ZN4L7soz8uYqNBFbMPCwVs30GY=";
    const STD_PLAIN: &str = "v1,swrDtYvVrAMXiInFAAPA/0njfgosB/4Ow6sntJeoRsM=";
    const SEED_NEW: &str = "fcd3e148dada5ade8a7b9e5f8bac075542f0f206518b72d2ca4f911136d37e0c";
    const SEED_PLAIN: &str = "017aad3cc68ef2421e00d53a40cdb3cf70e529bcdaefd76908f3561cf411e060";

    fn body() -> &'static [u8] {
        BODY.as_bytes()
    }

    #[test]
    fn standard_webhooks_vectors() {
        let new = SigningSecret::new(NEW);
        let old = SigningSecret::new(OLD);
        assert_eq!(new.standard_signature(MSG_ID, TS, body()), STD_NEW);
        assert_eq!(old.standard_signature(MSG_ID, TS, body()), STD_OLD);
        assert_eq!(
            SigningSecret::new(PLAIN).standard_signature(MSG_ID, TS, body()),
            STD_PLAIN,
            "a secret without the prefix keys by its raw bytes"
        );
        assert_eq!(
            standard_signature_header(&[new.clone(), old.clone()], MSG_ID, TS, body()),
            format!("{STD_NEW} {STD_OLD}"),
            "one entry per active secret, newest first"
        );
        assert_eq!(
            standard_signature_header(&[new], MSG_ID, TS, body()),
            STD_NEW
        );
    }

    #[test]
    fn seed_vectors() {
        assert_eq!(SigningSecret::new(NEW).seed_signature(body()), SEED_NEW);
        assert_eq!(SigningSecret::new(PLAIN).seed_signature(body()), SEED_PLAIN);
    }

    #[test]
    fn stored_secrets_are_read_leniently() {
        // Unpadded, as the Python library accepts it: the same key.
        let unpadded = SigningSecret::new(NEW.trim_end_matches('='));
        assert_eq!(unpadded.standard_signature(MSG_ID, TS, body()), STD_NEW);
        // A prefix followed by something that is not base64 keys by the whole string.
        assert_eq!(
            SigningSecret::new("whsec_not base64!").key,
            b"whsec_not base64!"
        );
        assert_eq!(SigningSecret::new("whsec_").key, b"whsec_");
    }

    #[test]
    fn generated_secrets_are_standard() {
        let a = SigningSecret::generate();
        let b = SigningSecret::generate();
        assert_ne!(a.as_str(), b.as_str());
        // What a customer would paste back is accepted, and means the same key.
        let again = SigningSecret::parse(a.as_str()).unwrap();
        assert_eq!(again.key, a.key);
        assert_eq!(a.key.len(), 32);
        assert_eq!(SigningSecret::new(a.as_str()).key, a.key);
        assert!(a.as_str().starts_with("whsec_") && a.as_str().ends_with('='));
        assert_eq!(format!("{a:?}"), "SigningSecret(..)", "never printed");
    }

    #[test]
    fn supplied_secrets_are_validated() {
        assert_eq!(SigningSecret::parse(NEW).unwrap().as_str(), NEW);
        assert_eq!(SigningSecret::parse(OLD).unwrap().key.len(), 24);
        assert_eq!(
            SigningSecret::parse(PLAIN).unwrap_err(),
            BadSecret::MissingPrefix
        );
        for bad in [
            "whsec_",
            "whsec_not base64!",
            "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", // padding missing
            "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8==", // too much padding
            "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh-_", // URL-safe alphabet
        ] {
            let got = SigningSecret::parse(bad).map(|s| s.key.len());
            assert!(
                matches!(got, Err(BadSecret::NotBase64 | BadSecret::Length(0))),
                "{bad}: {got:?}"
            );
        }
        let of = |n: usize| format!("whsec_{}", STANDARD.encode(vec![7u8; n]));
        assert_eq!(
            SigningSecret::parse(&of(23)).unwrap_err(),
            BadSecret::Length(23)
        );
        assert!(SigningSecret::parse(&of(24)).is_ok());
        assert!(SigningSecret::parse(&of(64)).is_ok());
        assert_eq!(
            SigningSecret::parse(&of(65)).unwrap_err(),
            BadSecret::Length(65)
        );
        assert!(
            BadSecret::NotBase64.to_string().contains("base64"),
            "the message says what is wrong"
        );
    }

    #[test]
    fn receivers_verify_the_seed_header() {
        let secret = SigningSecret::new(NEW);
        assert!(verify_seed_signature(&secret, body(), SEED_NEW));
        assert!(verify_seed_signature(
            &secret,
            body(),
            &SEED_NEW.to_uppercase()
        ));
        assert!(!verify_seed_signature(&secret, b"{}", SEED_NEW));
        assert!(!verify_seed_signature(
            &SigningSecret::new(OLD),
            body(),
            SEED_NEW
        ));
        assert!(!verify_seed_signature(&secret, body(), &SEED_NEW[2..]));
        assert!(!verify_seed_signature(&secret, body(), "zz"));
        assert!(!verify_seed_signature(&secret, body(), ""));
    }

    #[test]
    fn receivers_verify_standard_webhooks() {
        let new = SigningSecret::new(NEW);
        let old = SigningSecret::new(OLD);
        let five_min = Duration::from_secs(300);
        let check = |secret: &SigningSecret, ts: &str, sig: &str, now: i64| {
            verify_standard_signature(secret, MSG_ID, ts, sig, body(), now, five_min)
        };
        let both = format!("{STD_NEW} {STD_OLD}");
        assert_eq!(check(&new, "1732700300", STD_NEW, TS), Ok(()));
        assert_eq!(check(&new, "1732700300", &both, TS), Ok(()));
        assert_eq!(check(&old, "1732700300", &both, TS), Ok(()), "rotation");
        assert_eq!(
            check(&old, "1732700300", STD_NEW, TS),
            Err(VerifyError::NoMatch)
        );
        // Other versions are skipped; garbage entries do not hide a good one.
        let mixed = format!("v2,abc v1,!!! {STD_OLD}");
        assert_eq!(check(&old, "1732700300", &mixed, TS), Ok(()));
        assert_eq!(
            check(
                &new,
                "1732700300",
                "v2,OJ0qo5QPWmCphQCTWN9HI20DjDJSP04vIjgoX04bfvc=",
                TS
            ),
            Err(VerifyError::NoMatch)
        );
        // The timestamp is signed: moving it breaks the signature.
        assert_eq!(
            check(&new, "1732700301", STD_NEW, TS),
            Err(VerifyError::NoMatch)
        );
        // Tolerance, both ways, bounds included.
        assert_eq!(check(&new, "1732700300", STD_NEW, TS + 300), Ok(()));
        assert_eq!(check(&new, "1732700300", STD_NEW, TS - 300), Ok(()));
        assert_eq!(
            check(&new, "1732700300", STD_NEW, TS + 301),
            Err(VerifyError::TooOld)
        );
        assert_eq!(
            check(&new, "1732700300", STD_NEW, TS - 301),
            Err(VerifyError::TooNew)
        );
        assert_eq!(
            check(&new, "soon", STD_NEW, TS),
            Err(VerifyError::BadTimestamp)
        );
        // The body is signed byte for byte.
        assert_eq!(
            verify_standard_signature(
                &new,
                MSG_ID,
                "1732700300",
                STD_NEW,
                BODY.replace("café", "cafe").as_bytes(),
                TS,
                five_min
            ),
            Err(VerifyError::NoMatch)
        );
    }
}
