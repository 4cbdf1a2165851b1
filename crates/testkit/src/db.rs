//! A fresh database per test: a SQLite file in a temporary directory, or a uniquely named
//! PostgreSQL database on the server named by `TEXTBACK_TEST_POSTGRES_URL`.

use std::path::PathBuf;

use sqlx::Connection;

pub const POSTGRES_ENV: &str = "TEXTBACK_TEST_POSTGRES_URL";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestDb {
    pub url: String,
    dir: Option<PathBuf>,
    pg_admin: Option<(String, String)>,
}

impl TestDb {
    /// `None` when the backend is PostgreSQL and no test server is configured: the caller
    /// skips (CI always sets `TEXTBACK_TEST_POSTGRES_URL`).
    pub async fn create(backend: Backend) -> Option<TestDb> {
        let unique = format!("{:016x}", fastrand::u64(..));
        match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!("textback-test-{unique}"));
                std::fs::create_dir_all(&dir).expect("create temp dir");
                Some(TestDb {
                    url: format!("sqlite:{}", dir.join("textback.db").display()),
                    dir: Some(dir),
                    pg_admin: None,
                })
            }
            Backend::Postgres => {
                let admin = std::env::var(POSTGRES_ENV).ok().filter(|s| !s.is_empty())?;
                let name = format!("textback_test_{unique}");
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .unwrap_or_else(|e| panic!("{POSTGRES_ENV} is set but unreachable: {e}"));
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                let _ = conn.close().await;
                let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
                Some(TestDb {
                    url: format!("{base}/{name}"),
                    dir: None,
                    pg_admin: Some((admin, name)),
                })
            }
        }
    }

    /// A PostgreSQL database, or `None` (saying the test is skipped) when no test server
    /// is configured.
    pub async fn postgres_or_skip() -> Option<TestDb> {
        let db = TestDb::create(Backend::Postgres).await;
        if db.is_none() {
            eprintln!("skipped: {POSTGRES_ENV} is not set");
        }
        db
    }

    /// Removes the database. Leftovers of a panicked test are removed by `.ci/run`.
    /// PostgreSQL only: refuses new connections to this database and ends the open ones
    /// (`up = false`), or lets them in again (`up = true`) — a database outage, on cue.
    pub async fn set_available(&self, up: bool) {
        let Some((admin, name)) = &self.pg_admin else {
            panic!("outages are simulated on PostgreSQL only");
        };
        let mut conn = sqlx::PgConnection::connect(admin).await.expect("admin");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE {name} WITH ALLOW_CONNECTIONS {up}"
        )))
        .execute(&mut conn)
        .await
        .expect("alter database");
        if !up {
            sqlx::query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            )
            .bind(name)
            .execute(&mut conn)
            .await
            .expect("terminate backends");
        }
        let _ = conn.close().await;
    }

    pub async fn drop_db(self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        if let Some((admin, name)) = &self.pg_admin
            && let Ok(mut conn) = sqlx::PgConnection::connect(admin).await
        {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut conn)
            .await;
            let _ = conn.close().await;
        }
    }
}
