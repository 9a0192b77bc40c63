//! Schemas of the campaign routes: the request body whose real type is the domain's
//! (`CampaignIn`), and the responses built as `serde_json::Value` (see `schemas`).

#![allow(dead_code)]

use utoipa::ToSchema;

/// A number (Unix seconds), a numeric string, or an RFC 3339 time.
#[derive(ToSchema, serde::Serialize)]
#[serde(untagged)]
pub enum NumberOrText {
    Number(f64),
    Text(String),
}

#[derive(ToSchema, serde::Serialize)]
pub struct ParamSpec {
    /// The CSV column whose value fills this template parameter.
    column: String,
    /// Used when the recipient's value is missing or empty.
    fallback: Option<String>,
}

#[derive(ToSchema, serde::Serialize)]
pub struct Media {
    /// `image` (the default), `video` or `document`.
    r#type: Option<String>,
    url: String,
    filename: Option<String>,
}

/// Every field is checked by the server, which names the one that is wrong
/// (`invalid_template_id`, `unknown_sender`, …); unknown fields are refused.
#[derive(ToSchema, serde::Serialize)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "January offer",
    "template_id": "jan_offer", "language": "en", "provider": "datagen", "sender": "+918000000001",
    "params": [{"column": "name", "fallback": "there"}], "rate_limit_per_second": 50}))]
pub struct CampaignIn {
    /// Up to 200 characters.
    name: Option<String>,
    template_id: Option<String>,
    /// Default `en`.
    language: Option<String>,
    /// `aisensy`, `datagen`, `aisensy_direct` or `meta`.
    provider: Option<String>,
    /// One of the project's business numbers.
    sender: Option<String>,
    params: Option<Vec<ParamSpec>>,
    media: Option<Media>,
    /// Unix seconds or RFC 3339; the start waits until then.
    schedule_time: Option<NumberOrText>,
    /// 1 to 1000.
    rate_limit_per_second: Option<NumberOrText>,
    /// `hold` (the default) or `resend`.
    unknown_policy: Option<String>,
}

#[derive(ToSchema)]
pub struct CampaignCounts {
    queued: u64,
    sending: u64,
    sent: u64,
    delivered: u64,
    read: u64,
    failed: u64,
    skipped: u64,
    opted_out: u64,
    cancelled: u64,
    unknown: u64,
}

#[derive(ToSchema)]
#[schema(example = json!({"id": "cmp_01J…", "name": "January offer", "template_id": "jan_offer",
    "language": "en", "provider": "datagen", "sender": "+918000000001",
    "params": [{"column": "name", "fallback": "there"}], "media": null, "schedule_time": null,
    "rate_limit_per_second": 50, "unknown_policy": "hold", "state": "running", "last_error": null,
    "created_at": "2026-01-31T09:00:00Z", "started_at": "2026-01-31T09:01:00Z", "finished_at": null,
    "total": 3, "counts": {"queued": 1, "sending": 0, "sent": 1, "delivered": 1, "read": 0, "failed": 0,
    "skipped": 0, "opted_out": 0, "cancelled": 0, "unknown": 0}, "send_rate_per_second": 0.1}))]
pub struct CampaignOut {
    id: String,
    name: String,
    template_id: String,
    language: String,
    provider: super::schemas::SendProvider,
    sender: String,
    params: Vec<ParamSpec>,
    media: Option<Media>,
    schedule_time: Option<String>,
    rate_limit_per_second: Option<u32>,
    unknown_policy: super::schemas::UnknownPolicy,
    state: super::schemas::CampaignState,
    last_error: Option<String>,
    created_at: String,
    started_at: Option<String>,
    finished_at: Option<String>,
    total: u64,
    counts: CampaignCounts,
    /// Sends per second over the last minute.
    send_rate_per_second: f64,
    /// After a retry: how many recipients were queued again.
    requeued: Option<u64>,
    /// After `event/send` with a `csv_url`: the import report.
    import: Option<ImportReport>,
}

#[derive(ToSchema)]
#[schema(example = json!({"data": [], "next_cursor": null}))]
pub struct CampaignPage {
    data: Vec<CampaignOut>,
    next_cursor: Option<String>,
}

#[derive(ToSchema)]
pub struct RejectedRow {
    /// The row's number in the file (1 is the first data row).
    row: u64,
    error: String,
}

#[derive(ToSchema)]
#[schema(example = json!({"accepted": 2, "rejected": [{"row": 3, "error": "`12ab` is not a phone number"}],
    "rejected_total": 1, "duplicates": 0, "opted_out": 0}))]
pub struct ImportReport {
    accepted: u64,
    /// The first rejected rows, with their reasons.
    rejected: Vec<RejectedRow>,
    rejected_total: u64,
    duplicates: u64,
    opted_out: u64,
}

#[derive(ToSchema)]
pub struct RecipientOut {
    id: String,
    phone: String,
    wamid: Option<String>,
    status: super::schemas::RecipientStatus,
    updated_at: String,
    error: Option<super::schemas::ProviderError>,
}

#[derive(ToSchema)]
#[schema(example = json!({"data": [{"id": "rcp_01J…", "phone": "+919812345678", "wamid": null,
    "status": "unknown", "updated_at": "2026-01-31T09:00:00Z", "error": null}], "next_cursor": null}))]
pub struct RecipientPage {
    data: Vec<RecipientOut>,
    next_cursor: Option<String>,
}
