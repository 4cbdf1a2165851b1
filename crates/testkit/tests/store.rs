//! The store's own contract, run against SQLite and PostgreSQL alike: migrations, the job
//! queue (leases, retries, dead jobs, unique keys, concurrent claims) and the
//! one-settlement-per-call rule.

use std::collections::BTreeSet;
use std::time::Duration;

use textback_store::{DialFacts, JobKind, NewCall, Store};
use textback_testkit::{Backend, TestDb};

macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = TestDb::create(Backend::Sqlite).await.expect("sqlite");
                super::$name(open(&db.url).await).await;
                db.drop_db().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(db) = TestDb::postgres_or_skip().await else {
 return;
 };
                let store = open(&db.url).await;
                super::$name(store.clone()).await;
                store.close().await;
                db.drop_db().await;
            }
        }
    )*};
}

on_both_stores!(
    migrations_run_once,
    due_jobs_are_claimed_once_per_lease,
    expired_lease_is_claimed_again,
    failed_job_retries_later_then_dies,
    unique_key_keeps_one_queued_job,
    concurrent_claims_never_share_a_job,
    a_call_is_settled_once,
    dial_results_arriving_together_settle_each_once,
    a_call_the_database_refuses_fails_alone,
    settings_keep_the_first_value,
);

async fn open(url: &str) -> Store {
    let store = Store::connect(url).await.expect("connect");
    store.migrate().await.expect("migrate");
    store
}

const LEASE: Duration = Duration::from_secs(60);

async fn migrations_run_once(store: Store) {
    assert_eq!(store.migrate().await.unwrap(), 0, "already applied");
    store.ping().await.unwrap();
}

async fn due_jobs_are_claimed_once_per_lease(store: Store) {
    store
        .enqueue_job(JobKind::SendMessage, 1, None, 1_000, 0)
        .await
        .unwrap();
    store
        .enqueue_job(JobKind::SendMessage, 2, None, 5_000, 0)
        .await
        .unwrap();
    let jobs = store.claim_jobs("a", 1_000, LEASE, 10).await.unwrap();
    assert_eq!(
        jobs.iter().map(|j| j.subject_id).collect::<Vec<_>>(),
        vec![1],
        "only due jobs"
    );
    assert_eq!(jobs[0].attempts, 1);
    assert!(
        store
            .claim_jobs("b", 2_000, LEASE, 10)
            .await
            .unwrap()
            .is_empty(),
        "leased"
    );
    store.complete_job(jobs[0].id).await.unwrap();
    let later = store.claim_jobs("b", 5_000, LEASE, 10).await.unwrap();
    assert_eq!(
        later.iter().map(|j| j.subject_id).collect::<Vec<_>>(),
        vec![2]
    );
    assert_eq!(
        store.next_job_due().await.unwrap(),
        Some(5_000 + LEASE.as_millis() as i64)
    );
}

async fn expired_lease_is_claimed_again(store: Store) {
    store
        .enqueue_job(JobKind::AdvanceRun, 7, None, 0, 0)
        .await
        .unwrap();
    let first = store.claim_jobs("crashed", 0, LEASE, 10).await.unwrap();
    assert_eq!(first.len(), 1);
    // The worker died without completing: after the lease the job comes back.
    assert!(
        store
            .claim_jobs("b", 59_999, LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let again = store.claim_jobs("b", 60_000, LEASE, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].id, again[0].attempts), (first[0].id, 2));
}

async fn failed_job_retries_later_then_dies(store: Store) {
    store
        .enqueue_job(JobKind::SendMessage, 3, None, 0, 0)
        .await
        .unwrap();
    let max = JobKind::SendMessage.max_attempts();
    let mut now = 0;
    for attempt in 1..=max {
        let jobs = store.claim_jobs("w", now, LEASE, 10).await.unwrap();
        assert_eq!(jobs.len(), 1, "attempt {attempt}");
        assert_eq!(jobs[0].attempts, attempt);
        let again = store
            .retry_job(&jobs[0], "carrier down", now + 1_000)
            .await
            .unwrap();
        assert_eq!(again, attempt < max);
        assert!(
            store
                .claim_jobs("w", now + 999, LEASE, 10)
                .await
                .unwrap()
                .is_empty(),
            "not before run_at"
        );
        now += 1_000;
    }
    assert!(
        store
            .claim_jobs("w", now + 1_000_000, LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.job_counts().await.unwrap(),
        (0, 1),
        "parked as dead, not lost"
    );
}

async fn unique_key_keeps_one_queued_job(store: Store) {
    assert!(
        store
            .enqueue_job(JobKind::SendMessage, 9, Some("send_message:9"), 0, 0)
            .await
            .unwrap()
    );
    assert!(
        !store
            .enqueue_job(JobKind::SendMessage, 9, Some("send_message:9"), 0, 0)
            .await
            .unwrap()
    );
    assert_eq!(store.job_counts().await.unwrap(), (1, 0));
}

async fn concurrent_claims_never_share_a_job(store: Store) {
    for i in 0..200 {
        store
            .enqueue_job(JobKind::SendMessage, i, None, 0, 0)
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for w in 0..4 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let jobs = store
                    .claim_jobs(&format!("w{w}"), 0, LEASE, 7)
                    .await
                    .unwrap();
                if jobs.is_empty() {
                    return mine;
                }
                mine.extend(jobs.into_iter().map(|j| j.subject_id));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: BTreeSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), 200, "every job claimed exactly once");
    assert_eq!(unique.len(), 200);
}

/// An account with one number that rings nobody: (account id, number id).
async fn account_with_number(store: &Store) -> (i64, i64) {
    let account = textback_store::AccountRecord {
        id: 0,
        slug: "a".into(),
        name: "A".into(),
        time_zone: "UTC".into(),
        booking_link: None,
        business_hours: Default::default(),
        text_back_enabled: true,
        text_back_template: "{{business.name}} here".into(),
        cooldown_secs: 0,
        do_not_text: vec![],
        landline_lookup: false,
        quiet_hours: "21:00-08:00".into(),
    };
    let account_id = store.save_account(&account, 0).await.unwrap();
    let number_id = store
        .save_number(
            &textback_store::NumberRecord {
                id: 0,
                account_id,
                e164: "+15125550100".into(),
                carrier: "twilio".into(),
                ring_to: vec![],
                ring_seconds: 20,
                call_screening: false,
                active: true,
                registration: "unregistered".into(),
            },
            0,
        )
        .await
        .unwrap();
    (account_id, number_id)
}

fn missed_call(account_id: i64, number_id: i64, call: &str, caller: &str) -> DialFacts {
    DialFacts {
        call: NewCall {
            account_id,
            number_id,
            carrier: "twilio".into(),
            carrier_call_id: call.into(),
            caller: caller.into(),
            caller_phone: Some(caller.into()),
            at_ms: 0,
        },
        dial_status: Some("no-answer".into()),
    }
}

/// Missed calls (call id, caller) on an account whose active workflows are `workflows`
/// (their specs are `{}`: the tests plan the steps themselves), with their trigger jobs
/// claimed, in the calls' order: (account id, number id, jobs).
async fn claimed_missed_calls(
    store: &Store,
    workflows: &[&str],
    calls: &[(&str, &str)],
) -> (i64, i64, Vec<textback_store::Job>) {
    let (account_id, number_id) = account_with_number(store).await;
    for name in workflows {
        store
            .save_workflow(account_id, name, false, true, "{}", 0)
            .await
            .unwrap();
    }
    for (sid, caller) in calls {
        let facts = missed_call(account_id, number_id, sid, caller);
        store.record_dial_result(&facts, false, 1).await.unwrap();
    }
    let mut jobs = store.claim_jobs("w", 10, LEASE, 32).await.unwrap();
    assert_eq!(jobs.len(), calls.len());
    jobs.sort_by_key(|j| j.id);
    (account_id, number_id, jobs)
}

/// The claim the tests' steps claim their follow-on jobs under.
const CLAIM: textback_store::Claim<'static> = textback_store::Claim {
    worker: "w",
    until_ms: 60_000,
};

/// A run of every active workflow, stopping on a reply.
fn start_every_workflow(input: &textback_store::TriggerInput) -> textback_store::StartPlan {
    textback_store::StartPlan {
        runs: input
            .workflows
            .iter()
            .map(|w| textback_store::StartRun {
                workflow_id: w.id,
                version: w.version,
                stop_on_reply: true,
            })
            .collect(),
        ..Default::default()
    }
}

async fn a_call_is_settled_once(store: Store) {
    let (account_id, number_id) = account_with_number(&store).await;
    let facts = missed_call(account_id, number_id, "CA1", "+15125550123");
    // Many concurrent deliveries of the same webhook: one settles, one job.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        let facts = facts.clone();
        tasks.push(tokio::spawn(async move {
            store.record_dial_result(&facts, false, 1).await.unwrap()
        }));
    }
    let mut newly = 0;
    for t in tasks {
        let (missed, fresh) = t.await.unwrap();
        assert!(missed);
        newly += usize::from(fresh);
    }
    assert_eq!(newly, 1);
    assert_eq!(store.job_counts().await.unwrap(), (1, 0));
    // A later "answered" report cannot flip a settled miss.
    let answered = DialFacts {
        dial_status: Some("completed".into()),
        ..facts
    };
    let (missed, fresh) = store.record_dial_result(&answered, false, 2).await.unwrap();
    assert_eq!((missed, fresh), (true, false));
}

/// Dial results arriving at once (on PostgreSQL, settled together in one transaction):
/// each call settled once by the rule, one contact per caller, one workflow trigger per miss.
async fn dial_results_arriving_together_settle_each_once(store: Store) {
    let (account_id, number_id) = account_with_number(&store).await;
    // Screening accepted on one of the two completed calls of a screening number: the
    // call was recorded ringing, then the team member pressed the key.
    let ringing = missed_call(account_id, number_id, "CA-screen-yes", "+15125558000");
    store.record_incoming_call(&ringing.call).await.unwrap();
    assert!(
        store
            .record_screen_accepted("CA-screen-yes", 0)
            .await
            .unwrap()
    );
    let mut sent = Vec::new();
    for i in 0..30 {
        // Callers 0–4 call twice, on two different calls.
        let caller = format!("+1512555{:04}", 1000 + i % 25);
        sent.push((
            missed_call(account_id, number_id, &format!("CA{i:02}"), &caller),
            false,
        ));
    }
    for i in 0..3 {
        let mut f = missed_call(
            account_id,
            number_id,
            &format!("CA-ans{i}"),
            &format!("+15125559{i:03}"),
        );
        f.dial_status = Some("completed".into());
        sent.push((f, false));
    }
    for call in ["CA-screen-yes", "CA-screen-no"] {
        let mut f = missed_call(account_id, number_id, call, "+15125558000");
        f.dial_status = Some("completed".into());
        sent.push((f, true));
    }
    // Four webhooks delivered twice.
    for i in 0..4 {
        sent.push(sent[i].clone());
    }
    let mut tasks = Vec::new();
    for (facts, screening) in sent.clone() {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let r = store
                .record_dial_result(&facts, screening, 1)
                .await
                .unwrap();
            (facts.call.carrier_call_id, r)
        }));
    }
    let mut newly = BTreeSet::new();
    for t in tasks {
        let (call, (missed, fresh)) = t.await.unwrap();
        let answered = call.starts_with("CA-ans") || call == "CA-screen-yes";
        assert_eq!(missed, !answered, "{call}");
        if fresh {
            assert!(newly.insert(call.clone()), "{call} settled twice");
        }
    }
    assert_eq!(newly.len(), 35, "each call settled once");
    let calls = store.recent_calls(100).await.unwrap();
    assert_eq!(calls.len(), 35);
    let mut contacts = BTreeSet::new();
    for c in &calls {
        let answered =
            c.carrier_call_id.starts_with("CA-ans") || c.carrier_call_id == "CA-screen-yes";
        let want = if answered { "answered" } else { "missed" };
        assert_eq!(c.outcome.as_deref(), Some(want), "{}", c.carrier_call_id);
        if !answered {
            assert!(
                c.contact_id.is_some(),
                "{} has its contact",
                c.carrier_call_id
            );
            contacts.insert((c.caller.clone(), c.contact_id));
        }
    }
    // 25 callers from the 30 calls, and the screening number's caller: one contact each.
    assert_eq!(contacts.len(), 26, "one contact per caller: {contacts:?}");
    // 30 misses and the unaccepted screening call: a trigger job each.
    assert_eq!(store.job_counts().await.unwrap(), (31, 0));
}

/// A call the database refuses (its number does not exist) fails alone: the calls that
/// arrived with it are settled.
async fn a_call_the_database_refuses_fails_alone(store: Store) {
    let (account_id, number_id) = account_with_number(&store).await;
    let mut tasks = Vec::new();
    for i in 0..12 {
        let number = if i == 5 { number_id + 1000 } else { number_id };
        let facts = missed_call(
            account_id,
            number,
            &format!("CA{i}"),
            &format!("+1512555{:04}", 2000 + i),
        );
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            (i, store.record_dial_result(&facts, false, 1).await)
        }));
    }
    for t in tasks {
        let (i, r) = t.await.unwrap();
        if i == 5 {
            assert!(r.is_err(), "a call on an unknown number is refused");
        } else {
            assert_eq!(r.unwrap(), (true, true), "call {i}");
        }
    }
    assert_eq!(store.recent_calls(100).await.unwrap().len(), 11);
    assert_eq!(store.job_counts().await.unwrap(), (11, 0));
}

async fn settings_keep_the_first_value(store: Store) {
    let a = store
        .setting_or_insert("k", || "first".into())
        .await
        .unwrap();
    let b = store
        .setting_or_insert("k", || "second".into())
        .await
        .unwrap();
    assert_eq!((a.as_str(), b.as_str()), ("first", "first"));
    assert_eq!(store.setting("k").await.unwrap().as_deref(), Some("first"));
}

/// Two instances on one PostgreSQL: a job enqueued by one wakes the other's workers at once
/// (LISTEN/NOTIFY), not at its next poll. Several instances also migrate at once safely.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_enqueued_by_one_instance_wakes_another() {
    let Some(db) = TestDb::postgres_or_skip().await else {
        return;
    };
    // Three instances starting together: each migration is applied by exactly one of them
    // (under the advisory lock), whichever gets there first.
    let (a, b, c) = tokio::join!(
        Store::connect(&db.url),
        Store::connect(&db.url),
        Store::connect(&db.url)
    );
    let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
    let (ra, rb, rc) = tokio::join!(a.migrate(), b.migrate(), c.migrate());
    let ran = [ra.unwrap(), rb.unwrap(), rc.unwrap()];
    assert_eq!(
        ran.iter().sum::<usize>(),
        textback_store::MIGRATIONS,
        "{ran:?}"
    );
    assert_eq!(a.migrate().await.unwrap(), 0);

    let listening = a.listen_for_work().expect("postgres listens");
    // Let the listener connect before the job is written.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let signal = a.work_signal();
    let woken = signal.notified();
    tokio::pin!(woken);
    woken.as_mut().enable();
    assert!(
        b.enqueue_job(JobKind::SendMessage, 1, Some("wake-test"), 0, 0)
            .await
            .unwrap()
    );
    tokio::time::timeout(Duration::from_secs(5), woken)
        .await
        .expect("instance A was told about B's job");

    listening.abort();
    for s in [a, b, c] {
        s.close().await;
    }
    db.drop_db().await;
}

/// PostgreSQL settles dial results that arrive together in shared transactions: forty
/// missed calls at once take fewer transactions than calls (each row's `xmin` names the
/// transaction that last wrote it), and every one is settled with its trigger job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_settles_dial_results_arriving_together_in_shared_transactions() {
    use sqlx::Connection;
    let Some(db) = TestDb::postgres_or_skip().await else {
        return;
    };
    let store = open(&db.url).await;
    let (account_id, number_id) = account_with_number(&store).await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let facts = missed_call(
            account_id,
            number_id,
            &format!("CA{i}"),
            &format!("+1512555{:04}", 3000 + i),
        );
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.record_dial_result(&facts, false, 1).await.unwrap()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), (true, true));
    }
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let (calls, transactions): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT xmin::text) FROM calls WHERE outcome = 'missed'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(calls, 40);
    assert!(
        transactions < 40,
        "{transactions} transactions for 40 calls"
    );
    assert_eq!(store.job_counts().await.unwrap(), (40, 0));
    conn.close().await.unwrap();
    store.close().await;
    db.drop_db().await;
}

/// PostgreSQL starts the runs of trigger jobs claimed together in one transaction; a job
/// that fails in it (its event's call is gone) fails alone, and the others start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_starts_trigger_jobs_together_and_a_failing_one_alone() {
    use sqlx::Connection;
    use textback_store::{Claim, RunInput, RunPlan, StartPlan};
    let Some(db) = TestDb::postgres_or_skip().await else {
        return;
    };
    let store = open(&db.url).await;
    let (account_id, number_id) = account_with_number(&store).await;
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let claim = Claim {
        worker: "w",
        until_ms: 60_000,
    };
    let no_runs = |_: &textback_store::TriggerInput| StartPlan {
        none_reason: Some("no workflow here".into()),
        ..StartPlan::default()
    };
    let no_steps = |_: &RunInput| -> RunPlan { panic!("no run was started") };
    for round in 0..2 {
        for i in 0..3 {
            let call = format!("CA{round}{i}");
            let facts = missed_call(
                account_id,
                number_id,
                &call,
                &format!("+1512555{round}{i:03}"),
            );
            store.record_dial_result(&facts, false, 1).await.unwrap();
        }
        if round == 1 {
            // An event whose call does not exist: its trigger job cannot start.
            let event: i64 = sqlx::query_scalar(
                "INSERT INTO events (account_id, kind, subject_id, at) VALUES ($1, 'missed_call', 999999, 1) RETURNING id",
            )
            .bind(account_id)
            .fetch_one(&mut conn)
            .await
            .unwrap();
            sqlx::query("INSERT INTO jobs (kind, subject_id, run_at, max_attempts, created_at) VALUES ('trigger', $1, 1, 10, 1)")
                .bind(event)
                .execute(&mut conn)
                .await
                .unwrap();
        }
        let jobs = store.claim_jobs("w", 10, LEASE, 32).await.unwrap();
        assert_eq!(jobs.len(), 3 + round);
        let results = store
            .start_runs_together(&jobs, 10, &claim, no_runs, no_steps)
            .await;
        let failed = results.iter().filter(|r| r.is_err()).count();
        assert_eq!(
            failed, round,
            "round {round}: only the job without its call fails"
        );
        let (skipped, transactions): (i64, i64) = sqlx::query_as(
            "SELECT count(*), count(DISTINCT xmin::text) FROM calls \
             WHERE carrier_call_id LIKE $1 AND text_back_status = 'skipped' AND text_back_reason = 'no workflow here'",
        )
        .bind(format!("CA{round}%"))
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert_eq!(skipped, 3, "round {round}: every good job started");
        // Together when all went well; alone, one transaction each, after the failure.
        assert_eq!(
            transactions,
            if round == 0 { 1 } else { 3 },
            "round {round}"
        );
    }
    // The failed job is still there, to be retried.
    assert_eq!(store.job_counts().await.unwrap(), (1, 0));
    conn.close().await.unwrap();
    store.close().await;
    db.drop_db().await;
}

/// Trigger jobs started together on PostgreSQL keep their first steps' writes and send
/// them as one statement per table (`pg_deferred`): that must write exactly what the same
/// jobs write started one at a time. Four missed calls, one from a caller who has a
/// conversation already and two from one caller, whose second call must see the first's
/// text back (the cooldown: never a double text) and must not be texted; one who opted
/// out, whose text must not be marked for sending; two workflows,
/// whose second run of a call finds the call texted back by the first; and a text from a
/// fifth caller, answered by both workflows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_first_steps_started_together_write_what_each_writes_alone() {
    use sqlx::Connection;
    use textback_store::{RunAction, RunInput, RunNext, RunPlan};
    let mut dumps = Vec::new();
    for together in [true, false] {
        let Some(db) = TestDb::postgres_or_skip().await else {
            return;
        };
        let store = open(&db.url).await;
        let calls = [
            ("CA0", "+15125550000"),
            ("CA1", "+15125550001"),
            ("CA2", "+15125550001"),
            ("CA3", "+15125550003"),
        ];
        let workflows = ["Missed call", "Also texts back"];
        let (account_id, number_id, mut jobs) =
            claimed_missed_calls(&store, &workflows, &calls).await;
        // And a text from a fifth caller, whose runs start with the calls'.
        let text = textback_store::InboundMessage {
            account_id,
            number_id,
            from_phone: "+15125550004".into(),
            to_phone: "+15125550100".into(),
            body: "Are you open today?".into(),
            media: vec![],
            carrier: "twilio".into(),
            carrier_message_id: "SM0".into(),
            consent: None,
            reply: None,
            reply_by_api: false,
        };
        store.record_inbound_message(&text, 2).await.unwrap();
        jobs.extend(store.claim_jobs("w", 10, LEASE, 32).await.unwrap());
        assert_eq!(jobs.len(), 5);
        let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
        sqlx::query(
            "INSERT INTO conversations (account_id, number_id, contact_id, last_message_at, last_inbound_at, created_at) \
             SELECT $1, $2, id, 5, 5, 5 FROM contacts WHERE phone = '+15125550000'",
        )
        .bind(account_id)
        .bind(number_id)
        .execute(&mut conn)
        .await
        .unwrap();
        // The last caller opted out meanwhile: the steps here text it regardless, so the
        // store's own last check must leave its text unsent.
        sqlx::query("UPDATE contacts SET opted_out = TRUE WHERE phone = '+15125550003'")
            .execute(&mut conn)
            .await
            .unwrap();
        let (claim, plan) = (CLAIM, start_every_workflow);
        let mut seen = Vec::new();
        let mut advance = |input: &RunInput| {
            let caller = input.call.as_ref().map(|c| c.caller.clone());
            seen.push((
                caller.clone(),
                input.last_text_back_at_ms,
                input.tags.clone(),
            ));
            let text = match input.last_text_back_at_ms {
                _ if input.call.is_none() => RunAction::Send {
                    kind: "workflow".into(),
                    body: "Thanks for your text".into(),
                    carrier: "twilio".into(),
                    variant: None,
                    step: "0".into(),
                },
                Some(_) => RunAction::TextBackNotSent {
                    status: "skipped".into(),
                    reason: "cooldown".into(),
                },
                None => RunAction::TextBack {
                    body: format!("Hi {}", caller.unwrap_or_default()),
                    carrier: "twilio".into(),
                    variant: None,
                    step: "0".into(),
                },
            };
            RunPlan {
                actions: vec![
                    text,
                    RunAction::Task {
                        title: "Call back".into(),
                        due_at_ms: 99_000,
                        assignee: None,
                    },
                    RunAction::AddTag("Missed Call".into()),
                ],
                next: RunNext::AwaitEvent {
                    pc: 3,
                    event: "reply".into(),
                    deadline_ms: 1_800_000,
                },
            }
        };
        let mut handed = Vec::new();
        if together {
            for r in store
                .start_runs_together(&jobs, 10, &claim, plan, &mut advance)
                .await
            {
                handed.extend(r.unwrap());
            }
        } else {
            for job in &jobs {
                handed.extend(
                    store
                        .start_runs(job, 10, &claim, plan, &mut advance)
                        .await
                        .unwrap(),
                );
            }
        }
        let mut handed: Vec<String> = handed
            .iter()
            .map(|j| {
                let Some(m) = j.ready.as_ref() else {
                    return format!("{} {} not marked for its send", j.kind.as_str(), j.attempts);
                };
                format!(
                    "{} {} {} {} {} {} {:?} {:?} {} {:?}",
                    j.kind.as_str(),
                    j.attempts,
                    m.kind,
                    m.from_phone,
                    m.to_phone,
                    m.body,
                    m.status,
                    m.last_attempt_at_ms,
                    m.carrier,
                    m.call_missed_at_ms
                )
            })
            .collect();
        handed.sort();
        if together {
            let transactions: i64 =
                sqlx::query_scalar("SELECT count(DISTINCT xmin::text) FROM workflow_runs")
                    .fetch_one(&mut conn)
                    .await
                    .unwrap();
            assert_eq!(transactions, 1, "the four started in one transaction");
        }
        // Everything the steps wrote, without the ids (reserved ids leave gaps).
        let mut dump = vec![format!("{seen:?}"), format!("{handed:?}")];
        for sql in [
            "SELECT k.carrier_call_id, c.phone, r.status, r.pc, r.waited, r.resume_at, r.waiting_for, \
             r.wait_deadline, r.stop_on_reply, r.started_at, r.updated_at, r.trigger FROM workflow_runs r \
             LEFT JOIN calls k ON k.id = r.call_id JOIN contacts c ON c.id = r.contact_id",
            "SELECT k.carrier_call_id, m.kind, m.direction, m.from_phone, m.to_phone, m.body, m.status, m.attempts, \
             m.last_attempt_at, m.created_at, m.carrier, m.step, m.variant, c.phone, rk.carrier_call_id, r.trigger \
             FROM messages m LEFT JOIN calls k ON k.id = m.call_id JOIN conversations v ON v.id = m.conversation_id \
             JOIN contacts c ON c.id = v.contact_id LEFT JOIN workflow_runs r ON r.id = m.run_id \
             LEFT JOIN calls rk ON rk.id = r.call_id",
            "SELECT carrier_call_id, text_back_status, text_back_reason, updated_at FROM calls",
            "SELECT k.carrier_call_id, t.title, t.due_at, t.status, t.assignee, t.created_at, c.phone, r.trigger \
             FROM tasks t LEFT JOIN calls k ON k.id = t.call_id JOIN workflow_runs r ON r.id = t.run_id \
             JOIN contacts c ON c.id = t.contact_id WHERE r.call_id IS NOT DISTINCT FROM t.call_id",
            "SELECT c.phone, t.tag, t.tag_key, t.created_at FROM contact_tags t JOIN contacts c ON c.id = t.contact_id",
            "SELECT k.carrier_call_id, c.phone, l.place, l.what, l.at, \
             row_number() OVER (PARTITION BY l.run_id ORDER BY l.id) FROM run_log l \
             JOIN workflow_runs r ON r.id = l.run_id LEFT JOIN calls k ON k.id = r.call_id \
             JOIN contacts c ON c.id = r.contact_id",
            "SELECT c.phone, v.last_message_at, v.last_inbound_at, v.created_at FROM conversations v \
             JOIN contacts c ON c.id = v.contact_id",
            "SELECT j.kind, COALESCE(mk.carrier_call_id, rk.carrier_call_id, tk.carrier_call_id), j.run_at, \
             j.locked_by, j.locked_until, j.attempts, j.max_attempts, j.status, j.unique_key IS NOT NULL FROM jobs j \
             LEFT JOIN messages m ON j.kind = 'send_message' AND m.id = j.subject_id LEFT JOIN calls mk ON mk.id = m.call_id \
             LEFT JOIN workflow_runs r ON j.kind = 'advance_run' AND r.id = j.subject_id LEFT JOIN calls rk ON rk.id = r.call_id \
             LEFT JOIN tasks t ON j.kind = 'task_due' AND t.id = j.subject_id LEFT JOIN calls tk ON tk.id = t.call_id",
        ] {
            let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT CAST(row(x.*) AS TEXT) FROM ({sql}) x ORDER BY 1"
            )))
            .fetch_all(&mut conn)
            .await
            .unwrap();
            dump.push(rows.join("\n"));
        }
        dumps.push(dump);
        conn.close().await.unwrap();
        store.close().await;
        db.drop_db().await;
    }
    // The later call from +15125550001 saw (in both its runs) the earlier one's text back
    // and was not texted.
    assert_eq!(
        dumps[0][0]
            .matches("(Some(\"+15125550001\"), Some(10)")
            .count(),
        2,
        "{}",
        dumps[0][0]
    );
    assert_eq!(
        dumps[0][3].matches("+15125550001,\"Hi").count(),
        1,
        "{}",
        dumps[0][3]
    );
    assert_eq!(
        dumps[0][4].matches(",skipped,cooldown,10)").count(),
        1,
        "{}",
        dumps[0][4]
    );
    // The opted-out caller's text back was stored, not marked for sending, nor handed over
    // as ready.
    assert_eq!(
        dumps[0][3]
            .matches("+15125550003,\"Hi +15125550003\",pending,0,")
            .count(),
        1,
        "{}",
        dumps[0][3]
    );
    assert_eq!(
        dumps[0][1].matches("not marked for its send").count(),
        1,
        "{}",
        dumps[0][1]
    );
    // The text was answered by both workflows' runs, started with the calls'.
    assert_eq!(
        dumps[0][3].matches("Thanks for your text").count(),
        2,
        "{}",
        dumps[0][3]
    );
    // Each texted call's second run found its text back sent by the first.
    assert_eq!(
        dumps[0][7].matches("already texted back").count(),
        3,
        "{}",
        dumps[0][7]
    );
    for (together, alone) in dumps[0].iter().zip(&dumps[1]) {
        assert_eq!(together, alone);
    }
}

/// A run start kept for later fails when its row meets one another instance wrote
/// meanwhile (the deferred insert has no `ON CONFLICT`): the whole batch is then redone
/// job by job, statement at a time, and still texts each call once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_row_written_meanwhile_fails_the_batch_and_each_job_starts_alone() {
    use sqlx::Connection;
    use std::sync::atomic::{AtomicBool, Ordering};
    use textback_store::{RunAction, RunInput, RunNext, RunPlan};
    let Some(db) = TestDb::postgres_or_skip().await else {
        return;
    };
    let store = open(&db.url).await;
    let calls = [("CA0", "+15125550000"), ("CA1", "+15125550001")];
    let (_, _, jobs) = claimed_missed_calls(&store, &["Missed call"], &calls).await;
    let second_event = jobs[1].subject_id;
    let (claim, plan) = (CLAIM, start_every_workflow);
    let interfered = AtomicBool::new(false);
    let url = db.url.clone();
    let advance = |_: &RunInput| {
        // While the batch plans its first call, another instance starts the second
        // call's run (committed on a connection of its own).
        if !interfered.swap(true, Ordering::SeqCst) {
            tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(async {
                    let mut other = sqlx::PgConnection::connect(&url).await.unwrap();
                    sqlx::query(
                        "INSERT INTO workflow_runs (account_id, workflow_id, version, trigger, subject_id, \
                         status, stop_on_reply, started_at, updated_at) \
                         SELECT account_id, id, current_version, 'missed_call', $1, 'done', TRUE, 5, 5 FROM workflows",
                    )
                    .bind(second_event)
                    .execute(&mut other)
                    .await
                    .unwrap();
                    other.close().await.unwrap();
                })
            });
        }
        RunPlan {
            actions: vec![RunAction::TextBack {
                body: "Hi".into(),
                carrier: "twilio".into(),
                variant: None,
                step: "0".into(),
            }],
            next: RunNext::Done,
        }
    };
    let results = store
        .start_runs_together(&jobs, 10, &claim, plan, advance)
        .await;
    let handed: Vec<_> = results.into_iter().map(|r| r.unwrap()).collect();
    // The first call texted once (its batch's writes were rolled back and redone alone);
    // the second's run belongs to the other instance, which texts it.
    assert_eq!(handed.iter().map(Vec::len).collect::<Vec<_>>(), [1, 0]);
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let texts: Vec<(String, i64)> = sqlx::query_as(
        "SELECT k.carrier_call_id, count(m.id) FROM calls k LEFT JOIN messages m ON m.call_id = k.id \
         GROUP BY k.carrier_call_id ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(texts, [("CA0".to_owned(), 1), ("CA1".to_owned(), 0)]);
    let runs: Vec<(i64, String)> =
        sqlx::query_as("SELECT subject_id, status FROM workflow_runs ORDER BY subject_id")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(
        runs,
        [
            (jobs[0].subject_id, "done".to_owned()),
            (second_event, "done".to_owned())
        ]
    );
    // Both trigger jobs are done; the first call's send job is left for its worker.
    assert_eq!(store.job_counts().await.unwrap(), (1, 0));
    conn.close().await.unwrap();
    store.close().await;
    db.drop_db().await;
}

/// Trigger jobs started together while the database is unreachable all fail at once as
/// not committed (to be retried), rather than each trying again alone in turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_trigger_jobs_started_together_without_a_database_fail_together() {
    use textback_store::{Claim, StartPlan, StoreError};
    let Some(db) = TestDb::postgres_or_skip().await else {
        return;
    };
    let store = open(&db.url).await;
    let (account_id, number_id) = account_with_number(&store).await;
    for i in 0..3 {
        let facts = missed_call(
            account_id,
            number_id,
            &format!("CA{i}"),
            &format!("+1512555000{i}"),
        );
        store.record_dial_result(&facts, false, 1).await.unwrap();
    }
    let jobs = store.claim_jobs("w", 10, LEASE, 32).await.unwrap();
    assert_eq!(jobs.len(), 3);
    db.set_available(false).await;
    let claim = Claim {
        worker: "w",
        until_ms: 60_000,
    };
    let results = store
        .start_runs_together(
            &jobs,
            10,
            &claim,
            |_| StartPlan::default(),
            |_| panic!("no run can start"),
        )
        .await;
    let failures: Vec<String> = results
        .iter()
        .map(|r| match r {
            Err(StoreError::NotCommitted(_)) => "not committed".to_owned(),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(failures, ["not committed"; 3]);
    db.set_available(true).await;
    // Nothing of them was written: the three trigger jobs are still there.
    assert_eq!(store.job_counts().await.unwrap(), (3, 0));
    store.close().await;
    db.drop_db().await;
}

/// While an instance listens, it serves number routes from memory, and forgets them when
/// any instance changes a number or an account (migration 0016's NOTIFY), or when it
/// changes one itself (at once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_routes_come_from_memory_until_any_instance_changes_them() {
    use sqlx::Connection;
    let Some(db) = TestDb::postgres_or_skip().await else {
        return;
    };
    let a = open(&db.url).await;
    let b = Store::connect(&db.url).await.unwrap();
    let (account_id, _) = account_with_number(&a).await;
    let e164 = "+15125550100";
    let ring = |store: Store| async move {
        let route = store.route_for_number(e164).await.unwrap().unwrap();
        (route.number.ring_to.join(","), route.account_name)
    };
    assert!(!a.routes_from_memory(), "not before it listens");
    let listening = a.listen_for_work().expect("PostgreSQL listens");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !a.routes_from_memory() {
        assert!(std::time::Instant::now() < deadline, "never listened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(ring(a.clone()).await, (String::new(), "A".to_owned()));

    // A change that notifies nobody is not seen: the route came from memory.
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    for sql in [
        "ALTER TABLE numbers DISABLE TRIGGER numbers_routes_notify",
        "UPDATE numbers SET ring_to = '[\"+15125550111\"]'",
        "ALTER TABLE numbers ENABLE TRIGGER numbers_routes_notify",
    ] {
        sqlx::query(sql).execute(&mut conn).await.unwrap();
    }
    assert_eq!(ring(a.clone()).await, (String::new(), "A".to_owned()));

    // Another instance's changes reach it within moments.
    let mut number = a.route_for_number(e164).await.unwrap().unwrap().number;
    number.ring_to = vec!["+15125550122".into()];
    b.save_number(&number, 1).await.unwrap();
    let want = |ring: &str, name: &str| (ring.to_owned(), name.to_owned());
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while ring(a.clone()).await != want("+15125550122", "A") {
        assert!(
            std::time::Instant::now() < deadline,
            "the change never reached it"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut account = a.accounts().await.unwrap().remove(0);
    assert_eq!(account.id, account_id);
    account.name = "A renamed".into();
    b.save_account(&account, 2).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while ring(a.clone()).await != want("+15125550122", "A renamed") {
        assert!(
            std::time::Instant::now() < deadline,
            "the rename never reached it"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Its own change, at once.
    number.ring_to = vec!["+15125550133".into()];
    a.save_number(&number, 3).await.unwrap();
    assert_eq!(ring(a.clone()).await, want("+15125550133", "A renamed"));

    // Not listening any more: from the database again.
    listening.abort();
    let _ = listening.await;
    assert!(!a.routes_from_memory());
    conn.close().await.unwrap();
    b.close().await;
    a.close().await;
    db.drop_db().await;
}
