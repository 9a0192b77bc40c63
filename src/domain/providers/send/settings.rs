//! Where and how one BSP is reached: the server's settings, a project's own over them, and
//! the rule that keeps the server's credential on the server's host.

use serde::{Deserialize, Serialize};

use super::{SendProvider, setting};

/// Where and how to reach one BSP: the server-wide defaults, overridden per project (see
/// [`for_project`]). Its `Debug` shows whether a credential is set, never the credential.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderSettings {
    /// `https://graph.facebook.com`, `https://rcmapi.instaalerts.zone`, ...
    pub base_url: Option<String>,
    /// The bearer token (Meta, Datagen) or API key (AiSensy, AiSensy-direct). A secret: never
    /// shown back, never logged.
    pub credential: Option<String>,
    /// Meta's Graph API version (`v23.0`), Karix's `metaData.version` (`v1.0.9`).
    pub api_version: Option<String>,
    /// Karix's `preferences.webHookDNId`: which configured webhook its status reports go to.
    pub webhook_dn_id: Option<String>,
}

impl std::fmt::Debug for ProviderSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderSettings")
            .field("base_url", &self.base_url.as_deref().map(redact_url))
            .field(
                "credential",
                &self.credential.as_ref().map(|_| "<redacted>"),
            )
            .field("api_version", &self.api_version)
            .field("webhook_dn_id", &self.webhook_dn_id)
            .finish()
    }
}

/// A project's base URL sends elsewhere than the server's, and the project gave no credential:
/// the server's credential is not sent there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the project's base_url for {0} is not the server's, so it needs the project's own credential (the server's is only sent to the server's base URL)"
)]
pub struct CredentialRequired(pub &'static str);

/// The settings a project's sends through `provider` use: the project's own over the
/// server's, field by field, but for the credential. The server's credential is for the
/// server's base URL (or, when the server names none, the provider's public API) and goes
/// nowhere else: a project that points its sends at another URL must bring its own credential,
/// or its sends are refused. This holds whatever the store holds, settings saved before the
/// rule included. A project's own credential goes wherever the project's sends go.
pub fn for_project(
    provider: SendProvider,
    server: &ProviderSettings,
    project: &ProviderSettings,
) -> Result<ProviderSettings, CredentialRequired> {
    let server_url = setting(&server.base_url).or(provider.default_base_url());
    let credential = match (setting(&project.credential), setting(&project.base_url)) {
        (Some(own), _) => Some(own.to_owned()),
        (None, Some(url)) if !server_url.is_some_and(|s| same_url(s, url)) => {
            return Err(CredentialRequired(provider.as_str()));
        }
        (None, _) => server.credential.clone(),
    };
    let pick = |own: &Option<String>, theirs: &Option<String>| {
        setting(own).map(str::to_owned).or_else(|| theirs.clone())
    };
    Ok(ProviderSettings {
        base_url: pick(&project.base_url, &server.base_url),
        credential,
        api_version: pick(&project.api_version, &server.api_version),
        webhook_dn_id: pick(&project.webhook_dn_id, &server.webhook_dn_id),
    })
}

/// Whether two base URLs name the same place, however they are written (case of the host, a
/// default port, a trailing `/`, dot segments).
fn same_url(a: &str, b: &str) -> bool {
    let normal = |u: &str| match url::Url::parse(u.trim()) {
        Ok(u) => u.as_str().trim_end_matches('/').to_owned(),
        Err(_) => u.trim().trim_end_matches('/').to_owned(),
    };
    normal(a) == normal(b)
}

/// A URL for `Debug`: a password inside it hidden, anything unparseable hidden whole.
pub(super) fn redact_url(u: &str) -> String {
    match url::Url::parse(u) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("redacted"));
            }
            u.to_string()
        }
        Err(_) => "<unparseable URL, hidden>".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(base_url: Option<&str>) -> ProviderSettings {
        ProviderSettings {
            base_url: base_url.map(Into::into),
            credential: Some("server-token".into()),
            api_version: Some("v21.0".into()),
            webhook_dn_id: Some("1001".into()),
        }
    }

    fn project(base_url: Option<&str>, credential: Option<&str>) -> ProviderSettings {
        ProviderSettings {
            base_url: base_url.map(Into::into),
            credential: credential.map(Into::into),
            ..ProviderSettings::default()
        }
    }

    #[test]
    fn the_server_credential_only_goes_to_the_server_url() {
        use SendProvider::*;
        let ours = server(Some("https://bsp.example.com"));
        // Nothing of the project's: the server's settings whole.
        assert_eq!(
            for_project(Datagen, &ours, &project(None, None)),
            Ok(ours.clone())
        );
        // The project's other fields win, the server's credential stays with its URL.
        let mut own_version = project(None, None);
        own_version.api_version = Some("v22.0".into());
        let merged = for_project(Datagen, &ours, &own_version).unwrap();
        assert_eq!(merged.api_version.as_deref(), Some("v22.0"));
        assert_eq!(merged.credential.as_deref(), Some("server-token"));
        // A project URL elsewhere, without a credential: refused, for every provider.
        for p in SendProvider::ALL {
            assert_eq!(
                for_project(p, &ours, &project(Some("https://evil.example/x"), None)),
                Err(CredentialRequired(p.as_str())),
                "{p:?}"
            );
        }
        // The same URL written differently is the server's URL.
        for same in [
            "https://BSP.example.com/",
            "https://bsp.example.com:443",
            "https://bsp.example.com/a/..",
        ] {
            let merged = for_project(Datagen, &ours, &project(Some(same), None)).unwrap();
            assert_eq!(merged.credential.as_deref(), Some("server-token"), "{same}");
        }
        for other in [
            "http://bsp.example.com",
            "https://bsp.example.com:8443",
            "https://bsp.example.com.evil.example",
            "https://bsp.example.com/other",
        ] {
            assert!(
                for_project(Datagen, &ours, &project(Some(other), None)).is_err(),
                "{other}"
            );
        }
        // Its own credential goes where the project says, or to the server's URL.
        let merged = for_project(
            Meta,
            &ours,
            &project(Some("https://own.example"), Some("own")),
        )
        .unwrap();
        assert_eq!(
            (merged.base_url.as_deref(), merged.credential.as_deref()),
            (Some("https://own.example"), Some("own"))
        );
        let merged = for_project(Meta, &ours, &project(None, Some("own"))).unwrap();
        assert_eq!(
            (merged.base_url.as_deref(), merged.credential.as_deref()),
            (Some("https://bsp.example.com"), Some("own"))
        );
        // Empty values are unset, not overrides.
        let merged = for_project(Meta, &ours, &project(Some(" "), Some(""))).unwrap();
        assert_eq!(merged, ours);
    }

    #[test]
    fn without_a_server_url_the_public_api_is_the_servers() {
        let ours = server(None);
        let merged = for_project(
            SendProvider::Meta,
            &ours,
            &project(Some("https://graph.facebook.com/"), None),
        )
        .unwrap();
        assert_eq!(merged.credential.as_deref(), Some("server-token"));
        assert!(
            for_project(
                SendProvider::Meta,
                &ours,
                &project(Some("https://rcmapi.instaalerts.zone"), None)
            )
            .is_err(),
            "another provider's public URL is not Meta's"
        );
        // AiSensy-direct has no public URL: any project URL needs the project's key.
        assert!(
            for_project(
                SendProvider::AisensyDirect,
                &ours,
                &project(
                    Some("https://apis.aisensy.com/project-apis/v1/project/1"),
                    None
                )
            )
            .is_err()
        );
    }
}
