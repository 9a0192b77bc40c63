//! A PostgreSQL database of one test's own, dropped when the test lets go of its [`TestDb`].
//!
//! Names are `WAGATE_TEST_DB_PREFIX` (default `wagate_t_`; `scripts/test` adds its pid) plus a
//! UUID, so `scripts/test` can drop what a killed test left behind: every stale `wagate_t_*` at
//! the start of a run, and its own run's at the end.

use std::time::Duration;

use sqlx::Connection;

const TIMEOUT: Duration = Duration::from_secs(5);
/// PostgreSQL 15 checkpoints on every `DROP DATABASE`: seconds when parallel tests have
/// dirtied many buffers.
const DROP_TIMEOUT: Duration = Duration::from_secs(60);

/// A fresh, empty database; dropped `WITH (FORCE)` (connections still open to it are ended)
/// when this guard is dropped, panic or not.
pub struct TestDb {
    admin: String,
    name: String,
    url: String,
}

impl TestDb {
    /// On the server of `WAGATE_TEST_POSTGRES_URL`; `None` when it cannot be had and services
    /// are not required, a panic when they are.
    pub async fn create() -> Option<TestDb> {
        Self::create_on(&admin_url(), super::required()).await
    }

    /// Any failure counts as "unavailable": the server down, the admin database missing, a
    /// refused login, or no right to create databases. None of them may pass as a skip when
    /// `required`.
    pub async fn create_on(admin: &str, required: bool) -> Option<TestDb> {
        match Self::try_create(admin).await {
            Ok(db) => Some(db),
            Err(e) => super::unavailable(required, "PostgreSQL", admin, e),
        }
    }

    async fn try_create(admin: &str) -> anyhow::Result<TestDb> {
        let name = super::unique(&prefix());
        let mut url = reqwest::Url::parse(admin)?;
        url.set_path(&format!("/{name}"));
        let mut conn = connect(admin).await?;
        let sql = format!("CREATE DATABASE {name}");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await?;
        let _ = conn.close().await;
        Ok(TestDb {
            admin: admin.to_owned(),
            name,
            url: url.into(),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// The server and database tests create theirs from (`WAGATE_TEST_POSTGRES_URL`).
fn admin_url() -> String {
    super::env_or(
        "WAGATE_TEST_POSTGRES_URL",
        "postgres://postgres@127.0.0.1:5432/test",
    )
}

async fn connect(url: &str) -> anyhow::Result<sqlx::PgConnection> {
    Ok(tokio::time::timeout(TIMEOUT, sqlx::PgConnection::connect(url)).await??)
}

/// The database-name prefix: it is spliced into SQL, so only `[a-z0-9_]` and the `wagate_t_`
/// start that the clean-ups look for.
fn prefix() -> String {
    let prefix = super::env_or("WAGATE_TEST_DB_PREFIX", "wagate_t_");
    let safe = prefix
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    assert!(
        safe && prefix.starts_with("wagate_t_") && prefix.len() <= 30,
        "WAGATE_TEST_DB_PREFIX={prefix:?}: want wagate_t_ and at most 21 more of [a-z0-9_]"
    );
    prefix
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Drop cannot await, and the test's runtime may be the one blocked here: a thread with
        // a runtime of its own does the work.
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let mut conn = connect(&admin).await?;
                let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                tokio::time::timeout(
                    DROP_TIMEOUT,
                    sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn),
                )
                .await??;
                anyhow::Ok(())
            })
        })
        .join();
        // Never a panic here: it would abort a test that is already unwinding. scripts/test
        // drops what is left at the end of the run.
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("could not drop test database {}: {e:#}", self.name),
            Err(_) => eprintln!("could not drop test database {}: panicked", self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn exists(admin: &str, name: &str) -> bool {
        let mut conn = connect(admin).await.unwrap();
        sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)",
        )
        .bind(name)
        .fetch_one(&mut conn)
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn the_database_goes_with_its_guard_even_while_connected() {
        let Some(db) = TestDb::create().await else {
            return;
        };
        let (admin, name) = (db.admin.clone(), db.name.clone());
        assert!(exists(&admin, &name).await);
        // An open connection, as a store pool that is not closed yet would hold.
        let mut held = sqlx::PgConnection::connect(db.url()).await.unwrap();
        sqlx::query("SELECT 1").execute(&mut held).await.unwrap();
        drop(db);
        assert!(!exists(&admin, &name).await, "{name} is still there");
    }

    #[tokio::test]
    #[should_panic(expected = "is required")]
    async fn a_missing_admin_database_fails_when_required() {
        let mut url = reqwest::Url::parse(&admin_url()).unwrap();
        url.set_path(&format!("/{}", super::super::unique("wagate_missing_")));
        TestDb::create_on(url.as_str(), true).await;
    }

    #[tokio::test]
    async fn a_missing_admin_database_skips_when_not_required() {
        let url = "postgres://postgres@127.0.0.1:5432/wagate_missing_database";
        assert!(TestDb::create_on(url, false).await.is_none());
    }
}
