//! The endpoints port's SQL, written once for both stores (see `store.rs` for why a macro).
//!
//! Every statement here is plain SQL that PostgreSQL and SQLite both accept. Each change is
//! one statement (or, for a delete, one transaction), so a concurrent change by another
//! process, such as the forwarder disabling an endpoint, is never undone by a read-modify-write.

use crate::adapters::sql::secrets::unreadable;
use crate::domain::endpoint::{
    DeliveryStatus, Endpoint, EndpointId, PreviousSecret, SharedSecret, Topics, WebhookDeliveryId,
    WebhookUrl,
};
use crate::domain::project::ProjectId;
use crate::domain::sealing;
use crate::domain::time::Timestamp;
use crate::ports::endpoints::{AttemptView, DeliveryView};
use crate::services::Sealer;

/// The columns `EndpointRow` holds, in order.
macro_rules! endpoint_columns {
    () => {
        "id, project_id, url, topics, description, secret, previous_secret, \
         previous_secret_expires_at, enabled, disabled_reason, created_at, updated_at"
    };
}

/// The columns `DeliveryRow` holds, in order.
macro_rules! delivery_columns {
    () => {
        "id, event_id, endpoint_id, event_type, status, attempts, next_attempt_at, \
         last_status_code, last_error, created_at, updated_at"
    };
}

pub type EndpointRow = (
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    Option<String>,
    Option<i64>,
    bool,
    Option<String>,
    i64,
    i64,
);

/// An endpoint read back, its secrets opened (see `sql::secrets`).
pub fn endpoint_from(r: EndpointRow, sealer: &Sealer) -> Result<Endpoint, sqlx::Error> {
    let (
        id,
        project,
        url,
        topics,
        description,
        secret,
        previous,
        expires,
        enabled,
        disabled_reason,
        created_at,
        updated_at,
    ) = r;
    let context = sealing::endpoint_context(&id);
    let open = |stored: &str| {
        sealer
            .open(stored, &context)
            .map(SharedSecret::from_trusted)
            .map_err(|e| unreadable("endpoint secret", e))
    };
    let secret = open(&secret)?;
    let previous_secret = match previous.zip(expires) {
        Some((s, at)) => Some(PreviousSecret {
            secret: open(&s)?,
            expires_at: Timestamp::from_millis(at),
        }),
        None => None,
    };
    Ok(Endpoint {
        id: EndpointId::from_trusted(id),
        project_id: ProjectId::from_trusted(project),
        url: WebhookUrl::from_trusted(url),
        topics: Topics::from_stored(&topics),
        description,
        secret,
        previous_secret,
        enabled,
        disabled_reason,
        created_at: Timestamp::from_millis(created_at),
        updated_at: Timestamp::from_millis(updated_at),
    })
}

pub type DeliveryRow = (
    String,
    String,
    String,
    String,
    String,
    i32,
    i64,
    Option<i32>,
    Option<String>,
    i64,
    i64,
);

pub fn delivery_from(r: DeliveryRow) -> Result<DeliveryView, sqlx::Error> {
    let status = DeliveryStatus::parse(&r.4)
        .ok_or_else(|| sqlx::Error::Decode(format!("unknown delivery status `{}`", r.4).into()))?;
    Ok(DeliveryView {
        id: WebhookDeliveryId::from_trusted(r.0),
        event_id: r.1,
        endpoint_id: EndpointId::from_trusted(r.2),
        event_type: r.3,
        status,
        attempts: u32::try_from(r.5).unwrap_or(0),
        next_attempt_at: Timestamp::from_millis(r.6),
        last_status_code: r.7.and_then(|c| u16::try_from(c).ok()),
        last_error: r.8,
        created_at: Timestamp::from_millis(r.9),
        updated_at: Timestamp::from_millis(r.10),
    })
}

pub type AttemptRow = (
    i32,
    Option<i32>,
    Option<i64>,
    Option<String>,
    Option<String>,
    i64,
);

pub fn attempt_from(r: AttemptRow) -> AttemptView {
    AttemptView {
        attempt: u32::try_from(r.0).unwrap_or(0),
        status_code: r.1.and_then(|c| u16::try_from(c).ok()),
        latency_ms: r.2.and_then(|l| u64::try_from(l).ok()),
        error: r.3,
        response_snippet: r.4,
        attempted_at: Timestamp::from_millis(r.5),
    }
}

macro_rules! endpoint_queries {
    ($db:ty, $conn:ty) => {
        use sqlx::{Pool, QueryBuilder};

        use crate::adapters::sql::endpoints::{
            AttemptRow, DeliveryRow, EndpointRow, attempt_from, delivery_from, endpoint_from,
        };
        use crate::domain::endpoint::{
            DISABLED_BY_REQUEST, Endpoint, EndpointId, EndpointPatch, SharedSecret,
            WebhookDeliveryId,
        };
        use crate::domain::project::ProjectId;
        use crate::domain::sealing;
        use crate::domain::time::Timestamp;
        use crate::ports::endpoints::{DeliveryDetail, DeliveryQuery, DeliveryView};
        use crate::services::Sealer;

        pub async fn insert(
            pool: &Pool<$db>,
            e: &Endpoint,
            sealer: &Sealer,
        ) -> Result<(), sqlx::Error> {
            let context = sealing::endpoint_context(e.id.as_str());
            sqlx::query(concat!(
                "INSERT INTO endpoints (",
                endpoint_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
            ))
            .bind(e.id.as_str())
            .bind(e.project_id.as_str())
            .bind(e.url.as_str())
            .bind(e.topics.to_stored())
            .bind(e.description.as_deref())
            .bind(sealer.seal(e.secret.expose(), &context))
            .bind(
                e.previous_secret
                    .as_ref()
                    .map(|p| sealer.seal(p.secret.expose(), &context)),
            )
            .bind(e.previous_secret.as_ref().map(|p| p.expires_at.millis()))
            .bind(e.enabled)
            .bind(e.disabled_reason.as_deref())
            .bind(e.created_at.millis())
            .bind(e.updated_at.millis())
            .execute(pool)
            .await?;
            Ok(())
        }

        pub async fn get(
            pool: &Pool<$db>,
            project: &ProjectId,
            id: &EndpointId,
            sealer: &Sealer,
        ) -> Result<Option<Endpoint>, sqlx::Error> {
            let row: Option<EndpointRow> = sqlx::query_as(concat!(
                "SELECT ",
                endpoint_columns!(),
                " FROM endpoints WHERE id = $1 AND project_id = $2"
            ))
            .bind(id.as_str())
            .bind(project.as_str())
            .fetch_optional(pool)
            .await?;
            row.map(|r| endpoint_from(r, sealer)).transpose()
        }

        pub async fn by_id(
            pool: &Pool<$db>,
            id: &EndpointId,
            sealer: &Sealer,
        ) -> Result<Option<Endpoint>, sqlx::Error> {
            let row: Option<EndpointRow> = sqlx::query_as(concat!(
                "SELECT ",
                endpoint_columns!(),
                " FROM endpoints WHERE id = $1"
            ))
            .bind(id.as_str())
            .fetch_optional(pool)
            .await?;
            row.map(|r| endpoint_from(r, sealer)).transpose()
        }

        /// The project's endpoints, oldest first; only the enabled ones if `enabled_only`.
        pub async fn list(
            pool: &Pool<$db>,
            project: &ProjectId,
            enabled_only: bool,
            sealer: &Sealer,
        ) -> Result<Vec<Endpoint>, sqlx::Error> {
            // `enabled = $2 OR $3` rather than two statements: false for $3 filters.
            let rows: Vec<EndpointRow> = sqlx::query_as(concat!(
                "SELECT ",
                endpoint_columns!(),
                " FROM endpoints WHERE project_id = $1 AND (enabled = $2 OR $3) ORDER BY id"
            ))
            .bind(project.as_str())
            .bind(true)
            .bind(!enabled_only)
            .fetch_all(pool)
            .await?;
            rows.into_iter().map(|r| endpoint_from(r, sealer)).collect()
        }

        pub async fn update(
            pool: &Pool<$db>,
            project: &ProjectId,
            id: &EndpointId,
            patch: &EndpointPatch,
            now: Timestamp,
            sealer: &Sealer,
        ) -> Result<Option<Endpoint>, sqlx::Error> {
            let row: Option<EndpointRow> = sqlx::query_as(concat!(
                "UPDATE endpoints SET url = COALESCE($3, url), topics = COALESCE($4, topics), \
                 description = CASE WHEN $5 THEN $6 ELSE description END, \
                 disabled_reason = CASE WHEN $7 IS NULL THEN disabled_reason \
                 WHEN $7 THEN NULL WHEN enabled THEN $8 ELSE disabled_reason END, \
                 enabled = COALESCE($7, enabled), updated_at = $9 \
                 WHERE id = $1 AND project_id = $2 RETURNING ",
                endpoint_columns!()
            ))
            .bind(id.as_str())
            .bind(project.as_str())
            .bind(patch.url.as_ref().map(|u| u.as_str()))
            .bind(patch.topics.as_ref().map(|t| t.to_stored()))
            .bind(patch.description.is_some())
            .bind(patch.description.clone().flatten())
            .bind(patch.enabled)
            .bind(DISABLED_BY_REQUEST)
            .bind(now.millis())
            .fetch_optional(pool)
            .await?;
            row.map(|r| endpoint_from(r, sealer)).transpose()
        }

        pub async fn disable(
            pool: &Pool<$db>,
            id: &EndpointId,
            reason: &str,
            now: Timestamp,
        ) -> Result<bool, sqlx::Error> {
            let done = sqlx::query(
                "UPDATE endpoints SET enabled = $2, disabled_reason = $3, updated_at = $4 \
                 WHERE id = $1",
            )
            .bind(id.as_str())
            .bind(false)
            .bind(reason)
            .bind(now.millis())
            .execute(pool)
            .await?;
            Ok(done.rows_affected() > 0)
        }

        /// In the caller's transaction: the endpoint, then its deliveries and their attempts.
        pub async fn delete(
            tx: &mut $conn,
            project: &ProjectId,
            id: &EndpointId,
        ) -> Result<bool, sqlx::Error> {
            let gone = sqlx::query("DELETE FROM endpoints WHERE id = $1 AND project_id = $2")
                .bind(id.as_str())
                .bind(project.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if gone == 0 {
                return Ok(false);
            }
            sqlx::query(
                "DELETE FROM delivery_attempts WHERE delivery_id IN \
                 (SELECT id FROM deliveries WHERE endpoint_id = $1 AND project_id = $2)",
            )
            .bind(id.as_str())
            .bind(project.as_str())
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM deliveries WHERE endpoint_id = $1 AND project_id = $2")
                .bind(id.as_str())
                .bind(project.as_str())
                .execute(&mut *tx)
                .await?;
            Ok(true)
        }

        pub async fn rotate_secret(
            pool: &Pool<$db>,
            project: &ProjectId,
            id: &EndpointId,
            new: &SharedSecret,
            previous_expires_at: Timestamp,
            now: Timestamp,
            sealer: &Sealer,
        ) -> Result<Option<Endpoint>, sqlx::Error> {
            // Both databases evaluate every SET expression against the row as it was, so
            // `previous_secret = secret` takes the secret being replaced.
            let row: Option<EndpointRow> = sqlx::query_as(concat!(
                "UPDATE endpoints SET previous_secret = secret, previous_secret_expires_at = $4, \
                 secret = $3, updated_at = $5 WHERE id = $1 AND project_id = $2 RETURNING ",
                endpoint_columns!()
            ))
            .bind(id.as_str())
            .bind(project.as_str())
            .bind(sealer.seal(new.expose(), &sealing::endpoint_context(id.as_str())))
            .bind(previous_expires_at.millis())
            .bind(now.millis())
            .fetch_optional(pool)
            .await?;
            row.map(|r| endpoint_from(r, sealer)).transpose()
        }

        pub async fn deliveries(
            pool: &Pool<$db>,
            project: &ProjectId,
            endpoint: &EndpointId,
            query: &DeliveryQuery,
        ) -> Result<Vec<DeliveryView>, sqlx::Error> {
            let mut q = QueryBuilder::<$db>::new(concat!(
                "SELECT ",
                delivery_columns!(),
                " FROM deliveries WHERE endpoint_id = "
            ));
            q.push_bind(endpoint.as_str());
            q.push(" AND project_id = ").push_bind(project.as_str());
            if let Some(status) = query.status {
                q.push(" AND status = ").push_bind(status.as_str());
            }
            if let Some(after) = &query.after {
                q.push(" AND id > ").push_bind(after.as_str());
            }
            q.push(" ORDER BY id LIMIT ")
                .push_bind(i64::from(query.limit));
            let rows: Vec<DeliveryRow> = q.build_query_as().fetch_all(pool).await?;
            rows.into_iter().map(delivery_from).collect()
        }

        pub async fn delivery(
            pool: &Pool<$db>,
            project: &ProjectId,
            id: &WebhookDeliveryId,
        ) -> Result<Option<DeliveryDetail>, sqlx::Error> {
            type WithPayload = (
                String,
                String,
                String,
                String,
                String,
                i32,
                i64,
                Option<i32>,
                Option<String>,
                i64,
                i64,
                String,
            );
            let row: Option<WithPayload> = sqlx::query_as(concat!(
                "SELECT ",
                delivery_columns!(),
                ", payload FROM deliveries WHERE id = $1 AND project_id = $2"
            ))
            .bind(id.as_str())
            .bind(project.as_str())
            .fetch_optional(pool)
            .await?;
            let Some(r) = row else {
                return Ok(None);
            };
            let view: DeliveryRow = (r.0, r.1, r.2, r.3, r.4, r.5, r.6, r.7, r.8, r.9, r.10);
            let payload = r.11;
            let attempts: Vec<AttemptRow> = sqlx::query_as(
                "SELECT attempt, status_code, latency_ms, error, response_snippet, attempted_at \
                 FROM delivery_attempts WHERE delivery_id = $1 ORDER BY attempt",
            )
            .bind(id.as_str())
            .fetch_all(pool)
            .await?;
            Ok(Some(DeliveryDetail {
                delivery: delivery_from(view)?,
                payload,
                attempts: attempts.into_iter().map(attempt_from).collect(),
            }))
        }
    };
}

/// The endpoint queries on PostgreSQL.
pub mod pg {
    endpoint_queries!(sqlx::Postgres, sqlx::PgConnection);
}

/// The endpoint queries on SQLite.
pub mod lite {
    endpoint_queries!(sqlx::Sqlite, sqlx::SqliteConnection);
}
