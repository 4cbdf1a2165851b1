//! Workflows end to end on both stores, driven with a manual clock: the recommended
//! workflow, replies that stop follow-ups, one text back across automations, restarts in
//! the middle of a wait, quiet hours, branches, team notifications, webhooks, tasks.

use std::time::Duration;

use textback_core::workflow::WorkflowSpec;
use textback_store::TaskFilter;
use textback_testkit::on_both_stores;
use textback_testkit::test_app::{BUSINESS_NUMBER, MESSAGE, TEAM_PHONE};
use textback_testkit::{Backend, FakeTwilio, Receiver, TestApp, TestAppOptions, TestDb};

on_both_stores!(
    recommended_workflow_texts_tasks_tags_and_follows_up,
    a_reply_before_the_wait_ends_stops_the_follow_up,
    builtin_and_workflow_together_still_text_once,
    a_restart_during_the_wait_changes_nothing,
    a_follow_up_due_at_23_goes_out_at_8,
    after_hours_branch_and_new_caller_filter,
    team_notification_and_signed_webhook,
    private_webhook_targets_are_refused_by_default,
    no_reentry_and_version_pinning,
    overdue_task_and_voicemail_triggers,
    an_answered_call_stops_the_follow_up,
    a_team_call_back_completes_the_task_and_stops_the_follow_up,
    a_steps_events_reach_the_accounts_subscriptions,
    a_tag_added_by_one_automation_is_seen_by_the_next,
    a_tag_with_commas_and_quotes_is_read_back_whole,
);

const CALLER: &str = "+15125550123";

fn recommended() -> WorkflowSpec {
    WorkflowSpec::recommended(MESSAGE)
}

fn spec(toml_text: &str) -> WorkflowSpec {
    toml::from_str(toml_text).expect("workflow TOML")
}

/// An app with the built-in text back off and the given workflows on.
async fn start(
    url: &str,
    workflows: &[WorkflowSpec],
    options: TestAppOptions,
) -> (TestApp, FakeTwilio, i64) {
    let fake = FakeTwilio::start().await;
    let app = TestApp::start(
        url,
        TestAppOptions {
            twilio: Some(fake.clone()),
            manual_clock: true,
            ..options
        },
    )
    .await;
    let (account, _) = app.seed_account(MESSAGE).await;
    let mut builtin = WorkflowSpec::builtin_text_back(MESSAGE);
    builtin.active = false;
    app.save_workflow(account.id, &builtin, true).await;
    for w in workflows {
        app.save_workflow(account.id, w, false).await;
    }
    (app, fake, account.id)
}

async fn finish(app: TestApp, fake: FakeTwilio) {
    app.stop().await;
    fake.stop();
}

async fn text(app: &TestApp, from: &str, body: &str) {
    assert_eq!(app.text_in(from, body).await.0, 200);
}

fn bodies(fake: &FakeTwilio) -> Vec<String> {
    fake.sent().into_iter().map(|m| m.body).collect()
}

async fn recommended_workflow_texts_tasks_tags_and_follows_up(url: &str) {
    let (app, fake, account_id) = start(url, &[recommended()], TestAppOptions::default()).await;
    let sid = app.missed_call(CALLER, "no-answer").await;
    app.drain().await;
    assert_eq!(
        bodies(&fake),
        vec!["Hi there, it's Acme Plumbing. Sorry we missed your call! How can we help?"]
    );
    let call = app.store.call_by_carrier_id(&sid).await.unwrap().unwrap();
    assert_eq!(call.text_back_status.as_deref(), Some("sent"));
    let tasks = app
        .store
        .tasks(Some("acme-plumbing"), TaskFilter::Open, 10)
        .await
        .unwrap();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].title, format!("Call back {CALLER}"));
    // Monday 09:00 Chicago: due at the 17:00 close (23:00 UTC).
    assert_eq!(
        tasks[0].due_at_ms,
        "2026-11-30T23:00:00Z"
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_millisecond()
    );
    assert_eq!(
        app.store.contact_tags(account_id, CALLER).await.unwrap(),
        vec!["Missed Call"]
    );
    app.advance(Duration::from_secs(29 * 60));
    app.drain().await;
    assert_eq!(fake.sent().len(), 1, "nothing before the 30 minutes are up");
    app.advance(Duration::from_secs(60));
    app.drain().await;
    let all = bodies(&fake);
    assert_eq!(all.len(), 2);
    assert!(
        all[1].starts_with("Hi there, just checking in from Acme Plumbing"),
        "{all:?}"
    );
    let thread = app
        .store
        .conversation("acme-plumbing", CALLER, 10)
        .await
        .unwrap();
    assert_eq!(
        thread.iter().map(|m| m.kind.as_str()).collect::<Vec<_>>(),
        vec!["text_back", "follow_up"]
    );
    let runs = app.store.runs(account_id, 10).await.unwrap();
    assert_eq!(runs[0].status, "done");
    finish(app, fake).await;
}

async fn a_reply_before_the_wait_ends_stops_the_follow_up(url: &str) {
    let (app, fake, account_id) = start(url, &[recommended()], TestAppOptions::default()).await;
    app.missed_call(CALLER, "no-answer").await;
    app.drain().await;
    app.advance(Duration::from_secs(10 * 60));
    text(&app, CALLER, "Yes please, the kitchen sink is leaking").await;
    app.advance(Duration::from_secs(60 * 60));
    app.drain().await;
    assert_eq!(fake.sent().len(), 1, "no follow-up after a reply");
    let runs = app.store.runs(account_id, 10).await.unwrap();
    assert_eq!(
        (runs[0].status.as_str(), runs[0].stop_reason.as_deref()),
        ("stopped", Some("contact_replied"))
    );
    finish(app, fake).await;
}

async fn builtin_and_workflow_together_still_text_once(url: &str) {
    let (app, fake, account_id) = start(url, &[recommended()], TestAppOptions::default()).await;
    app.save_workflow(account_id, &WorkflowSpec::builtin_text_back(MESSAGE), true)
        .await;
    let mut second = recommended();
    second.name = "Another automation".into();
    app.save_workflow(account_id, &second, false).await;
    let sid = app.missed_call(CALLER, "no-answer").await;
    app.drain().await;
    assert_eq!(fake.sent().len(), 1, "three automations, one text back");
    let runs = app.store.runs(account_id, 10).await.unwrap();
    assert_eq!(runs.len(), 3);
    let already = runs
        .iter()
        .filter(|r| {
            r.log
                .iter()
                .any(|(_, what)| what.starts_with("already texted back"))
        })
        .count();
    assert_eq!(already, 2, "{runs:#?}");
    assert_eq!(
        app.store
            .call_by_carrier_id(&sid)
            .await
            .unwrap()
            .unwrap()
            .text_back_status
            .as_deref(),
        Some("sent")
    );
    finish(app, fake).await;
}

async fn a_restart_during_the_wait_changes_nothing(url: &str) {
    let (app, fake, _) = start(url, &[recommended()], TestAppOptions::default()).await;
    app.missed_call(CALLER, "no-answer").await;
    app.drain().await;
    app.advance(Duration::from_secs(10 * 60));
    let app = app
        .restart(TestAppOptions {
            twilio: Some(fake.clone()),
            manual_clock: true,
            ..Default::default()
        })
        .await;
    app.drain().await;
    assert_eq!(fake.sent().len(), 1);
    app.advance(Duration::from_secs(20 * 60));
    app.drain().await;
    assert_eq!(fake.sent().len(), 2, "the follow-up survives the restart");
    app.advance(Duration::from_secs(3600));
    app.drain().await;
    assert_eq!(fake.sent().len(), 2, "and is sent once");
    finish(app, fake).await;
}

async fn a_follow_up_due_at_23_goes_out_at_8(url: &str) {
    let (app, fake, _) = start(url, &[recommended()], TestAppOptions::default()).await;
    // Monday 22:30 in Chicago (04:30 UTC Tuesday).
    app.set_time("2026-12-01T04:30:00Z");
    app.missed_call(CALLER, "no-answer").await;
    app.drain().await;
    assert_eq!(
        fake.sent().len(),
        1,
        "the immediate text back is not held by quiet hours"
    );
    app.set_time("2026-12-01T05:00:00Z");
    app.drain().await;
    assert_eq!(fake.sent().len(), 1, "23:00: quiet hours");
    app.set_time("2026-12-01T13:59:00Z");
    app.drain().await;
    assert_eq!(fake.sent().len(), 1, "07:59: still quiet");
    app.set_time("2026-12-01T14:00:00Z");
    app.drain().await;
    assert_eq!(fake.sent().len(), 2, "08:00: the follow-up");
    finish(app, fake).await;
}

async fn after_hours_branch_and_new_caller_filter(url: &str) {
    let after_hours = spec(
        r#"
name = "After hours"
[trigger]
type = "missed_call"
business_hours = "closed"
[[steps]]
type = "send_sms"
message = "{{business.name}} here: we're closed now and will call you first thing tomorrow."
"#,
    );
    let open_new = spec(
        r#"
name = "Open, first-time callers"
[trigger]
type = "missed_call"
business_hours = "open"
contact = "new"
[[steps]]
type = "send_sms"
message = "Hi from {{business.name}}! Sorry we missed you, we'll call right back."
"#,
    );
    let (app, fake, _) = start(url, &[after_hours, open_new], TestAppOptions::default()).await;
    app.missed_call(CALLER, "no-answer").await; // Monday 09:00: open, new caller.
    app.drain().await;
    app.set_time("2026-12-01T03:00:00Z"); // Monday 21:00: closed.
    app.missed_call("+15125550124", "busy").await;
    app.drain().await;
    app.set_time("2026-12-07T16:00:00Z"); // The next Monday 10:00: open, but a known caller.
    let again = app.missed_call(CALLER, "no-answer").await;
    app.drain().await;
    let b = bodies(&fake);
    assert_eq!(b.len(), 2, "{b:?}");
    assert!(b[0].starts_with("Hi from Acme Plumbing!"));
    assert!(b[1].contains("we're closed now"));
    let call = app.store.call_by_carrier_id(&again).await.unwrap().unwrap();
    assert_eq!(
        (
            call.text_back_status.as_deref(),
            call.text_back_reason.as_deref()
        ),
        (Some("skipped"), Some("no_workflow_matched"))
    );
    finish(app, fake).await;
}

async fn team_notification_and_signed_webhook(url: &str) {
    let receiver = Receiver::start().await;
    let notify = spec(&format!(
        r#"
name = "Tell the owner"
[trigger]
type = "missed_call"
[[steps]]
type = "notify_team"
message = "Missed call from {{{{contact.name | default(contact.phone)}}}} at {{{{call.time}}}}; we texted them back."
[[steps]]
type = "webhook"
url = "{}"
"#,
        receiver.url
    ));
    let (app, fake, account_id) =
        start(url, &[notify, recommended()], TestAppOptions::default()).await;
    receiver.answer_with(&[503]);
    app.missed_call(CALLER, "no-answer").await;
    app.drain().await;
    let sent = fake.sent();
    let to_team: Vec<_> = sent.iter().filter(|m| m.to == TEAM_PHONE).collect();
    assert_eq!(to_team.len(), 1, "{sent:#?}");
    assert_eq!(
        to_team[0].body,
        format!("Missed call from {CALLER} at 9:00 AM; we texted them back.")
    );
    // The receiver answered 503 once: retried later, delivered once.
    assert_eq!(receiver.received().len(), 1);
    app.advance(Duration::from_secs(600));
    app.drain().await;
    let got = receiver.received();
    assert_eq!(got.len(), 2);
    let secret = app
        .store
        .setting(&format!("webhook_secret:{account_id}"))
        .await
        .unwrap()
        .expect("secret");
    let r = &got[1];
    r.verify_standard_webhook(&secret)
        .expect("the retry is signed, with a fresh timestamp");
    assert_eq!(
        r.header("webhook-id"),
        got[0].header("webhook-id"),
        "a retry keeps the message id so the receiver can drop duplicates"
    );
    let payload: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(payload["data"]["contact"]["phone"], CALLER);
    assert_eq!(payload["data"]["workflow"], "Tell the owner");
    let deliveries = app.store.deliveries(account_id, 10).await.unwrap();
    assert_eq!(
        (deliveries[0].status.as_str(), deliveries[0].attempts),
        ("delivered", 2)
    );
    receiver.stop();
    finish(app, fake).await;
}

async fn private_webhook_targets_are_refused_by_default(url: &str) {
    let receiver = Receiver::start().await;
    let hook = spec(&format!(
        "name = \"Hook\"\n[trigger]\ntype = \"missed_call\"\n[[steps]]\ntype = \"webhook\"\nurl = \"{}\"\n",
        receiver.url
    ));
    let (app, fake, account_id) = start(
        url,
        &[hook],
        TestAppOptions {
            allow_private_webhooks: false,
            ..Default::default()
        },
    )
    .await;
    app.missed_call(CALLER, "no-answer").await;
    app.drain().await;
    assert!(receiver.received().is_empty());
    let d = &app.store.deliveries(account_id, 10).await.unwrap()[0];
    assert_eq!(d.status, "refused");
    assert!(
        d.last_error
            .as_deref()
            .unwrap()
            .contains("TEXTBACK_ALLOW_PRIVATE_WEBHOOKS")
    );
    receiver.stop();
    finish(app, fake).await;
}

async fn no_reentry_and_version_pinning(url: &str) {
    let mut once = recommended();
    once.allow_reentry = false;
    let (app, fake, account_id) = start(url, &[once.clone()], TestAppOptions::default()).await;
    app.missed_call(CALLER, "no-answer").await;
    app.drain().await;
    // Edited while the run waits: the run finishes on version 1.
    let mut edited = once.clone();
    if let Some(textback_core::workflow::StepSpec::If { otherwise, .. }) = edited.steps.last_mut() {
        *otherwise = vec![textback_core::workflow::StepSpec::sms(
            "{{business.name}}: version two follow-up",
        )];
    }
    app.save_workflow(account_id, &edited, false).await;
    app.advance(Duration::from_secs(30 * 60));
    app.drain().await;
    let b = bodies(&fake);
    assert!(
        b[1].starts_with("Hi there, just checking in"),
        "the run kept its version: {b:?}"
    );
    // The same caller again, after the cooldown: no re-entry.
    app.advance(Duration::from_secs(3600));
    let again = app.missed_call(CALLER, "no-answer").await;
    app.drain().await;
    assert_eq!(fake.sent().len(), 2);
    let call = app.store.call_by_carrier_id(&again).await.unwrap().unwrap();
    assert_eq!(
        call.text_back_reason.as_deref(),
        Some("no_workflow_matched")
    );
    // A new caller runs version 2.
    app.missed_call("+15125550124", "no-answer").await;
    app.drain().await;
    app.advance(Duration::from_secs(30 * 60));
    app.drain().await;
    assert_eq!(
        bodies(&fake).last().map(String::as_str),
        Some("Acme Plumbing: version two follow-up")
    );
    finish(app, fake).await;
}

async fn overdue_task_and_voicemail_triggers(url: &str) {
    let overdue = spec(
        r#"
name = "Escalate overdue callbacks"
[trigger]
type = "task_overdue"
[[steps]]
type = "notify_team"
message = "Overdue: nobody has called back {{contact.phone}} yet."
"#,
    );
    let voicemail = spec(
        r#"
name = "Voicemail received"
[trigger]
type = "voicemail_left"
[[steps]]
type = "add_tag"
tag = "Voicemail"
"#,
    );
    let mut task_only = recommended();
    task_only.steps.truncate(2);
    let (app, fake, account_id) = start(
        url,
        &[task_only, overdue, voicemail],
        TestAppOptions::default(),
    )
    .await;
    let sid = app.missed_call(CALLER, "no-answer").await;
    app.drain().await;
    let recording = "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1";
    app.post_signed(
        "/webhooks/twilio/voice/recording",
        &[
            ("CallSid", &sid),
            ("From", CALLER),
            ("To", BUSINESS_NUMBER),
            ("RecordingUrl", recording),
        ],
    )
    .await;
    app.drain().await;
    assert_eq!(
        app.store.contact_tags(account_id, CALLER).await.unwrap(),
        vec!["Voicemail"]
    );
    let tasks = app.store.tasks(None, TaskFilter::Open, 10).await.unwrap();
    assert_eq!(
        tasks[0].recording_url.as_deref(),
        Some(recording),
        "the task carries the voicemail"
    );
    // 17:00 passes with the task open.
    app.set_time("2026-11-30T23:00:01Z");
    app.drain().await;
    let to_team: Vec<_> = fake
        .sent()
        .into_iter()
        .filter(|m| m.to == TEAM_PHONE)
        .collect();
    assert_eq!(to_team.len(), 1);
    assert_eq!(
        app.store
            .tasks(None, TaskFilter::OverdueAt(app.state.now_ms()), 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        app.store
            .complete_task(tasks[0].id, app.state.now_ms())
            .await
            .unwrap()
    );
    assert!(
        !app.store
            .complete_task(tasks[0].id, app.state.now_ms())
            .await
            .unwrap(),
        "done once"
    );
    assert!(
        app.store
            .tasks(None, TaskFilter::Open, 10)
            .await
            .unwrap()
            .is_empty()
    );
    finish(app, fake).await;
}

async fn an_answered_call_stops_the_follow_up(url: &str) {
    let (app, fake, account_id) = start(url, &[recommended()], TestAppOptions::default()).await;
    app.missed_call(CALLER, "no-answer").await;
    app.drain().await;
    app.advance(Duration::from_secs(5 * 60));
    // The caller tries again and someone picks up.
    let sid = textback_testkit::test_app::new_call_sid();
    app.ring(&sid, CALLER, BUSINESS_NUMBER).await;
    app.dial_result(&sid, CALLER, BUSINESS_NUMBER, "completed")
        .await;
    app.advance(Duration::from_secs(3600));
    app.drain().await;
    assert_eq!(fake.sent().len(), 1);
    let runs = app.store.runs(account_id, 10).await.unwrap();
    assert_eq!(runs[0].stop_reason.as_deref(), Some("call_answered"));
    finish(app, fake).await;
}

mod variants_report {
    use super::*;
    use textback_core::variants::{VariantCounts, compare};
    use textback_core::workflow::{StepSpec, VariantSpec};

    async fn two_variants_report_counts_and_rates(url: &str) {
        let mut w = recommended();
        w.steps = vec![StepSpec::SendSms {
            message: String::new(),
            variants: vec![
                VariantSpec {
                    name: Some("warm".into()),
                    message:
                        "Hi, it's {{business.name}}! Sorry we missed your call, how can we help?"
                            .into(),
                    weight: 1,
                },
                VariantSpec {
                    name: Some("short".into()),
                    message: "{{business.name}}: sorry we missed you. Reply here.".into(),
                    weight: 1,
                },
            ],
        }];
        let (app, fake, account_id) = start(url, &[w], TestAppOptions::default()).await;
        let callers: Vec<String> = (0..40)
            .map(|i| format!("+1512555{:04}", 1000 + i))
            .collect();
        for c in &callers {
            app.missed_call(c, "no-answer").await;
        }
        app.drain().await;
        let sent = fake.sent();
        assert_eq!(sent.len(), 40);
        let warm: Vec<&str> = sent
            .iter()
            .filter(|m| m.body.starts_with("Hi, it's"))
            .map(|m| m.to.as_str())
            .collect();
        let short: Vec<&str> = sent
            .iter()
            .filter(|m| m.body.starts_with("Acme Plumbing: sorry"))
            .map(|m| m.to.as_str())
            .collect();
        assert_eq!(warm.len() + short.len(), 40);
        assert!(
            warm.len() >= 8 && short.len() >= 8,
            "both variants are used: {} / {}",
            warm.len(),
            short.len()
        );
        // Every warm recipient is delivered and half of them reply; no short recipient replies.
        for m in sent.iter().filter(|m| warm.contains(&m.to.as_str())) {
            app.post_signed(
                "/webhooks/twilio/sms/status",
                &[("MessageSid", &m.sid), ("MessageStatus", "delivered")],
            )
            .await;
        }
        let repliers: Vec<&str> = warm.iter().step_by(2).copied().collect();
        app.advance(Duration::from_secs(600));
        for r in &repliers {
            text(&app, r, "yes please").await;
        }
        app.drain().await;
        let rows = app.store.variant_counts(account_id).await.unwrap();
        assert_eq!(rows.len(), 2, "{rows:#?}");
        let get = |name: &str| rows.iter().find(|r| r.variant == name).unwrap().clone();
        let (w_row, s_row) = (get("warm"), get("short"));
        assert_eq!(
            (w_row.sent, w_row.delivered, w_row.replied),
            (warm.len() as i64, warm.len() as i64, repliers.len() as i64)
        );
        assert_eq!(
            (s_row.sent, s_row.delivered, s_row.replied),
            (short.len() as i64, 0, 0)
        );
        let c = compare(&[
            VariantCounts {
                name: "warm".into(),
                sent: w_row.sent as u64,
                delivered: w_row.delivered as u64,
                replied: w_row.replied as u64,
            },
            VariantCounts {
                name: "short".into(),
                sent: s_row.sent as u64,
                delivered: s_row.delivered as u64,
                replied: s_row.replied as u64,
            },
        ]);
        assert_eq!(c.leader.as_deref(), Some("warm"));
        assert!(c.confidence.unwrap() > 0.99, "{c:?}");
        let expected_rate = repliers.len() as f64 / warm.len() as f64;
        assert!((c.variants[0].reply_rate - expected_rate).abs() < 1e-9);
        finish(app, fake).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        let db = TestDb::create(Backend::Sqlite).await.expect("sqlite");
        two_variants_report_counts_and_rates(&db.url).await;
        db.drop_db().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        let Some(db) = TestDb::postgres_or_skip().await else {
            return;
        };
        two_variants_report_counts_and_rates(&db.url).await;
        db.drop_db().await;
    }
}

async fn a_team_call_back_completes_the_task_and_stops_the_follow_up(url: &str) {
    let (app, fake, account_id) = start(url, &[recommended()], TestAppOptions::default()).await;
    app.missed_call(CALLER, "no-answer").await;
    app.drain().await;
    let task = app.store.tasks(None, TaskFilter::Open, 10).await.unwrap()[0].id;
    let (contact, number, team) = app.store.callback_target(task).await.unwrap().unwrap();
    assert_eq!(
        (contact.as_str(), number.as_str(), team),
        (CALLER, BUSINESS_NUMBER, vec![TEAM_PHONE.to_owned()])
    );
    // Twilio rings the team phone and fetches the TwiML that dials the contact.
    let sid = textback_testkit::test_app::new_call_sid();
    let (status, twiml) = app
        .post_signed(
            &format!("/webhooks/twilio/voice/callback?task={task}"),
            &[
                ("CallSid", &sid),
                ("From", BUSINESS_NUMBER),
                ("To", TEAM_PHONE),
            ],
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        twiml.contains(&format!("callerId=\"{BUSINESS_NUMBER}\""))
            && twiml.contains(&format!("<Number>{CALLER}</Number>")),
        "{twiml}"
    );
    // The contact picks up.
    app.advance(Duration::from_secs(5 * 60));
    let (status, _) = app
        .post_signed(
            &format!("/webhooks/twilio/voice/callback-status?task={task}"),
            &[
                ("CallSid", &sid),
                ("From", BUSINESS_NUMBER),
                ("To", TEAM_PHONE),
                ("DialCallStatus", "completed"),
            ],
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        app.store
            .tasks(None, TaskFilter::Open, 10)
            .await
            .unwrap()
            .is_empty(),
        "the task is done"
    );
    app.advance(Duration::from_secs(3600));
    app.drain().await;
    assert_eq!(fake.sent().len(), 1, "no follow-up after the call back");
    let runs = app.store.runs(account_id, 10).await.unwrap();
    assert_eq!(runs[0].stop_reason.as_deref(), Some("called_back"));
    finish(app, fake).await;
}

mod event_waits {
    use super::*;

    fn reply_wait() -> WorkflowSpec {
        spec(
            r#"
name = "Wait for a reply"
stop_on_reply = false
[trigger]
type = "missed_call"
[[steps]]
type = "send_sms"
message = "Hi, it's {{business.name}}, sorry we missed your call. Reply here!"
[[steps]]
type = "wait"
until = "reply"
for = "1h"
[[steps]]
type = "if"
condition = { type = "contact_replied" }
then = [{ type = "add_tag", tag = "Engaged" }]
else = [{ type = "send_sms", message = "{{business.name}} again: still need a hand?" }]
"#,
        )
    }

    fn task_wait() -> WorkflowSpec {
        spec(
            r#"
name = "Escalate slow call-backs"
[trigger]
type = "missed_call"
[[steps]]
type = "create_task"
title = "Call back {{contact.phone}}"
due = "2h"
[[steps]]
type = "wait"
until = "task_done"
for = "2h"
[[steps]]
type = "if"
condition = { type = "task_done" }
then = [{ type = "add_tag", tag = "Called back" }]
else = [{ type = "notify_team", message = "Nobody has called back {{contact.phone}} after 2 hours." }]
"#,
        )
    }

    async fn a_reply_wakes_the_wait_at_once(url: &str) {
        let (app, fake, account_id) = start(url, &[reply_wait()], TestAppOptions::default()).await;
        app.missed_call(CALLER, "no-answer").await;
        app.drain().await;
        app.advance(Duration::from_secs(10 * 60));
        text(&app, CALLER, "yes, can you come today?").await;
        app.drain().await;
        assert_eq!(
            app.store.contact_tags(account_id, CALLER).await.unwrap(),
            vec!["Engaged"],
            "woken by the reply, not the deadline"
        );
        app.advance(Duration::from_secs(3600));
        app.drain().await;
        assert_eq!(fake.sent().len(), 1, "no follow-up");
        // Another caller never replies: the deadline ends the wait.
        let other = "+15125550124";
        app.missed_call(other, "no-answer").await;
        app.drain().await;
        app.advance(Duration::from_secs(59 * 60));
        app.drain().await;
        assert_eq!(fake.sent().len(), 2);
        app.advance(Duration::from_secs(60));
        app.drain().await;
        assert_eq!(
            fake.sent().last().unwrap().body,
            "Acme Plumbing again: still need a hand?"
        );
        finish(app, fake).await;
    }

    async fn a_done_task_wakes_the_wait(url: &str) {
        let (app, fake, account_id) = start(url, &[task_wait()], TestAppOptions::default()).await;
        app.missed_call(CALLER, "no-answer").await;
        app.drain().await;
        let task = app.store.tasks(None, TaskFilter::Open, 10).await.unwrap()[0].id;
        app.advance(Duration::from_secs(30 * 60));
        assert!(
            app.store
                .complete_task(task, app.state.now_ms())
                .await
                .unwrap()
        );
        app.drain().await;
        assert_eq!(
            app.store.contact_tags(account_id, CALLER).await.unwrap(),
            vec!["Called back"]
        );
        // Nobody calls the second one back: the team hears about it after two hours.
        app.missed_call("+15125550124", "no-answer").await;
        app.drain().await;
        app.advance(Duration::from_secs(2 * 3600));
        app.drain().await;
        let to_team: Vec<_> = fake
            .sent()
            .into_iter()
            .filter(|m| m.to == TEAM_PHONE)
            .collect();
        assert_eq!(to_team.len(), 1);
        assert!(to_team[0].body.contains("+15125550124"));
        finish(app, fake).await;
    }

    on_both_stores!(a_reply_wakes_the_wait_at_once, a_done_task_wakes_the_wait);
}

/// The events a missed call raises (the call, the task the workflow creates, the text back
/// sent) reach a subscription made after the account had none: whether the account has
/// subscriptions is read with statements the transactions run anyway, so it is read fresh
/// each time, not remembered.
async fn a_steps_events_reach_the_accounts_subscriptions(url: &str) {
    let (app, fake, account_id) = start(url, &[recommended()], TestAppOptions::default()).await;
    let receiver = Receiver::start().await;
    app.missed_call("+15125550150", "no-answer").await;
    app.drain().await;
    assert!(receiver.received().is_empty(), "no subscription yet");

    let events = ["call.missed", "task.created", "text_back.sent"].map(String::from);
    app.store
        .save_subscription(account_id, &receiver.url, &events, true, 0)
        .await
        .unwrap();
    app.missed_call(CALLER, "no-answer").await;
    app.drain().await;
    let got = receiver.wait_for(3, Duration::from_secs(5)).await;
    // Each delivery is a job of its own: they arrive in any order.
    let mut bodies: Vec<serde_json::Value> = got
        .iter()
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect();
    bodies.sort_by_key(|b| b["type"].as_str().unwrap().to_owned());
    let types: Vec<&str> = bodies.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(types, vec!["call.missed", "task.created", "text_back.sent"]);
    assert_eq!(bodies[0]["data"]["caller"], CALLER);
    assert_eq!(bodies[1]["data"]["title"], format!("Call back {CALLER}"));
    assert_eq!(bodies[2]["data"]["to"], CALLER);
    assert_eq!(fake.sent().len(), 2, "both callers texted");
    finish(app, fake).await;
}

/// The runs a missed call starts take their first steps in one transaction, one after the
/// other: a later run's step sees the tags an earlier one added, though the transaction
/// read the caller's tags once before either step.
async fn a_tag_added_by_one_automation_is_seen_by_the_next(url: &str) {
    let tagger = spec(
        r#"
name = "Tag missed callers"
[trigger]
type = "missed_call"
[[steps]]
type = "add_tag"
tag = "Missed Call"
"#,
    );
    let checker = spec(
        r#"
name = "Check the tag"
[trigger]
type = "missed_call"
[[steps]]
type = "if"
condition = { type = "has_tag", tag = "Missed Call" }
then = [{ type = "add_tag", tag = "Saw the tag" }]
else = [{ type = "add_tag", tag = "Did not see the tag" }]
"#,
    );
    let (app, fake, account_id) = start(url, &[tagger, checker], TestAppOptions::default()).await;
    app.missed_call(CALLER, "no-answer").await;
    app.drain().await;
    assert_eq!(
        app.store.contact_tags(account_id, CALLER).await.unwrap(),
        vec!["Missed Call".to_owned(), "Saw the tag".to_owned()]
    );
    finish(app, fake).await;
}

/// The first step reads the caller's tags with the contact, as a JSON array: a tag with a
/// comma, quotes and a backslash comes back whole.
async fn a_tag_with_commas_and_quotes_is_read_back_whole(url: &str) {
    let marker = spec(
        r#"
name = "Mark repeat callers"
[trigger]
type = "missed_call"
[[steps]]
type = "if"
condition = { type = "has_tag", tag = 'Called, "before" \ once' }
then = [{ type = "add_tag", tag = "Seen again" }]
else = [{ type = "add_tag", tag = 'Called, "before" \ once' }]
"#,
    );
    let (app, fake, account_id) = start(url, &[marker], TestAppOptions::default()).await;
    app.missed_call(CALLER, "no-answer").await;
    app.drain().await;
    app.missed_call(CALLER, "no-answer").await;
    app.drain().await;
    assert_eq!(
        app.store.contact_tags(account_id, CALLER).await.unwrap(),
        vec![
            r#"Called, "before" \ once"#.to_owned(),
            "Seen again".to_owned()
        ]
    );
    finish(app, fake).await;
}
