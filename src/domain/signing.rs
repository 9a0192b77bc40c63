//! HMAC-SHA256 checks on what providers sign, and constant-time comparison of secrets.

use hmac::{Hmac, KeyInit, Mac};
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
}
