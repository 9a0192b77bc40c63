//! The OpenAPI 3.1 document: gathered from the handlers' `#[utoipa::path]` annotations as the
//! router registers them (`routes!`), then completed here with what every operation shares (the
//! security schemes, the error shape and its examples, the links between operations), served at
//! `/openapi.json` and rendered at `/docs`.

pub mod campaign_schemas;
mod docs;
mod links;
pub mod schemas;

use std::sync::Arc;

use axum::Extension;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

pub use schemas::ErrorBody;

/// Security scheme names, as the path annotations name them.
pub const PROJECT_KEY: &str = "project_key";
pub const ADMIN_TOKEN: &str = "admin_token";
pub const INGRESS_TOKEN: &str = "ingress_token";
pub const INGRESS_TOKEN_QUERY: &str = "ingress_token_query";

/// The tags, in the order `/docs` shows them, with what each groups.
const TAGS: &[(&str, &str)] = &[
    ("ingress", "BSP webhooks in: durable before the 200"),
    (
        "messages",
        "A project's messages, their histories, counts and inbound messages",
    ),
    (
        "campaigns",
        "Template campaigns: create, load recipients, start, follow, export",
    ),
    (
        "webhooks",
        "A project's webhook endpoints, their deliveries and dead letters",
    ),
    ("providers", "A project's own BSP settings"),
    (
        "projects",
        "Projects and their business numbers (admin token)",
    ),
    (
        "admin",
        "Operators: quarantine, queues and dead letters (admin token)",
    ),
    ("ops", "Probes, metrics and this document"),
];

/// The document as served: JSON bytes and the HTML page, both made once at start-up.
pub struct Published {
    json: bytes::Bytes,
    html: String,
}

impl Published {
    pub fn new(doc: utoipa::openapi::OpenApi) -> Arc<Published> {
        let doc = finish(doc);
        let html = docs::render(&doc);
        let json = serde_json::to_vec_pretty(&doc).expect("a JSON value serializes");
        Arc::new(Published {
            json: json.into(),
            html,
        })
    }
}

/// The OpenAPI document of this process's routes
#[utoipa::path(get, path = "/openapi.json", operation_id = "openapi_document", tag = "ops",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json",
        body = Object, example = json!({"openapi": "3.1.0", "info": {"title": "wagate", "version": "0.1.0"}, "paths": {}}))))]
pub async fn openapi_json(Extension(p): Extension<Arc<Published>>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], p.json.clone()).into_response()
}

/// The OpenAPI document as a page: operations, schemas and examples
///
/// Server-rendered HTML, no script, nothing fetched from elsewhere.
#[utoipa::path(get, path = "/docs", operation_id = "api_docs", tag = "ops",
    responses((status = 200, description = "An HTML page", content_type = "text/html",
        body = String, example = json!("<!doctype html><title>wagate API</title>…"))))]
pub async fn docs(Extension(p): Extension<Arc<Published>>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'",
            ),
        ],
        p.html.clone(),
    )
        .into_response()
}

/// The error code each status answers with most often, for the examples of error responses
/// that do not give their own.
fn error_example(status: &str) -> Value {
    let (code, message) = match status {
        "400" => ("invalid_query", "limit must be 1 to 1000"),
        "401" => ("unauthorized", "missing `Authorization: Bearer <api key>`"),
        "403" => (
            "verification_failed",
            "hub.mode, hub.verify_token or hub.challenge is wrong",
        ),
        "404" => ("not_found", "no such resource"),
        "405" => ("method_not_allowed", "method not allowed on this route"),
        "408" => (
            "request_timeout",
            "the request was not received and answered in time",
        ),
        "409" => (
            "conflict",
            "the resource is not in a state that allows this",
        ),
        "413" => ("payload_too_large", "request body exceeds the size limit"),
        "414" => (
            "uri_too_long",
            "the request path and query exceed 8192 bytes",
        ),
        "422" => (
            "invalid_request",
            "topics: invalid type: string \"x\", expected a sequence",
        ),
        "503" => ("store_unavailable", "the store is unavailable; retry later"),
        _ => ("internal", "internal error"),
    };
    json!({"error": {"code": code, "message": message}})
}

/// Completes the generated document: metadata, tags, security schemes, and on every operation
/// the errors any route may answer (`default`, the edge's 408/413/414/503 among them), each
/// error response with an example.
pub fn finish(doc: utoipa::openapi::OpenApi) -> Value {
    let mut v = serde_json::to_value(&doc).expect("the document serializes");
    v["info"] = json!({
        "title": "wagate",
        "version": env!("CARGO_PKG_VERSION"),
        "description": "WhatsApp Business messaging gateway: BSP webhooks in, statuses stored, \
            events forwarded, template campaigns sent. Errors are always \
            `{\"error\":{\"code\",\"message\"}}`; lists are `?cursor=&limit=` (1 to 1000) in and \
            `{\"data\",\"next_cursor\"}` out.",
        "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
    });
    v["tags"] = Value::Array(
        TAGS.iter()
            .map(|(name, description)| json!({"name": name, "description": description}))
            .collect(),
    );
    let components = v
        .as_object_mut()
        .expect("an object")
        .entry("components")
        .or_insert_with(|| json!({}));
    components["securitySchemes"] = json!({
        PROJECT_KEY: {"type": "http", "scheme": "bearer",
            "description": "`Authorization: Bearer <project API key>`: the key `POST /v1/projects` \
                or `rotate-key` showed once. Sees only its own project's data."},
        ADMIN_TOKEN: {"type": "http", "scheme": "bearer",
            "description": "`Authorization: Bearer <admin token>` (`WAGATE_ADMIN_TOKEN`)."},
        INGRESS_TOKEN: {"type": "http", "scheme": "bearer",
            "description": "`Authorization: Bearer <ingress token>` (`WAGATE_INGRESS_TOKEN`), \
                checked only when one is configured."},
        INGRESS_TOKEN_QUERY: {"type": "apiKey", "in": "query", "name": "token",
            "description": "`?token=<ingress token>`, for BSPs that can only be given a URL; \
                percent-encoded."},
    });
    components["responses"] = json!({
        "Error": {
            "description": "Any other error: a malformed request (400), a body too large (413), \
                a request not received in time (408), a target too long (414), or the service \
                busy or a backend down (503, with `Retry-After` when busy).",
            "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/ErrorBody"},
                "example": error_example("503"),
            }},
        }
    });
    let schemas = v
        .pointer("/components/schemas")
        .cloned()
        .unwrap_or_else(|| json!({}));
    if let Some(paths) = v.get_mut("paths").and_then(Value::as_object_mut) {
        for item in paths.values_mut() {
            for op in item.as_object_mut().into_iter().flat_map(Map::values_mut) {
                complete_operation(op, &schemas);
            }
        }
    }
    links::add(&mut v);
    v
}

/// The example a schema of `components.schemas` carries, for a media type that uses it.
fn schema_example(media: &Value, schemas: &Value) -> Option<Value> {
    let name = media
        .pointer("/schema/$ref")?
        .as_str()?
        .rsplit('/')
        .next()?;
    let schema = schemas.get(name)?;
    schema
        .get("example")
        .or_else(|| schema.get("examples").and_then(|e| e.get(0)))
        .cloned()
}

fn complete_operation(op: &mut Value, schemas: &Value) {
    if let Some(content) = op
        .pointer_mut("/requestBody/content")
        .and_then(Value::as_object_mut)
    {
        for media in content.values_mut() {
            if media.get("example").is_none()
                && let Some(example) = schema_example(media, schemas)
            {
                media["example"] = example;
            }
        }
    }
    let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
        return;
    };
    for (status, response) in responses.iter_mut() {
        let Some(media) = response
            .get_mut("content")
            .and_then(|c| c.get_mut("application/json"))
        else {
            continue;
        };
        if media.get("example").is_some() || media.get("examples").is_some() {
            continue;
        }
        let is_error = media
            .pointer("/schema/$ref")
            .and_then(Value::as_str)
            .is_some_and(|r| r.ends_with("/ErrorBody"));
        let example = if is_error {
            Some(error_example(status))
        } else {
            schema_example(media, schemas)
        };
        if let Some(example) = example {
            media["example"] = example;
        }
    }
    responses
        .entry("default")
        .or_insert_with(|| json!({"$ref": "#/components/responses/Error"}));
}
