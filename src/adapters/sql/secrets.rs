//! The sealed columns, for both stores: how a provider settings row keeps its credential, and
//! the `SealedSecrets` port's SQL (counting, and the re-sealing pass) written once.
//!
//! Endpoints keep their secrets in `secret` and `previous_secret`; a project's BSP settings are
//! one JSON text whose `credential` is the sealed string. Every other column stays clear.

use std::collections::BTreeMap;

use crate::adapters::sql::campaigns::corrupt;
use crate::domain::project::ProjectId;
use crate::domain::providers::send::{ProviderSettings, SendProvider};
use crate::domain::sealing::{self, Form, SealError};
use crate::ports::secrets::ResealReport;
use crate::services::Sealer;

/// Rows read per page of a pass.
pub const PAGE: i64 = 500;

/// A sealing error as the store reports it: the database holds something this process cannot
/// read, which an operator fixes (the missing key), so it is an outage, never the input's fault.
pub fn unreadable(what: &str, e: SealError) -> sqlx::Error {
    corrupt(format!("{what}: {e}"))
}

/// A project's provider settings as stored: JSON with the credential sealed.
pub fn seal_settings(
    sealer: &Sealer,
    project: &ProjectId,
    provider: SendProvider,
    settings: &ProviderSettings,
) -> String {
    let context = sealing::provider_context(project.as_str(), provider.as_str());
    let stored = ProviderSettings {
        credential: settings
            .credential
            .as_deref()
            .map(|c| sealer.seal(c, &context)),
        ..settings.clone()
    };
    serde_json::to_string(&stored).expect("settings serialize")
}

/// Stored provider settings read back, the credential opened.
pub fn open_settings(
    sealer: &Sealer,
    project: &ProjectId,
    provider: SendProvider,
    json: &str,
) -> Result<ProviderSettings, sqlx::Error> {
    let mut settings: ProviderSettings =
        serde_json::from_str(json).map_err(|e| corrupt(format!("provider settings: {e}")))?;
    if let Some(stored) = settings.credential.take() {
        let context = sealing::provider_context(project.as_str(), provider.as_str());
        settings.credential = Some(
            sealer
                .open(&stored, &context)
                .map_err(|e| unreadable("provider credential", e))?,
        );
    }
    Ok(settings)
}

/// Counts one stored value under its form.
pub fn count(into: &mut BTreeMap<String, u64>, stored: &str) {
    let form = match sealing::form(stored) {
        Form::Clear => "clear".to_owned(),
        Form::Sealed { key_id } => key_id.to_owned(),
    };
    *into.entry(form).or_default() += 1;
}

/// What re-sealing one stored value comes to: `None` when it stays as it is.
pub fn resealed(
    sealer: &Sealer,
    stored: &str,
    context: &str,
    report: &mut ResealReport,
    row: &str,
) -> Option<String> {
    if sealer.is_current(stored) {
        report.already_current += 1;
        return None;
    }
    match sealer.open(stored, context) {
        Ok(plain) => Some(sealer.seal(&plain, context)),
        Err(e) => {
            tracing::warn!(row, error = %e, "cannot re-seal a stored secret");
            report.unreadable += 1;
            None
        }
    }
}

/// The provider settings text `json` with its credential re-sealed, if it needs it.
pub fn resealed_settings(
    sealer: &Sealer,
    project: &str,
    provider: &str,
    json: &str,
    report: &mut ResealReport,
) -> Result<Option<String>, sqlx::Error> {
    let mut settings: ProviderSettings =
        serde_json::from_str(json).map_err(|e| corrupt(format!("provider settings: {e}")))?;
    let Some(stored) = settings.credential.as_deref() else {
        return Ok(None);
    };
    let context = sealing::provider_context(project, provider);
    let row = format!("provider_settings {project}/{provider}");
    Ok(
        resealed(sealer, stored, &context, report, &row).map(|sealed| {
            settings.credential = Some(sealed);
            serde_json::to_string(&settings).expect("settings serialize")
        }),
    )
}

macro_rules! secret_queries {
    ($db:ty) => {
        use sqlx::Pool;

        use crate::adapters::sql::secrets::{PAGE, count, resealed, resealed_settings};
        use crate::domain::providers::send::ProviderSettings;
        use crate::domain::sealing;
        use crate::ports::secrets::{ResealReport, SecretInventory};
        use crate::services::Sealer;

        type EndpointSecrets = (String, String, Option<String>);
        type SettingsRow = (String, String, String);

        async fn endpoint_page(
            pool: &Pool<$db>,
            after: &str,
        ) -> Result<Vec<EndpointSecrets>, sqlx::Error> {
            sqlx::query_as(
                "SELECT id, secret, previous_secret FROM endpoints WHERE id > $1 \
                 ORDER BY id LIMIT $2",
            )
            .bind(after)
            .bind(PAGE)
            .fetch_all(pool)
            .await
        }

        async fn settings_page(
            pool: &Pool<$db>,
            after: &(String, String),
        ) -> Result<Vec<SettingsRow>, sqlx::Error> {
            sqlx::query_as(
                "SELECT project_id, provider, settings FROM provider_settings \
                 WHERE project_id > $1 OR (project_id = $1 AND provider > $2) \
                 ORDER BY project_id, provider LIMIT $3",
            )
            .bind(&after.0)
            .bind(&after.1)
            .bind(PAGE)
            .fetch_all(pool)
            .await
        }

        pub async fn inventory(pool: &Pool<$db>) -> Result<SecretInventory, sqlx::Error> {
            let mut out = SecretInventory::default();
            let mut after = String::new();
            loop {
                let page = endpoint_page(pool, &after).await?;
                for (_, secret, previous) in &page {
                    count(&mut out.endpoint_secrets, secret);
                    if let Some(p) = previous {
                        count(&mut out.endpoint_secrets, p);
                    }
                }
                match page.into_iter().last() {
                    Some((id, _, _)) => after = id,
                    None => break,
                }
            }
            let mut after = (String::new(), String::new());
            loop {
                let page = settings_page(pool, &after).await?;
                for (_, _, json) in &page {
                    let s: ProviderSettings = serde_json::from_str(json).map_err(|e| {
                        crate::adapters::sql::campaigns::corrupt(format!("provider settings: {e}"))
                    })?;
                    if let Some(c) = &s.credential {
                        count(&mut out.provider_credentials, c);
                    }
                }
                match page.into_iter().last() {
                    Some((project, provider, _)) => after = (project, provider),
                    None => break,
                }
            }
            Ok(out)
        }

        /// Reads pages from `read`, writes each re-sealed value to `write`, one conditional
        /// statement per value.
        pub async fn reseal(
            read: &Pool<$db>,
            write: &Pool<$db>,
            sealer: &Sealer,
        ) -> Result<ResealReport, sqlx::Error> {
            let mut report = ResealReport::default();
            let mut after = String::new();
            loop {
                let page = endpoint_page(read, &after).await?;
                for (id, secret, previous) in &page {
                    let context = sealing::endpoint_context(id);
                    let row = format!("endpoint {id}");
                    for (statement, stored) in [
                        (
                            "UPDATE endpoints SET secret = $1 WHERE id = $2 AND secret = $3",
                            Some(secret),
                        ),
                        (
                            "UPDATE endpoints SET previous_secret = $1 \
                             WHERE id = $2 AND previous_secret = $3",
                            previous.as_ref(),
                        ),
                    ] {
                        let Some(stored) = stored else { continue };
                        let Some(new) = resealed(sealer, stored, &context, &mut report, &row)
                        else {
                            continue;
                        };
                        let done = sqlx::query(statement)
                            .bind(&new)
                            .bind(id)
                            .bind(stored)
                            .execute(write)
                            .await?;
                        if done.rows_affected() == 1 {
                            report.resealed += 1;
                        } else {
                            report.changed_meanwhile += 1;
                        }
                    }
                }
                match page.into_iter().last() {
                    Some((id, _, _)) => after = id,
                    None => break,
                }
            }
            let mut after = (String::new(), String::new());
            loop {
                let page = settings_page(read, &after).await?;
                for (project, provider, json) in &page {
                    let Some(new) =
                        resealed_settings(sealer, project, provider, json, &mut report)?
                    else {
                        continue;
                    };
                    let done = sqlx::query(
                        "UPDATE provider_settings SET settings = $1 \
                         WHERE project_id = $2 AND provider = $3 AND settings = $4",
                    )
                    .bind(&new)
                    .bind(project)
                    .bind(provider)
                    .bind(json)
                    .execute(write)
                    .await?;
                    if done.rows_affected() == 1 {
                        report.resealed += 1;
                    } else {
                        report.changed_meanwhile += 1;
                    }
                }
                match page.into_iter().last() {
                    Some((project, provider, _)) => after = (project, provider),
                    None => break,
                }
            }
            Ok(report)
        }
    };
}

/// The sealed-secret queries on PostgreSQL.
pub mod pg {
    secret_queries!(sqlx::Postgres);
}

/// The sealed-secret queries on SQLite.
pub mod lite {
    secret_queries!(sqlx::Sqlite);
}
