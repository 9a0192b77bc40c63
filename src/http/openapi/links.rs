//! OpenAPI links: which response gives the id another operation takes (a created campaign's
//! `id` is the `{id}` of its pause, resume, recipients…). Clients and tools that follow them
//! (Schemathesis' stateful phase among them) reach a resource's operations with a real id.

use serde_json::{Map, Value, json};

/// A source operation's response, and the operations its body names a parameter of.
struct Link {
    from: &'static str,
    status: &'static str,
    /// The parameter set in each target, and the JSON pointer into the response body it comes
    /// from.
    parameter: &'static str,
    pointer: &'static str,
    to: &'static [&'static str],
}

const CAMPAIGN: &[&str] = &[
    "get_campaign",
    "upload_campaign_recipients",
    "list_campaign_recipients",
    "export_campaign_messages",
    "pause_campaign",
    "resume_campaign",
    "cancel_campaign",
    "retry_failed_recipients",
    "retry_unknown_recipients",
];

const ENDPOINT: &[&str] = &[
    "get_webhook_endpoint",
    "update_webhook_endpoint",
    "test_webhook_endpoint",
    "list_endpoint_deliveries",
    "rotate_endpoint_secret",
    "redrive_endpoint_deliveries",
    "replay_endpoint_events",
    "reset_endpoint_breaker",
    "delete_webhook_endpoint",
];

const PROJECT: &[&str] = &["get_project", "add_project_number", "rotate_project_key"];

const LINKS: &[Link] = &[
    Link {
        from: "create_campaign",
        status: "201",
        parameter: "id",
        pointer: "/id",
        to: CAMPAIGN,
    },
    Link {
        from: "get_campaign",
        status: "200",
        parameter: "id",
        pointer: "/id",
        to: CAMPAIGN,
    },
    Link {
        from: "create_webhook_endpoint",
        status: "201",
        parameter: "id",
        pointer: "/id",
        to: ENDPOINT,
    },
    Link {
        from: "create_project",
        status: "201",
        parameter: "id",
        pointer: "/id",
        to: PROJECT,
    },
    Link {
        from: "list_endpoint_deliveries",
        status: "200",
        parameter: "id",
        pointer: "/data/0/id",
        to: &["get_delivery", "retry_delivery"],
    },
    Link {
        from: "list_messages",
        status: "200",
        parameter: "wamid",
        pointer: "/data/0/wamid",
        to: &["get_message"],
    },
];

/// Adds the links whose source response and target operations this document has (a process
/// with fewer roles serves fewer operations).
pub fn add(doc: &mut Value) {
    let present = operation_ids(doc);
    for link in LINKS {
        let Some(response) = operation_mut(doc, link.from)
            .and_then(|op| op.get_mut("responses"))
            .and_then(|r| r.get_mut(link.status))
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        let mut links = Map::new();
        let targets = link.to.iter().filter(|t| **t != link.from);
        for target in targets.filter(|t| present.iter().any(|p| p == *t)) {
            links.insert(
                (*target).to_owned(),
                json!({
                    "operationId": target,
                    "parameters": {link.parameter: format!("$response.body#{}", link.pointer)},
                }),
            );
        }
        if !links.is_empty() {
            response.insert("links".into(), Value::Object(links));
        }
    }
}

fn operations(doc: &Value) -> impl Iterator<Item = &Value> {
    doc["paths"]
        .as_object()
        .into_iter()
        .flat_map(|paths| paths.values())
        .filter_map(Value::as_object)
        .flat_map(|item| item.values())
}

fn operation_ids(doc: &Value) -> Vec<String> {
    operations(doc)
        .filter_map(|op| op["operationId"].as_str().map(str::to_owned))
        .collect()
}

fn operation_mut<'a>(doc: &'a mut Value, id: &str) -> Option<&'a mut Value> {
    doc.get_mut("paths")?
        .as_object_mut()?
        .values_mut()
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut())
        .find(|op| op["operationId"] == id)
}
