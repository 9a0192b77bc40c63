//! The breakers' keys in the shared cache: named by a hash of the URL (a URL may hold a
//! customer's token, and has no length limit a key should carry), and the open key's value.

use sha2::{Digest, Sha256};

/// The shared open key's value: when it half-opens, and how many failed probes re-opened it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct OpenKey {
    pub(super) until: i64,
    pub(super) reopens: u32,
}

impl OpenKey {
    pub(super) fn parse(s: &str) -> Option<OpenKey> {
        let (until, reopens) = s.split_once(':').unwrap_or((s, "0"));
        Some(OpenKey {
            until: until.parse().ok()?,
            reopens: reopens.parse().unwrap_or(0),
        })
    }

    pub(super) fn render(self) -> String {
        format!("{}:{}", self.until, self.reopens)
    }
}

fn url_hash(url: &str) -> String {
    hex::encode(&Sha256::digest(url.as_bytes())[..8])
}

pub(super) fn open_key(url: &str) -> String {
    format!("breaker:open:{}", url_hash(url))
}

pub(super) fn probe_key(url: &str) -> String {
    format!("breaker:probe:{}", url_hash(url))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_key_carries_its_reopen_count_and_reads_the_older_bare_form() {
        let k = OpenKey {
            until: 1_700_000_000_000,
            reopens: 3,
        };
        assert_eq!(OpenKey::parse(&k.render()), Some(k));
        // Written by a process from before the count (a rolling upgrade): a first open.
        assert_eq!(
            OpenKey::parse("1700000000000"),
            Some(OpenKey {
                until: 1_700_000_000_000,
                reopens: 0
            })
        );
        assert_eq!(OpenKey::parse("soon"), None);
    }
}
