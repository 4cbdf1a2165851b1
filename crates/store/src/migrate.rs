//! A small migration runner: each backend has its own ordered SQL files, embedded in the
//! binary. (sqlx's `migrate!` would pull in its macro crate, compiled once per driver.)

use crate::{Db, Result};

struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

/// The same ordered list for each backend, read from its own folder.
macro_rules! migrations {
    ($dir:literal) => {
        &[
            Migration {
                version: 1,
                name: "init",
                sql: include_str!(concat!("../migrations/", $dir, "/0001_init.sql")),
            },
            Migration {
                version: 2,
                name: "conversations",
                sql: include_str!(concat!("../migrations/", $dir, "/0002_conversations.sql")),
            },
            Migration {
                version: 3,
                name: "workflows",
                sql: include_str!(concat!("../migrations/", $dir, "/0003_workflows.sql")),
            },
            Migration {
                version: 4,
                name: "variants",
                sql: include_str!(concat!("../migrations/", $dir, "/0004_variants.sql")),
            },
            Migration {
                version: 5,
                name: "api",
                sql: include_str!(concat!("../migrations/", $dir, "/0005_api.sql")),
            },
            Migration {
                version: 6,
                name: "event_webhooks",
                sql: include_str!(concat!("../migrations/", $dir, "/0006_event_webhooks.sql")),
            },
            Migration {
                version: 7,
                name: "smart_lists",
                sql: include_str!(concat!("../migrations/", $dir, "/0007_smart_lists.sql")),
            },
            Migration {
                version: 8,
                name: "users",
                sql: include_str!(concat!("../migrations/", $dir, "/0008_users.sql")),
            },
            Migration {
                version: 9,
                name: "reads",
                sql: include_str!(concat!("../migrations/", $dir, "/0009_reads.sql")),
            },
            Migration {
                version: 10,
                name: "version_authors",
                sql: include_str!(concat!("../migrations/", $dir, "/0010_version_authors.sql")),
            },
            Migration {
                version: 11,
                name: "transcripts",
                sql: include_str!(concat!("../migrations/", $dir, "/0011_transcripts.sql")),
            },
            Migration {
                version: 12,
                name: "report_indexes",
                sql: include_str!(concat!("../migrations/", $dir, "/0012_report_indexes.sql")),
            },
            Migration {
                version: 13,
                name: "job_notify",
                sql: include_str!(concat!("../migrations/", $dir, "/0013_job_notify.sql")),
            },
            Migration {
                version: 14,
                name: "pipeline_indexes",
                sql: include_str!(concat!(
                    "../migrations/",
                    $dir,
                    "/0014_pipeline_indexes.sql"
                )),
            },
            Migration {
                version: 15,
                name: "leased_jobs",
                sql: include_str!(concat!("../migrations/", $dir, "/0015_leased_jobs.sql")),
            },
            Migration {
                version: 16,
                name: "route_notify",
                sql: include_str!(concat!("../migrations/", $dir, "/0016_route_notify.sql")),
            },
        ]
    };
}

const SQLITE: &[Migration] = migrations!("sqlite");
const POSTGRES: &[Migration] = migrations!("postgres");

/// How many migrations each backend has (the same list for both).
pub const COUNT: usize = SQLITE.len();

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS textback_migrations (
    version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)";

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Applies each migration not yet recorded, in its own transaction, on one backend.
macro_rules! apply_all {
    ($migrations:expr, $begin:expr, $before:expr) => {{
        let mut applied = 0;
        for m in $migrations {
            let mut tx = $begin.await?;
            for stmt in $before {
                sqlx::query(stmt).execute(&mut *tx).await?;
            }
            let done = sqlx::query("SELECT version FROM textback_migrations WHERE version = $1")
                .bind(m.version)
                .fetch_optional(&mut *tx)
                .await?;
            if done.is_none() {
                sqlx::raw_sql(m.sql).execute(&mut *tx).await?;
                sqlx::query(
                    "INSERT INTO textback_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                )
                .bind(m.version)
                .bind(m.name)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
                applied += 1;
            }
            tx.commit().await?;
        }
        applied
    }};
}

pub(crate) async fn run(db: &Db) -> Result<usize> {
    Ok(match db {
        Db::Sqlite(sqlite) => apply_all!(
            SQLITE,
            sqlite.readers.begin_with("BEGIN IMMEDIATE"),
            [CREATE_TABLE]
        ),
        // Several instances may start at once: the advisory lock lets one migrate while the
        // others wait, then find the work done.
        Db::Postgres(pool) => apply_all!(
            POSTGRES,
            pool.begin(),
            ["SELECT pg_advisory_xact_lock(727384)", CREATE_TABLE]
        ),
    })
}

#[cfg(test)]
mod tests {
    /// Lookups every missed call makes (in `start_runs` and `advance_run`) must use an
    /// index: a full scan costs more with every call the business ever had.
    #[tokio::test]
    async fn the_pipelines_lookups_use_an_index() {
        let (store, path) = crate::test_files::migrated_store("plans").await;
        // These run inside the workers' write transactions: ask the writer's connection.
        let mut tx = store
            .begin_write(crate::sqlite_writer::Lane::Urgent)
            .await
            .unwrap();
        for sql in [
            "SELECT COUNT(*) FROM calls WHERE contact_id = $1 AND ($2 IS NULL OR id <> $2) AND started_at <= $3",
            "SELECT COUNT(*) > 0 FROM tasks WHERE run_id = $1 AND status = 'done'",
            "SELECT COUNT(*) FROM messages WHERE contact_id = $1 AND direction = 'inbound' AND id <> $2 AND created_at <= $3",
            "SELECT DISTINCT workflow_id FROM workflow_runs WHERE contact_id = $1",
        ] {
            let plan: Vec<String> = crate::sql::query(format!("EXPLAIN QUERY PLAN {sql}"))
                .bind(1i64)
                .bind(2i64)
                .bind(3i64)
                .fetch_all(&mut tx)
                .await
                .unwrap()
                .iter()
                .map(|r| r.try_get::<String, _>("detail").unwrap())
                .collect();
            let plan = plan.join("; ");
            assert!(!plan.contains("SCAN"), "{sql}\n  plan: {plan}");
            assert!(
                plan.contains("contact_id=?") || plan.contains("run_id=?"),
                "{sql}\n  plan: {plan}"
            );
        }
        drop(tx);
        store.close().await;
        crate::test_files::remove_db(&path);
    }
}
