//! Trigger events, workflow runs, tasks and tags: the storage side of the run engine.
//!
//! A trigger event (a missed call, a reply, a voicemail, an overdue task) is a row written
//! with the fact that caused it, plus a `trigger` job. That job starts one run per matching
//! workflow and takes its first step in the same transaction; later steps run as
//! `advance_run` jobs, scheduled in the future for waits, so a restart in the middle of a
//! 30-minute wait changes nothing.

use std::collections::{HashMap, HashSet};

use crate::accounts::{
    ACCOUNT_COLUMNS, AccountRecord, NUMBER_COLUMNS, NUMBER_COLUMNS_PREFIXED_N, NumberRecord,
    account_from_row, number_from_row,
};
use crate::conversations::upsert_conversation;
use crate::events_out::{emit_event, subscribed_sql};
use crate::jobs::{Claim, Job, JobKind, enqueue_claimed, enqueue_later};
use crate::messages::{OutboundMessage, SendNow, marked_for_send, outbound_returning};
use crate::pg_batch::id_array;
use crate::pg_deferred::columns;
use crate::sql::WriteTx;
use crate::sqlite_writer::Lane;
use crate::workflows::{WorkflowRecord, workflow_from_row};
use crate::{Result, Store, StoreError, in_write_tx, on_pool};

/// The contact a step is about, with its last text back for another call (the cooldown)
/// and its line type, given the account and the run's call (or -1). The caller appends
/// `FROM contacts` and which, and its row lock.
macro_rules! contact_for_step_columns {
    ($account:literal, $call:literal) => {
        concat!(
            "id, phone, first_name, last_name, opted_out, textable, last_replied_at, \
             (SELECT MAX(m.created_at) FROM messages m WHERE m.account_id = ",
            $account,
            " AND m.to_phone = contacts.phone \
              AND m.kind = 'text_back' AND m.status <> 'canceled' AND (m.call_id IS NULL OR m.call_id <> ",
            $call,
            ")) AS last_text_back_at, \
             (SELECT l.line_type FROM phone_lookups l WHERE l.phone = contacts.phone) AS line_type"
        )
    };
}

/// Whether contact `$contact` called or texted before the event (at `$at`, about call
/// `$call` or inbound message `$message`, each -1 when not), and the workflows it entered
/// before: what a run's start adds to `contact_for_step_columns!`.
macro_rules! contact_history_columns {
    ($contact:literal, $call:literal, $at:literal, $message:literal) => {
        concat!(
            "EXISTS (SELECT 1 FROM calls WHERE contact_id = ", $contact, " AND id <> ", $call,
            " AND started_at <= ", $at, ") \
             OR EXISTS (SELECT 1 FROM messages WHERE contact_id = ", $contact,
            " AND direction = 'inbound' AND id <> ", $message, " AND created_at <= ", $at, ") AS known, \
             (SELECT string_agg(CAST(workflow_id AS TEXT), ',') FROM (SELECT DISTINCT workflow_id \
             FROM workflow_runs WHERE contact_id = ", $contact, ") d) AS entered"
        )
    };
}

/// The contacts of trigger events started together, as `start_runs_in` reads one, each
/// with its conversation on the event's number and whether the event's call has its text
/// back already, locked in id order: `$1` the events as a JSON array, `$2` the contacts'
/// ids (PostgreSQL).
const START_CONTACTS_TOGETHER: &str = concat!(
    "SELECT x.event_id, ",
    contact_for_step_columns!("x.account_id", "x.call_id"),
    ", (SELECT CAST(json_agg(tag) AS TEXT) FROM contact_tags WHERE contact_id = contacts.id) AS tags, ",
    contact_history_columns!("contacts.id", "x.call_id", "x.at", "-1"),
    ", (SELECT v.id FROM conversations v WHERE v.number_id = x.number_id AND v.contact_id = contacts.id) \
     AS conversation_id, \
     EXISTS (SELECT 1 FROM messages t WHERE t.call_id = x.call_id AND t.kind = 'text_back') AS texted_back \
     FROM json_to_recordset($1::json) AS x(event_id bigint, contact_id bigint, account_id bigint, \
     call_id bigint, at bigint, number_id bigint) \
     JOIN contacts ON contacts.id = x.contact_id WHERE contacts.id = ANY(CAST($2 AS bigint[])) \
     ORDER BY contacts.id FOR UPDATE OF contacts"
);

/// Records a trigger event and queues the job that starts its runs.
macro_rules! fire_event {
    ($tx:expr, $account_id:expr, $contact_id:expr, $kind:expr, $subject_id:expr, $now:expr) => {{
        let now: i64 = $now;
        let event_id: i64 = crate::sql::query_scalar(
            "INSERT INTO events (account_id, contact_id, kind, subject_id, at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind($account_id)
        .bind($contact_id)
        .bind($kind)
        .bind($subject_id)
        .bind(now)
        .fetch_one(&mut *$tx)
        .await?;
        let _queued = $crate::jobs::enqueue!($tx, $crate::JobKind::Trigger, event_id, None, now, now);
        event_id
    }};
}

/// Ends the contact's runs that stop on a reply (cancelling their queued texts), and
/// cancels any text back still waiting to go out: the contact got in touch first.
macro_rules! resolve_contact {
    ($tx:expr, $contact_id:expr, $reason:expr, $now:expr) => {{
        let contact_id: i64 = $contact_id;
        let reason: &str = $reason;
        let now: i64 = $now;
        crate::sql::query(
            "UPDATE calls SET text_back_status = 'canceled', text_back_reason = $2, updated_at = $3 \
             WHERE id IN (SELECT call_id FROM messages WHERE contact_id = $1 AND kind = 'text_back' AND status = 'pending')",
        )
        .bind(contact_id)
        .bind(reason)
        .bind(now)
        .execute(&mut *$tx)
        .await?;
        let stopped: Vec<i64> = crate::sql::query_scalar(
            "UPDATE workflow_runs SET status = 'stopped', stop_reason = $2, ended_at = $3, updated_at = $3 \
             WHERE contact_id = $1 AND status IN ('active', 'waiting') AND stop_on_reply RETURNING id",
        )
        .bind(contact_id)
        .bind(reason)
        .bind(now)
        .fetch_all(&mut *$tx)
        .await?;
        // The stopped runs' jobs may still wait to be inserted.
        $tx.insert_later_jobs().await?;
        for run_id in stopped {
            crate::sql::query("DELETE FROM jobs WHERE kind = 'advance_run' AND subject_id = $1")
                .bind(run_id)
                .execute(&mut *$tx)
                .await?;
        }
        crate::sql::query(
            "UPDATE messages SET status = 'canceled', error_message = $2, updated_at = $3 \
             WHERE contact_id = $1 AND status = 'pending' AND kind IN ('text_back', 'follow_up', 'workflow')",
        )
        .bind(contact_id)
        .bind(reason)
        .bind(now)
        .execute(&mut *$tx)
        .await?;
    }};
}

/// Resumes, now, the runs waiting for `event` that match `condition` (bound to `$1`).
macro_rules! wake_waiting {
    ($tx:expr, $event:expr, $condition:expr, $id:expr, $now:expr) => {{
        let now: i64 = $now;
        let sql = format!(
            "UPDATE workflow_runs SET resume_at = $2, updated_at = $2 \
             WHERE status = 'waiting' AND waiting_for = $3 AND {} RETURNING id",
            $condition
        );
        let woken: Vec<i64> = crate::sql::query_scalar(sql)
            .bind($id)
            .bind(now)
            .bind($event)
            .fetch_all(&mut *$tx)
            .await?;
        for run_id in woken {
            let _q = $crate::jobs::enqueue!(
                $tx,
                $crate::JobKind::AdvanceRun,
                run_id,
                Some(format!("advance_run:{run_id}:woken:{now}")),
                now,
                now
            );
        }
    }};
}

pub(crate) use {fire_event, resolve_contact, wake_waiting};

/// A trigger event with its call, for the kinds about a call, as a run's start reads it;
/// the caller adds the WHERE clause.
macro_rules! event_for_start_sql {
    () => {
        concat!(
            "SELECT e.id AS event_id, e.account_id, e.contact_id, e.kind, e.subject_id, e.at, c.id AS call_id, \
             c.number_id AS call_number_id, c.caller AS call_caller, c.caller_phone AS call_caller_phone, \
             c.started_at AS call_started_at, c.missed_at AS call_missed_at, ",
            subscribed_sql!("e.account_id"),
            " FROM events e LEFT JOIN calls c ON c.id = e.subject_id AND e.kind IN ('missed_call', 'voicemail_left')"
        )
    };
}

/// What the start of runs is decided on.
#[derive(Debug, Clone)]
pub struct TriggerInput {
    pub kind: String,
    pub at_ms: i64,
    pub account: AccountRecord,
    /// The business number involved, when there is one.
    pub number: Option<String>,
    pub contact_id: Option<i64>,
    pub new_contact: bool,
    pub tags: Vec<String>,
    /// The account's active workflows, each at its current version.
    pub workflows: Vec<WorkflowRecord>,
    /// Workflows this contact has been in before (for "allow re-entry").
    pub entered_before: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartRun {
    pub workflow_id: i64,
    pub version: i64,
    pub stop_on_reply: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StartPlan {
    pub runs: Vec<StartRun>,
    /// For a missed call that no run will text: the reason recorded on the call.
    pub none_reason: Option<String>,
    /// The reason is a failure (an automation that should have run is broken), not a rule.
    pub none_failed: bool,
}

/// The contact a run is about.
#[derive(Debug, Clone)]
pub struct RunContact {
    pub id: i64,
    pub phone: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub opted_out: bool,
    pub textable: bool,
    /// The contact texted since the run started.
    pub replied_since_start: bool,
}

#[derive(Debug, Clone)]
pub struct RunCall {
    pub id: i64,
    pub caller: String,
    pub caller_phone: Option<String>,
    pub started_at_ms: i64,
}

/// Everything one step of a run is decided on.
#[derive(Debug, Clone)]
pub struct RunInput {
    pub run_id: i64,
    pub trigger: String,
    pub pc: i64,
    pub waited: bool,
    pub started_at_ms: i64,
    pub spec: String,
    pub account: AccountRecord,
    pub number: Option<NumberRecord>,
    pub call: Option<RunCall>,
    pub contact: Option<RunContact>,
    pub tags: Vec<String>,
    pub last_text_back_at_ms: Option<i64>,
    pub caller_line_type: Option<String>,
    /// A task this run created is done.
    pub task_done: bool,
    /// The deadline of the event wait the run is resuming at, if any.
    pub wait_deadline_ms: Option<i64>,
}

/// What a run does, decided by pure code and carried out by the store in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunAction {
    /// The call's text back: one per call across all automations. `variant` names the
    /// message variant when the step has several; `step` says which step sent it.
    TextBack {
        body: String,
        carrier: String,
        variant: Option<String>,
        step: String,
    },
    /// The call's text back is not sent: `status` `skipped` or `failed`, with the reason.
    TextBackNotSent {
        status: String,
        reason: String,
    },
    /// Any other text to the contact (`kind`: `follow_up`, `workflow`).
    Send {
        kind: String,
        body: String,
        carrier: String,
        variant: Option<String>,
        step: String,
    },
    Task {
        title: String,
        due_at_ms: i64,
        assignee: Option<String>,
    },
    AddTag(String),
    RemoveTag(String),
    /// Texts to team phones.
    Notify {
        to: Vec<String>,
        body: String,
        carrier: String,
    },
    Webhook {
        url: String,
        payload: String,
    },
    Log {
        place: String,
        what: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunNext {
    Done,
    ResumeAt {
        pc: i64,
        at_ms: i64,
        waited: bool,
    },
    /// Waiting at the wait step `pc` for `event` (`reply`, `task_done`) until `deadline_ms`.
    AwaitEvent {
        pc: i64,
        event: String,
        deadline_ms: i64,
    },
    /// The run cannot go on (its version no longer compiles): ended with the reason.
    Fail(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunPlan {
    pub actions: Vec<RunAction>,
    pub next: RunNext,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RunView {
    pub id: i64,
    pub workflow: String,
    pub version: i64,
    pub trigger: String,
    pub contact_phone: Option<String>,
    pub status: String,
    pub stop_reason: Option<String>,
    pub resume_at_ms: Option<i64>,
    pub started_at_ms: i64,
    pub log: Vec<(String, String)>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct TaskView {
    pub id: i64,
    pub account: String,
    pub title: String,
    pub contact_phone: Option<String>,
    pub due_at_ms: i64,
    pub assignee: Option<String>,
    pub status: String,
    pub call_id: Option<i64>,
    pub recording_url: Option<String>,
    pub voicemail_transcript: Option<String>,
    pub created_at_ms: i64,
}

/// Which tasks to list: by account, state, assignee, call.
#[derive(Debug, Clone, Copy, Default)]
pub struct TaskQuery<'a> {
    pub account_slug: Option<&'a str>,
    pub filter: TaskFilter,
    /// A team member's (email, name): tasks assigned to either.
    pub assignee: Option<(&'a str, &'a str)>,
    pub call_id: Option<i64>,
}

impl TaskQuery<'_> {
    /// The WHERE clause over `$1`–`$5` (due before, slug, assignee email and name, call).
    fn clause(&self) -> (String, i64) {
        let (status, due_before) = match self.filter {
            TaskFilter::Open => ("t.status = 'open'", i64::MAX),
            TaskFilter::OverdueAt(at) => ("t.status = 'open'", at),
            TaskFilter::All => ("TRUE", i64::MAX),
        };
        let clause = format!(
            "{status} AND t.due_at < $1 AND ($2 IS NULL OR a.slug = $2) \
             AND ($3 IS NULL OR LOWER(t.assignee) = LOWER($3) OR LOWER(t.assignee) = LOWER($4)) \
             AND ($5 IS NULL OR t.call_id = $5)"
        );
        (clause, due_before)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TaskFilter {
    #[default]
    Open,
    /// Open and due before this instant.
    OverdueAt(i64),
    All,
}

impl Store {
    /// Starts the runs a trigger event matches, in one transaction with the event's job,
    /// and takes each new run's first step in that transaction too (`advance` plans it, as
    /// for `advance_run`), except for an account that looks up line types first: that step
    /// is queued as an `advance_run` job. Returns the jobs to run now (the steps' sends,
    /// those queued steps), claimed under `claim`.
    ///
    /// One transaction instead of two per missed call: each costs a commit, a job written
    /// and deleted, and on PostgreSQL a dozen round trips (docs/PERFORMANCE.md).
    pub async fn start_runs(
        &self,
        job: &Job,
        now_ms: i64,
        claim: &Claim<'_>,
        plan: impl Fn(&TriggerInput) -> StartPlan,
        mut advance: impl FnMut(&RunInput) -> RunPlan,
    ) -> Result<Vec<Job>> {
        let started = in_write_tx!(background self, tx => {
            start_runs_in(tx, &mut StartMemo::default(), job, now_ms, claim, &plan, &mut advance).await?
        });
        Ok(started)
    }

    /// Starts the runs of several trigger jobs, as `start_runs` does each. On PostgreSQL in
    /// one transaction, so they share its commit (`pg_batch` says why that matters there);
    /// if the database refuses it, each job alone, so that one bad job fails alone; if the
    /// connection fails, every job fails (`NotCommitted`) and is retried later. Elsewhere
    /// each alone, in order. The results in the jobs' order.
    pub async fn start_runs_together(
        &self,
        jobs: &[Job],
        now_ms: i64,
        claim: &Claim<'_>,
        plan: impl Fn(&TriggerInput) -> StartPlan,
        mut advance: impl FnMut(&RunInput) -> RunPlan,
    ) -> Vec<Result<Vec<Job>>> {
        if jobs.len() > 1 && self.shares_transactions() {
            let shared = async {
                let mut tx = self.begin_write(Lane::Background).await?;
                let mut all = Vec::with_capacity(jobs.len());
                let mut memo = StartMemo {
                    together: true,
                    ..StartMemo::default()
                };
                let rows = crate::sql::query(concat!(
                    event_for_start_sql!(),
                    " WHERE e.id = ANY(CAST($1 AS bigint[]))"
                ))
                .bind(id_array(jobs.iter().map(|j| j.subject_id)))
                .fetch_all(&mut tx)
                .await?;
                for row in rows {
                    memo.events.insert(row.try_get("event_id")?, row);
                }
                read_contacts_together(&mut tx, &mut memo, jobs).await?;
                if let WriteTx::Postgres(pg) = &mut tx {
                    pg.reserve_ids(&RESERVED_FOR_FIRST_STEPS, jobs.len())
                        .await?;
                }
                // From here the transaction keeps its writes until it must send them.
                tx.set_deferring(true);
                for job in jobs {
                    let started =
                        start_runs_in(&mut tx, &mut memo, job, now_ms, claim, &plan, &mut advance)
                            .await?;
                    all.push(started);
                }
                crate::sql::query("DELETE FROM jobs WHERE id = ANY(CAST($1 AS bigint[]))")
                    .bind(id_array(jobs.iter().map(|j| j.id)))
                    .execute(&mut tx)
                    .await?;
                tx.commit().await?;
                Ok::<_, StoreError>(all)
            };
            match shared.await {
                Ok(all) => return all.into_iter().map(Ok).collect(),
                // Each alone would wait for the database in turn; the jobs are retried.
                Err(e) if e.lost_the_database() => {
                    let why = e.to_string();
                    return jobs
                        .iter()
                        .map(|_| Err(StoreError::NotCommitted(why.clone())))
                        .collect();
                }
                Err(e) => {
                    tracing::warn!(error = %e, jobs = jobs.len(), "trigger jobs could not start together; starting each alone")
                }
            }
        }
        let mut out = Vec::with_capacity(jobs.len());
        for job in jobs {
            out.push(
                self.start_runs(job, now_ms, claim, &plan, &mut advance)
                    .await,
            );
        }
        out
    }

    /// Advances one run: reads its facts, asks `plan` (pure: engine, rules, templates),
    /// carries out the actions, and records where the run stands, all in one transaction.
    /// Returns the jobs it queued to run now (sends, webhooks), claimed under `claim`.
    pub async fn advance_run(
        &self,
        job: &Job,
        now_ms: i64,
        claim: &Claim<'_>,
        plan: impl FnOnce(&RunInput) -> RunPlan,
    ) -> Result<Vec<Job>> {
        let queued = in_write_tx!(background self, tx => {
            advance_in(tx, Some(job.id), job.subject_id, None, now_ms, claim, plan).await?
        });
        Ok(queued)
    }

    /// A task's due time came: fire `task_overdue` when it is still open.
    pub async fn task_due(&self, job: &Job, now_ms: i64) -> Result<bool> {
        let fired = in_write_tx!(background self, tx => {
            let task = crate::sql::query("SELECT account_id, contact_id, status FROM tasks WHERE id = $1")
                .bind(job.subject_id)
                .fetch_optional(&mut *tx)
                .await?;
            let mut fired = false;
            if let Some(t) = task
                && t.try_get::<String, _>("status")? == "open"
            {
                let account_id: i64 = t.try_get("account_id")?;
                let contact_id: Option<i64> = t.try_get("contact_id")?;
                let _event = fire_event!(tx, account_id, contact_id, "task_overdue", job.subject_id, now_ms);
                fired = true;
            }
            crate::sql::query("DELETE FROM jobs WHERE id = $1").bind(job.id).execute(&mut *tx).await?;
            fired
        });
        if fired {
            self.wake_workers();
        }
        Ok(fired)
    }

    pub async fn tasks(
        &self,
        account_slug: Option<&str>,
        filter: TaskFilter,
        limit: i64,
    ) -> Result<Vec<TaskView>> {
        let q = TaskQuery {
            account_slug,
            filter,
            ..TaskQuery::default()
        };
        self.find_tasks(&q, limit).await
    }

    /// The tasks a query selects, soonest due first.
    pub async fn find_tasks(&self, q: &TaskQuery<'_>, limit: i64) -> Result<Vec<TaskView>> {
        let (clause, due_before) = q.clause();
        let sql = format!(
            "SELECT t.id, a.slug AS account, t.title, c.phone, t.due_at, t.assignee, t.status, t.call_id, \
             k.recording_url, k.voicemail_transcript, t.created_at FROM tasks t JOIN accounts a ON a.id = t.account_id \
             LEFT JOIN contacts c ON c.id = t.contact_id LEFT JOIN calls k ON k.id = t.call_id \
             WHERE {clause} ORDER BY t.due_at, t.id LIMIT $6"
        );
        on_pool!(self, pool => {
            let rows = crate::sql::query(sql)
                .bind(due_before)
                .bind(q.account_slug)
                .bind(q.assignee.map(|(email, _)| email))
                .bind(q.assignee.map(|(_, name)| name))
                .bind(q.call_id)
                .bind(limit)
                .fetch_all(pool)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(TaskView {
                    id: r.try_get("id")?,
                    account: r.try_get("account")?,
                    title: r.try_get("title")?,
                    contact_phone: r.try_get("phone")?,
                    due_at_ms: r.try_get("due_at")?,
                    assignee: r.try_get("assignee")?,
                    status: r.try_get("status")?,
                    call_id: r.try_get("call_id")?,
                    recording_url: r.try_get("recording_url")?,
                    voicemail_transcript: r.try_get("voicemail_transcript")?,
                    created_at_ms: r.try_get("created_at")?,
                });
            }
            Ok(out)
        })
    }

    /// How many tasks a query selects (a page shows the first few and says how many).
    pub async fn count_tasks(&self, q: &TaskQuery<'_>) -> Result<i64> {
        let (clause, due_before) = q.clause();
        let sql = format!(
            "SELECT COUNT(*) FROM tasks t JOIN accounts a ON a.id = t.account_id \
             WHERE {clause}"
        );
        Ok(on_pool!(self, pool => {
            crate::sql::query_scalar::<i64>(sql)
                .bind(due_before)
                .bind(q.account_slug)
                .bind(q.assignee.map(|(email, _)| email))
                .bind(q.assignee.map(|(_, name)| name))
                .bind(q.call_id)
                .fetch_one(pool)
                .await?
        }))
    }

    /// The open callback task of each of the account's calls that has one (call id → task id).
    pub async fn open_tasks_by_call(
        &self,
        account_id: i64,
    ) -> Result<std::collections::HashMap<i64, i64>> {
        on_pool!(self, pool => {
            let rows = crate::sql::query(
                "SELECT call_id, id FROM tasks WHERE account_id = $1 AND status = 'open' AND call_id IS NOT NULL",
            )
            .bind(account_id)
            .fetch_all(pool)
            .await?;
            let mut out = std::collections::HashMap::with_capacity(rows.len());
            for r in rows {
                out.insert(r.try_get::<i64, _>("call_id")?, r.try_get::<i64, _>("id")?);
            }
            Ok(out)
        })
    }

    /// The account a task belongs to.
    pub async fn task_account(&self, id: i64) -> Result<Option<i64>> {
        on_pool!(self, pool => {
            let v: Option<i64> = crate::sql::query_scalar("SELECT account_id FROM tasks WHERE id = $1").bind(id).fetch_optional(pool).await?;
            Ok(v)
        })
    }

    /// Marks a task done; false when there is no such open task.
    /// Gives an open task of the account to someone (or no one); false if there is no such
    /// open task in the account.
    pub async fn assign_task(
        &self,
        account_id: i64,
        id: i64,
        assignee: Option<&str>,
    ) -> Result<bool> {
        in_write_tx!(self, tx => {
            let r = crate::sql::query(
                "UPDATE tasks SET assignee = $3 WHERE id = $1 AND account_id = $2 AND status = 'open'",
            )
            .bind(id)
            .bind(account_id)
            .bind(assignee)
            .execute(&mut *tx)
            .await?;
            Ok(r.rows_affected() == 1)
        })
    }

    pub async fn complete_task(&self, id: i64, now_ms: i64) -> Result<bool> {
        let done = in_write_tx!(self, tx => {
            let row = crate::sql::query(
                "UPDATE tasks SET status = 'done', completed_at = $2 WHERE id = $1 AND status = 'open' RETURNING account_id, contact_id, run_id",
            )
            .bind(id)
            .bind(now_ms)
            .fetch_optional(&mut *tx)
            .await?;
            match row {
                Some(r) => {
                    let account_id: i64 = r.try_get("account_id")?;
                    let contact_id: Option<i64> = r.try_get("contact_id")?;
                    let run_id: Option<i64> = r.try_get("run_id")?;
                    if let Some(run_id) = run_id {
                        wake_waiting!(tx, "task_done", "id = $1", run_id, now_ms);
                    }
                    emit_event!(tx, account_id, "task.completed", serde_json::json!({"task_id": id, "contact_id": contact_id}), now_ms);
                    crate::sql::query("INSERT INTO events (account_id, contact_id, kind, subject_id, at) VALUES ($1, $2, 'task_done', $3, $4)")
                        .bind(account_id)
                        .bind(contact_id)
                        .bind(id)
                        .bind(now_ms)
                        .execute(&mut *tx)
                        .await?;
                    true
                }
                None => false,
            }
        });
        Ok(done)
    }

    /// Who a callback task is about: (contact phone, business number, team phones).
    pub async fn callback_target(
        &self,
        task_id: i64,
    ) -> Result<Option<(String, String, Vec<String>)>> {
        on_pool!(self, pool => {
            let row = crate::sql::query(
                "SELECT c.phone, n.e164, n.ring_to FROM tasks t JOIN contacts c ON c.id = t.contact_id \
                 JOIN numbers n ON n.id = COALESCE((SELECT number_id FROM calls WHERE id = t.call_id), \
                   (SELECT id FROM numbers WHERE account_id = t.account_id ORDER BY id LIMIT 1)) \
                 WHERE t.id = $1 AND t.status = 'open'",
            )
            .bind(task_id)
            .fetch_optional(pool)
            .await?;
            Ok(match row {
                Some(r) => Some((
                    r.try_get("phone")?,
                    r.try_get("e164")?,
                    crate::from_json("ring_to", &r.try_get::<String, _>("ring_to")?)?,
                )),
                None => None,
            })
        })
    }

    /// The team's call back through the business number reached the contact: the task is
    /// done, and what was still waiting to text them is moot.
    pub async fn record_callback_answered(&self, task_id: i64, now_ms: i64) -> Result<bool> {
        let done = in_write_tx!(self, tx => {
            let row = crate::sql::query(
                "UPDATE tasks SET status = 'done', completed_at = $2 WHERE id = $1 AND status = 'open' \
                 RETURNING account_id, contact_id, run_id",
            )
            .bind(task_id)
            .bind(now_ms)
            .fetch_optional(&mut *tx)
            .await?;
            match row {
                Some(r) => {
                    let account_id: i64 = r.try_get("account_id")?;
                    let contact_id: Option<i64> = r.try_get("contact_id")?;
                    if let Some(cid) = contact_id {
                        resolve_contact!(tx, cid, "called_back", now_ms);
                    }
                    let run_id: Option<i64> = r.try_get("run_id")?;
                    if let Some(run_id) = run_id {
                        wake_waiting!(tx, "task_done", "id = $1", run_id, now_ms);
                    }
                    emit_event!(tx, account_id, "task.completed", serde_json::json!({"task_id": task_id, "contact_id": contact_id, "called_back": true}), now_ms);
                    crate::sql::query("INSERT INTO events (account_id, contact_id, kind, subject_id, at) VALUES ($1, $2, 'called_back', $3, $4)")
                        .bind(account_id)
                        .bind(contact_id)
                        .bind(task_id)
                        .bind(now_ms)
                        .execute(&mut *tx)
                        .await?;
                    true
                }
                None => false,
            }
        });
        Ok(done)
    }

    pub async fn contact_tags(&self, account_id: i64, phone: &str) -> Result<Vec<String>> {
        on_pool!(self, pool => {
            let tags: Vec<String> = crate::sql::query_scalar(
                "SELECT t.tag FROM contact_tags t JOIN contacts c ON c.id = t.contact_id \
                 WHERE c.account_id = $1 AND c.phone = $2 ORDER BY t.tag_key",
            )
            .bind(account_id)
            .bind(phone)
            .fetch_all(pool)
            .await?;
            Ok(tags)
        })
    }

    /// Recent runs with what each step did.
    pub async fn runs(&self, account_id: i64, limit: i64) -> Result<Vec<RunView>> {
        on_pool!(self, pool => {
            let rows = crate::sql::query(
                "SELECT r.id, w.name, r.version, r.trigger, c.phone, r.status, r.stop_reason, r.resume_at, r.started_at \
                 FROM workflow_runs r JOIN workflows w ON w.id = r.workflow_id LEFT JOIN contacts c ON c.id = r.contact_id \
                 WHERE r.account_id = $1 ORDER BY r.id DESC LIMIT $2",
            )
            .bind(account_id)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let id: i64 = r.try_get("id")?;
                let log_rows = crate::sql::query("SELECT place, what FROM run_log WHERE run_id = $1 ORDER BY id")
                    .bind(id)
                    .fetch_all(pool)
                    .await?;
                let mut log = Vec::with_capacity(log_rows.len());
                for l in log_rows {
                    log.push((l.try_get("place")?, l.try_get("what")?));
                }
                out.push(RunView {
                    id,
                    workflow: r.try_get("name")?,
                    version: r.try_get("version")?,
                    trigger: r.try_get("trigger")?,
                    contact_phone: r.try_get("phone")?,
                    status: r.try_get("status")?,
                    stop_reason: r.try_get("stop_reason")?,
                    resume_at_ms: r.try_get("resume_at")?,
                    started_at_ms: r.try_get("started_at")?,
                    log,
                });
            }
            Ok(out)
        })
    }
}

/// Deletes the job that ran, when there is one.
/// What trigger jobs sharing a transaction read once: their events (with their calls), their
/// accounts with the event's number, the accounts' active workflows. Nothing in the
/// transaction writes them. A job alone keeps nothing (the copies would cost it).
#[derive(Default)]
struct StartMemo {
    /// Several jobs together: their events are read, and their jobs deleted, for all at once.
    together: bool,
    events: HashMap<i64, crate::sql::Row>,
    /// By event: its contact, locked, as `START_CONTACTS_TOGETHER` read it.
    contacts: HashMap<i64, crate::sql::Row>,
    accounts: HashMap<(i64, Option<i64>), (AccountRecord, Option<NumberRecord>)>,
    workflows: HashMap<i64, Vec<WorkflowRecord>>,
}

/// The tables whose rows a missed call's first step inserts and needs the ids of, as
/// started together: as many ids of each as there are jobs are reserved at once.
const RESERVED_FOR_FIRST_STEPS: [&str; 5] = [
    "workflow_runs",
    "conversations",
    "messages",
    "jobs",
    "tasks",
];

/// Reads, with one statement, the contacts of the call events in `memo` (each contact for
/// the first of its jobs only: a later job of the same contact reads it after what the
/// earlier one wrote).
async fn read_contacts_together(
    tx: &mut WriteTx<'_>,
    memo: &mut StartMemo,
    jobs: &[Job],
) -> Result<()> {
    let mut seen = HashSet::new();
    let mut wanted = Vec::new();
    for job in jobs {
        let Some(event) = memo.events.get(&job.subject_id) else {
            continue;
        };
        let contact: Option<i64> = event.try_get("contact_id")?;
        let call: Option<i64> = event.try_get("call_id")?;
        if let (Some(contact), Some(call)) = (contact, call)
            && seen.insert(contact)
        {
            wanted.push(serde_json::json!({
                "event_id": job.subject_id,
                "contact_id": contact,
                "account_id": event.try_get::<i64, _>("account_id")?,
                "call_id": call,
                "at": event.try_get::<i64, _>("at")?,
                "number_id": event.try_get::<i64, _>("call_number_id")?,
            }));
        }
    }
    if wanted.is_empty() {
        return Ok(());
    }
    let rows = crate::sql::query(START_CONTACTS_TOGETHER)
        .bind(serde_json::Value::from(wanted).to_string())
        .bind(id_array(seen))
        .fetch_all(&mut *tx)
        .await?;
    for row in rows {
        memo.contacts.insert(row.try_get("event_id")?, row);
    }
    Ok(())
}

/// `Store::start_runs`'s work for one trigger job, in the given transaction.
async fn start_runs_in(
    tx: &mut WriteTx<'_>,
    memo: &mut StartMemo,
    job: &Job,
    now_ms: i64,
    claim: &Claim<'_>,
    plan: &impl Fn(&TriggerInput) -> StartPlan,
    advance: &mut impl FnMut(&RunInput) -> RunPlan,
) -> Result<Vec<Job>> {
    // The event with its call, for the kinds about a call, in one statement (or read
    // already with the other jobs' events).
    let event = match memo.events.remove(&job.subject_id) {
        Some(event) => Some(event),
        None => {
            crate::sql::query(concat!(event_for_start_sql!(), " WHERE e.id = $1"))
                .bind(job.subject_id)
                .fetch_optional(&mut *tx)
                .await?
        }
    };
    let Some(event) = event else {
        if !memo.together {
            delete_job(tx, Some(job.id)).await?;
        }
        return Ok(Vec::new());
    };
    let account_id: i64 = event.try_get("account_id")?;
    let contact_id: Option<i64> = event.try_get("contact_id")?;
    let kind: String = event.try_get("kind")?;
    let subject_id: i64 = event.try_get("subject_id")?;
    let at_ms: i64 = event.try_get("at")?;
    let subscribed: bool = event.try_get("subscribed")?;
    // The runs' call as their steps see it; None for a task's call, not read here.
    let mut call: Option<RunCall> = None;
    let (call_id, number_id): (Option<i64>, Option<i64>) = match kind.as_str() {
        "missed_call" | "voicemail_left" => match event.try_get::<Option<i64>, _>("call_id")? {
            Some(id) => {
                call = Some(RunCall {
                    id,
                    caller: event.try_get("call_caller")?,
                    caller_phone: event.try_get("call_caller_phone")?,
                    started_at_ms: event.try_get("call_started_at")?,
                });
                (Some(id), Some(event.try_get("call_number_id")?))
            }
            None => return Err(StoreError::Database(sqlx::Error::RowNotFound)),
        },
        "message_received" => {
            let r = crate::sql::query("SELECT number_id FROM messages WHERE id = $1")
                .bind(subject_id)
                .fetch_one(&mut *tx)
                .await?;
            (None, Some(r.try_get("number_id")?))
        }
        _ => {
            let r = crate::sql::query("SELECT t.call_id, c.number_id FROM tasks t LEFT JOIN calls c ON c.id = t.call_id WHERE t.id = $1")
                .bind(subject_id)
                .fetch_optional(&mut *tx)
                .await?;
            match r {
                Some(r) => (r.try_get("call_id")?, r.try_get("number_id")?),
                None => (None, None),
            }
        }
    };
    // The account with the event's number, for the plan and the first steps.
    let (account, number_record) = match memo.accounts.get(&(account_id, number_id)) {
        Some(known) => known.clone(),
        None => {
            let a = crate::sql::query(format!(
                "SELECT {ACCOUNT_COLUMNS}, n.* FROM accounts \
                 LEFT JOIN (SELECT {NUMBER_COLUMNS_PREFIXED_N} FROM numbers n WHERE n.id = $2) n ON true WHERE id = $1"
            ))
            .bind(account_id)
            .bind(number_id)
            .fetch_one(&mut *tx)
            .await?;
            let number_record = match a.try_get::<Option<i64>, _>("n_id")? {
                Some(_) => Some(number_from_row!(&a, prefix "n_")),
                None => None,
            };
            let known = (account_from_row!(a), number_record);
            if memo.together {
                memo.accounts.insert((account_id, number_id), known.clone());
            }
            known
        }
    };
    let number = number_record.as_ref().map(|n| n.e164.clone());
    let (tags, new_contact, entered_before, contact, prefetched) = match contact_id {
        Some(cid) => {
            // The contact, locked, as the first step reads it, with its tags,
            // whether it called or texted before this event and the workflows it
            // entered before: one statement for all of it (or read already with the
            // other jobs' contacts, with what the step would read next).
            let (r, prefetched) = match memo.contacts.remove(&job.subject_id) {
                Some(r) => {
                    let prefetched = Prefetched {
                        number_id,
                        conversation_id: r.try_get("conversation_id")?,
                        texted_back: r.try_get("texted_back")?,
                        call_missed_at_ms: event.try_get("call_missed_at")?,
                    };
                    (r, Some(prefetched))
                }
                None => {
                    let r = crate::sql::query(format!(
                        concat!(
                            "SELECT ",
                            contact_for_step_columns!("$2", "$3"),
                            ", {} AS tags, ",
                            contact_history_columns!("$1", "$3", "$4", "$5"),
                            " FROM contacts WHERE id = $1{}"
                        ),
                        tags_json_sql(tx),
                        tx.for_update()
                    ))
                    .bind(cid)
                    .bind(account_id)
                    .bind(call_id.unwrap_or(-1))
                    .bind(at_ms)
                    .bind(if kind == "message_received" {
                        subject_id
                    } else {
                        -1
                    })
                    .fetch_one(&mut *tx)
                    .await?;
                    (r, None)
                }
            };
            let known: bool = r.try_get("known")?;
            let entered = r
                .try_get::<Option<&str>, _>("entered")?
                .unwrap_or_default()
                .split(',')
                .filter(|id| !id.is_empty())
                .map(|id| {
                    id.parse::<i64>()
                        .map_err(|e| StoreError::Corrupt(format!("workflow id {id:?}: {e}")))
                })
                .collect::<Result<Vec<i64>>>()?;
            let tags = tags_from_json(r.try_get("tags")?)?;
            (
                tags,
                !known,
                entered,
                Some(ContactFacts::from_row(&r)?),
                prefetched,
            )
        }
        None => (Vec::new(), true, Vec::new(), None, None),
    };
    let workflows = match memo.workflows.get(&account_id) {
        Some(known) => known.clone(),
        None => {
            let rows = crate::sql::query(
                "SELECT w.id, w.account_id, w.name, w.builtin, w.active, w.current_version, v.spec FROM workflows w \
                 JOIN workflow_versions v ON v.workflow_id = w.id AND v.version = w.current_version \
                 WHERE w.account_id = $1 AND w.active ORDER BY w.builtin DESC, w.id",
            )
            .bind(account_id)
            .fetch_all(&mut *tx)
            .await?;
            let workflows = rows
                .iter()
                .map(workflow_from_row)
                .collect::<Result<Vec<_>>>()?;
            if memo.together {
                memo.workflows.insert(account_id, workflows.clone());
            }
            workflows
        }
    };
    let input = TriggerInput {
        kind: kind.clone(),
        at_ms,
        account,
        number,
        contact_id,
        new_contact,
        tags,
        workflows,
        entered_before,
    };
    let decided = plan(&input);
    let mut started = Vec::new();
    let mut first_step = true;
    let mut prefetched = prefetched;
    for run in &decided.runs {
        let id: Option<i64> = match tx.deferring() {
            // The run's event is this transaction's only: no run of it can be there yet
            // (one that is, written by another instance meanwhile, fails the insert).
            Some(pg) => {
                let id = pg.next_id("workflow_runs").await?;
                pg.deferred.insert(
                    "workflow_runs",
                    "",
                    columns! {
                        "id" => id, "account_id" => account_id, "workflow_id" => run.workflow_id,
                        "version" => run.version, "trigger" => kind, "subject_id" => subject_id,
                        "contact_id" => contact_id, "call_id" => call_id, "number_id" => number_id,
                        "status" => "active", "stop_on_reply" => run.stop_on_reply,
                        "started_at" => now_ms, "updated_at" => now_ms,
                    },
                );
                Some(id)
            }
            None => crate::sql::query_scalar(
                "INSERT INTO workflow_runs (account_id, workflow_id, version, trigger, subject_id, contact_id, call_id, \
                 number_id, status, stop_on_reply, started_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'active', $9, $10, $10) ON CONFLICT DO NOTHING RETURNING id",
            )
            .bind(account_id)
            .bind(run.workflow_id)
            .bind(run.version)
            .bind(&kind)
            .bind(subject_id)
            .bind(contact_id)
            .bind(call_id)
            .bind(number_id)
            .bind(run.stop_on_reply)
            .bind(now_ms)
            .fetch_optional(&mut *tx)
            .await?,
        };
        let Some(id) = id else { continue };
        if input.account.landline_lookup {
            // The step waits for the caller's line type, looked up over HTTP outside
            // any transaction: it runs as its own job.
            started.extend(enqueue_claimed!(
                tx,
                JobKind::AdvanceRun,
                id,
                Some(format!("advance_run:{id}:start")),
                now_ms,
                claim
            ));
        } else {
            // The run as inserted, when the start read all of it.
            let spec = input
                .workflows
                .iter()
                .find(|w| w.id == run.workflow_id && w.version == run.version)
                .map(|w| w.spec.clone());
            // A task's call is not read above: that run's step reads the run itself.
            let call_known = call.as_ref().map(|c| c.id) == call_id;
            let facts = match spec {
                Some(spec) if call_known => Some(RunFacts {
                    account_id,
                    subscribed,
                    trigger: kind.clone(),
                    contact_id,
                    number_id,
                    pc: 0,
                    waited: false,
                    started_at_ms: now_ms,
                    wait_deadline_ms: None,
                    spec,
                    task_done: false,
                    call: call.clone(),
                }),
                _ => None,
            };
            // The contact's tags and row as read above, until a step of this
            // transaction may have changed them.
            let known = Known {
                run: facts,
                account: &input.account,
                number: number_record.as_ref(),
                tags: first_step.then_some(input.tags.as_slice()),
                contact: contact.as_ref().filter(|_| first_step),
                prefetched: if first_step { prefetched.take() } else { None },
            };
            first_step = false;
            started.extend(
                advance_in(
                    &mut *tx,
                    None,
                    id,
                    Some(known),
                    now_ms,
                    claim,
                    &mut *advance,
                )
                .await?,
            );
        }
    }
    if let (Some(call_id), true, Some(reason)) = (
        call_id,
        kind == "missed_call" && decided.runs.is_empty(),
        &decided.none_reason,
    ) {
        crate::sql::query(
            "UPDATE calls SET text_back_status = $4, text_back_reason = $2, updated_at = $3 \
             WHERE id = $1 AND text_back_status IS NULL",
        )
        .bind(call_id)
        .bind(reason)
        .bind(now_ms)
        .bind(if decided.none_failed {
            "failed"
        } else {
            "skipped"
        })
        .execute(&mut *tx)
        .await?;
    }
    if !memo.together {
        delete_job(tx, Some(job.id)).await?;
    }
    Ok(started)
}

async fn delete_job(tx: &mut WriteTx<'_>, job_id: Option<i64>) -> Result<()> {
    if let Some(id) = job_id {
        crate::sql::query("DELETE FROM jobs WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// Queues the send of a message just inserted (`SendNow`, `outbound_returning!`)
/// for this worker to run as soon as `tx` commits, with the message as marked for it
/// (`Job::ready`) unless it was left `pending`: None only if its send was queued already.
async fn queue_send(
    tx: &mut WriteTx<'_>,
    inserted: &crate::sql::Row,
    now_ms: i64,
    claim: &Claim<'_>,
) -> Result<Option<Job>> {
    let id: i64 = inserted.try_get("id")?;
    let queued = enqueue_claimed!(
        tx,
        JobKind::SendMessage,
        id,
        Some(JobKind::SendMessage.key(id)),
        now_ms,
        claim
    );
    let Some(mut job) = queued else {
        return Ok(None);
    };
    job.ready = marked_for_send(inserted)?.map(Box::new);
    Ok(Some(job))
}

/// Keeps, in a deferring transaction, the insert of `message` (with its `more` columns)
/// and of its send job, claimed under `claim` as `queue_send` claims it.
async fn defer_outbound(
    pg: &mut crate::sql::PgTx,
    message: OutboundMessage,
    mut more: crate::pg_deferred::Columns,
    now_ms: i64,
    claim: &Claim<'_>,
) -> Result<Job> {
    let mut row = columns! {
        "id" => message.id, "account_id" => message.account_id, "call_id" => message.call_id,
        "kind" => message.kind, "direction" => "outbound", "from_phone" => message.from_phone,
        "to_phone" => message.to_phone, "body" => message.body, "carrier" => message.carrier,
        "status" => message.status, "attempts" => message.attempts,
        "last_attempt_at" => message.last_attempt_at_ms, "created_at" => now_ms,
        "updated_at" => now_ms,
    };
    row.append(&mut more);
    pg.deferred.insert("messages", "", row);
    let kind = JobKind::SendMessage;
    let mut job = Job::claimed(pg.next_id("jobs").await?, kind, message.id);
    pg.deferred.insert(
        "jobs",
        "",
        columns! {
            "id" => job.id, "kind" => kind.as_str(), "subject_id" => job.subject_id,
            "unique_key" => kind.key(job.subject_id), "run_at" => now_ms,
            "max_attempts" => job.max_attempts, "created_at" => now_ms,
            "locked_until" => claim.until_ms, "locked_by" => claim.worker, "attempts" => 1,
        },
    );
    job.ready = (message.status == "submitting").then(|| Box::new(message));
    Ok(job)
}

/// Whether the run's account has webhook subscriptions, read with the run.
const RUN_SUBSCRIBED: &str = subscribed_sql!("r.account_id");

/// Contact `$1`'s tags as a JSON array of strings (NULL or `[]` for none), read with the
/// contact instead of by a statement of their own: the aggregate is spelled per backend.
fn tags_json_sql(tx: &WriteTx<'_>) -> &'static str {
    match tx {
        WriteTx::Postgres(_) => {
            "(SELECT CAST(json_agg(tag) AS TEXT) FROM contact_tags WHERE contact_id = $1)"
        }
        WriteTx::Sqlite(_) => {
            "(SELECT json_group_array(tag) FROM contact_tags WHERE contact_id = $1)"
        }
    }
}

/// The tags `tags_json_sql` read, in tag order (by `tag_key`, as a tag query's
/// `ORDER BY tag_key` gives them).
fn tags_from_json(json: Option<&str>) -> Result<Vec<String>> {
    let mut tags: Vec<String> = match json {
        Some(json) => crate::from_json("contact tags", json)?,
        None => Vec::new(),
    };
    tags.sort_by_cached_key(|t| t.to_lowercase());
    Ok(tags)
}

/// A run's contact as a step reads it (`contact_for_step_columns!`).
#[derive(Clone)]
struct ContactFacts {
    id: i64,
    phone: String,
    first_name: Option<String>,
    last_name: Option<String>,
    opted_out: bool,
    textable: bool,
    last_replied_at_ms: Option<i64>,
    last_text_back_at_ms: Option<i64>,
    line_type: Option<String>,
}

impl ContactFacts {
    fn from_row(c: &crate::sql::Row) -> Result<ContactFacts> {
        Ok(ContactFacts {
            id: c.try_get("id")?,
            phone: c.try_get("phone")?,
            first_name: c.try_get("first_name")?,
            last_name: c.try_get("last_name")?,
            opted_out: c.try_get("opted_out")?,
            textable: c.try_get("textable")?,
            last_replied_at_ms: c.try_get("last_replied_at")?,
            last_text_back_at_ms: c.try_get("last_text_back_at")?,
            line_type: c.try_get("line_type")?,
        })
    }

    fn for_run(&self, started_at_ms: i64) -> RunContact {
        RunContact {
            id: self.id,
            phone: self.phone.clone(),
            first_name: self.first_name.clone(),
            last_name: self.last_name.clone(),
            opted_out: self.opted_out,
            textable: self.textable,
            replied_since_start: self.last_replied_at_ms.is_some_and(|t| t >= started_at_ms),
        }
    }
}

/// A run as a step reads it (`read_run`), or as the transaction that started it knows it.
struct RunFacts {
    account_id: i64,
    /// The account has webhook subscriptions.
    subscribed: bool,
    trigger: String,
    contact_id: Option<i64>,
    number_id: Option<i64>,
    pc: i64,
    waited: bool,
    started_at_ms: i64,
    wait_deadline_ms: Option<i64>,
    /// The spec of the version the run is pinned to.
    spec: String,
    /// A task this run created is done.
    task_done: bool,
    call: Option<RunCall>,
}

/// Reads run `run_id`, locked, with what it is pinned to (its version's spec, its call)
/// and whether a task it created is done, in one statement. None when it is gone, ended,
/// or not due yet.
async fn read_run(tx: &mut WriteTx<'_>, run_id: i64, now_ms: i64) -> Result<Option<RunFacts>> {
    let lock_run = if tx.for_update().is_empty() {
        ""
    } else {
        " FOR UPDATE OF r"
    };
    let run_sql = format!(
        "SELECT r.account_id, r.trigger, r.contact_id, r.call_id, r.number_id, \
         r.status, r.pc, r.waited, r.resume_at, r.started_at, r.wait_deadline, \
         (SELECT v.spec FROM workflow_versions v WHERE v.workflow_id = r.workflow_id AND v.version = r.version) AS spec, \
         (SELECT COUNT(*) > 0 FROM tasks t WHERE t.run_id = r.id AND t.status = 'done') AS task_done, \
         c.caller AS call_caller, c.caller_phone AS call_caller_phone, c.started_at AS call_started_at, \
         {RUN_SUBSCRIBED} FROM workflow_runs r LEFT JOIN calls c ON c.id = r.call_id WHERE r.id = $1{lock_run}"
    );
    let Some(run) = crate::sql::query(run_sql)
        .bind(run_id)
        .fetch_optional(&mut *tx)
        .await?
    else {
        return Ok(None);
    };
    let status: String = run.try_get("status")?;
    let resume_at: Option<i64> = run.try_get("resume_at")?;
    if !matches!(status.as_str(), "active" | "waiting") || resume_at.is_some_and(|t| t > now_ms) {
        return Ok(None);
    }
    // A run's call_id references calls(id): the joined columns are there when it is set.
    let call = match run.try_get::<Option<i64>, _>("call_id")? {
        Some(id) => Some(RunCall {
            id,
            caller: run.try_get("call_caller")?,
            caller_phone: run.try_get("call_caller_phone")?,
            started_at_ms: run.try_get("call_started_at")?,
        }),
        None => None,
    };
    Ok(Some(RunFacts {
        account_id: run.try_get("account_id")?,
        subscribed: run.try_get("subscribed")?,
        trigger: run.try_get("trigger")?,
        contact_id: run.try_get("contact_id")?,
        number_id: run.try_get("number_id")?,
        pc: run.try_get("pc")?,
        waited: run.try_get("waited")?,
        started_at_ms: run.try_get("started_at")?,
        wait_deadline_ms: run.try_get("wait_deadline")?,
        spec: run.try_get("spec")?,
        task_done: run.try_get("task_done")?,
        call,
    }))
}

/// What the transaction that started a run knows already, for its first step.
struct Known<'a> {
    /// The run as inserted; None when the start could not tell all of it.
    run: Option<RunFacts>,
    /// Nothing in that transaction changes an account or a number.
    account: &'a AccountRecord,
    /// The number the run's event came in on, when there is one.
    number: Option<&'a NumberRecord>,
    /// The run's contact's tags; None once an earlier step of the transaction may have
    /// changed them.
    tags: Option<&'a [String]>,
    /// The run's contact, locked; None likewise (a step's text back is a later step's
    /// last text back).
    contact: Option<&'a ContactFacts>,
    /// What a step deferring its writes reads next, read with the contact; None likewise.
    prefetched: Option<Prefetched>,
}

/// What jobs started together read of a run's first step with its contact
/// (`START_CONTACTS_TOGETHER`), so that the step need not read while deferring writes.
#[derive(Clone, Copy)]
struct Prefetched {
    /// The event's number.
    number_id: Option<i64>,
    /// The contact's conversation on that number, if it has one.
    conversation_id: Option<i64>,
    /// The event's call has its text back already.
    texted_back: bool,
    call_missed_at_ms: Option<i64>,
}

/// One step of run `run_id` inside `tx` (see `Store::advance_run`). `job_id` is the
/// `advance_run` job being run, deleted with the step; None when the step runs in the
/// transaction that started the run, which queued no job for it and read what `known`
/// holds already.
async fn advance_in(
    tx: &mut WriteTx<'_>,
    job_id: Option<i64>,
    run_id: i64,
    known: Option<Known<'_>>,
    now_ms: i64,
    claim: &Claim<'_>,
    plan: impl FnOnce(&RunInput) -> RunPlan,
) -> Result<Vec<Job>> {
    let mut known = known;
    let run = match known.as_mut().and_then(|k| k.run.take()) {
        Some(run) => run,
        None => match read_run(tx, run_id, now_ms).await? {
            Some(run) => run,
            None => {
                delete_job(tx, job_id).await?;
                return Ok(Vec::new());
            }
        },
    };
    let account_id = run.account_id;
    let subscribed = run.subscribed;
    let contact_id = run.contact_id;
    let call_id = run.call.as_ref().map(|c| c.id);
    let mut number_id = run.number_id;
    let started_at_ms = run.started_at_ms;
    let account = match &known {
        Some(known) if known.account.id == account_id => known.account.clone(),
        _ => {
            let a = crate::sql::query(format!(
                "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = $1"
            ))
            .bind(account_id)
            .fetch_one(&mut *tx)
            .await?;
            account_from_row!(a)
        }
    };
    if number_id.is_none() {
        number_id = crate::sql::query_scalar(
            "SELECT id FROM numbers WHERE account_id = $1 AND active ORDER BY id LIMIT 1",
        )
        .bind(account_id)
        .fetch_optional(&mut *tx)
        .await?;
    }
    let known_number = known.as_ref().and_then(|k| k.number);
    let number = match number_id {
        Some(id) if known_number.is_some_and(|n| n.id == id) => known_number.cloned(),
        Some(id) => {
            let n = crate::sql::query(format!(
                "SELECT {NUMBER_COLUMNS} FROM numbers n WHERE n.id = $1"
            ))
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
            Some(number_from_row!(n))
        }
        None => None,
    };
    let contact = match (contact_id, known.as_ref().and_then(|k| k.contact)) {
        (Some(id), Some(c)) if c.id == id => Some(c.clone()),
        (Some(id), _) => {
            let for_update = tx.for_update();
            let c = crate::sql::query(format!(
                concat!(
                    "SELECT ",
                    contact_for_step_columns!("$2", "$3"),
                    " FROM contacts WHERE id = $1{}"
                ),
                for_update
            ))
            .bind(id)
            .bind(account_id)
            .bind(call_id.unwrap_or(-1))
            .fetch_one(&mut *tx)
            .await?;
            Some(ContactFacts::from_row(&c)?)
        }
        (None, _) => None,
    };
    let last_text_back_at_ms = contact.as_ref().and_then(|c| c.last_text_back_at_ms);
    let caller_line_type = contact.as_ref().and_then(|c| c.line_type.clone());
    let contact = contact.map(|c| c.for_run(started_at_ms));
    let tags: Vec<String> = match (contact_id, known.as_ref().and_then(|k| k.tags)) {
        (Some(_), Some(tags)) => tags.to_vec(),
        (Some(id), None) => {
            crate::sql::query_scalar(
                "SELECT tag FROM contact_tags WHERE contact_id = $1 ORDER BY tag_key",
            )
            .bind(id)
            .fetch_all(&mut *tx)
            .await?
        }
        (None, _) => Vec::new(),
    };
    let phone = contact.as_ref().map(|c| c.phone.clone());
    let input = RunInput {
        task_done: run.task_done,
        wait_deadline_ms: run.wait_deadline_ms,
        run_id,
        trigger: run.trigger,
        pc: run.pc,
        waited: run.waited,
        started_at_ms,
        spec: run.spec,
        account,
        number: number.clone(),
        call: run.call,
        contact,
        tags,
        last_text_back_at_ms,
        caller_line_type,
    };
    let decided = plan(&input);
    let send_now = SendNow::new(input.contact.as_ref().is_some_and(|c| c.opted_out), now_ms);
    let mut queued: Vec<Job> = Vec::new();
    // What the start read for this step, when the transaction defers its writes.
    let mut prefetched = known
        .as_mut()
        .and_then(|k| k.prefetched.take())
        .filter(|p| p.number_id == number_id);
    let conversation_id: Option<i64> = match (contact_id, number_id, tx.deferring(), &prefetched) {
        (Some(c), Some(n), Some(pg), Some(pre)) => Some(match pre.conversation_id {
            Some(id) => {
                pg.deferred.update(
                    "conversations",
                    id,
                    columns! { "last_message_at" => now_ms },
                );
                id
            }
            None => {
                // Another transaction starting this conversation meanwhile fails the insert.
                let id = pg.next_id("conversations").await?;
                pg.deferred.insert(
                    "conversations",
                    "",
                    columns! {
                        "id" => id, "account_id" => account_id, "number_id" => n, "contact_id" => c,
                        "last_message_at" => now_ms, "created_at" => now_ms,
                    },
                );
                id
            }
        }),
        (Some(c), Some(n), _, _) => Some(upsert_conversation!(tx, account_id, n, c, now_ms, false)),
        _ => None,
    };
    let from = number.as_ref().map(|n| n.e164.clone()).unwrap_or_default();
    // A text to the contact that a deferring step keeps for insert (`defer_outbound`), as
    // its send will read it, and its other columns.
    let step_text = |id: i64, kind: &str, body: &str, carrier: &str| OutboundMessage {
        id,
        call_id: None,
        account_id,
        from_phone: from.clone(),
        to_phone: phone.clone().unwrap_or_default(),
        body: body.to_owned(),
        status: send_now.status.to_owned(),
        carrier: carrier.to_owned(),
        carrier_message_id: None,
        contact_opted_out: false,
        attempts: send_now.attempts,
        last_attempt_at_ms: send_now.last_attempt_at_ms,
        kind: kind.to_owned(),
        created_at_ms: now_ms,
        call_missed_at_ms: None,
    };
    let step_text_columns = |variant: &Option<String>, step: &String| {
        columns! {
            "number_id" => number_id, "contact_id" => contact_id, "run_id" => run_id,
            "conversation_id" => conversation_id, "variant" => variant, "step" => step,
        }
    };
    let log = |place: &str, what: &str| (place.to_owned(), what.to_owned());
    let mut logs: Vec<(String, String)> = Vec::new();
    for action in &decided.actions {
        match action {
            RunAction::TextBack {
                body,
                carrier,
                variant,
                step,
            } => {
                if let (Some(pg), Some(pre)) = (tx.deferring(), prefetched.as_mut()) {
                    // Whether the call has its text back was read with the contact.
                    if pre.texted_back {
                        logs.push(log(
                            "text back",
                            "already texted back: another automation sent this call's text back",
                        ));
                        continue;
                    }
                    pre.texted_back = true;
                    let message = OutboundMessage {
                        call_id,
                        call_missed_at_ms: pre.call_missed_at_ms,
                        ..step_text(pg.next_id("messages").await?, "text_back", body, carrier)
                    };
                    let more = step_text_columns(variant, step);
                    queued.push(defer_outbound(pg, message, more, now_ms, claim).await?);
                    if let Some(call_id) = call_id {
                        pg.deferred.update(
                            "calls",
                            call_id,
                            columns! {
                                "text_back_status" => "queued", "text_back_reason" => None::<String>,
                                "updated_at" => now_ms,
                            },
                        );
                    }
                    logs.push(log("text back", "queued"));
                    continue;
                }
                let inserted = crate::sql::query(concat!(
                    "INSERT INTO messages (account_id, number_id, contact_id, call_id, run_id, conversation_id, kind, \
                     direction, from_phone, to_phone, body, carrier, created_at, updated_at, variant, step, \
                     status, attempts, last_attempt_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, 'text_back', 'outbound', $7, $8, $9, $10, $11, $11, $12, $13, \
                     $14, $15, $16) ON CONFLICT DO NOTHING",
                    outbound_returning!()
                ))
                .bind(account_id)
                .bind(number_id)
                .bind(contact_id)
                .bind(call_id)
                .bind(run_id)
                .bind(conversation_id)
                .bind(&from)
                .bind(phone.as_deref().unwrap_or_default())
                .bind(body)
                .bind(carrier)
                .bind(now_ms)
                .bind(variant)
                .bind(step)
                .bind(send_now.status)
                .bind(send_now.attempts)
                .bind(send_now.last_attempt_at_ms)
                .fetch_optional(&mut *tx)
                .await?;
                match inserted {
                    Some(inserted) => {
                        queued.extend(queue_send(tx, &inserted, now_ms, claim).await?);
                        crate::sql::query(
                            "UPDATE calls SET text_back_status = 'queued', text_back_reason = NULL, updated_at = $2 WHERE id = $1",
                        )
                        .bind(call_id)
                        .bind(now_ms)
                        .execute(&mut *tx)
                        .await?;
                        logs.push(log("text back", "queued"));
                    }
                    None => logs.push(log(
                        "text back",
                        "already texted back: another automation sent this call's text back",
                    )),
                }
            }
            RunAction::TextBackNotSent { status, reason } => {
                if let Some(call_id) = call_id {
                    let first = crate::sql::query(
                        "UPDATE calls SET text_back_status = $2, text_back_reason = $3, updated_at = $4 \
                         WHERE id = $1 AND text_back_status IS NULL",
                    )
                    .bind(call_id)
                    .bind(status)
                    .bind(reason)
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                        > 0;
                    if first {
                        emit_event!(
                            tx,
                            account_id,
                            "text_back.suppressed",
                            serde_json::json!({
                                "call_id": call_id, "contact_id": contact_id, "status": status, "reason": reason,
                            }),
                            now_ms,
                            subscribed: subscribed
                        );
                    }
                }
                logs.push(log("text back", &format!("{status}: {reason}")));
            }
            RunAction::Send {
                kind,
                body,
                carrier,
                variant,
                step,
            } => {
                if let Some(pg) = tx.deferring() {
                    let message = step_text(pg.next_id("messages").await?, kind, body, carrier);
                    let more = step_text_columns(variant, step);
                    queued.push(defer_outbound(pg, message, more, now_ms, claim).await?);
                    logs.push(log(kind, "queued"));
                    continue;
                }
                let inserted = crate::sql::query(concat!(
                    "INSERT INTO messages (account_id, number_id, contact_id, run_id, conversation_id, kind, direction, \
                     from_phone, to_phone, body, carrier, created_at, updated_at, variant, step, \
                     status, attempts, last_attempt_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, 'outbound', $7, $8, $9, $10, $11, $11, $12, $13, $14, $15, $16)",
                    outbound_returning!()
                ))
                .bind(account_id)
                .bind(number_id)
                .bind(contact_id)
                .bind(run_id)
                .bind(conversation_id)
                .bind(kind)
                .bind(&from)
                .bind(phone.as_deref().unwrap_or_default())
                .bind(body)
                .bind(carrier)
                .bind(now_ms)
                .bind(variant)
                .bind(step)
                .bind(send_now.status)
                .bind(send_now.attempts)
                .bind(send_now.last_attempt_at_ms)
                .fetch_one(&mut *tx)
                .await?;
                queued.extend(queue_send(tx, &inserted, now_ms, claim).await?);
                logs.push(log(kind, "queued"));
            }
            RunAction::Task {
                title,
                due_at_ms,
                assignee,
            } => {
                let id: i64 = match tx.deferring() {
                    Some(pg) => {
                        let id = pg.next_id("tasks").await?;
                        pg.deferred.insert(
                            "tasks",
                            "",
                            columns! {
                                "id" => id, "account_id" => account_id, "contact_id" => contact_id,
                                "call_id" => call_id, "run_id" => run_id, "title" => title,
                                "due_at" => due_at_ms, "assignee" => assignee, "status" => "open",
                                "created_at" => now_ms,
                            },
                        );
                        id
                    }
                    None => crate::sql::query_scalar(
                        "INSERT INTO tasks (account_id, contact_id, call_id, run_id, title, due_at, assignee, status, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, 'open', $8) RETURNING id",
                    )
                    .bind(account_id)
                    .bind(contact_id)
                    .bind(call_id)
                    .bind(run_id)
                    .bind(title)
                    .bind(due_at_ms)
                    .bind(assignee)
                    .bind(now_ms)
                    .fetch_one(&mut *tx)
                    .await?,
                };
                enqueue_later!(
                    tx,
                    JobKind::TaskDue,
                    id,
                    Some(JobKind::TaskDue.key(id)),
                    *due_at_ms,
                    now_ms
                );
                emit_event!(
                    tx,
                    account_id,
                    "task.created",
                    serde_json::json!({
                        "task_id": id, "title": title, "contact_id": contact_id, "call_id": call_id,
                        "due_at": jiff::Timestamp::from_millisecond(*due_at_ms).map(|t| t.to_string()).unwrap_or_default(),
                        "assignee": assignee,
                    }),
                    now_ms,
                    subscribed: subscribed
                );
                logs.push(log("create_task", &format!("task {id}: {title}")));
            }
            RunAction::AddTag(tag) => {
                if let (Some(cid), Some(pg)) = (contact_id, tx.deferring()) {
                    pg.deferred.insert(
                        "contact_tags",
                        " ON CONFLICT (contact_id, tag_key) DO NOTHING",
                        columns! {
                            "contact_id" => cid, "tag" => tag, "tag_key" => tag.to_lowercase(),
                            "created_at" => now_ms,
                        },
                    );
                } else if let Some(cid) = contact_id {
                    crate::sql::query(
                        "INSERT INTO contact_tags (contact_id, tag, tag_key, created_at) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (contact_id, tag_key) DO NOTHING",
                    )
                    .bind(cid)
                    .bind(tag)
                    .bind(tag.to_lowercase())
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?;
                }
                logs.push(log("add_tag", tag));
            }
            RunAction::RemoveTag(tag) => {
                if let Some(cid) = contact_id {
                    crate::sql::query(
                        "DELETE FROM contact_tags WHERE contact_id = $1 AND tag_key = $2",
                    )
                    .bind(cid)
                    .bind(tag.to_lowercase())
                    .execute(&mut *tx)
                    .await?;
                }
                logs.push(log("remove_tag", tag));
            }
            RunAction::Notify { to, body, carrier } => {
                for phone_to in to {
                    // A team phone: no contact, so nothing to check for an opt-out.
                    let inserted = crate::sql::query(concat!(
                        "INSERT INTO messages (account_id, number_id, run_id, kind, direction, from_phone, to_phone, \
                         body, carrier, created_at, updated_at, status, attempts, last_attempt_at) \
                         VALUES ($1, $2, $3, 'notify', 'outbound', $4, $5, $6, $7, $8, $8, 'submitting', 1, $8)",
                        outbound_returning!()
                    ))
                    .bind(account_id)
                    .bind(number_id)
                    .bind(run_id)
                    .bind(&from)
                    .bind(phone_to)
                    .bind(body)
                    .bind(carrier)
                    .bind(now_ms)
                    .fetch_one(&mut *tx)
                    .await?;
                    queued.extend(queue_send(tx, &inserted, now_ms, claim).await?);
                }
                logs.push(log("notify_team", &format!("{} team phone(s)", to.len())));
            }
            RunAction::Webhook { url, payload } => {
                let id: i64 = crate::sql::query_scalar(
                    "INSERT INTO webhook_deliveries (account_id, run_id, url, payload, created_at) \
                     VALUES ($1, $2, $3, $4, $5) RETURNING id",
                )
                .bind(account_id)
                .bind(run_id)
                .bind(url)
                .bind(payload)
                .bind(now_ms)
                .fetch_one(&mut *tx)
                .await?;
                queued.extend(enqueue_claimed!(
                    tx,
                    JobKind::Webhook,
                    id,
                    Some(JobKind::Webhook.key(id)),
                    now_ms,
                    claim
                ));
                logs.push(log("webhook", url));
            }
            RunAction::Log { place, what } => logs.push((place.clone(), what.clone())),
        }
    }
    // The step's log lines in one statement per 16 (a round trip each on PostgreSQL), in
    // order: ids follow the VALUES list (and the JSON array's order, deferred).
    if let Some(pg) = tx.deferring() {
        for (place, what) in logs.drain(..) {
            pg.deferred.insert(
                "run_log",
                "",
                columns! { "run_id" => run_id, "place" => place, "what" => what, "at" => now_ms },
            );
        }
    }
    for chunk in logs.chunks(16) {
        let mut sql = String::from("INSERT INTO run_log (run_id, place, what, at) VALUES ");
        for i in 0..chunk.len() {
            let p = 3 + 2 * i;
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("($1, ${p}, ${}, $2)", p + 1));
        }
        let mut q = crate::sql::query(sql).bind(run_id).bind(now_ms);
        for (place, what) in chunk {
            q = q.bind(place.as_str()).bind(what.as_str());
        }
        q.execute(&mut *tx).await?;
    }
    match &decided.next {
        RunNext::Done | RunNext::Fail(_) => {
            let (status, reason) = match &decided.next {
                RunNext::Fail(why) => ("failed", Some(why.clone())),
                _ => ("done", None),
            };
            if let Some(pg) = tx.deferring() {
                pg.deferred.update(
                    "workflow_runs",
                    run_id,
                    columns! {
                        "status" => status, "stop_reason" => reason, "resume_at" => None::<i64>,
                        "ended_at" => now_ms, "updated_at" => now_ms,
                    },
                );
            } else {
                crate::sql::query(
                    "UPDATE workflow_runs SET status = $2, stop_reason = $3, resume_at = NULL, ended_at = $4, updated_at = $4 WHERE id = $1",
                )
                .bind(run_id)
                .bind(status)
                .bind(reason)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
            }
        }
        RunNext::AwaitEvent {
            pc,
            event,
            deadline_ms,
        } => {
            if let Some(pg) = tx.deferring() {
                pg.deferred.update(
                    "workflow_runs",
                    run_id,
                    columns! {
                        "status" => "waiting", "pc" => pc, "waited" => true, "resume_at" => deadline_ms,
                        "waiting_for" => event, "wait_deadline" => deadline_ms, "updated_at" => now_ms,
                    },
                );
            } else {
                crate::sql::query(
                    "UPDATE workflow_runs SET status = 'waiting', pc = $2, waited = TRUE, resume_at = $3, \
                     waiting_for = $4, wait_deadline = $3, updated_at = $5 WHERE id = $1",
                )
                .bind(run_id)
                .bind(pc)
                .bind(deadline_ms)
                .bind(event)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
            }
            enqueue_later!(
                tx,
                JobKind::AdvanceRun,
                run_id,
                Some(format!("advance_run:{run_id}:{pc}:{deadline_ms}")),
                *deadline_ms,
                now_ms
            );
        }
        RunNext::ResumeAt { pc, at_ms, waited } => {
            if let Some(pg) = tx.deferring() {
                pg.deferred.update(
                    "workflow_runs",
                    run_id,
                    columns! {
                        "status" => "waiting", "pc" => pc, "waited" => waited, "resume_at" => at_ms,
                        "waiting_for" => None::<String>, "wait_deadline" => None::<i64>,
                        "updated_at" => now_ms,
                    },
                );
            } else {
                crate::sql::query(
                    "UPDATE workflow_runs SET status = 'waiting', pc = $2, waited = $3, resume_at = $4, \
                     waiting_for = NULL, wait_deadline = NULL, updated_at = $5 WHERE id = $1",
                )
                .bind(run_id)
                .bind(pc)
                .bind(waited)
                .bind(at_ms)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
            }
            enqueue_later!(
                tx,
                JobKind::AdvanceRun,
                run_id,
                Some(format!("advance_run:{run_id}:{pc}:{at_ms}")),
                *at_ms,
                now_ms
            );
        }
    }
    delete_job(tx, job_id).await?;
    Ok(queued)
}
