//! Values derived from the settings: parsed lists, resolved defaults, budgets.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::Config;
use crate::domain::sealing::{BadKey, SealKey};

impl Config {
    /// The store URL with the embedded default filled in.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("wagate.db").display()))
    }

    /// The forwarder's retry schedule, parsed.
    pub fn retry_schedule(
        &self,
    ) -> Result<crate::domain::delivery::RetrySchedule, crate::domain::delivery::BadSchedule> {
        crate::domain::delivery::RetrySchedule::parse(&self.forwarder_retry_schedule)
    }

    /// `send_rate_overrides`, parsed: (number, messages per second).
    pub fn send_rates(&self) -> Result<Vec<(crate::domain::phone::PhoneNumber, u32)>, String> {
        let mut out = Vec::new();
        for item in self.send_rate_overrides.split(',').map(str::trim) {
            if item.is_empty() {
                continue;
            }
            let (number, rate) = item
                .split_once('=')
                .ok_or_else(|| format!("`{item}` is not NUMBER=RATE"))?;
            let number =
                crate::domain::phone::PhoneNumber::parse(number).map_err(|e| e.to_string())?;
            let rate: u32 = rate
                .trim()
                .parse()
                .ok()
                .filter(|r| (1..=10_000).contains(r))
                .ok_or_else(|| format!("`{rate}` is not a rate from 1 to 10000"))?;
            out.push((number, rate));
        }
        Ok(out)
    }

    /// The server-wide settings of one BSP (a project's own override them field by field).
    pub fn provider_defaults(
        &self,
        provider: crate::domain::providers::send::SendProvider,
    ) -> crate::domain::providers::send::ProviderSettings {
        use crate::domain::providers::send::{ProviderSettings, SendProvider};
        let secret = |s: &Option<SecretString>| s.as_ref().map(|s| s.expose_secret().to_owned());
        match provider {
            SendProvider::Meta => ProviderSettings {
                base_url: self.meta_base_url.clone(),
                credential: secret(&self.meta_token),
                api_version: self.meta_api_version.clone(),
                webhook_dn_id: None,
            },
            SendProvider::Datagen => ProviderSettings {
                base_url: self.datagen_base_url.clone(),
                credential: secret(&self.datagen_token),
                api_version: None,
                webhook_dn_id: self.datagen_webhook_dn_id.clone(),
            },
            SendProvider::Aisensy => ProviderSettings {
                base_url: self.aisensy_base_url.clone(),
                credential: secret(&self.aisensy_api_key),
                ..ProviderSettings::default()
            },
            SendProvider::AisensyDirect => ProviderSettings {
                base_url: self.aisensy_direct_base_url.clone(),
                credential: secret(&self.aisensy_direct_api_key),
                ..ProviderSettings::default()
            },
        }
    }

    /// The key that seals stored secrets and the previous ones that still open them; `None`
    /// when no key is set (secrets are then stored in clear).
    pub fn seal_keys(&self) -> Result<Option<(SealKey, Vec<SealKey>)>, super::ConfigError> {
        let invalid = |key: &str, e: BadKey| super::ConfigError::Invalid {
            key: key.into(),
            message: e.to_string(),
        };
        let previous = match &self.secret_key_previous {
            Some(list) => list
                .expose_secret()
                .split(',')
                .filter(|k| !k.trim().is_empty())
                .map(|k| SealKey::parse(k).map_err(|e| invalid("secret_key_previous", e)))
                .collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
        };
        match &self.secret_key {
            Some(key) => {
                let current =
                    SealKey::parse(key.expose_secret()).map_err(|e| invalid("secret_key", e))?;
                Ok(Some((current, previous)))
            }
            None if previous.is_empty() => Ok(None),
            None => Err(super::ConfigError::Invalid {
                key: "secret_key_previous".into(),
                message: "needs WAGATE_SECRET_KEY, the key that seals from now on".into(),
            }),
        }
    }

    /// Whether the listen address is reachable only from this host.
    pub fn listens_on_loopback(&self) -> bool {
        self.listen.ip().to_canonical().is_loopback()
    }

    /// Whether BSP webhooks need a credential, said in a sentence for the startup log; `true`
    /// with it when every ingress route is authenticated.
    pub fn ingress_auth_mode(&self) -> (bool, String) {
        match (&self.ingress_token, &self.meta_app_secret) {
            (Some(_), Some(_)) => (
                true,
                "a bearer token on every ingress route, and Meta's signature on /v1/ingest/meta"
                    .into(),
            ),
            (Some(_), None) => (
                true,
                "a bearer token on every ingress route; Meta's signature is not checked \
                 (WAGATE_META_APP_SECRET is not set)"
                    .into(),
            ),
            (None, Some(_)) => (
                false,
                "Meta's signature on /v1/ingest/meta; the Datagen routes are open \
                 (WAGATE_INGRESS_TOKEN is not set)"
                    .into(),
            ),
            (None, None) => (
                false,
                if self.ingress_auth == "none" {
                    "none: anyone who reaches the ingress routes can post status events \
                     (WAGATE_INGRESS_AUTH=none)"
                        .into()
                } else {
                    "none: anyone who reaches the ingress routes can post status events \
                     (allowed because the listen address is loopback)"
                        .into()
                },
            ),
        }
    }

    /// The opt-out and opt-in keywords, split.
    pub fn opt_keywords(&self) -> (Vec<String>, Vec<String>) {
        let split = |s: &str| {
            s.split(',')
                .map(|k| k.trim().to_owned())
                .filter(|k| !k.is_empty())
                .collect()
        };
        (split(&self.opt_out_keywords), split(&self.opt_in_keywords))
    }

    pub fn is_embedded_store(&self) -> bool {
        self.database_url().starts_with("sqlite:")
    }

    /// `processor_concurrency`, with 0 resolved for the configured store.
    pub fn processor_concurrency(&self) -> usize {
        match (self.processor_concurrency, self.is_embedded_store()) {
            (0, true) => 1,
            (0, false) => 2,
            (n, _) => n,
        }
    }

    /// `cache_memory_max_bytes` split into (lookups, dedupe marks). Lookups get an eighth:
    /// a project lookup or key entry weighs ~700 bytes, so 8 MiB of the default holds ~12,000
    /// numbers and keys, more than any deployment has; webhook endpoints get a sixteenth
    /// ([`endpoint_cache_budget`](Self::endpoint_cache_budget)); dedupe marks (17–39 bytes
    /// each, see `RecentMarks`) get the rest: 52 MiB, of which two power-of-two tables use 36 MB
    /// for 0.9–1.8 million recent events. A full dedupe cache costs only store work.
    pub fn memory_budgets(&self) -> (u64, u64) {
        let lookups = self.cache_memory_max_bytes / 8;
        (
            lookups,
            self.cache_memory_max_bytes - lookups - self.endpoint_cache_budget(),
        )
    }

    /// Bytes of endpoint configurations kept in memory: 4 MiB of the default, ~4,000
    /// endpoints of ~1 KB.
    pub fn endpoint_cache_budget(&self) -> u64 {
        self.cache_memory_max_bytes / 16
    }

    pub fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }
}
