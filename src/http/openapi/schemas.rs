//! Schemas of the responses handlers build as `serde_json::Value`, mirrored as types so the
//! document can describe them; and of the request bodies whose real types live in the domain.
//! Each carries its example, which `finish` copies onto every response and request body that
//! uses it. The HTTP tests read responses against these (`tests/it/openapi.rs`, schemathesis).

#![allow(dead_code)]

use std::borrow::Cow;

use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

use crate::domain::providers::send;
use crate::domain::{breaker, campaign, delivery, endpoint, status};

/// Every error: `{"error":{"code","message"}}`, with a snake_case code and a human sentence.
#[derive(ToSchema)]
#[schema(example = json!({"error": {"code": "not_found", "message": "no campaign with this id"}}))]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(ToSchema)]
pub struct ErrorDetail {
    /// What went wrong, for programs (`invalid_request`, `not_found`, `unauthorized`, …).
    code: String,
    /// What went wrong, for people; at most 300 bytes.
    message: String,
}

// ---- ops ----

#[derive(ToSchema)]
#[schema(example = json!({"status": "ok"}))]
pub struct Health {
    status: String,
}

#[derive(ToSchema)]
pub struct Check {
    /// `sqlite`, `postgres`, `local`, `rabbitmq`, `memory`, `redis`.
    backend: String,
    /// `ok`, `down` (store, queue) or `degraded` (cache).
    status: String,
    /// The backend's own words, to the admin token only.
    error: Option<String>,
}

#[derive(ToSchema)]
pub struct Checks {
    store: Check,
    queue: Check,
    cache: Check,
}

/// 200 `ready` or 503 `unavailable` with an `error` naming what is down.
#[derive(ToSchema)]
#[schema(example = json!({"status": "ready", "checks": {
    "store": {"backend": "sqlite", "status": "ok"},
    "queue": {"backend": "local", "status": "ok"},
    "cache": {"backend": "memory", "status": "ok"}}}))]
pub struct Readiness {
    status: String,
    checks: Checks,
    error: Option<ErrorDetail>,
}

/// The OpenAPI document itself.
#[derive(ToSchema)]
#[schema(example = json!({"openapi": "3.1.0", "info": {"title": "wagate", "version": "0.1.0"}, "paths": {}}))]
pub struct Document {
    openapi: String,
    #[schema(value_type = Object)]
    info: (),
    #[schema(value_type = Object)]
    paths: (),
}

// ---- ingress ----

#[derive(ToSchema)]
#[schema(example = json!({"accepted": 2, "quarantined": 0}))]
pub struct Accepted {
    /// Events durably queued.
    accepted: u64,
    /// Parts that could not be read, kept in the quarantine.
    quarantined: u64,
}

// ---- projects ----

/// A business number: `"+91…"`, or `{"number", "meta_phone_number_id"}` to send through Meta.
#[derive(ToSchema, serde::Serialize)]
#[serde(untagged)]
pub enum NumberIn {
    Plain(String),
    Detailed(NumberOut),
}

#[derive(ToSchema, serde::Serialize)]
pub struct NumberOut {
    number: String,
    meta_phone_number_id: Option<String>,
}

#[derive(ToSchema)]
#[schema(example = json!({"id": "acme", "name": "Acme", "phone_numbers": ["+919812345678"],
    "numbers": [{"number": "+919812345678", "meta_phone_number_id": "106540352242922"}],
    "created_at": "2026-01-31T09:00:00Z"}))]
pub struct ProjectOut {
    id: String,
    name: String,
    phone_numbers: Vec<String>,
    numbers: Vec<NumberOut>,
    created_at: String,
}

/// The project with its API key, shown in this response only.
#[derive(ToSchema)]
#[schema(example = json!({"id": "acme", "name": "Acme", "phone_numbers": ["+919812345678"],
    "numbers": [{"number": "+919812345678", "meta_phone_number_id": null}],
    "created_at": "2026-01-31T09:00:00Z", "api_key": "wg_live_3q2…", "replayed_from_quarantine": 0}))]
pub struct ProjectCreated {
    id: String,
    name: String,
    phone_numbers: Vec<String>,
    numbers: Vec<NumberOut>,
    created_at: String,
    api_key: String,
    replayed_from_quarantine: u64,
}

#[derive(ToSchema)]
#[schema(example = json!({"id": "acme", "name": "Acme", "phone_numbers": ["+919812345678"],
    "numbers": [{"number": "+919812345678", "meta_phone_number_id": "106540352242922"}],
    "created_at": "2026-01-31T09:00:00Z", "replayed_from_quarantine": 3}))]
pub struct ProjectNumberAdded {
    id: String,
    name: String,
    phone_numbers: Vec<String>,
    numbers: Vec<NumberOut>,
    created_at: String,
    replayed_from_quarantine: u64,
}

#[derive(ToSchema)]
#[schema(example = json!({"data": [{"id": "acme", "name": "Acme", "phone_numbers": [], "numbers": [],
    "created_at": "2026-01-31T09:00:00Z"}], "next_cursor": null}))]
pub struct ProjectPage {
    data: Vec<ProjectOut>,
    /// Pass as `cursor` for the next page; `null` on the last.
    next_cursor: Option<String>,
}

#[derive(ToSchema)]
#[schema(example = json!({"id": "acme", "api_key": "wg_live_9x…"}))]
pub struct KeyRotated {
    id: String,
    api_key: String,
}

#[derive(ToSchema)]
#[schema(example = json!({"id": "acme"}))]
pub struct Me {
    id: String,
}

// ---- messages ----

#[derive(ToSchema)]
pub struct ProviderError {
    code: Option<String>,
    message: Option<String>,
}

#[derive(ToSchema)]
pub struct HistoryEvent {
    status: String,
    occurred_at: Option<String>,
    received_at: String,
    error: Option<ProviderError>,
}

#[derive(ToSchema)]
#[schema(example = json!({"wamid": "wamid.HBgM", "project_id": "acme", "phone": "+919812345678",
    "business_number": "+918000000001", "campaign_id": null, "provider": "meta", "status": "read",
    "created_at": "2026-01-31T09:00:00Z", "updated_at": "2026-01-31T09:00:05Z",
    "events": [{"status": "sent", "occurred_at": "2026-01-31T09:00:00Z", "received_at": "2026-01-31T09:00:01Z", "error": null},
               {"status": "read", "occurred_at": "2026-01-31T09:00:04Z", "received_at": "2026-01-31T09:00:05Z", "error": null}]}))]
pub struct MessageOut {
    wamid: String,
    project_id: String,
    phone: Option<String>,
    business_number: Option<String>,
    campaign_id: Option<String>,
    provider: Option<String>,
    status: MessageStatus,
    created_at: String,
    updated_at: String,
    /// The history, oldest first.
    events: Vec<HistoryEvent>,
}

#[derive(ToSchema)]
#[schema(example = json!({"data": [], "next_cursor": null}))]
pub struct MessagePage {
    data: Vec<MessageOut>,
    next_cursor: Option<String>,
}

#[derive(ToSchema)]
pub struct MessageCounts {
    total: u64,
    sent: u64,
    failed: u64,
    delivered: u64,
    read: u64,
}

#[derive(ToSchema)]
#[schema(example = json!({"messages": {"total": 3, "sent": 1, "failed": 0, "delivered": 1, "read": 1},
    "history_events": 6, "inbound_messages": 2}))]
pub struct Stats {
    messages: MessageCounts,
    history_events: u64,
    inbound_messages: u64,
}

#[derive(ToSchema)]
pub struct InboundOut {
    seq: i64,
    message_id: String,
    provider: String,
    business_number: String,
    from: String,
    profile_name: Option<String>,
    r#type: String,
    text: Option<String>,
    occurred_at: Option<String>,
    received_at: String,
}

#[derive(ToSchema)]
#[schema(example = json!({"data": [{"seq": 1, "message_id": "wamid.IN1", "provider": "meta",
    "business_number": "+918000000001", "from": "+919812345678", "profile_name": "Asha", "type": "text",
    "text": "STOP", "occurred_at": "2026-01-31T09:00:00Z", "received_at": "2026-01-31T09:00:01Z"}],
    "next_cursor": null}))]
pub struct InboundPage {
    data: Vec<InboundOut>,
    next_cursor: Option<String>,
}

// ---- admin ----

#[derive(ToSchema)]
pub struct QuarantineItem {
    id: i64,
    provider: String,
    reason: String,
    business_number: Option<String>,
    /// The body as the provider sent it: any JSON.
    #[schema(value_type = Value)]
    body: (),
    received_at: String,
}

#[derive(ToSchema)]
#[schema(example = json!({"data": [{"id": 7, "provider": "datagen", "reason": "unknown_number",
    "business_number": "+918000000001", "body": {"events": {}}, "received_at": "2026-01-31T09:00:01Z"}],
    "next_cursor": null}))]
pub struct QuarantinePage {
    data: Vec<QuarantineItem>,
    next_cursor: Option<String>,
}

#[derive(ToSchema)]
#[schema(example = json!({"replayed": 12, "unreadable": 0}))]
pub struct Replayed {
    replayed: u64,
    unreadable: u64,
}

#[derive(ToSchema)]
#[schema(example = json!({"queue": "events", "backend": "local", "depth": 0, "dead_letters": 2}))]
pub struct QueueDepth {
    queue: String,
    backend: String,
    depth: u64,
    dead_letters: u64,
}

#[derive(ToSchema)]
#[schema(example = json!({"queue": "events", "moved": 2}))]
pub struct QueueRedriven {
    queue: String,
    moved: u64,
}

// ---- webhooks ----

/// A string schema whose values are a domain enum's words, read from the domain itself, so the
/// document cannot name a value the code does not (or miss one it does).
macro_rules! words {
    ($(#[doc = $doc:literal])+ $name:ident = $values:expr) => {
        $(#[doc = $doc])+
        pub struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some(concat!($($doc),+).trim()))
                    .enum_values(Some($values))
                    .into()
            }
        }

        impl ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }
        }
    };
}

words!(
    /// What an endpoint subscribes to: an event type, or `*` for every one.
    Topic = endpoint::Topic::ALL.map(endpoint::Topic::as_str)
);
words!(
    /// The type of a forwarded event: its BSP and whether it is a status or an inbound message.
    EventType = delivery::EVENT_TYPES
);
words!(
    /// A webhook URL's circuit breaker.
    BreakerState = breaker::BreakerState::ALL.map(breaker::BreakerState::as_str)
);
words!(
    /// Where a webhook delivery stands.
    DeliveryStatus = endpoint::DeliveryStatus::ALL.map(endpoint::DeliveryStatus::as_str)
);
words!(
    /// A message's merged status: `sent < failed < delivered < read`.
    MessageStatus = status::Status::ALL.map(status::Status::as_str)
);
words!(
    /// A campaign's state.
    CampaignState = campaign::CampaignState::ALL.map(campaign::CampaignState::as_str)
);
words!(
    /// A campaign recipient's state.
    RecipientStatus = campaign::RecipientStatus::ALL.map(campaign::RecipientStatus::as_str)
);
words!(
    /// What becomes of a send left without an answer.
    UnknownPolicy = campaign::UnknownPolicy::ALL.map(campaign::UnknownPolicy::as_str)
);
words!(
    /// The BSP a campaign sends through.
    SendProvider = send::SendProvider::ALL.map(send::SendProvider::as_str)
);

#[derive(ToSchema)]
pub struct Breaker {
    state: BreakerState,
    consecutive_failures: u64,
    open_until: Option<String>,
}

#[derive(ToSchema)]
#[schema(example = json!({"id": "ep_01J…", "webhook_url": "https://example.com/hooks/wagate",
    "topics": ["meta.delivery"], "description": "CRM", "enabled": true, "disabled_reason": null,
    "breaker": {"state": "closed", "consecutive_failures": 0, "open_until": null},
    "previous_secret_expires_at": null, "created_at": "2026-01-31T09:00:00Z", "updated_at": "2026-01-31T09:00:00Z"}))]
pub struct EndpointOut {
    id: String,
    webhook_url: String,
    topics: Vec<Topic>,
    description: Option<String>,
    enabled: bool,
    disabled_reason: Option<String>,
    breaker: Breaker,
    previous_secret_expires_at: Option<String>,
    created_at: String,
    updated_at: String,
}

/// The endpoint with its shared secret, shown here and at rotation only.
#[derive(ToSchema)]
#[schema(example = json!({"id": "ep_01J…", "webhook_url": "https://example.com/hooks/wagate",
    "topics": ["meta.delivery"], "description": null, "enabled": true, "disabled_reason": null,
    "breaker": {"state": "closed", "consecutive_failures": 0, "open_until": null},
    "previous_secret_expires_at": null, "created_at": "2026-01-31T09:00:00Z", "updated_at": "2026-01-31T09:00:00Z",
    "shared_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}))]
pub struct EndpointCreated {
    id: String,
    webhook_url: String,
    topics: Vec<Topic>,
    description: Option<String>,
    enabled: bool,
    disabled_reason: Option<String>,
    breaker: Breaker,
    previous_secret_expires_at: Option<String>,
    created_at: String,
    updated_at: String,
    shared_secret: String,
}

#[derive(ToSchema)]
#[schema(example = json!({"data": [], "next_cursor": null}))]
pub struct EndpointPage {
    data: Vec<EndpointOut>,
    next_cursor: Option<String>,
}

#[derive(ToSchema)]
#[schema(example = json!({"id": "ep_01J…", "shared_secret": "whsec_Zb3…",
    "previous_secret_expires_at": "2026-02-01T09:00:00Z"}))]
pub struct SecretRotated {
    id: String,
    shared_secret: String,
    previous_secret_expires_at: Option<String>,
}

#[derive(ToSchema)]
#[schema(example = json!({"event_id": "evt_test_01J…", "delivered": true, "status_code": 200,
    "latency_ms": 84, "error": null,
    "breaker": {"state": "closed", "consecutive_failures": 0, "open_until": null}}))]
pub struct TestPing {
    event_id: String,
    delivered: bool,
    status_code: Option<u16>,
    latency_ms: u64,
    error: Option<String>,
    /// The URL's breaker after the ping (a 2xx closes it).
    breaker: BreakerOut,
}

#[derive(ToSchema)]
#[schema(example = json!({"state": "closed", "consecutive_failures": 0, "open_until": null}))]
pub struct BreakerOut {
    state: BreakerState,
    consecutive_failures: u32,
    /// While open: when one probe may go (RFC 3339).
    open_until: Option<String>,
}

#[derive(ToSchema)]
#[schema(example = json!({"id": "dl_01J…", "event_id": "evt_01J…", "endpoint_id": "ep_01J…",
    "event_type": "meta.delivery", "status": "dead", "attempt_count": 8, "next_attempt_at": null,
    "last_status_code": 500, "last_error": "HTTP 500", "created_at": "2026-01-31T09:00:00Z",
    "updated_at": "2026-01-31T10:00:00Z"}))]
pub struct DeliveryOut {
    id: String,
    event_id: String,
    endpoint_id: String,
    event_type: EventType,
    status: DeliveryStatus,
    attempt_count: u64,
    next_attempt_at: Option<String>,
    last_status_code: Option<u16>,
    last_error: Option<String>,
    created_at: String,
    updated_at: String,
}

#[derive(ToSchema)]
#[schema(example = json!({"data": [], "next_cursor": null}))]
pub struct DeliveryPage {
    data: Vec<DeliveryOut>,
    next_cursor: Option<String>,
}

#[derive(ToSchema)]
pub struct Attempt {
    attempt: u64,
    status_code: Option<u16>,
    latency_ms: Option<u64>,
    error: Option<String>,
    response_snippet: Option<String>,
    attempted_at: String,
}

/// A delivery with the exact body it sends and its attempts.
#[derive(ToSchema)]
#[schema(example = json!({"id": "dl_01J…", "event_id": "evt_01J…", "endpoint_id": "ep_01J…",
    "event_type": "meta.delivery", "status": "succeeded", "attempt_count": 1, "next_attempt_at": null,
    "last_status_code": 200, "last_error": null, "created_at": "2026-01-31T09:00:00Z",
    "updated_at": "2026-01-31T09:00:01Z", "payload": {"event_type": "meta.delivery"},
    "attempts": [{"attempt": 1, "status_code": 200, "latency_ms": 40, "error": null,
        "response_snippet": "ok", "attempted_at": "2026-01-31T09:00:01Z"}]}))]
pub struct DeliveryDetail {
    id: String,
    event_id: String,
    endpoint_id: String,
    event_type: EventType,
    status: DeliveryStatus,
    attempt_count: u64,
    next_attempt_at: Option<String>,
    last_status_code: Option<u16>,
    last_error: Option<String>,
    created_at: String,
    updated_at: String,
    /// JSON as sent, or the text when it is not JSON.
    #[schema(value_type = Value)]
    payload: (),
    attempts: Vec<Attempt>,
}

#[derive(ToSchema)]
#[schema(example = json!({"redriven": 4}))]
pub struct EndpointRedriven {
    redriven: u64,
}

#[derive(ToSchema)]
#[schema(example = json!({"replayed": 12, "revived": 2, "created": 10}))]
pub struct ReplayOut {
    /// `revived` + `created`.
    replayed: u64,
    /// Dead deliveries of the window, due again.
    revived: u64,
    /// Deliveries made for events the endpoint had none for.
    created: u64,
}

// ---- providers ----

#[derive(ToSchema)]
#[schema(example = json!({"provider": "meta", "base_url": null, "credential_set": true,
    "api_version": "v21.0", "webhook_dn_id": null}))]
pub struct ProviderSettingsOut {
    provider: String,
    base_url: Option<String>,
    /// The credential itself is never shown.
    credential_set: bool,
    api_version: Option<String>,
    webhook_dn_id: Option<String>,
}
