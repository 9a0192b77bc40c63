//! The SQL both stores run word for word, written once.
//!
//! sqlx binds `$1`-style placeholders on SQLite as well as on PostgreSQL, so a query that uses
//! no dialect feature is the same text on both. `shared_queries!` writes each such query as a
//! function once and instantiates it per database with concrete types (generic code over
//! `sqlx::Database` would need a bound for every bound type at every call). What differs, batch
//! writes (`unnest` arrays against multi-row `VALUES`) and transaction modes, stays in the
//! adapters.

use std::collections::BTreeMap;

use crate::domain::phone::PhoneNumber;
use crate::domain::project::{BusinessNumber, Project, ProjectId};
use crate::domain::time::Timestamp;
use crate::ports::store::Quarantined;

/// Groups `(project row, number rows)` into projects, keeping the order of `rows`.
pub fn projects_from(
    rows: Vec<(String, String, i64)>,
    numbers: Vec<(String, String, Option<String>)>,
) -> Vec<Project> {
    let mut by_project: BTreeMap<String, Vec<BusinessNumber>> = BTreeMap::new();
    for (project, number, meta) in numbers {
        by_project.entry(project).or_default().push(BusinessNumber {
            number: PhoneNumber::from_trusted(number),
            meta_phone_number_id: meta,
        });
    }
    rows.into_iter()
        .map(|(id, name, created_at)| {
            let mut numbers = by_project.remove(&id).unwrap_or_default();
            numbers.sort();
            Project {
                id: ProjectId::from_trusted(id),
                name,
                numbers,
                created_at: Timestamp::from_millis(created_at),
            }
        })
        .collect()
}

/// One row per dedupe key (a key twice in one upsert is an error on PostgreSQL); the last
/// occurrence wins, as it would have in two statements.
pub fn distinct_quarantine(items: &[Quarantined]) -> Vec<&Quarantined> {
    let mut keyed: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, q) in items.iter().enumerate() {
        if let Some(k) = &q.dedupe_key {
            keyed.insert(k, i);
        }
    }
    items
        .iter()
        .enumerate()
        .filter(|(i, q)| q.dedupe_key.as_deref().is_none_or(|k| keyed[k] == *i))
        .map(|(_, q)| q)
        .collect()
}

macro_rules! shared_queries {
    ($db:ty, $conn:ty) => {
        use sqlx::{Pool, QueryBuilder};

        use crate::adapters::sql::store::{distinct_quarantine, projects_from};
        use crate::adapters::sql::{
            self, MessageRow, QUARANTINE_COLUMNS, message_row, quarantine_row,
        };
        use crate::domain::phone::PhoneNumber;
        use crate::domain::project::{
            ApiKeyHash, BusinessNumber, NewProject, Project, ProjectId,
        };
        use crate::domain::time::Timestamp;
        use crate::ports::store::{
            InboundView, MessageQuery, ProjectStats, QuarantineFilter, QuarantineView,
            Quarantined,
        };

        pub async fn project_by_key(
            pool: &Pool<$db>,
            key: &ApiKeyHash,
        ) -> Result<Option<ProjectId>, sqlx::Error> {
            let id: Option<String> =
                sqlx::query_scalar("SELECT id FROM projects WHERE api_key_hash = $1")
                    .bind(key.as_str())
                    .fetch_optional(pool)
                    .await?;
            Ok(id.map(ProjectId::from_trusted))
        }

        /// The project and campaign of each of these recipients that exists, within the
        /// caller's transaction: `(recipient, project, campaign)`.
        pub async fn recipient_campaigns(
            conn: &mut $conn,
            ids: &[&str],
        ) -> Result<Vec<(String, String, String)>, sqlx::Error> {
            let mut out = Vec::new();
            // Bounded statements: a batch may name thousands of recipients.
            for chunk in ids.chunks(500) {
                let mut q = QueryBuilder::<$db>::new(
                    "SELECT id, project_id, campaign_id FROM campaign_recipients WHERE id IN (",
                );
                let mut sep = q.separated(", ");
                for id in chunk {
                    sep.push_bind(*id);
                }
                q.push(")");
                out.extend(
                    q.build_query_as::<(String, String, String)>()
                        .fetch_all(&mut *conn)
                        .await?,
                );
            }
            Ok(out)
        }

        pub async fn number_by_meta_id(
            pool: &Pool<$db>,
            id: &str,
        ) -> Result<Option<(ProjectId, PhoneNumber)>, sqlx::Error> {
            // Two rows: the id is ambiguous (a registration mistake), so it decides nothing.
            let rows: Vec<(String, String)> = sqlx::query_as(
                "SELECT project_id, number FROM business_numbers \
                 WHERE meta_phone_number_id = $1 LIMIT 2",
            )
            .bind(id)
            .fetch_all(pool)
            .await?;
            Ok(match <[_; 1]>::try_from(rows) {
                Ok([(project, number)]) => Some((
                    ProjectId::from_trusted(project),
                    PhoneNumber::from_trusted(number),
                )),
                Err(_) => None,
            })
        }

        pub async fn project_by_number(
            pool: &Pool<$db>,
            number: &PhoneNumber,
        ) -> Result<Option<ProjectId>, sqlx::Error> {
            let id: Option<String> =
                sqlx::query_scalar("SELECT project_id FROM business_numbers WHERE number = $1")
                    .bind(number.as_str())
                    .fetch_optional(pool)
                    .await?;
            Ok(id.map(ProjectId::from_trusted))
        }

        pub async fn projects(
            pool: &Pool<$db>,
            only: Option<&ProjectId>,
            after: Option<&ProjectId>,
            limit: u32,
        ) -> Result<Vec<Project>, sqlx::Error> {
            let mut q = QueryBuilder::<$db>::new(
                "SELECT id, name, created_at FROM projects WHERE id > ",
            );
            q.push_bind(after.map_or("", |a| a.as_str()));
            if let Some(id) = only {
                q.push(" AND id = ").push_bind(id.as_str());
            }
            q.push(" ORDER BY id LIMIT ").push_bind(i64::from(limit));
            let rows: Vec<(String, String, i64)> =
                q.build_query_as().fetch_all(pool).await?;
            if rows.is_empty() {
                return Ok(Vec::new());
            }
            let mut q = QueryBuilder::<$db>::new(
                "SELECT project_id, number, meta_phone_number_id FROM business_numbers \
                 WHERE project_id IN (",
            );
            let mut ids = q.separated(", ");
            for (id, _, _) in &rows {
                ids.push_bind(id.as_str());
            }
            q.push(")");
            let numbers = q.build_query_as().fetch_all(pool).await?;
            Ok(projects_from(rows, numbers))
        }

        pub async fn insert_project(
            tx: &mut $conn,
            p: &NewProject,
            key: &ApiKeyHash,
            now: Timestamp,
        ) -> Result<(), crate::ports::StoreError> {
            sqlx::query(
                "INSERT INTO projects (id, name, api_key_hash, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(p.id.as_str())
            .bind(&p.name)
            .bind(key.as_str())
            .bind(now.millis())
            .execute(&mut *tx)
            .await
            .map_err(sql::or_conflict(|| format!("project `{}` already exists", p.id)))?;
            for n in &p.numbers {
                meta_id_free(&mut *tx, n).await?;
                sqlx::query(
                    "INSERT INTO business_numbers (number, project_id, meta_phone_number_id) \
                     VALUES ($1, $2, $3)",
                )
                .bind(n.number.as_str())
                .bind(p.id.as_str())
                .bind(n.meta_phone_number_id.as_deref())
                .execute(&mut *tx)
                .await
                .map_err(sql::or_conflict(|| {
                    format!("business number {} belongs to another project", n.number)
                }))?;
            }
            Ok(())
        }

        /// `Conflict` when another number (of any project) has `n`'s Meta phone-number id: the
        /// id names one number, and Meta's webhooks find their project by it. (Two concurrent
        /// registrations of one id can both pass; the lookup then treats the id as ambiguous and
        /// falls back to the display number.)
        async fn meta_id_free(
            tx: &mut $conn,
            n: &BusinessNumber,
        ) -> Result<(), crate::ports::StoreError> {
            let Some(id) = n.meta_phone_number_id.as_deref() else {
                return Ok(());
            };
            let holder: Option<String> = sqlx::query_scalar(
                "SELECT number FROM business_numbers \
                 WHERE meta_phone_number_id = $1 AND number <> $2 LIMIT 1",
            )
            .bind(id)
            .bind(n.number.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(sql::classify)?;
            match holder {
                Some(number) => Err(crate::ports::StoreError::Conflict(format!(
                    "Meta phone-number id {id} is registered for {number} already"
                ))),
                None => Ok(()),
            }
        }

        /// `Ok(false)`: no such project; `Conflict`: another project has the number.
        pub async fn add_number(
            tx: &mut $conn,
            id: &ProjectId,
            n: &BusinessNumber,
        ) -> Result<bool, crate::ports::StoreError> {
            let exists: Option<String> =
                sqlx::query_scalar("SELECT id FROM projects WHERE id = $1")
                    .bind(id.as_str())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(sql::classify)?;
            if exists.is_none() {
                return Ok(false);
            }
            meta_id_free(&mut *tx, n).await?;
            // The update applies only when the number is already this project's: a number
            // another project holds comes back as no row.
            let owner: Option<String> = sqlx::query_scalar(
                "INSERT INTO business_numbers (number, project_id, meta_phone_number_id) \
                 VALUES ($1, $2, $3) ON CONFLICT (number) DO UPDATE SET meta_phone_number_id = \
                 COALESCE(excluded.meta_phone_number_id, business_numbers.meta_phone_number_id) \
                 WHERE business_numbers.project_id = excluded.project_id RETURNING project_id",
            )
            .bind(n.number.as_str())
            .bind(id.as_str())
            .bind(n.meta_phone_number_id.as_deref())
            .fetch_optional(&mut *tx)
            .await
            .map_err(sql::classify)?;
            match owner {
                Some(_) => Ok(true),
                None => Err(crate::ports::StoreError::Conflict(format!(
                    "business number {} belongs to another project",
                    n.number
                ))),
            }
        }

        pub async fn remove_number(
            pool: &Pool<$db>,
            id: &ProjectId,
            number: &PhoneNumber,
        ) -> Result<bool, sqlx::Error> {
            let done =
                sqlx::query("DELETE FROM business_numbers WHERE project_id = $1 AND number = $2")
                    .bind(id.as_str())
                    .bind(number.as_str())
                    .execute(pool)
                    .await?;
            Ok(done.rows_affected() > 0)
        }

        pub async fn rotate_key(
            tx: &mut $conn,
            id: &ProjectId,
            new: &ApiKeyHash,
        ) -> Result<Option<ApiKeyHash>, sqlx::Error> {
            let old: Option<String> =
                sqlx::query_scalar("SELECT api_key_hash FROM projects WHERE id = $1")
                    .bind(id.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
            if old.is_some() {
                sqlx::query("UPDATE projects SET api_key_hash = $2 WHERE id = $1")
                    .bind(id.as_str())
                    .bind(new.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
            Ok(old.map(ApiKeyHash::from_stored))
        }

        pub async fn message_one(
            pool: &Pool<$db>,
            project: &ProjectId,
            wamid: &str,
        ) -> Result<Option<MessageRow>, sqlx::Error> {
            sqlx::query("SELECT * FROM messages WHERE wamid = $1 AND project_id = $2")
                .bind(wamid)
                .bind(project.as_str())
                .fetch_optional(pool)
                .await?
                .as_ref()
                .map(message_row)
                .transpose()
        }

        pub async fn message_page(
            pool: &Pool<$db>,
            project: &ProjectId,
            query: &MessageQuery,
        ) -> Result<Vec<MessageRow>, sqlx::Error> {
            let mut q = QueryBuilder::<$db>::new("SELECT * FROM messages WHERE project_id = ");
            q.push_bind(project.as_str());
            if let Some(c) = &query.campaign_id {
                q.push(" AND campaign_id = ").push_bind(c.as_str());
            }
            if let Some(s) = query.status {
                q.push(" AND status_rank = ").push_bind(i32::from(s.rank()));
            }
            if let Some(after) = &query.after {
                q.push(" AND wamid > ").push_bind(after.as_str());
            }
            q.push(" ORDER BY wamid LIMIT ").push_bind(i64::from(query.limit));
            q.build().fetch_all(pool).await?.iter().map(message_row).collect()
        }

        pub async fn inbound(
            pool: &Pool<$db>,
            project: &ProjectId,
            after: Option<i64>,
            limit: u32,
        ) -> Result<Vec<InboundView>, sqlx::Error> {
            sqlx::query(
                "SELECT * FROM inbound_messages WHERE project_id = $1 AND seq > $2 \
                 ORDER BY seq LIMIT $3",
            )
            .bind(project.as_str())
            .bind(after.unwrap_or(0))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
            .iter()
            .map(sql::inbound_row)
            .collect()
        }

        pub async fn stats(
            pool: &Pool<$db>,
            project: &ProjectId,
        ) -> Result<ProjectStats, sqlx::Error> {
            let by_status: Vec<(i32, i64)> = sqlx::query_as(
                "SELECT status_rank, COUNT(*) FROM messages WHERE project_id = $1 \
                 GROUP BY status_rank",
            )
            .bind(project.as_str())
            .fetch_all(pool)
            .await?;
            let (history, inbound): (i64, i64) = sqlx::query_as(
                "SELECT (SELECT CAST(COALESCE(SUM(event_count), 0) AS BIGINT) FROM messages \
                 WHERE project_id = $1), \
                        (SELECT COUNT(*) FROM inbound_messages WHERE project_id = $1)",
            )
            .bind(project.as_str())
            .fetch_one(pool)
            .await?;
            Ok(sql::stats(by_status, history, inbound))
        }

        /// Records items; a known dedupe key is updated in place and loses any replay claim,
        /// so a replay that is still running does not delete what was quarantined again.
        pub async fn quarantine(
            pool: &Pool<$db>,
            items: &[Quarantined],
        ) -> Result<(), sqlx::Error> {
            let items = distinct_quarantine(items);
            if items.is_empty() {
                return Ok(());
            }
            let mut q = QueryBuilder::<$db>::new(
                "INSERT INTO quarantine (provider, reason, body, dedupe_key, business_number, \
                 event, received_at) ",
            );
            q.push_values(items, |mut b, i| {
                b.push_bind(i.provider.as_str())
                    .push_bind(i.reason.as_str())
                    .push_bind(i.body.as_str())
                    .push_bind(i.dedupe_key.as_deref())
                    .push_bind(i.business_number.as_deref())
                    .push_bind(i.event.as_deref())
                    .push_bind(i.received_at.millis());
            });
            q.push(
                " ON CONFLICT (dedupe_key) DO UPDATE SET reason = excluded.reason, \
                 business_number = COALESCE(excluded.business_number, quarantine.business_number), \
                 event = COALESCE(excluded.event, quarantine.event), replay_token = NULL",
            );
            q.build().execute(pool).await?;
            Ok(())
        }

        pub async fn quarantined(
            pool: &Pool<$db>,
            before: Option<i64>,
            limit: u32,
        ) -> Result<Vec<QuarantineView>, sqlx::Error> {
            let sql = format!(
                "SELECT {QUARANTINE_COLUMNS} FROM quarantine WHERE id < $1 ORDER BY id DESC LIMIT $2"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(before.unwrap_or(i64::MAX))
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
                .iter()
                .map(quarantine_row)
                .collect()
        }

        pub async fn claim_quarantined(
            pool: &Pool<$db>,
            f: &QuarantineFilter,
            token: &str,
            limit: u32,
        ) -> Result<Vec<QuarantineView>, sqlx::Error> {
            let mut q = QueryBuilder::<$db>::new("UPDATE quarantine SET replay_token = ");
            q.push_bind(token);
            q.push(" WHERE id IN (SELECT id FROM quarantine WHERE id > ");
            q.push_bind(f.after_id);
            if let Some(reason) = &f.reason {
                q.push(" AND reason = ").push_bind(reason.as_str());
            }
            if !f.business_numbers.is_empty() {
                q.push(" AND business_number IN (");
                let mut list = q.separated(", ");
                for n in &f.business_numbers {
                    list.push_bind(n.as_str());
                }
                q.push(")");
            }
            if let Some(from) = f.from {
                q.push(" AND received_at >= ").push_bind(from.millis());
            }
            if let Some(to) = f.to {
                q.push(" AND received_at < ").push_bind(to.millis());
            }
            q.push(" ORDER BY id LIMIT ").push_bind(i64::from(limit));
            q.push(") RETURNING ").push(QUARANTINE_COLUMNS);
            let mut rows = q
                .build()
                .fetch_all(pool)
                .await?
                .iter()
                .map(quarantine_row)
                .collect::<Result<Vec<_>, _>>()?;
            rows.sort_by_key(|r| r.id);
            Ok(rows)
        }

        pub async fn prune_raw(
            pool: &Pool<$db>,
            before: Timestamp,
            limit: u32,
        ) -> Result<u64, sqlx::Error> {
            let history = sqlx::query(
                "UPDATE message_events SET raw = '' \
                 WHERE (wamid, status_rank, status_word) IN (SELECT wamid, status_rank, status_word \
                 FROM message_events WHERE raw <> '' AND received_at < $1 LIMIT $2)",
            )
            .bind(before.millis())
            .bind(i64::from(limit))
            .execute(pool)
            .await?
            .rows_affected();
            let inbound = sqlx::query(
                "UPDATE inbound_messages SET raw = '' WHERE seq IN (SELECT seq \
                 FROM inbound_messages WHERE raw <> '' AND received_at < $1 LIMIT $2)",
            )
            .bind(before.millis())
            .bind(i64::from(limit))
            .execute(pool)
            .await?
            .rows_affected();
            Ok(history + inbound)
        }

        pub async fn release_quarantined(
            pool: &Pool<$db>,
            ids: &[i64],
            token: &str,
        ) -> Result<u64, sqlx::Error> {
            if ids.is_empty() {
                return Ok(0);
            }
            let mut q = QueryBuilder::<$db>::new("DELETE FROM quarantine WHERE replay_token = ");
            q.push_bind(token).push(" AND id IN (");
            let mut list = q.separated(", ");
            for id in ids {
                list.push_bind(*id);
            }
            q.push(")");
            Ok(q.build().execute(pool).await?.rows_affected())
        }
    };
}

pub(crate) use shared_queries;

/// The shared queries on PostgreSQL.
pub mod pg {
    super::shared_queries!(sqlx::Postgres, sqlx::PgConnection);
}

/// The shared queries on SQLite.
pub mod lite {
    super::shared_queries!(sqlx::Sqlite, sqlx::SqliteConnection);
}
