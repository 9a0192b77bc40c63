//! A project's own BSP settings (`/v1/providers/{provider}`): base URL, credential, API
//! version, Karix webhook id. They override the server's `WAGATE_<PROVIDER>_*` settings field
//! by field, except that the server's credential only goes to the server's base URL: a project
//! that sends elsewhere must give its own (`send::for_project`, which the sender applies too).
//! The credential is write-only: a read says whether one is set, never what it is.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::extract::{JsonBody, ProjectAuth};
use super::openapi::ErrorBody;
use super::openapi::schemas::ProviderSettingsOut;
use crate::domain::endpoint::WebhookUrl;
use crate::domain::providers::send::{self, ProviderSettings, SendProvider};

const MAX_FIELD: usize = 512;

fn provider(name: &str) -> Result<SendProvider, ApiError> {
    SendProvider::parse(name).ok_or_else(|| {
        ApiError::not_found("unknown provider (known: aisensy, datagen, aisensy_direct, meta)")
    })
}

/// What a project may set; absent fields fall back to the server's settings. The credential
/// may be given under the name its BSP uses (`token` for Meta and Karix, `api_key` for AiSensy).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"credential": "EAAG…", "api_version": "v21.0"}))]
pub struct SettingsBody {
    base_url: Option<String>,
    credential: Option<String>,
    token: Option<String>,
    api_key: Option<String>,
    api_version: Option<String>,
    webhook_dn_id: Option<String>,
}

fn field(name: &'static str, v: Option<String>) -> Result<Option<String>, ApiError> {
    match v.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) {
        Some(v) if v.len() > MAX_FIELD || v.chars().any(char::is_control) => Err(ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            format!("{name} must be at most {MAX_FIELD} characters, without control characters"),
        )),
        v => Ok(v),
    }
}

fn view(p: SendProvider, own: &ProviderSettings) -> Value {
    json!({
        "provider": p.as_str(),
        "base_url": own.base_url,
        "credential_set": own.credential.is_some(),
        "api_version": own.api_version,
        "webhook_dn_id": own.webhook_dn_id,
    })
}

/// Set the project's settings for a BSP
///
/// Replaces them; absent fields fall back to the server's. The server's credential only goes
/// to the server's base URL: another `base_url` needs the project's own credential.
#[utoipa::path(put, path = "/v1/providers/{provider}", operation_id = "put_provider_settings", tag = "providers", security(("project_key" = [])), params(("provider" = String, Path, description = "`aisensy`, `datagen`, `aisensy_direct` or `meta`", example = "meta")),
    request_body = SettingsBody,
    responses(
        (status = 200, description = "The settings, without the credential", body = ProviderSettingsOut),
        (status = 400, description = "Not JSON, a refused URL, or a credential required", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "Unknown provider", body = ErrorBody),
        (status = 422, description = "A field is wrong", body = ErrorBody)))]
pub async fn put(
    State(s): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    Path(name): Path<String>,
    JsonBody(b): JsonBody<SettingsBody>,
) -> Result<Json<Value>, ApiError> {
    let p = provider(&name)?;
    let base_url = match field("base_url", b.base_url)? {
        Some(url) => {
            let parsed = WebhookUrl::parse(&url)
                .map_err(|e| ApiError::bad_request("url_not_allowed", e.for_field("base_url")))?;
            super::webhooks::check_target("base_url", &parsed, s.allow_private_targets).await?;
            Some(parsed.as_str().trim_end_matches('/').to_owned())
        }
        None => None,
    };
    let credential = field("credential", b.credential.or(b.token).or(b.api_key))?;
    if credential.as_deref().is_some_and(|c| c.starts_with("enc:")) {
        // The stored form of a sealed secret; taken as one, it would not read back.
        return Err(ApiError::bad_request(
            "invalid_request",
            "credential must not start with `enc:`",
        ));
    }
    let settings = ProviderSettings {
        base_url,
        credential,
        api_version: field("api_version", b.api_version)?,
        webhook_dn_id: field("webhook_dn_id", b.webhook_dn_id)?,
    };
    let server = s
        .campaigning
        .provider_defaults
        .get(&p)
        .cloned()
        .unwrap_or_default();
    if let Err(e) = send::for_project(p, &server, &settings) {
        return Err(ApiError::bad_request("credential_required", e.to_string()));
    }
    s.campaigning
        .campaigns
        .put_provider_settings(&project, p, &settings)
        .await?;
    Ok(Json(view(p, &settings)))
}

/// The project's settings for a BSP
///
/// Without the credential: `credential_set` says whether there is one.
#[utoipa::path(get, path = "/v1/providers/{provider}", operation_id = "get_provider_settings", tag = "providers", security(("project_key" = [])), params(("provider" = String, Path, description = "`aisensy`, `datagen`, `aisensy_direct` or `meta`", example = "meta")),
    responses(
        (status = 200, description = "The settings", body = ProviderSettingsOut),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "Unknown provider", body = ErrorBody)))]
pub async fn get(
    State(s): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let p = provider(&name)?;
    let own = s
        .campaigning
        .campaigns
        .provider_settings(&project, p)
        .await?
        .unwrap_or_default();
    Ok(Json(view(p, &own)))
}
