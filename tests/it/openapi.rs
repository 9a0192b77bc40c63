//! The API contract: `/openapi.json` describes every route and only routes that exist, every
//! body and response has a schema and an example, and `/docs` shows them all.

use std::collections::BTreeSet;
use std::path::Path;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::support::app::{TestApp, on_both_backends};

on_both_backends!(
    every_documented_operation_is_served,
    documented_paths_answer_other_methods_with_405,
    docs_page_lists_every_operation,
);

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

async fn document(app: &TestApp) -> Value {
    let resp = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let kind = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(kind.starts_with("application/json"), "{kind}");
    resp.json().await.unwrap()
}

/// Every (method, path) of the document, path parameters filled with a value no resource has.
fn operations(doc: &Value) -> Vec<(Method, String, String)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in METHODS {
            if item.get(m).is_some() {
                let concrete = fill(path);
                out.push((
                    Method::from_bytes(m.to_uppercase().as_bytes()).unwrap(),
                    path.clone(),
                    concrete,
                ));
            }
        }
    }
    out
}

fn fill(template: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in template.chars() {
        match c {
            '{' => in_param = true,
            '}' => {
                in_param = false;
                out.push_str("zz-none");
            }
            c if !in_param => out.push(c),
            _ => {}
        }
    }
    out
}

/// The router's own answer for a path it does not have (`ops::not_found`), as opposed to a
/// handler's 404 for a resource it does not find.
fn is_no_route(status: StatusCode, body: &Value) -> bool {
    status == StatusCode::NOT_FOUND && body["error"]["message"] == "no such route"
}

async fn every_documented_operation_is_served(app: &TestApp) {
    let doc = document(app).await;
    let ops = operations(&doc);
    assert!(ops.len() >= 45, "only {} operations documented", ops.len());
    for (method, template, path) in ops {
        let (status, body) = app
            .send(app.client.request(method.clone(), app.url(&path)))
            .await;
        assert_ne!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {template}: {body}"
        );
        assert!(
            !is_no_route(status, &body),
            "{method} {template} is documented but not served"
        );
    }
}

async fn documented_paths_answer_other_methods_with_405(app: &TestApp) {
    let doc = document(app).await;
    for (template, item) in doc["paths"].as_object().unwrap() {
        for m in METHODS.iter().filter(|m| item.get(**m).is_none()) {
            let method = Method::from_bytes(m.to_uppercase().as_bytes()).unwrap();
            let (status, body) = app
                .send(app.client.request(method, app.url(&fill(template))))
                .await;
            assert_eq!(
                status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{m} {template} is served but not documented: {body}"
            );
        }
    }
}

async fn docs_page_lists_every_operation(app: &TestApp) {
    let doc = document(app).await;
    let resp = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let html = resp.text().await.unwrap();
    assert!(!html.contains("<script"), "the page needs no script");
    for fetch in ["<link", "<img", "<iframe", "@import", "src="] {
        assert!(!html.contains(fetch), "the page fetches nothing ({fetch})");
    }
    for (method, template, _) in operations(&doc) {
        let id = format!(
            "id=\"op-{}{}\"",
            method.as_str().to_lowercase(),
            template
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect::<String>()
        );
        assert!(html.contains(&id), "/docs lacks {method} {template}");
    }
}

/// Client generators name their methods by `operationId`, and OpenAPI requires each to be
/// unique: one per operation, a snake_case identifier, none used twice (before, `list`, `one`
/// and `create` each named three or four operations).
#[test]
fn every_operation_has_its_own_operation_id() {
    let doc = wagate::http::document(&wagate::config::Role::ALL.into_iter().collect());
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut count = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in METHODS {
            let Some(op) = item.get(m) else { continue };
            count += 1;
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{m} {path} has no operationId"));
            assert!(
                !id.is_empty()
                    && id.starts_with(|c: char| c.is_ascii_lowercase())
                    && id
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{m} {path}: operationId {id:?} is not snake_case"
            );
            assert!(
                seen.insert(id.to_owned()),
                "{m} {path}: operationId {id:?} used twice"
            );
        }
    }
    assert!(count >= 50, "{count} operations");
}

/// Links lead from a created (or listed) resource to the operations on it: each names an
/// operation the document has and sets a path parameter that operation takes from the body.
#[test]
fn links_lead_from_a_resource_to_the_operations_on_it() {
    let doc = wagate::http::document(&wagate::config::Role::ALL.into_iter().collect());
    let mut by_id = std::collections::BTreeMap::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for m in METHODS {
            if let Some(op) = item.get(m) {
                by_id.insert(op["operationId"].as_str().unwrap().to_owned(), op.clone());
            }
        }
    }
    let mut count = 0;
    for (id, op) in &by_id {
        for (status, response) in op["responses"].as_object().unwrap() {
            let Some(links) = response.get("links").and_then(Value::as_object) else {
                continue;
            };
            for (name, link) in links {
                let target_id = link["operationId"].as_str().unwrap();
                let target = by_id
                    .get(target_id)
                    .unwrap_or_else(|| panic!("{id} {status} links to unknown {target_id}"));
                for (param, expression) in link["parameters"].as_object().unwrap() {
                    let takes = target["parameters"].as_array().is_some_and(|ps| {
                        ps.iter().any(|p| p["name"] == *param && p["in"] == "path")
                    });
                    assert!(
                        takes,
                        "{id} {status} → {name}: {target_id} has no path `{param}`"
                    );
                    assert!(
                        expression.as_str().unwrap().starts_with("$response.body#/"),
                        "{expression}"
                    );
                }
                count += 1;
            }
        }
    }
    assert!(count >= 30, "{count} links");
    let created = &by_id["create_campaign"]["responses"]["201"]["links"];
    assert_eq!(
        created["pause_campaign"]["parameters"]["id"],
        "$response.body#/id"
    );
}

/// The document's enums (topics, event types, states and statuses) are the words the code
/// accepts and sends (before, they were free strings, and the examples subscribed to
/// `message.status`, which the API refuses as `invalid_topic`).
#[test]
fn enums_are_the_codes_own_words() {
    let doc = wagate::http::document(&wagate::config::Role::ALL.into_iter().collect());
    let listed = |name: &str| -> Vec<String> {
        doc["components"]["schemas"][name]["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} is not an enum"))
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    let topics: Vec<String> = wagate::domain::endpoint::Topic::ALL
        .iter()
        .map(|t| t.as_str().to_owned())
        .collect();
    assert_eq!(listed("Topic"), topics);
    assert_eq!(listed("EventType"), wagate::domain::delivery::EVENT_TYPES);
    // The other words a response carries come from the same domain enums.
    for (schema, field, words) in [
        ("CampaignOut", "state", "CampaignState"),
        ("CampaignOut", "provider", "SendProvider"),
        ("CampaignOut", "unknown_policy", "UnknownPolicy"),
        ("RecipientOut", "status", "RecipientStatus"),
        ("MessageOut", "status", "MessageStatus"),
        ("BreakerOut", "state", "BreakerState"),
        ("DeliveryOut", "status", "DeliveryStatus"),
    ] {
        let field = &doc["components"]["schemas"][schema]["properties"][field];
        assert_eq!(
            field["$ref"],
            format!("#/components/schemas/{words}"),
            "{schema}"
        );
        assert!(!listed(words).is_empty());
    }
    assert_eq!(listed("BreakerState"), ["closed", "open", "half_open"]);
    let body =
        &doc["paths"]["/webhook/config"]["post"]["requestBody"]["content"]["application/json"];
    assert_eq!(body["schema"]["$ref"], "#/components/schemas/EndpointBody");
    for topic in body["example"]["topics"].as_array().unwrap() {
        wagate::domain::endpoint::Topic::parse(topic.as_str().unwrap()).unwrap();
    }
}

/// Every body and response has a schema and an example; errors are the `ErrorBody`; the
/// security schemes are the ones the code checks.
#[test]
fn every_body_and_response_has_a_schema_and_an_example() {
    let doc = wagate::http::document(&wagate::config::Role::ALL.into_iter().collect());
    assert_eq!(doc["openapi"], "3.1.0");
    let schemes: BTreeSet<&str> = doc["components"]["securitySchemes"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        schemes,
        BTreeSet::from([
            "admin_token",
            "ingress_token",
            "ingress_token_query",
            "project_key"
        ])
    );
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in METHODS {
            let Some(op) = item.get(m) else { continue };
            let at = format!("{m} {path}");
            assert!(
                op["summary"].as_str().is_some_and(|s| !s.is_empty()),
                "{at}: no summary"
            );
            assert!(
                op["tags"].as_array().is_some_and(|t| !t.is_empty()),
                "{at}: no tag"
            );
            if let Some(content) = op
                .pointer("/requestBody/content")
                .and_then(Value::as_object)
            {
                for (kind, media) in content {
                    assert!(
                        media.get("schema").is_some(),
                        "{at}: request {kind} has no schema"
                    );
                    assert!(
                        media.get("example").is_some(),
                        "{at}: request {kind} has no example"
                    );
                }
            }
            let responses = op["responses"].as_object().unwrap();
            assert!(responses.contains_key("default"), "{at}: no default error");
            // `/v1/ingest/{provider}` is every provider wagate does not know: it only refuses.
            assert!(
                responses.keys().any(|s| s.starts_with('2')) || path == "/v1/ingest/{provider}",
                "{at}: no success response"
            );
            for (status, r) in responses {
                if r.get("$ref").is_some() {
                    continue;
                }
                let content = r.get("content").and_then(Value::as_object);
                if status == "204" {
                    assert!(
                        content.is_none_or(|c| c.is_empty()),
                        "{at}: a 204 with a body"
                    );
                    continue;
                }
                let content = content.unwrap_or_else(|| panic!("{at} {status}: no content"));
                for (kind, media) in content {
                    assert!(
                        media.get("schema").is_some(),
                        "{at} {status} {kind}: no schema"
                    );
                    let example = media
                        .get("example")
                        .unwrap_or_else(|| panic!("{at} {status} {kind}: no example"));
                    if !status.starts_with('2') {
                        // `ErrorBody`, or (`/readyz`'s 503) a body that holds one.
                        assert!(
                            example["error"]["code"].is_string(),
                            "{at} {status}: {example}"
                        );
                        assert!(
                            example["error"]["message"].is_string(),
                            "{at} {status}: {example}"
                        );
                    }
                }
            }
        }
    }
}

/// No route can be added outside the documented router: `src/http` holds no axum routing
/// call but the `routes!` registrations of `http::documented` (the `/ui` dashboard and the `/`
/// that leads to it, which the document leaves out, excepted). Together with the live checks above, a route exists if and
/// only if the document describes it.
#[test]
fn no_route_is_added_outside_the_documented_router() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
    let mut offending = Vec::new();
    let mut files = vec![root.clone()];
    while let Some(p) = files.pop() {
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n == "ui") {
                continue;
            }
            files.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        if p.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap();
        for (n, line) in text.lines().enumerate() {
            let routing = [
                ".route(",
                ".route_service(",
                ".nest(",
                ".nest_service(",
                "fallback_service(",
            ]
            .iter()
            .any(|call| line.contains(call));
            // The dashboard (`/ui`, and `/` sending a browser there) is no API route.
            let exempt = line.contains("\"/ui") || line.contains(".route(\"/\",");
            if routing && !exempt {
                offending.push(format!("{}:{}: {}", p.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        offending.is_empty(),
        "routes outside `routes!` (give the handler a #[utoipa::path] and register it in \
         http::documented):\n{}",
        offending.join("\n")
    );
}
