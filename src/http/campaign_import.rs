//! Loading a campaign's recipients from CSV (an uploaded body or a `csv_url`), streamed, and
//! exporting its per-recipient results as CSV, streamed too.
//!
//! Neither direction holds the file: an upload is parsed chunk by chunk as it arrives and
//! stored a few thousand rows at a time, and the export is written page by page, so a
//! 1,000,000-row campaign costs the memory of one page.
//!
//! An upload that fails midway (the body or `csv_url` breaks off, the store fails) is not
//! rolled back: its error says exactly how many of its recipients were stored (every write
//! under way is awaited first). Loads are idempotent on (campaign, phone), so sending the same
//! file again stores the rest and counts the stored ones as duplicates; the campaign stays a
//! draft throughout, so nothing half-loaded is ever sent.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::campaigns::owned;
use super::error::ApiError;
use super::extract::ProjectAuth;
use super::openapi::ErrorBody;
use super::openapi::campaign_schemas::ImportReport;
use super::webhooks::Target;
use crate::domain::campaign::csv_import::{CsvError, CsvImport};
use crate::domain::campaign::{Campaign, CampaignState, ImportCounts, NewRecipient, RecipientId};
use crate::domain::endpoint::WebhookUrl;
use crate::ports::StoreError;

/// Rows stored per store call.
const STORE_BATCH: usize = 5000;
/// Rows per export page.
const EXPORT_PAGE: u32 = 5000;

pub enum Source<'a> {
    Upload(Body),
    Url(&'a str),
}

fn csv_error(e: CsvError) -> ApiError {
    ApiError::bad_request(e.code(), e.to_string())
}

fn too_large(max: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the CSV exceeds {max} bytes (WAGATE_CSV_MAX_BYTES)"),
    )
}

/// Reads the CSV from `source` into the campaign's recipients; returns the import report.
/// A URL that cannot be fetched is recorded on the campaign (`last_error`), which stays a
/// draft.
pub(super) async fn load(
    s: &AppState,
    c: &Campaign,
    source: Source<'_>,
) -> Result<Value, ApiError> {
    if c.state != CampaignState::Draft {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "invalid_transition",
            format!(
                "recipients can be loaded into a draft campaign only, not a {} one",
                c.state.as_str()
            ),
        ));
    }
    let max = s.campaigning.csv_max_bytes;
    let mut stream = match source {
        Source::Upload(body) => body
            .into_data_stream()
            .map(|r| r.map_err(|e| ApiError::bad_request("bad_request", e.to_string())))
            .boxed(),
        Source::Url(url) => match fetch(s, url).await {
            Ok(stream) => stream,
            Err(e) => {
                let _ = s
                    .campaigning
                    .campaigns
                    .set_last_error(&c.id, Some(&format!("csv_url: {}", e.message)))
                    .await;
                return Err(e);
            }
        },
    };
    let mut writer = Writer::new(s, c);
    let parsed = async {
        let mut import = CsvImport::new(s.campaigning.default_country_code.as_deref());
        let mut rows: Vec<NewRecipient> = Vec::with_capacity(STORE_BATCH);
        let mut read: u64 = 0;
        while let Some(chunk) = stream.next().await {
            let chunk: Bytes = chunk?;
            read += chunk.len() as u64;
            if read > max {
                return Err(too_large(max));
            }
            import.feed(&chunk, &mut rows).map_err(csv_error)?;
            if rows.len() >= STORE_BATCH {
                writer.add(&mut rows).await?;
            }
        }
        let summary = import.finish(&mut rows).map_err(csv_error)?;
        writer.add(&mut rows).await?;
        Ok(summary)
    }
    .await;
    let (summary, stored) = match parsed {
        Ok(summary) => (summary, writer.finish().await?),
        Err(mut e) => {
            let stored = writer.settle_all().await;
            e.message = format!("{} ({})", e.message, stored_so_far(&stored));
            return Err(e);
        }
    };
    if c.last_error.is_some() {
        s.campaigning.campaigns.set_last_error(&c.id, None).await?;
    }
    Ok(json!({
        "accepted": stored.accepted,
        "rejected": summary.rejected,
        "rejected_total": summary.rejected_total,
        "duplicates": stored.duplicates + summary.duplicates,
        "opted_out": stored.opted_out,
    }))
}

/// Writes in flight at once.
const WRITES_IN_FLIGHT: usize = 2;

/// Stores parsed rows batch by batch while the next batches are parsed, with up to
/// [`WRITES_IN_FLIGHT`] writes at once.
struct Writer {
    campaigns: std::sync::Arc<dyn crate::ports::Campaigns>,
    project: crate::domain::project::ProjectId,
    campaign: crate::domain::campaign::CampaignId,
    in_flight:
        std::collections::VecDeque<tokio::task::JoinHandle<Result<ImportCounts, StoreError>>>,
    total: ImportCounts,
}

impl Writer {
    fn new(s: &AppState, c: &Campaign) -> Writer {
        Writer {
            campaigns: s.campaigning.campaigns.clone(),
            project: c.project_id.clone(),
            campaign: c.id.clone(),
            in_flight: Default::default(),
            total: ImportCounts::default(),
        }
    }

    /// Starts storing `rows` (which it empties), first waiting for the oldest write if
    /// [`WRITES_IN_FLIGHT`] are under way.
    async fn add(&mut self, rows: &mut Vec<NewRecipient>) -> Result<(), ApiError> {
        if rows.is_empty() {
            return Ok(());
        }
        while self.in_flight.len() >= WRITES_IN_FLIGHT {
            self.settle().await?;
        }
        let batch = std::mem::replace(rows, Vec::with_capacity(STORE_BATCH));
        let (campaigns, project, campaign) = (
            self.campaigns.clone(),
            self.project.clone(),
            self.campaign.clone(),
        );
        self.in_flight.push_back(tokio::spawn(async move {
            campaigns.add_recipients(&project, &campaign, &batch).await
        }));
        Ok(())
    }

    /// Waits for the oldest write in flight and counts what it stored.
    async fn settle(&mut self) -> Result<(), ApiError> {
        let Some(write) = self.in_flight.pop_front() else {
            return Ok(());
        };
        let n = write
            .await
            .map_err(|e| StoreError::Unavailable(format!("storing recipients: {e}")))??;
        self.total.accepted += n.accepted;
        self.total.duplicates += n.duplicates;
        self.total.opted_out += n.opted_out;
        Ok(())
    }

    /// Waits for every write; returns what all of them stored.
    async fn finish(mut self) -> Result<ImportCounts, ApiError> {
        while !self.in_flight.is_empty() {
            self.settle().await?;
        }
        Ok(self.total)
    }

    /// After a failure: waits for every write still under way and returns what all the writes
    /// that succeeded stored (and, if one failed, what a write under way stored before).
    async fn settle_all(&mut self) -> ImportCounts {
        while !self.in_flight.is_empty() {
            let _ = self.settle().await;
        }
        self.total.clone()
    }
}

/// What a failed upload says about what it stored.
fn stored_so_far(stored: &ImportCounts) -> String {
    let kept = stored.accepted + stored.opted_out;
    if kept == 0 {
        return "no recipient of this upload was stored".to_owned();
    }
    format!(
        "{kept} recipients of this upload were stored before the failure ({} queued, {} opted \
         out) and stay in the draft; sending the same file again stores the rest, counting \
         those as duplicates",
        stored.accepted, stored.opted_out
    )
}

type ByteStream = futures_util::stream::BoxStream<'static, Result<Bytes, ApiError>>;

/// GETs the CSV at `url` with the webhook client's address guard, as a stream of chunks.
async fn fetch(s: &AppState, url: &str) -> Result<ByteStream, ApiError> {
    let failed = |why: String| ApiError::bad_request("csv_fetch_failed", why);
    let parsed = WebhookUrl::parse(url)
        .map_err(|e| ApiError::bad_request("url_not_allowed", e.for_field("csv_url")))?;
    // Unlike a webhook URL, which is only used later, a CSV is fetched now: a name that does
    // not resolve is a fetch that failed, said so (an internal address is still refused).
    match super::webhooks::vet_target(&parsed, s.allow_private_targets).await {
        Target::Allowed => {}
        Target::Unresolved => {
            return Err(failed(format!(
                "fetching csv_url failed: its host `{}` does not resolve",
                parsed
                    .host_and_port()
                    .map_or(String::new(), |(h, _)| h.to_string())
            )));
        }
        Target::Internal => return Err(super::webhooks::internal_target("csv_url")),
    }
    let download = s
        .campaigning
        .csv_client
        .get(parsed.as_str())
        .await
        .map_err(|(_, text)| failed(format!("fetching csv_url failed: {text}")))?;
    if !(200..300).contains(&download.status) {
        return Err(failed(format!("csv_url answered HTTP {}", download.status)));
    }
    let max = s.campaigning.csv_max_bytes;
    if download.content_length.is_some_and(|n| n > max) {
        return Err(too_large(max));
    }
    Ok(download
        .body
        .map(move |chunk| chunk.map_err(|e| failed(format!("reading csv_url failed: {e}"))))
        .boxed())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"csv_url": "https://example.com/recipients.csv"}))]
pub struct UrlBody {
    csv_url: String,
}

/// Load a campaign's recipients
///
/// A `text/csv` body (a `phone` column, plus the columns the template parameters name), or
/// `{"csv_url"}` as JSON. Streamed; up to `WAGATE_CSV_MAX_BYTES`.
#[utoipa::path(post, path = "/project/campaign/{id}/recipients", operation_id = "upload_campaign_recipients", tag = "campaigns", security(("project_key" = [])),
    params(("id" = String, Path, description = "The campaign id", example = "cmp_01JABCDEF")),
    request_body(content(
        (String = "text/csv", example = json!("phone,name\n+919812345678,Asha\n+919812345679,Ravi\n")),
        (UrlBody = "application/json"))),
    responses(
        (status = 200, description = "The import report", body = ImportReport),
        (status = 400, description = "A CSV without a phone column, a bad `csv_url`", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such campaign (or another project's)", body = ErrorBody),
        (status = 409, description = "Not a draft", body = ErrorBody),
        (status = 413, description = "The CSV is too large", body = ErrorBody),
        (status = 422, description = "A JSON body of the wrong shape", body = ErrorBody)))]
pub async fn upload(
    State(s): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<axum::Json<Value>, ApiError> {
    let c = owned(&s, &project, &id).await?;
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    let report = if is_json {
        let bytes = axum::body::to_bytes(body, super::limits::BULK_JSON_BODY_BYTES)
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "a JSON body must be at most 64 KiB",
                )
            })?;
        let b: UrlBody = super::extract::parse_json(&bytes)?;
        load(&s, &c, Source::Url(&b.csv_url)).await?
    } else {
        load(&s, &c, Source::Upload(body)).await?
    };
    Ok(axum::Json(report))
}

/// Export a campaign's results as CSV
///
/// One line per recipient with its message id, status (the message's merged status once
/// sent), last change and error.
#[utoipa::path(get, path = "/project/campaign/{id}/messages.csv", operation_id = "export_campaign_messages", tag = "campaigns", security(("project_key" = [])),
    params(("id" = String, Path, description = "The campaign id", example = "cmp_01JABCDEF")),
    responses(
        (status = 200, description = "The results", content_type = "text/csv", body = String,
            example = json!("phone,wamid,status,updated_at,error_code,error_title\n+919812345678,wamid.HBgM,read,2026-01-31T09:00:05Z,,\n")),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No such campaign (or another project's)", body = ErrorBody)))]
pub async fn export(
    State(s): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let c = owned(&s, &project, &id).await?;
    let campaigns = s.campaigning.campaigns.clone();
    let header_line = Bytes::from_static(b"phone,wamid,status,updated_at,error_code,error_title\n");
    // Pages are read as the client reads; a store error ends the body early, which the client
    // sees as a truncated download rather than a file that looks complete.
    let pages = futures_util::stream::unfold(Some(None::<RecipientId>), move |cursor| {
        let campaigns = campaigns.clone();
        let cid = c.id.clone();
        async move {
            let after = cursor?;
            match campaigns
                .export_page(&cid, after.as_ref(), EXPORT_PAGE)
                .await
            {
                Ok(rows) if rows.is_empty() => None,
                Ok(rows) => {
                    let next = (rows.len() == EXPORT_PAGE as usize)
                        .then(|| rows.last().map(|r| r.recipient.clone()));
                    let mut out = String::with_capacity(rows.len() * 80);
                    for r in &rows {
                        let (code, title) = r
                            .error
                            .as_ref()
                            .map_or((None, None), |e| (e.code.as_deref(), e.message.as_deref()));
                        let cells = [
                            r.phone.as_str(),
                            r.provider_message_id.as_deref().unwrap_or(""),
                            r.status.as_str(),
                            &r.updated_at.to_rfc3339(),
                            code.unwrap_or(""),
                            title.unwrap_or(""),
                        ];
                        push_line(&mut out, &cells);
                    }
                    Some((Ok::<Bytes, std::io::Error>(Bytes::from(out)), next))
                }
                Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
            }
        }
    });
    let body = futures_util::stream::once(async move { Ok(header_line) }).chain(pages);
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"messages.csv\"",
            ),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

/// Appends one CSV line. Cells with a comma, quote or line break are quoted; a text cell a
/// spreadsheet would run as a formula (`=`, `@`, or `-`/`+` not followed by a digit) gets a
/// leading `'`, so an error title from a BSP cannot become one.
fn push_line(out: &mut String, cells: &[&str]) {
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let risky = match cell.as_bytes() {
            [b'=' | b'@' | b'\t' | b'\r', ..] => true,
            [b'+' | b'-', next, ..] => !next.is_ascii_digit(),
            [b'+' | b'-'] => true,
            _ => false,
        };
        let needs_quotes = cell.contains([',', '"', '\n', '\r']);
        if needs_quotes {
            out.push('"');
        }
        if risky {
            out.push('\'');
        }
        for ch in cell.chars() {
            if ch == '"' {
                out.push('"');
            }
            out.push(ch);
        }
        if needs_quotes {
            out.push('"');
        }
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::push_line;

    #[test]
    fn export_lines_quote_and_defuse_formulas() {
        let mut out = String::new();
        push_line(
            &mut out,
            &["+919812345678", "wamid.A", "read", "=SUM(A1)", "a, \"b\""],
        );
        assert_eq!(
            out,
            "+919812345678,wamid.A,read,'=SUM(A1),\"a, \"\"b\"\"\"\n"
        );
    }
}
