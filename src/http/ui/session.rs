//! The dashboard's session cookie: who signed in (a project, or the admin), until when, the
//! hash of the key they signed in with, and a nonce, signed with HMAC-SHA256. Nothing is kept
//! on the server but sign-outs (`signed_out`), so any process of a set that shares
//! `WAGATE_SECRET_KEY` accepts it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::domain::project::ProjectId;

pub const COOKIE: &str = "wagate_ui";
/// How long a session lasts after sign-in.
pub const LIFETIME_SECS: i64 = 8 * 3600;

/// The key sessions are signed with.
#[derive(Clone)]
pub struct SessionKey([u8; 32]);

impl SessionKey {
    /// Derived from `WAGATE_SECRET_KEY` (so that every process of a set, and a restart, accept
    /// the same cookies); random when none is set, and then a restart signs everyone out.
    pub fn new(secret: Option<&str>) -> SessionKey {
        match secret {
            Some(s) => {
                let mut mac = Hmac::<Sha256>::new_from_slice(s.as_bytes()).expect("any key length");
                mac.update(b"wagate dashboard session v1");
                SessionKey(mac.finalize().into_bytes().into())
            }
            None => SessionKey(rand::random()),
        }
    }

    fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("any key length");
        for p in parts {
            mac.update(p);
            mac.update(b"\x00");
        }
        mac.finalize().into_bytes().into()
    }
}

/// Who a session acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    Project(ProjectId),
    Admin,
}

#[derive(Debug, Clone)]
pub struct Session {
    pub who: Who,
    pub expires: i64,
    /// SHA-256 (hex) of the API key or admin token signed in with: a rotated key no longer
    /// hashes to it, which ends the session.
    pub key_hash: String,
    pub nonce: String,
}

/// SHA-256 hex of a key or token, as stored for API keys.
pub fn key_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

impl Session {
    pub fn new(who: Who, key_hash: String, now: i64) -> Session {
        Session {
            who,
            expires: now + LIFETIME_SECS,
            key_hash,
            nonce: B64.encode(rand::random::<[u8; 16]>()),
        }
    }

    fn payload(&self) -> String {
        let who = match &self.who {
            Who::Project(p) => format!("p:{p}"),
            Who::Admin => "a:".to_owned(),
        };
        format!("{who}|{}|{}|{}", self.expires, self.key_hash, self.nonce)
    }

    /// The cookie value: `base64(payload).base64(hmac)`.
    pub fn encode(&self, key: &SessionKey) -> String {
        let payload = self.payload();
        let mac = key.mac(&[b"session", payload.as_bytes()]);
        format!("{}.{}", B64.encode(payload), B64.encode(mac))
    }

    /// The session a cookie value carries, if its signature is ours and it has not expired.
    pub fn decode(value: &str, key: &SessionKey, now: i64) -> Option<Session> {
        let (payload, mac) = value.split_once('.')?;
        let payload = String::from_utf8(B64.decode(payload).ok()?).ok()?;
        let mac = B64.decode(mac).ok()?;
        let expected = key.mac(&[b"session", payload.as_bytes()]);
        if !crate::domain::signing::constant_time_eq(&mac, &expected) {
            return None;
        }
        let mut fields = payload.split('|');
        let who = match fields.next()?.split_once(':')? {
            ("p", id) => Who::Project(ProjectId::parse(id).ok()?),
            ("a", "") => Who::Admin,
            _ => return None,
        };
        let expires: i64 = fields.next()?.parse().ok()?;
        let key_hash = fields.next()?.to_owned();
        let nonce = fields.next()?.to_owned();
        if fields.next().is_some() || expires <= now {
            return None;
        }
        Some(Session {
            who,
            expires,
            key_hash,
            nonce,
        })
    }

    /// The CSRF token of this session's forms: bound to its nonce, so it dies with the session.
    pub fn csrf(&self, key: &SessionKey) -> String {
        B64.encode(key.mac(&[b"csrf", self.nonce.as_bytes()]))
    }

    pub fn csrf_ok(&self, key: &SessionKey, presented: &str) -> bool {
        crate::domain::signing::constant_time_eq(presented.as_bytes(), self.csrf(key).as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(id: &str) -> Who {
        Who::Project(ProjectId::parse(id).unwrap())
    }

    #[test]
    fn a_session_survives_its_cookie_and_nothing_else_does() {
        let key = SessionKey::new(Some("secret"));
        let s = Session::new(project("acme"), key_hash("k"), 1_000);
        let cookie = s.encode(&key);
        let back = Session::decode(&cookie, &key, 1_001).unwrap();
        assert_eq!(back.who, project("acme"));
        assert_eq!(back.key_hash, key_hash("k"));
        // Another key, a tampered payload, an expired session: refused.
        assert!(Session::decode(&cookie, &SessionKey::new(Some("other")), 1_001).is_none());
        let forged = Session {
            who: project("other"),
            ..s.clone()
        };
        let (_, mac) = cookie.split_once('.').unwrap();
        let (payload, _) = forged
            .encode(&key)
            .split_once('.')
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .unwrap();
        assert!(Session::decode(&format!("{payload}.{mac}"), &key, 1_001).is_none());
        assert!(Session::decode(&cookie, &key, 1_000 + LIFETIME_SECS).is_none());
    }

    #[test]
    fn the_csrf_token_belongs_to_one_session() {
        let key = SessionKey::new(None);
        let a = Session::new(Who::Admin, key_hash("t"), 0);
        let b = Session::new(Who::Admin, key_hash("t"), 0);
        assert!(a.csrf_ok(&key, &a.csrf(&key)));
        assert!(!b.csrf_ok(&key, &a.csrf(&key)));
    }
}
