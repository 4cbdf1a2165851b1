//! Workers claim due jobs and run them: decide a missed call's text back, send a message.
//! They wake at once when work is enqueued, and otherwise when the next job falls due.

use std::time::Duration;

use textback_store::{Claim, Job, JobKind, retry_delay_for};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::AppState;
use crate::automation::{plan_run, plan_start};
use crate::deliver::deliver;
use crate::sender::send;

/// How long a claimed job is ours; a crashed worker's jobs are claimed again after it.
const LEASE: Duration = Duration::from_secs(60);
/// Jobs claimed at once; they run concurrently (sends wait on the carrier).
const BATCH: i64 = 32;
/// Longest idle sleep, so jobs enqueued by another instance are not left waiting long.
const IDLE_POLL: Duration = Duration::from_secs(1);

pub struct Worker {
    state: AppState,
    name: String,
}

impl Worker {
    pub fn new(state: AppState, name: &str) -> Worker {
        Worker {
            state,
            name: name.to_owned(),
        }
    }

    /// Claims and runs one batch of due jobs; returns how many ran.
    pub async fn step(&self) -> usize {
        let now = self.state.now_ms();
        let jobs = match self
            .state
            .store
            .claim_jobs(&self.name, now, LEASE, BATCH)
            .await
        {
            Ok(jobs) => jobs,
            Err(e) => {
                tracing::error!(error = %e, "claiming jobs failed");
                return 0;
            }
        };
        let n = jobs.len();
        let mut set = JoinSet::new();
        let (triggers, mut jobs): (Vec<Job>, Vec<Job>) = if self.state.store.shares_transactions() {
            jobs.into_iter().partition(|j| j.kind == JobKind::Trigger)
        } else {
            (Vec::new(), jobs)
        };
        if triggers.len() > 1 {
            let state = self.state.clone();
            let name = self.name.clone();
            set.spawn(async move { run_triggers(&state, &name, triggers).await });
        } else {
            jobs.extend(triggers);
        }
        for job in jobs {
            let state = self.state.clone();
            let name = self.name.clone();
            set.spawn(async move { run_job(&state, &name, job).await });
        }
        while set.join_next().await.is_some() {}
        n
    }

    /// Steps until no job is due now. For tests and `simulate-call`.
    pub async fn drain(&self) -> usize {
        let mut total = 0;
        loop {
            let n = self.step().await;
            if n == 0 {
                return total;
            }
            total += n;
        }
    }

    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let signal = self.state.store.work_signal();
        loop {
            if *stop.borrow() {
                return;
            }
            let notified = signal.notified();
            let ran = self.step().await;
            if ran as i64 == BATCH {
                // A full batch: more may be due; another idle worker shares them.
                signal.notify_one();
            }
            if ran > 0 {
                continue;
            }
            let wait = match self.state.store.next_job_due().await {
                Ok(Some(due)) => {
                    let ms = (due - self.state.now_ms()).clamp(0, IDLE_POLL.as_millis() as i64);
                    Duration::from_millis(ms as u64)
                }
                _ => IDLE_POLL,
            };
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => return,
            }
        }
    }
}

/// Runs a job, then the follow-on jobs it created for right now (the run it started, the
/// text it queued), which the step's transaction enqueued already claimed by this worker
/// under the usual lease: one missed call goes from trigger to carrier in one task,
/// without another claim round. (Should this task die, the lease runs out and any worker
/// claims them.)
async fn run_job(state: &AppState, worker: &str, job: Job) {
    let mut next = run_one(state, worker, job).await;
    while let Some(job) = next.pop() {
        next.extend(run_one(state, worker, job).await);
    }
}

async fn run_one(state: &AppState, worker: &str, mut job: Job) -> Vec<Job> {
    let claim = Claim {
        worker,
        until_ms: state.now_ms() + LEASE.as_millis() as i64,
    };
    let result = match job.kind {
        JobKind::Trigger => start_runs(state, &job, &claim).await,
        JobKind::AdvanceRun => advance_run(state, &job, &claim).await,
        JobKind::SendMessage => {
            let ready = job.ready.take();
            send(state, &job, ready).await.map(|()| Vec::new())
        }
        JobKind::TaskDue => task_due(state, &job).await.map(|()| Vec::new()),
        JobKind::Webhook => deliver(state, &job).await.map(|()| Vec::new()),
    };
    match result {
        Ok(next) => next,
        Err(failure) => {
            retry_later(state, &job, failure).await;
            Vec::new()
        }
    }
}

/// Trigger jobs claimed together, started together where that pays
/// (`Store::start_runs_together`); then each one's follow-on jobs, side by side.
async fn run_triggers(state: &AppState, worker: &str, jobs: Vec<Job>) {
    let claim = Claim {
        worker,
        until_ms: state.now_ms() + LEASE.as_millis() as i64,
    };
    let now = state.clock.now();
    let results = state
        .store
        .start_runs_together(&jobs, now.as_millisecond(), &claim, plan_start, |input| {
            plan_step(state, now, input)
        })
        .await;
    let mut follow_on = JoinSet::new();
    for (job, result) in jobs.iter().zip(results) {
        match result {
            Ok(next) => {
                for job in next {
                    let (state, worker) = (state.clone(), worker.to_owned());
                    follow_on.spawn(async move { run_job(&state, &worker, job).await });
                }
            }
            Err(e) => retry_later(state, job, e.into()).await,
        }
    }
    while follow_on.join_next().await.is_some() {}
}

/// A failed job runs again after its back-off, or is given up on after its last attempt.
async fn retry_later(state: &AppState, job: &Job, failure: JobFailure) {
    let delay = failure
        .retry_after
        .unwrap_or_else(|| retry_delay_for(job.kind, job.attempts));
    let run_at = state.now_ms() + delay.as_millis() as i64;
    match state.store.retry_job(job, &failure.message, run_at).await {
        Ok(true) => {
            tracing::warn!(job = job.id, kind = job.kind.as_str(), error = %failure.message, "job failed; will retry")
        }
        Ok(false) => {
            tracing::error!(job = job.id, kind = job.kind.as_str(), error = %failure.message, "job failed for the last time")
        }
        Err(e) => {
            tracing::error!(job = job.id, error = %e, "could not reschedule job; its lease will expire")
        }
    }
}

/// A job that should run again later.
pub(crate) struct JobFailure {
    pub message: String,
    pub retry_after: Option<Duration>,
}

impl From<textback_store::StoreError> for JobFailure {
    fn from(e: textback_store::StoreError) -> Self {
        JobFailure {
            message: e.to_string(),
            retry_after: None,
        }
    }
}

/// Line types are cached this long (about three months).
const LOOKUP_MAX_AGE_MS: i64 = 90 * 24 * 3600 * 1000;

async fn start_runs(
    state: &AppState,
    job: &Job,
    claim: &Claim<'_>,
) -> Result<Vec<Job>, JobFailure> {
    let now = state.clock.now();
    let jobs = state
        .store
        .start_runs(job, now.as_millisecond(), claim, plan_start, |input| {
            plan_step(state, now, input)
        })
        .await?;
    tracing::debug!(event = job.subject_id, runs = jobs.len(), "trigger handled");
    Ok(jobs)
}

async fn advance_run(
    state: &AppState,
    job: &Job,
    claim: &Claim<'_>,
) -> Result<Vec<Job>, JobFailure> {
    look_up_line_type(state, job.subject_id).await?;
    let now = state.clock.now();
    state
        .store
        .advance_run(job, now.as_millisecond(), claim, |input| {
            plan_step(state, now, input)
        })
        .await
        .map_err(JobFailure::from)
}

/// Decides one step of a run (pure), through the carrier the business number sends with.
fn plan_step(
    state: &AppState,
    now: jiff::Timestamp,
    input: &textback_store::RunInput,
) -> textback_store::RunPlan {
    let to = input.contact.as_ref().map_or("", |c| c.phone.as_str());
    let carrier = input
        .number
        .as_ref()
        .map(|n| state.carrier_for(&n.carrier, to))
        .unwrap_or("sandbox");
    let plan = plan_run(input, now, carrier);
    count_decisions(&plan);
    plan
}

async fn task_due(state: &AppState, job: &Job) -> Result<(), JobFailure> {
    state.store.task_due(job, state.now_ms()).await?;
    Ok(())
}

/// For accounts that skip landlines: looks up the run's caller's line type unless cached.
/// A failed lookup is logged and the text goes ahead as if the number were mobile.
async fn look_up_line_type(state: &AppState, run_id: i64) -> Result<(), JobFailure> {
    let Some(client) = &state.twilio else {
        return Ok(());
    };
    let now = state.now_ms();
    let Some(phone) = state
        .store
        .lookup_needed(run_id, now, LOOKUP_MAX_AGE_MS)
        .await?
    else {
        return Ok(());
    };
    match client.line_type(&phone).await {
        Ok(found) => {
            state
                .store
                .save_lookup(
                    &phone,
                    found.line_type.as_deref(),
                    found.carrier_name.as_deref(),
                    now,
                )
                .await?;
        }
        Err(e) => {
            tracing::warn!(error = %e, caller = %textback_core::phone::redact(&phone), "line type lookup failed; texting anyway")
        }
    }
    Ok(())
}

/// Counts the text back decisions of a run step, by reason code (never free text).
fn count_decisions(plan: &textback_store::RunPlan) {
    for action in &plan.actions {
        match action {
            textback_store::RunAction::TextBack { .. } => {
                metrics::counter!("textback_text_back_total", "decision" => "send", "reason" => "")
                    .increment(1);
            }
            textback_store::RunAction::TextBackNotSent { status, reason } => {
                let code = if reason.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                    reason.clone()
                } else {
                    "invalid_message".to_owned()
                };
                metrics::counter!("textback_text_back_total", "decision" => status.clone(), "reason" => code).increment(1);
            }
            _ => {}
        }
    }
}
