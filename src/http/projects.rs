//! Projects: created and managed with the admin token; `GET /v1/project` for a project's own key.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::extract::{AdminAuth, JsonBody, ProjectAuth, QueryParams};
use super::openapi::ErrorBody;
use super::openapi::schemas::{
    KeyRotated, Me, ProjectCreated, ProjectNumberAdded, ProjectOut, ProjectPage,
};
use super::page;
use crate::domain::phone::PhoneNumber;
use crate::domain::project::{
    ApiKey, BusinessNumber, NewProject, Project, ProjectError, ProjectId,
};
use crate::domain::time::Timestamp;
use crate::services::Replayer;

/// A business number as a request gives it: `"+91…"` or `{"number", "meta_phone_number_id"}`.
pub enum NumberIn {
    Plain(String),
    Detailed(NumberDetail),
}

/// By hand rather than `untagged`, whose one error ("did not match any variant") would hide
/// which field of the object was wrong or unknown.
impl<'de> Deserialize<'de> for NumberIn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<NumberIn, D::Error> {
        use serde::de::Error;
        match Value::deserialize(d)? {
            Value::String(s) => Ok(NumberIn::Plain(s)),
            v @ Value::Object(_) => NumberDetail::deserialize(v)
                .map(NumberIn::Detailed)
                .map_err(D::Error::custom),
            _ => Err(D::Error::custom(
                "a number is a string or {\"number\", \"meta_phone_number_id\"}",
            )),
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"number": "+918000000002", "meta_phone_number_id": "106540352242923"}))]
pub struct NumberDetail {
    number: String,
    meta_phone_number_id: Option<String>,
}

impl NumberIn {
    fn parse(&self) -> Result<BusinessNumber, ProjectError> {
        match self {
            NumberIn::Plain(n) => BusinessNumber::parse(n, None),
            NumberIn::Detailed(d) => {
                BusinessNumber::parse(&d.number, d.meta_phone_number_id.as_deref())
            }
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"id": "acme", "name": "Acme", "phone_numbers": ["+918000000001",
    {"number": "+918000000002", "meta_phone_number_id": "106540352242922"}]}))]
pub struct ProjectIn {
    /// Lowercase letters, digits, `-` and `_`.
    #[schema(pattern = "^[a-z0-9_-]{1,64}$")]
    id: String,
    /// 1 to 200 characters once trimmed, no control characters.
    #[schema(min_length = 1, max_length = 200)]
    name: String,
    /// 1 to 100.
    #[schema(value_type = Vec<super::openapi::schemas::NumberIn>, min_items = 1, max_items = 100)]
    phone_numbers: Vec<NumberIn>,
}

fn invalid(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_request",
        e.to_string(),
    )
}

fn view(p: &Project) -> Value {
    json!({
        "id": p.id,
        "name": p.name,
        "phone_numbers": p.numbers.iter().map(|n| n.number.as_str()).collect::<Vec<_>>(),
        "numbers": p.numbers.iter().map(|n| json!({
            "number": n.number,
            "meta_phone_number_id": n.meta_phone_number_id,
        })).collect::<Vec<_>>(),
        "created_at": p.created_at.to_rfc3339(),
    })
}

/// The Meta phone-number ids among `numbers`.
fn meta_ids(numbers: &[BusinessNumber]) -> Vec<&str> {
    numbers
        .iter()
        .filter_map(|n| n.meta_phone_number_id.as_deref())
        .collect()
}

fn replayer(s: &AppState) -> Replayer {
    Replayer {
        store: s.store.clone(),
        queue: s.queue.clone(),
    }
}

/// Create a project
///
/// The API key is in this response only. Events that were quarantined because they named one
/// of the numbers before it was registered are replayed.
#[utoipa::path(post, path = "/v1/projects", operation_id = "create_project", tag = "projects", security(("admin_token" = [])),
    request_body = ProjectIn,
    responses(
        (status = 201, description = "Created, with its API key", body = ProjectCreated),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 409, description = "The id or a number is taken", body = ErrorBody),
        (status = 422, description = "A field is wrong", body = ErrorBody)))]
pub async fn create(
    State(s): State<AppState>,
    _admin: AdminAuth,
    JsonBody(p): JsonBody<ProjectIn>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let numbers = p
        .phone_numbers
        .iter()
        .map(NumberIn::parse)
        .collect::<Result<Vec<_>, _>>()
        .map_err(invalid)?;
    let new = NewProject::new(&p.id, &p.name, numbers).map_err(invalid)?;
    let key = ApiKey::generate();
    let project = s
        .store
        .create_project(&new, &key.hash(), Timestamp::now())
        .await?;
    // A cached "no project for this number" must not outlive the project's creation.
    let registered: Vec<PhoneNumber> = project.numbers.iter().map(|n| n.number.clone()).collect();
    s.lookup.forget_numbers(&registered).await;
    s.lookup.forget_meta_ids(&meta_ids(&project.numbers)).await;
    s.lookup.forget_key(&key.hash()).await;
    let numbers: Vec<String> = project
        .numbers
        .iter()
        .map(|n| n.number.to_string())
        .collect();
    let replayed = replayer(&s).numbers_registered(&numbers).await;
    let mut body = view(&project);
    body["api_key"] = json!(key.as_str());
    body["replayed_from_quarantine"] = json!(replayed.replayed);
    Ok((StatusCode::CREATED, Json(body)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// The `next_cursor` of the previous page.
    #[serde(alias = "after")]
    cursor: Option<String>,
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// List projects
///
/// Ordered by id.
#[utoipa::path(get, path = "/v1/projects", operation_id = "list_projects", tag = "projects", security(("admin_token" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "A page of projects", body = ProjectPage),
        (status = 400, description = "A bad `limit` or `cursor`", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody)))]
pub async fn list(
    State(s): State<AppState>,
    _admin: AdminAuth,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = page::limit(q.limit)?;
    // A cursor only orders: any string works, so it is not validated as an id.
    let after = page::cursor(q.cursor).map(ProjectId::from_trusted);
    let found = s.store.projects(after.as_ref(), limit).await?;
    Ok(page::page(&found, limit, view, |p| p.id.to_string()))
}

fn project_id(id: &str) -> Result<ProjectId, ApiError> {
    ProjectId::parse(id).map_err(|_| ApiError::not_found("no such project"))
}

async fn found(s: &AppState, id: &ProjectId) -> Result<Project, ApiError> {
    s.store
        .project(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no project `{id}`")))
}

/// A project
#[utoipa::path(get, path = "/v1/projects/{id}", operation_id = "get_project", tag = "projects", security(("admin_token" = [])),
    params(("id" = String, Path, example = "acme")),
    responses(
        (status = 200, description = "The project", body = ProjectOut),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such project", body = ErrorBody)))]
pub async fn one(
    State(s): State<AppState>,
    _admin: AdminAuth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = project_id(&id)?;
    Ok(Json(view(&found(&s, &id).await?)))
}

/// Add a business number
///
/// Adds the number, or sets its Meta id if the project has it already; 409 if another project
/// has it. Events quarantined because they named it are replayed.
#[utoipa::path(post, path = "/v1/projects/{id}/numbers", operation_id = "add_project_number", tag = "projects", security(("admin_token" = [])),
    params(("id" = String, Path, example = "acme")),
    request_body = NumberDetail,
    responses(
        (status = 200, description = "The project", body = ProjectNumberAdded),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such project", body = ErrorBody),
        (status = 409, description = "Another project has the number", body = ErrorBody),
        (status = 422, description = "Not a phone number", body = ErrorBody)))]
pub async fn add_number(
    State(s): State<AppState>,
    _admin: AdminAuth,
    Path(id): Path<String>,
    JsonBody(n): JsonBody<NumberDetail>,
) -> Result<Json<Value>, ApiError> {
    let id = project_id(&id)?;
    let number = NumberIn::Detailed(n).parse().map_err(invalid)?;
    if !s.store.add_number(&id, &number).await? {
        return Err(ApiError::not_found(format!("no project `{id}`")));
    }
    s.lookup
        .forget_numbers(std::slice::from_ref(&number.number))
        .await;
    s.lookup
        .forget_meta_ids(&meta_ids(std::slice::from_ref(&number)))
        .await;
    let replayed = replayer(&s)
        .numbers_registered(&[number.number.to_string()])
        .await;
    let mut body = view(&found(&s, &id).await?);
    body["replayed_from_quarantine"] = json!(replayed.replayed);
    Ok(Json(body))
}

/// Remove a business number
///
/// Events naming the number are quarantined from then on; messages already recorded stay the
/// project's.
#[utoipa::path(delete, path = "/v1/projects/{id}/numbers/{number}", operation_id = "remove_project_number", tag = "projects",
    security(("admin_token" = [])),
    params(("id" = String, Path, example = "acme"),
        ("number" = String, Path, description = "E.164, `+` percent-encoded or not", example = "+918000000002")),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such project or number", body = ErrorBody),
        (status = 422, description = "Not a phone number", body = ErrorBody)))]
pub async fn remove_number(
    State(s): State<AppState>,
    _admin: AdminAuth,
    Path((id, number)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let id = project_id(&id)?;
    let number = PhoneNumber::parse(&number).map_err(invalid)?;
    // Its Meta id, whose cached answer names this number too.
    let before = s.store.project(&id).await?;
    let removed: Vec<BusinessNumber> = before
        .iter()
        .flat_map(|p| p.numbers.iter().filter(|n| n.number == number).cloned())
        .collect();
    if !s.store.remove_number(&id, &number).await? {
        return Err(ApiError::not_found(format!(
            "project `{id}` has no number {number}"
        )));
    }
    s.lookup.forget_numbers(std::slice::from_ref(&number)).await;
    s.lookup.forget_meta_ids(&meta_ids(&removed)).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Rotate a project's API key
///
/// The new key is in this response only; the old one stops working at once.
#[utoipa::path(post, path = "/v1/projects/{id}/rotate-key", operation_id = "rotate_project_key", tag = "projects",
    security(("admin_token" = [])),
    params(("id" = String, Path, example = "acme")),
    responses(
        (status = 200, description = "The new key", body = KeyRotated),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such project", body = ErrorBody)))]
pub async fn rotate_key(
    State(s): State<AppState>,
    _admin: AdminAuth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = project_id(&id)?;
    let key = ApiKey::generate();
    let Some(old) = s.store.rotate_key(&id, &key.hash()).await? else {
        return Err(ApiError::not_found(format!("no project `{id}`")));
    };
    s.lookup.forget_key(&old).await;
    s.lookup.forget_key(&key.hash()).await;
    Ok(Json(json!({"id": id, "api_key": key.as_str()})))
}

/// The project the API key belongs to
#[utoipa::path(get, path = "/v1/project", operation_id = "get_current_project", tag = "projects", security(("project_key" = [])),
    responses(
        (status = 200, description = "The key's project", body = Me),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody)))]
pub async fn me(ProjectAuth(project): ProjectAuth) -> Json<Value> {
    Json(json!({"id": project}))
}
