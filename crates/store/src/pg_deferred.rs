//! Writes a PostgreSQL transaction keeps until it must send them, then sends as one
//! statement per table: how trigger jobs started together (`Store::start_runs_together`)
//! write their runs' first steps.
//!
//! A missed call's first step writes a run, a conversation, its text, the text's send job,
//! the call's status, a task, a tag and log lines: ten statements, each a round trip
//! PostgreSQL wakes for. Sixteen calls' worth of such rows written with one statement per
//! table cost PostgreSQL and its client a fifth of the CPU of one statement per row
//! (measured with pgbench: docs/DECISIONS.md, session 13).
//! So while a transaction defers, a write whose result nobody reads is kept here; an
//! insert whose id the step needs takes one reserved from the table's identity sequence
//! first. Before any other statement runs in the transaction, and before it commits, the
//! kept rows go out, table by table, parents first (`PARENTS_FIRST`), as
//! `json_populate_recordset` over the table's own row type: one statement text per table
//! and set of columns, whatever the number of rows.
//!
//! Only plain writes are kept: an insert that must not meet a row already there is
//! written without `ON CONFLICT`, so a row a concurrent transaction wrote first fails the
//! whole transaction, which the caller then redoes one job at a time, deferring nothing.

use std::collections::HashMap;

use serde_json::{Map, Value as Json};

use crate::Result;

/// One row to write: column name to value, as `json_populate_recordset` reads it.
pub(crate) type Columns = Map<String, Json>;

/// The writes a deferring transaction keeps, and the ids it reserved.
#[derive(Default)]
pub(crate) struct Deferred {
    pub(crate) on: bool,
    groups: Vec<Group>,
    ids: HashMap<&'static str, Vec<i64>>,
}

struct Group {
    table: &'static str,
    write: Write,
    rows: Vec<Columns>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Write {
    /// With the `ON CONFLICT` clause the insert ends with, or "".
    Insert(&'static str),
    /// By `id`.
    Update,
}

impl Deferred {
    pub(crate) fn pending(&self) -> bool {
        !self.groups.is_empty()
    }

    /// Keeps an insert into `table`. `on_conflict` is "" or a whole `ON CONFLICT` clause.
    pub(crate) fn insert(&mut self, table: &'static str, on_conflict: &'static str, row: Columns) {
        self.group(table, Write::Insert(on_conflict)).push(row);
    }

    /// Keeps an update of row `id` of `table` to `columns`. A row this transaction is
    /// still keeping for insert takes them into the insert instead.
    pub(crate) fn update(&mut self, table: &'static str, id: i64, mut columns: Columns) {
        let kept = self
            .groups
            .iter_mut()
            .filter(|g| g.table == table)
            .flat_map(|g| g.rows.iter_mut())
            .find(|row| row.get("id").and_then(Json::as_i64) == Some(id));
        match kept {
            Some(row) => row.append(&mut columns),
            None => {
                columns.insert("id".to_owned(), Json::from(id));
                self.group(table, Write::Update).push(columns);
            }
        }
    }

    fn group(&mut self, table: &'static str, write: Write) -> &mut Vec<Columns> {
        let at = match self
            .groups
            .iter()
            .position(|g| g.table == table && g.write == write)
        {
            Some(at) => at,
            None => {
                self.groups.push(Group {
                    table,
                    write,
                    rows: Vec::new(),
                });
                self.groups.len() - 1
            }
        };
        &mut self.groups[at].rows
    }

    /// Keeps `ids` reserved from `table`'s sequence, for `take_id`.
    pub(crate) fn reserved(&mut self, table: &'static str, ids: impl IntoIterator<Item = i64>) {
        let kept = self.ids.entry(table).or_default();
        kept.extend(ids);
        // Taken from the end: the lowest first.
        kept.sort_unstable_by(|a, b| b.cmp(a));
    }

    pub(crate) fn take_id(&mut self, table: &'static str) -> Option<i64> {
        self.ids.get_mut(table).and_then(Vec::pop)
    }

    /// The statements that write what is kept, in order, and forgets it: each with its
    /// rows as a JSON array and, for an update, their ids (`id = ANY` keeps the planner
    /// on the primary key, where a join to the function's guessed hundred rows would
    /// scan the table).
    pub(crate) fn take_statements(&mut self) -> Vec<(String, String, Option<String>)> {
        let mut out = Vec::new();
        let mut groups = std::mem::take(&mut self.groups);
        groups.sort_by_key(|g| (rank(g.table), matches!(g.write, Write::Update)));
        for group in groups {
            // Rows with the same columns share a statement; a table's rows may differ
            // (an updated run carries more columns than a new one).
            let mut by_columns: Vec<(Vec<String>, Vec<Columns>)> = Vec::new();
            for row in group.rows {
                let columns: Vec<String> = row.keys().cloned().collect();
                match by_columns.iter_mut().find(|(c, _)| *c == columns) {
                    Some((_, rows)) => rows.push(row),
                    None => by_columns.push((columns, vec![row])),
                }
            }
            for (columns, rows) in by_columns {
                out.push(statement(group.table, group.write, &columns, rows));
            }
        }
        out
    }
}

/// The tables kept writes go to, each after those its rows may refer to: a table's rows
/// are written with one statement, so a transaction that first writes a child table (a
/// task for a run written already) and then a new parent row (another run) must still
/// write the parent first.
const PARENTS_FIRST: [&str; 8] = [
    "workflow_runs",
    "conversations",
    "messages",
    "tasks",
    "jobs",
    "calls",
    "contact_tags",
    "run_log",
];

fn rank(table: &str) -> usize {
    let rank = PARENTS_FIRST.iter().position(|t| *t == table);
    debug_assert!(rank.is_some(), "{table} is not in PARENTS_FIRST");
    rank.unwrap_or(PARENTS_FIRST.len())
}

fn statement(
    table: &str,
    write: Write,
    columns: &[String],
    rows: Vec<Columns>,
) -> (String, String, Option<String>) {
    let list = columns.join(", ");
    match write {
        Write::Insert(on_conflict) => {
            let overriding = if columns.iter().any(|c| c == "id") {
                " OVERRIDING SYSTEM VALUE"
            } else {
                ""
            };
            let sql = format!(
                "INSERT INTO {table} ({list}){overriding} SELECT {list} \
                 FROM json_populate_recordset(NULL::{table}, $1::json){on_conflict}"
            );
            (sql, Json::from(rows).to_string(), None)
        }
        Write::Update => {
            let set = columns
                .iter()
                .filter(|c| *c != "id")
                .map(|c| format!("{c} = x.{c}"))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "UPDATE {table} AS t SET {set} FROM json_populate_recordset(NULL::{table}, $1::json) AS x \
                 WHERE t.id = x.id AND t.id = ANY(CAST($2 AS bigint[]))"
            );
            let ids = crate::pg_batch::id_array(
                rows.iter()
                    .filter_map(|r| r.get("id").and_then(Json::as_i64)),
            );
            (sql, Json::from(rows).to_string(), Some(ids))
        }
    }
}

/// Columns for `Deferred`, written like `json!`'s objects: `columns! { "id" => id }`.
macro_rules! columns {
    ($($name:literal => $value:expr),* $(,)?) => {{
        let mut row = crate::pg_deferred::Columns::new();
        $(row.insert($name.to_owned(), serde_json::json!($value));)*
        row
    }};
}
pub(crate) use columns;

impl crate::sql::PgTx {
    /// Writes what the transaction kept.
    pub(crate) async fn flush_deferred(&mut self) -> Result<()> {
        for (sql, rows, ids) in self.deferred.take_statements() {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(rows);
            if let Some(ids) = ids {
                q = q.bind(ids);
            }
            q.execute(&mut *self.tx).await?;
        }
        Ok(())
    }

    /// Reserves `count` ids of each of `tables` with one statement. A sequence reads no
    /// table, so nothing kept need be written first.
    pub(crate) async fn reserve_ids(
        &mut self,
        tables: &[&'static str],
        count: usize,
    ) -> Result<()> {
        let names: Vec<String> = tables.iter().map(|t| (*t).to_owned()).collect();
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT t, nextval(pg_get_serial_sequence(t, 'id')) FROM unnest(CAST($1 AS text[])) AS t, \
             generate_series(1, $2)",
        )
        .bind(names)
        .bind(i64::try_from(count).unwrap_or(i64::MAX))
        .fetch_all(&mut *self.tx)
        .await?;
        for table in tables {
            let ids = rows.iter().filter(|(t, _)| t == table).map(|(_, id)| *id);
            self.deferred.reserved(table, ids);
        }
        Ok(())
    }

    /// An id for a new row of `table`: a reserved one, or (when a batch needs more than
    /// it reserved, as when a call starts several workflows) one of a few more reserved now.
    pub(crate) async fn next_id(&mut self, table: &'static str) -> Result<i64> {
        if let Some(id) = self.deferred.take_id(table) {
            return Ok(id);
        }
        self.reserve_ids(&[table], 16).await?;
        self.deferred.take_id(table).ok_or_else(|| {
            crate::StoreError::Corrupt(format!("the sequence of {table} gave no id"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_of_a_row_kept_for_insert_joins_the_insert() {
        let mut d = Deferred::default();
        d.insert(
            "workflow_runs",
            "",
            columns! { "id" => 7, "status" => "active" },
        );
        d.update(
            "workflow_runs",
            7,
            columns! { "status" => "waiting", "pc" => 4 },
        );
        d.update("workflow_runs", 8, columns! { "status" => "done" });
        let statements = d.take_statements();
        assert_eq!(statements.len(), 2, "{statements:?}");
        assert!(
            statements[0]
                .0
                .starts_with("INSERT INTO workflow_runs (id, pc, status) OVERRIDING SYSTEM VALUE")
        );
        assert_eq!(statements[0].1, r#"[{"id":7,"pc":4,"status":"waiting"}]"#);
        assert!(
            statements[1]
                .0
                .starts_with("UPDATE workflow_runs AS t SET status = x.status FROM")
        );
        assert_eq!(statements[1].2.as_deref(), Some("{8}"));
        assert!(!d.pending());
    }

    #[test]
    fn tables_are_written_parents_first_and_rows_by_their_columns() {
        let mut d = Deferred::default();
        d.insert("workflow_runs", "", columns! { "id" => 1 });
        d.insert("messages", "", columns! { "id" => 2, "run_id" => 1 });
        d.insert("workflow_runs", "", columns! { "id" => 3 });
        d.insert(
            "messages",
            "",
            columns! { "id" => 4, "run_id" => 3, "call_id" => 9 },
        );
        d.insert(
            "contact_tags",
            " ON CONFLICT DO NOTHING",
            columns! { "tag" => "a" },
        );
        let statements = d.take_statements();
        let tables: Vec<&str> = statements
            .iter()
            .map(|(sql, _, _)| sql.split(' ').nth(2).unwrap_or_default())
            .collect();
        assert_eq!(
            tables,
            ["workflow_runs", "messages", "messages", "contact_tags"]
        );
        assert_eq!(statements[0].1, r#"[{"id":1},{"id":3}]"#);
        assert!(statements[3].0.ends_with(" ON CONFLICT DO NOTHING"));
        assert!(!statements[3].0.contains("OVERRIDING"));
    }

    #[test]
    fn a_parent_first_written_after_its_children_is_written_before_them() {
        let mut d = Deferred::default();
        d.insert("tasks", "", columns! { "id" => 1, "run_id" => 4 });
        d.update("workflow_runs", 4, columns! { "status" => "done" });
        d.update("conversations", 5, columns! { "last_message_at" => 1 });
        d.insert(
            "messages",
            "",
            columns! { "id" => 1, "conversation_id" => 5 },
        );
        d.insert("conversations", "", columns! { "id" => 6 });
        d.insert(
            "messages",
            "",
            columns! { "id" => 2, "conversation_id" => 6 },
        );
        d.insert("workflow_runs", "", columns! { "id" => 7 });
        d.insert("tasks", "", columns! { "id" => 2, "run_id" => 7 });
        let order: Vec<String> = d
            .take_statements()
            .iter()
            .map(|(sql, _, _)| sql.split(' ').take(3).collect::<Vec<_>>().join(" "))
            .collect();
        assert_eq!(
            order,
            [
                "INSERT INTO workflow_runs",
                "UPDATE workflow_runs AS",
                "INSERT INTO conversations",
                "UPDATE conversations AS",
                "INSERT INTO messages",
                "INSERT INTO tasks"
            ]
        );
    }

    #[test]
    fn reserved_ids_are_taken_lowest_first() {
        let mut d = Deferred::default();
        d.reserved("tasks", [12, 10, 11]);
        assert_eq!(d.take_id("tasks"), Some(10));
        assert_eq!(d.take_id("tasks"), Some(11));
        assert_eq!(d.take_id("tasks"), Some(12));
        assert_eq!(d.take_id("tasks"), None);
        assert_eq!(d.take_id("messages"), None);
    }
}
