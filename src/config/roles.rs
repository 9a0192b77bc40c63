//! Process roles: which of wagate's jobs a process runs (`--roles`, `WAGATE_ROLES`, `roles`).

use std::collections::BTreeSet;
use std::str::FromStr;

use serde::Deserialize;

use super::ConfigError;

/// A process role; `wagate serve` runs all of them unless `--roles` picks a subset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Projects, messages and admin endpoints.
    Api,
    /// BSP webhooks in, durably enqueued.
    Ingress,
    /// Applies queued events to the store.
    Processor,
    /// Delivers events to the projects' webhook endpoints, and re-queues due deliveries.
    Forwarder,
    /// Sends campaign recipients through their BSPs; starts scheduled campaigns, queues due
    /// recipients, finishes campaigns.
    Sender,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Api,
        Role::Ingress,
        Role::Processor,
        Role::Forwarder,
        Role::Sender,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Api => "api",
            Role::Ingress => "ingress",
            Role::Processor => "processor",
            Role::Forwarder => "forwarder",
            Role::Sender => "sender",
        }
    }
}

impl FromStr for Role {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Role, ConfigError> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s.trim())
            .ok_or_else(|| ConfigError::Invalid {
                key: "roles".into(),
                message: format!(
                    "unknown role `{s}` (known: api, ingress, processor, forwarder, sender)"
                ),
            })
    }
}

/// Parses `api,ingress` (or `all`).
pub fn parse_roles(s: &str) -> Result<BTreeSet<Role>, ConfigError> {
    if s.trim() == "all" {
        return Ok(Role::ALL.into_iter().collect());
    }
    let roles = s
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(Role::from_str)
        .collect::<Result<BTreeSet<_>, _>>()?;
    if roles.is_empty() {
        return Err(ConfigError::Invalid {
            key: "roles".into(),
            message: "at least one role is needed".into(),
        });
    }
    Ok(roles)
}

/// `roles` in `wagate.toml`: a list (`["api", "ingress"]`) or the same string `--roles` takes.
pub(super) fn deserialize_roles<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeSet<Role>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Roles {
        List(Vec<String>),
        Text(String),
    }
    let text = match Roles::deserialize(d)? {
        Roles::List(list) => list.join(","),
        Roles::Text(text) => text,
    };
    parse_roles(&text).map_err(serde::de::Error::custom)
}
