//! The store's one query API over both backends and both ways of running a query.
//!
//! A query is written once (`$1` placeholders work in SQLite too) and runs on whatever it is
//! given: a write transaction (`&mut WriteTx`) or the read pool (`&Db`). On PostgreSQL both
//! go through sqlx. On SQLite a write transaction runs inline on the one writer connection
//! (see `sqlite_writer`): sqlx's SQLite driver hands every statement to a thread of its own
//! and back, and a missed call's forty-odd statements spent more time in those hand-offs
//! than in SQLite. SQLite reads stay on sqlx's pool, so a slow report never holds up the
//! async runtime, except reads of a few rows by key (`Db::by_key`), which run inline too.
//!
//! Values cross as `Value` and rows come back as owned `Row`s, read with `try_get` by column
//! name as with sqlx.

use std::borrow::Cow;
use std::marker::PhantomData;
use std::sync::Arc;

use sqlx::{Column, TypeInfo, ValueRef};

use crate::sqlite_writer::{Lane, SqliteTx};
use crate::{Db, Result, StoreError};

/// The type a NULL parameter has: PostgreSQL is told each parameter's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Int,
    Real,
    Text,
    Bool,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null(Kind),
    Int(i64),
    Real(f64),
    Text(String),
    Bool(bool),
}

/// What can be bound to a placeholder.
pub(crate) trait Bind {
    fn into_value(self) -> Value;
}

/// The kind of a bindable type, for its NULL.
pub(crate) trait Typed {
    const KIND: Kind;
}

macro_rules! bind_int {
    ($($t:ty),*) => {$(
        impl Bind for $t {
            fn into_value(self) -> Value {
                Value::Int(i64::from(self))
            }
        }
        impl Typed for $t {
            const KIND: Kind = Kind::Int;
        }
    )*};
}
bind_int!(i64, i32, u32, i16, u8);

impl Bind for bool {
    fn into_value(self) -> Value {
        Value::Bool(self)
    }
}
impl Typed for bool {
    const KIND: Kind = Kind::Bool;
}
impl Bind for f64 {
    fn into_value(self) -> Value {
        Value::Real(self)
    }
}
impl Typed for f64 {
    const KIND: Kind = Kind::Real;
}
impl Bind for String {
    fn into_value(self) -> Value {
        Value::Text(self)
    }
}
impl Typed for String {
    const KIND: Kind = Kind::Text;
}
impl Bind for &str {
    fn into_value(self) -> Value {
        Value::Text(self.to_owned())
    }
}
impl Typed for &str {
    const KIND: Kind = Kind::Text;
}
impl<T: Bind + Typed> Bind for Option<T> {
    fn into_value(self) -> Value {
        match self {
            Some(v) => v.into_value(),
            None => Value::Null(T::KIND),
        }
    }
}
impl<T: Bind + Typed + Clone> Bind for &T {
    fn into_value(self) -> Value {
        self.clone().into_value()
    }
}
impl<T: Typed> Typed for &T {
    const KIND: Kind = T::KIND;
}
impl<T: Typed> Typed for Option<T> {
    const KIND: Kind = T::KIND;
}

/// What a column decodes into.
pub(crate) trait Decode<'r>: Sized {
    fn decode(value: &'r Value) -> std::result::Result<Self, String>;
}

fn mismatch(want: &str, got: &Value) -> String {
    format!("expected {want}, found {got:?}")
}

impl Decode<'_> for i64 {
    fn decode(value: &Value) -> std::result::Result<Self, String> {
        match value {
            Value::Int(i) => Ok(*i),
            Value::Bool(b) => Ok(i64::from(*b)),
            other => Err(mismatch("an integer", other)),
        }
    }
}
impl Decode<'_> for i32 {
    fn decode(value: &Value) -> std::result::Result<Self, String> {
        let i = i64::decode(value)?;
        i32::try_from(i).map_err(|_| format!("{i} does not fit in 32 bits"))
    }
}
impl Decode<'_> for bool {
    fn decode(value: &Value) -> std::result::Result<Self, String> {
        match value {
            Value::Bool(b) => Ok(*b),
            Value::Int(i) => Ok(*i != 0),
            other => Err(mismatch("a boolean", other)),
        }
    }
}
impl Decode<'_> for f64 {
    fn decode(value: &Value) -> std::result::Result<Self, String> {
        match value {
            Value::Real(f) => Ok(*f),
            Value::Int(i) => Ok(*i as f64),
            other => Err(mismatch("a number", other)),
        }
    }
}
impl Decode<'_> for String {
    fn decode(value: &Value) -> std::result::Result<Self, String> {
        match value {
            Value::Text(s) => Ok(s.clone()),
            other => Err(mismatch("text", other)),
        }
    }
}
impl<'r> Decode<'r> for &'r str {
    fn decode(value: &'r Value) -> std::result::Result<Self, String> {
        match value {
            Value::Text(s) => Ok(s),
            other => Err(mismatch("text", other)),
        }
    }
}
impl<'r, T: Decode<'r>> Decode<'r> for Option<T> {
    fn decode(value: &'r Value) -> std::result::Result<Self, String> {
        match value {
            Value::Null(_) => Ok(None),
            v => T::decode(v).map(Some),
        }
    }
}

/// One row, owned.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    names: Arc<[Box<str>]>,
    values: Vec<Value>,
}

/// A column by name or position.
pub(crate) trait ColumnIndex {
    fn position(&self, row: &Row) -> Result<usize>;
}
impl ColumnIndex for &str {
    fn position(&self, row: &Row) -> Result<usize> {
        row.names
            .iter()
            .position(|n| &**n == *self)
            .ok_or_else(|| StoreError::Database(sqlx::Error::ColumnNotFound((*self).to_owned())))
    }
}
impl ColumnIndex for usize {
    fn position(&self, row: &Row) -> Result<usize> {
        if *self < row.values.len() {
            Ok(*self)
        } else {
            Err(StoreError::Database(sqlx::Error::ColumnIndexOutOfBounds {
                index: *self,
                len: row.values.len(),
            }))
        }
    }
}

impl Row {
    pub(crate) fn try_get<'r, T: Decode<'r>, I: ColumnIndex>(&'r self, index: I) -> Result<T> {
        let i = index.position(self)?;
        T::decode(&self.values[i])
            .map_err(|e| StoreError::Corrupt(format!("column {:?}: {e}", self.names[i].as_ref())))
    }
}

/// Where a query runs.
pub(crate) enum Target<'a, 't> {
    Pool(&'a Db),
    ByKey(&'a Db),
    Tx(&'a mut WriteTx<'t>),
    Alone(&'a Db, Lane),
}

/// One statement that writes, committed on its own; see `Db::alone`.
pub(crate) struct Alone<'a>(pub(crate) &'a Db, pub(crate) Lane);
impl<'a> From<Alone<'a>> for Target<'a, 'static> {
    fn from(alone: Alone<'a>) -> Self {
        Target::Alone(alone.0, alone.1)
    }
}

/// A read of a few rows by key; see `Db::by_key`.
pub(crate) struct ByKey<'a>(pub(crate) &'a Db);
impl<'a> From<ByKey<'a>> for Target<'a, 'static> {
    fn from(by_key: ByKey<'a>) -> Self {
        Target::ByKey(by_key.0)
    }
}
impl<'a> From<&'a Db> for Target<'a, 'static> {
    fn from(db: &'a Db) -> Self {
        Target::Pool(db)
    }
}
impl<'a, 't> From<&'a mut WriteTx<'t>> for Target<'a, 't> {
    fn from(tx: &'a mut WriteTx<'t>) -> Self {
        Target::Tx(tx)
    }
}

/// A write transaction on either backend; see `Store::begin_write`.
pub(crate) enum WriteTx<'w> {
    Sqlite(SqliteTx<'w>),
    Postgres(PgTx),
}

/// A PostgreSQL write transaction, with the jobs queued in it that nobody in it reads
/// back (`enqueue_later!`): they are inserted with one statement before it commits; and,
/// while it defers, the writes it keeps until its next statement (`pg_deferred`).
pub(crate) struct PgTx {
    pub(crate) tx: sqlx::Transaction<'static, sqlx::Postgres>,
    pub(crate) later_jobs: Vec<LaterJob>,
    pub(crate) deferred: crate::pg_deferred::Deferred,
}

impl PgTx {
    pub(crate) fn new(tx: sqlx::Transaction<'static, sqlx::Postgres>) -> PgTx {
        PgTx {
            tx,
            later_jobs: Vec::new(),
            deferred: Default::default(),
        }
    }
}

/// A job to insert when the transaction commits; see `PgTx`.
#[derive(serde::Serialize)]
pub(crate) struct LaterJob {
    pub(crate) kind: &'static str,
    pub(crate) subject_id: i64,
    pub(crate) unique_key: Option<String>,
    pub(crate) run_at: i64,
    pub(crate) max_attempts: i64,
    pub(crate) created_at: i64,
}

impl WriteTx<'_> {
    /// The row lock clause for the backend: SQLite locks the whole database for writing
    /// already (BEGIN IMMEDIATE) and has no FOR UPDATE.
    pub(crate) fn for_update(&self) -> &'static str {
        match self {
            WriteTx::Sqlite(_) => "",
            WriteTx::Postgres(_) => " FOR UPDATE",
        }
    }

    /// The PostgreSQL transaction, when it keeps writes for later (`pg_deferred`).
    pub(crate) fn deferring(&mut self) -> Option<&mut PgTx> {
        match self {
            WriteTx::Postgres(pg) if pg.deferred.on => Some(pg),
            _ => None,
        }
    }

    /// Starts or stops keeping writes (`pg_deferred`); a no-op on SQLite.
    pub(crate) fn set_deferring(&mut self, on: bool) {
        if let WriteTx::Postgres(pg) = self {
            pg.deferred.on = on;
        }
    }

    pub(crate) async fn commit(mut self) -> Result<()> {
        if let WriteTx::Postgres(pg) = &mut self {
            pg.flush_deferred().await?;
        }
        self.insert_later_jobs().await?;
        match self {
            WriteTx::Sqlite(tx) => tx.commit().await,
            WriteTx::Postgres(pg) => Ok(pg.tx.commit().await?),
        }
    }

    /// Inserts the jobs `enqueue_later!` kept, now: before commit, and before a statement
    /// that may touch them.
    pub(crate) async fn insert_later_jobs(&mut self) -> Result<()> {
        let WriteTx::Postgres(pg) = self else {
            return Ok(());
        };
        if pg.later_jobs.is_empty() {
            return Ok(());
        }
        let json = crate::to_json(&pg.later_jobs);
        pg.later_jobs.clear();
        query(
            "INSERT INTO jobs (kind, subject_id, unique_key, run_at, max_attempts, created_at) \
             SELECT kind, subject_id, unique_key, run_at, max_attempts, created_at \
             FROM json_to_recordset($1::json) AS x(kind text, subject_id bigint, unique_key text, \
             run_at bigint, max_attempts bigint, created_at bigint) \
             ON CONFLICT (unique_key) DO NOTHING",
        )
        .bind(json)
        .execute(self)
        .await?;
        Ok(())
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Execute,
    One,
    Optional,
    All,
}

enum Output {
    Done(u64),
    Rows(Vec<Row>),
}

/// What an `execute` changed.
pub(crate) struct Done(u64);
impl Done {
    pub(crate) fn rows_affected(&self) -> u64 {
        self.0
    }
}

pub(crate) struct Query<'q> {
    sql: Cow<'q, str>,
    args: Vec<Value>,
}

pub(crate) fn query<'q>(sql: impl Into<Cow<'q, str>>) -> Query<'q> {
    Query {
        sql: sql.into(),
        args: Vec::new(),
    }
}

/// A query whose rows are read by their first column.
pub(crate) struct QueryScalar<'q, T> {
    query: Query<'q>,
    _out: PhantomData<fn() -> T>,
}

pub(crate) fn query_scalar<'q, T>(sql: impl Into<Cow<'q, str>>) -> QueryScalar<'q, T> {
    QueryScalar {
        query: query(sql),
        _out: PhantomData,
    }
}

impl Query<'_> {
    pub(crate) fn bind(mut self, value: impl Bind) -> Self {
        self.args.push(value.into_value());
        self
    }

    pub(crate) async fn execute<'a, 't: 'a>(self, on: impl Into<Target<'a, 't>>) -> Result<Done> {
        match self.run(on.into(), Mode::Execute).await? {
            Output::Done(n) => Ok(Done(n)),
            Output::Rows(_) => Ok(Done(0)),
        }
    }

    pub(crate) async fn fetch_all<'a, 't: 'a>(
        self,
        on: impl Into<Target<'a, 't>>,
    ) -> Result<Vec<Row>> {
        match self.run(on.into(), Mode::All).await? {
            Output::Rows(rows) => Ok(rows),
            Output::Done(_) => Ok(Vec::new()),
        }
    }

    pub(crate) async fn fetch_optional<'a, 't: 'a>(
        self,
        on: impl Into<Target<'a, 't>>,
    ) -> Result<Option<Row>> {
        match self.run(on.into(), Mode::Optional).await? {
            Output::Rows(rows) => Ok(rows.into_iter().next()),
            Output::Done(_) => Ok(None),
        }
    }

    pub(crate) async fn fetch_one<'a, 't: 'a>(self, on: impl Into<Target<'a, 't>>) -> Result<Row> {
        match self.run(on.into(), Mode::One).await? {
            Output::Rows(rows) => rows
                .into_iter()
                .next()
                .ok_or(StoreError::Database(sqlx::Error::RowNotFound)),
            Output::Done(_) => Err(StoreError::Database(sqlx::Error::RowNotFound)),
        }
    }

    async fn run(self, on: Target<'_, '_>, mode: Mode) -> Result<Output> {
        match on {
            Target::Tx(WriteTx::Sqlite(tx)) => tx.run(|conn| run_rusqlite(conn, &self, mode)),
            Target::Tx(WriteTx::Postgres(pg)) => {
                // What the statement reads or changes may be among the kept writes.
                if pg.deferred.pending() {
                    pg.flush_deferred().await?;
                }
                run_sqlx!(&mut *pg.tx, self, mode)
            }
            Target::Pool(Db::Postgres(pool)) | Target::ByKey(Db::Postgres(pool)) => {
                run_sqlx!(pool, self, mode)
            }
            Target::Pool(Db::Sqlite(sqlite)) => run_sqlx!(&sqlite.readers, self, mode),
            Target::ByKey(Db::Sqlite(sqlite)) => sqlite.point_reads.run(|conn| {
                #[cfg(debug_assertions)]
                reads_by_key(conn, &self.sql)?;
                run_rusqlite(conn, &self, mode)
            }),
            // A statement outside a transaction commits by itself: no BEGIN and COMMIT
            // round trips.
            Target::Alone(Db::Postgres(pool), _) => run_sqlx!(pool, self, mode),
            Target::Alone(Db::Sqlite(sqlite), lane) => {
                let mut tx = sqlite.writer.begin(lane).await?;
                let out = tx.run(|conn| run_rusqlite(conn, &self, mode))?;
                tx.commit().await?;
                Ok(out)
            }
        }
    }
}

impl<T: for<'r> Decode<'r>> QueryScalar<'_, T> {
    pub(crate) fn bind(mut self, value: impl Bind) -> Self {
        self.query = self.query.bind(value);
        self
    }

    pub(crate) async fn fetch_one<'a, 't: 'a>(self, on: impl Into<Target<'a, 't>>) -> Result<T> {
        first(self.query.fetch_one(on).await?)
    }

    pub(crate) async fn fetch_optional<'a, 't: 'a>(
        self,
        on: impl Into<Target<'a, 't>>,
    ) -> Result<Option<T>> {
        self.query.fetch_optional(on).await?.map(first).transpose()
    }

    pub(crate) async fn fetch_all<'a, 't: 'a>(
        self,
        on: impl Into<Target<'a, 't>>,
    ) -> Result<Vec<T>> {
        self.query
            .fetch_all(on)
            .await?
            .into_iter()
            .map(first)
            .collect()
    }
}

fn first<T: for<'r> Decode<'r>>(row: Row) -> Result<T> {
    row.try_get(0usize)
}

/// Runs a query through sqlx on a pool or a PostgreSQL transaction, binding each value with
/// its own type and reading every column back by the type the database reports.
macro_rules! run_sqlx {
    ($executor:expr, $q:expr, $mode:expr) => {{
        let Query { sql, args } = $q;
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.into_owned()));
        for arg in args {
            query = match arg {
                Value::Int(i) => query.bind(i),
                Value::Real(f) => query.bind(f),
                Value::Text(s) => query.bind(s),
                Value::Bool(b) => query.bind(b),
                Value::Null(Kind::Int) => query.bind(None::<i64>),
                Value::Null(Kind::Real) => query.bind(None::<f64>),
                Value::Null(Kind::Text) => query.bind(None::<String>),
                Value::Null(Kind::Bool) => query.bind(None::<bool>),
            };
        }
        match $mode {
            Mode::Execute => Ok(Output::Done(
                query.execute($executor).await?.rows_affected(),
            )),
            Mode::One | Mode::Optional => {
                let row = query.fetch_optional($executor).await?;
                Ok(Output::Rows(
                    row.map(|r| from_sqlx(&r))
                        .transpose()?
                        .into_iter()
                        .collect(),
                ))
            }
            Mode::All => {
                let rows = query.fetch_all($executor).await?;
                let mut names: Option<Arc<[Box<str>]>> = None;
                let mut out = Vec::with_capacity(rows.len());
                for r in &rows {
                    let mut row = from_sqlx(r)?;
                    // One set of names for all the rows.
                    match &names {
                        Some(n) => row.names = n.clone(),
                        None => names = Some(row.names.clone()),
                    }
                    out.push(row);
                }
                Ok(Output::Rows(out))
            }
        }
    }};
}
use run_sqlx;

/// Reads a sqlx row (either backend) by the types the database reports.
fn from_sqlx<R>(row: &R) -> Result<Row>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    for<'r> i16: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i32: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> f64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let columns = row.columns();
    let mut names = Vec::with_capacity(columns.len());
    let mut values = Vec::with_capacity(columns.len());
    for (i, column) in columns.iter().enumerate() {
        names.push(Box::<str>::from(column.name()));
        let raw = row.try_get_raw(i)?;
        if raw.is_null() {
            values.push(Value::Null(Kind::Text));
            continue;
        }
        let type_name = raw.type_info().name().to_ascii_uppercase();
        drop(raw);
        let value = match type_name.as_str() {
            "BOOL" | "BOOLEAN" => match row.try_get_unchecked::<bool, _>(i) {
                Ok(b) => Value::Bool(b),
                Err(_) => Value::Int(row.try_get_unchecked::<i64, _>(i)?),
            },
            "INT2" => Value::Int(i64::from(row.try_get_unchecked::<i16, _>(i)?)),
            "INT4" => Value::Int(i64::from(row.try_get_unchecked::<i32, _>(i)?)),
            t if t.contains("INT") => Value::Int(row.try_get_unchecked::<i64, _>(i)?),
            t if t.contains("REAL") || t.contains("FLOAT") || t.contains("DOUBLE") => {
                Value::Real(row.try_get_unchecked::<f64, _>(i)?)
            }
            t if t.contains("TEXT") || t.contains("CHAR") || t == "NAME" => {
                Value::Text(row.try_get_unchecked::<String, _>(i)?)
            }
            other => {
                return Err(StoreError::Corrupt(format!(
                    "column {:?} has type {other}, which the store does not read",
                    column.name()
                )));
            }
        };
        values.push(value);
    }
    Ok(Row {
        names: names.into(),
        values,
    })
}

/// Checks, once per statement in debug builds (every test), that a read sent to
/// `Db::by_key` finds its rows through an index: a read that scans a table there would run
/// on the async runtime's thread and grow slower with every call the database keeps.
#[cfg(debug_assertions)]
fn reads_by_key(
    conn: &rusqlite::Connection,
    sql: &str,
) -> std::result::Result<(), rusqlite::Error> {
    static CHECKED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    if CHECKED
        .lock()
        .map(|c| c.iter().any(|s| s == sql))
        .unwrap_or(false)
    {
        return Ok(());
    }
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
    // Unbound parameters are NULL: the plan does not depend on them.
    let mut rows = stmt.raw_query();
    let mut plan = Vec::new();
    while let Some(row) = rows.next()? {
        plan.push(row.get::<_, String>(3)?);
    }
    // A bug in the store, not bad input: loud in tests, absent from release builds.
    if let Some(scan) = plan
        .iter()
        .find(|step| step.starts_with("SCAN") && *step != "SCAN CONSTANT ROW")
    {
        panic!("a read by key scans ({scan}): give it an index or run it on the pool\n{sql}");
    }
    if let Ok(mut c) = CHECKED.lock() {
        c.push(sql.to_owned());
    }
    Ok(())
}

/// Runs a query on a rusqlite connection: the writer's, inside its open transaction, or a
/// point read's.
fn run_rusqlite(
    conn: &rusqlite::Connection,
    q: &Query<'_>,
    mode: Mode,
) -> std::result::Result<Output, rusqlite::Error> {
    let mut stmt = conn.prepare_cached(&q.sql)?;
    // `$N` names its argument, in whatever order the SQL mentions them.
    for i in 1..=stmt.parameter_count() {
        let n = stmt
            .parameter_name(i)
            .and_then(|name| name.strip_prefix('$').or_else(|| name.strip_prefix('?')))
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(i);
        let value = q
            .args
            .get(n - 1)
            .ok_or(rusqlite::Error::InvalidParameterCount(n, q.args.len()))?;
        match value {
            Value::Null(_) => stmt.raw_bind_parameter(i, rusqlite::types::Null)?,
            Value::Int(v) => stmt.raw_bind_parameter(i, v)?,
            Value::Real(v) => stmt.raw_bind_parameter(i, v)?,
            Value::Text(v) => stmt.raw_bind_parameter(i, v.as_str())?,
            Value::Bool(v) => stmt.raw_bind_parameter(i, i64::from(*v))?,
        }
    }
    let width = stmt.column_count();
    // Names only for a query that returns rows: most statements in a write are `execute`s.
    let names: Arc<[Box<str>]> = if mode == Mode::Execute {
        Arc::new([])
    } else {
        (0..width)
            .map(|i| Box::<str>::from(stmt.column_name(i).unwrap_or("")))
            .collect()
    };
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        if mode == Mode::Execute || (mode != Mode::All && !out.is_empty()) {
            continue;
        }
        let mut values = Vec::with_capacity(width);
        for i in 0..width {
            use rusqlite::types::ValueRef as V;
            values.push(match row.get_ref(i)? {
                V::Null => Value::Null(Kind::Text),
                V::Integer(v) => Value::Int(v),
                V::Real(v) => Value::Real(v),
                V::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                V::Blob(_) => {
                    return Err(rusqlite::Error::InvalidColumnType(
                        i,
                        names[i].to_string(),
                        rusqlite::types::Type::Blob,
                    ));
                }
            });
        }
        out.push(Row {
            names: names.clone(),
            values,
        });
    }
    drop(rows);
    Ok(match mode {
        Mode::Execute => Output::Done(conn.changes()),
        _ => Output::Rows(out),
    })
}

#[cfg(test)]
mod tests {
    use crate::{Result, Store, in_write_tx, on_pool};

    async fn insert(store: &Store, v: i64) -> Result<()> {
        in_write_tx!(store, tx => {
            super::query("INSERT INTO t (v) VALUES ($1)").bind(v).execute(&mut *tx).await?;
        });
        Ok(())
    }

    /// Starting the log over (`sqlite_writer::restart_log`) needs every reader off old
    /// snapshots. A statement stopped at its first row and left idle on a pooled connection
    /// would keep its snapshot until that connection is used again, and the log would grow
    /// without bound: neither sqlx's pool nor the reads by key may do that.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_left_idle_in_the_pool_do_not_pin_the_log() -> Result<()> {
        let path = crate::test_files::temp_db_path("pin");
        let store = Store::connect(&format!("sqlite:{}", path.display())).await?;
        in_write_tx!(store, tx => {
            super::query("CREATE TABLE t (v INTEGER PRIMARY KEY)").execute(&mut *tx).await?;
        });
        for v in 0..3 {
            insert(&store, v).await?;
        }
        // One of several rows, one aggregate row, one row by key: then left idle.
        for _ in 0..8 {
            on_pool!(store, pool => {
                super::query("SELECT v FROM t ORDER BY v").fetch_optional(pool).await?;
                super::query_scalar::<i64>("SELECT COUNT(*) FROM t").fetch_one(pool).await?;
                super::query("SELECT v FROM t WHERE v = 1").fetch_optional(pool.by_key()).await?;
            });
        }
        for v in 3..50 {
            insert(&store, v).await?;
        }
        let other = rusqlite::Connection::open(&path)?;
        let mut copied = (0, -1);
        for _ in 0..50 {
            let (busy, log, done): (i64, i64, i64) =
                other.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?;
            copied = (log, done);
            if busy == 0 && log == done {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        drop(store);
        crate::test_files::remove_db(&path);
        assert_eq!(
            copied.0, copied.1,
            "the whole log can be copied: (log, copied) {copied:?}"
        );
        Ok(())
    }

    #[cfg(debug_assertions)]
    #[test]
    fn a_read_by_key_that_scans_is_caught_in_tests() {
        let conn = rusqlite::Connection::open_in_memory().expect("in memory");
        conn.execute_batch(
            "CREATE TABLE keyed (v INTEGER PRIMARY KEY); CREATE TABLE unkeyed (v INTEGER);",
        )
        .expect("tables");
        assert!(super::reads_by_key(&conn, "SELECT v FROM keyed WHERE v = $1").is_ok());
        let scan = "SELECT v FROM unkeyed WHERE v = $1";
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            super::reads_by_key(&conn, scan)
        }));
        let why = caught.expect_err("a scan is refused");
        let why = why
            .downcast_ref::<String>()
            .map(String::as_str)
            .unwrap_or("");
        assert!(
            why.contains("scans (SCAN unkeyed)") && why.contains(scan),
            "{why}"
        );
    }
}
