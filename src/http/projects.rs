//! `POST /v1/projects` (admin) and `GET /v1/project` (the caller's own project).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::extract::{AdminAuth, JsonBody, ProjectAuth};
use crate::domain::project::{ApiKey, NewProject};
use crate::domain::time::Timestamp;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectIn {
    id: String,
    name: String,
    phone_numbers: Vec<String>,
}

pub async fn create(
    State(s): State<AppState>,
    _admin: AdminAuth,
    JsonBody(p): JsonBody<ProjectIn>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let new = NewProject::parse(&p.id, &p.name, &p.phone_numbers).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            e.to_string(),
        )
    })?;
    let key = ApiKey::generate();
    let project = s
        .store
        .create_project(&new, &key.hash(), Timestamp::now())
        .await?;
    // A cached "no project for this number" must not outlive the project's creation.
    s.lookup.forget(&project.phone_numbers, &key.hash()).await;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": project.id,
            "name": project.name,
            "phone_numbers": project.phone_numbers,
            "api_key": key.as_str(),
            "created_at": project.created_at.to_rfc3339(),
        })),
    ))
}

pub async fn me(ProjectAuth(project): ProjectAuth) -> Json<Value> {
    Json(json!({"id": project}))
}
