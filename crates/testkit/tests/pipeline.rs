//! End to end: signed Twilio webhooks into the real server, through the store and the
//! workers, out to a local Twilio stand-in. Every test runs on SQLite and on PostgreSQL
//! (when `TEXTBACK_TEST_POSTGRES_URL` is set; CI sets it).

use std::time::{Duration, Instant};

use textback_carriers::twilio::sign;
use textback_carriers::twilio::signature::{Algorithm, sign_with};
use textback_testkit::fake_twilio::ACCOUNT_SID;
use textback_testkit::on_both_stores;
use textback_testkit::test_app::{BUSINESS_NUMBER, MESSAGE, PUBLIC_URL, TEAM_PHONE, new_call_sid};
use textback_testkit::{Backend, FakeTwilio, Fault, TestApp, TestAppOptions, TestDb};

on_both_stores!(
    each_missed_dial_status_texts_once,
    answered_call_sends_nothing,
    screened_voicemail_pickup_is_missed_and_key_press_is_answered,
    retried_webhooks_text_once,
    forged_missing_and_stale_signatures_are_refused,
    shared_key_sha256_signature_is_accepted,
    carrier_500_then_201_sends_one_text,
    a_carrier_that_keeps_failing_is_given_up_on_with_the_count,
    carrier_21211_is_not_retried_and_reason_is_kept,
    carrier_429_waits_for_retry_after,
    ambiguous_timeout_is_reconciled_not_resent,
    restart_between_webhook_and_send_sends_once,
    a_worker_lost_between_the_step_and_the_send_texts_once,
    a_text_to_an_opted_out_caller_is_never_marked_for_sending,
    background_workers_text_within_two_seconds,
    texting_rules_skip_with_reasons,
    unknown_number_is_told_and_nothing_is_stored,
    bad_input_is_refused_and_changes_nothing,
    health_endpoints,
    broken_template_never_sends_an_empty_greeting,
    caller_hanging_up_before_the_dial_is_missed,
    voicemail_recording_attaches_to_the_call,
    delivery_reports_update_the_message,
    stop_opts_out_and_no_text_follows,
);

const CALLER: &str = "+15125550123";
const EXPECTED_TEXT: &str =
    "Hi there, it's Acme Plumbing. Sorry we missed your call! How can we help?";

async fn with_fake(url: &str, options: TestAppOptions) -> (TestApp, FakeTwilio) {
    let fake = FakeTwilio::start().await;
    let app = TestApp::start(
        url,
        TestAppOptions {
            twilio: Some(fake.clone()),
            ..options
        },
    )
    .await;
    app.seed_account(MESSAGE).await;
    (app, fake)
}

/// `with_fake`, on a clock the test moves.
async fn with_manual_clock(url: &str) -> (TestApp, FakeTwilio) {
    let options = TestAppOptions {
        manual_clock: true,
        ..Default::default()
    };
    with_fake(url, options).await
}

async fn finish(app: TestApp, fake: FakeTwilio) {
    app.stop().await;
    fake.stop();
}

async fn call(app: &TestApp, sid: &str) -> textback_store::CallView {
    app.store
        .call_by_carrier_id(sid)
        .await
        .expect("query")
        .expect("call recorded")
}

async fn each_missed_dial_status_texts_once(url: &str) {
    let (app, fake) = with_fake(url, TestAppOptions::default()).await;
    let statuses = ["no-answer", "busy", "failed", "canceled"];
    for (i, status) in statuses.iter().enumerate() {
        let from = format!("+151255501{}", 20 + i);
        let sid = app.missed_call(&from, status).await;
        app.drain().await;
        let c = call(&app, &sid).await;
        assert_eq!(c.outcome.as_deref(), Some("missed"), "{status}");
        assert_eq!(c.dial_status.as_deref(), Some(*status));
        assert_eq!(
            c.text_back_status.as_deref(),
            Some("sent"),
            "{status}: {:?}",
            c.text_back_reason
        );
    }
    let sent = fake.sent();
    assert_eq!(sent.len(), statuses.len());
    for (i, m) in sent.iter().enumerate() {
        assert_eq!(m.to, format!("+151255501{}", 20 + i));
        assert_eq!(m.from, BUSINESS_NUMBER);
        assert_eq!(m.body, EXPECTED_TEXT);
        assert_eq!(
            m.status_callback.as_deref(),
            Some(format!("{PUBLIC_URL}/webhooks/twilio/sms/status").as_str())
        );
    }
    // The carrier's message id is kept on our message.
    let msgs = app.store.recent_messages(10).await.unwrap();
    assert!(
        msgs.iter()
            .all(|m| m.status == "queued" && m.carrier == "twilio"),
        "the status Twilio answered with"
    );
    assert!(sent.iter().all(|s| {
        msgs.iter()
            .any(|m| m.carrier_message_id.as_deref() == Some(&s.sid))
    }));
    finish(app, fake).await;
}

async fn answered_call_sends_nothing(url: &str) {
    let (app, fake) = with_fake(url, TestAppOptions::default()).await;
    let sid = new_call_sid();
    let (status, twiml) = app.ring(&sid, CALLER, BUSINESS_NUMBER).await;
    assert_eq!(status, 200);
    assert!(
        twiml.contains(&format!(
            "<Dial timeout=\"20\" action=\"{PUBLIC_URL}/webhooks/twilio/voice/dial-status\""
        )),
        "{twiml}"
    );
    assert!(
        twiml.contains(&format!("<Number>{TEAM_PHONE}</Number>")),
        "{twiml}"
    );
    let (_, reply) = app
        .dial_result(&sid, CALLER, BUSINESS_NUMBER, "completed")
        .await;
    assert!(!reply.contains("<Record"), "{reply}");
    app.call_completed(&sid, CALLER, BUSINESS_NUMBER).await;
    app.drain().await;
    let c = call(&app, &sid).await;
    assert_eq!(c.outcome.as_deref(), Some("answered"));
    assert_eq!(c.text_back_status, None);
    assert_eq!(c.status, "completed");
    assert_eq!(fake.create_requests(), 0);
    assert!(app.store.recent_messages(10).await.unwrap().is_empty());
    finish(app, fake).await;
}

async fn screened_voicemail_pickup_is_missed_and_key_press_is_answered(url: &str) {
    let (app, fake) = with_fake(
        url,
        TestAppOptions {
            call_screening: true,
            ..Default::default()
        },
    )
    .await;
    // The team member's cell voicemail picks up: Twilio says "completed", nobody pressed 1.
    let sid = new_call_sid();
    let (_, twiml) = app.ring(&sid, CALLER, BUSINESS_NUMBER).await;
    let screen = format!("/webhooks/twilio/voice/screen?parent={sid}&number=%2B15125550100");
    assert!(
        twiml.contains(&format!(
            "<Number url=\"{PUBLIC_URL}{}\"",
            screen.replace('&', "&amp;")
        )),
        "{twiml}"
    );
    let (_, reply) = app
        .dial_result(&sid, CALLER, BUSINESS_NUMBER, "completed")
        .await;
    assert!(
        reply.contains("<Record"),
        "voicemail pickup is a missed call: {reply}"
    );
    app.drain().await;
    assert_eq!(call(&app, &sid).await.outcome.as_deref(), Some("missed"));
    assert_eq!(fake.sent().len(), 1);

    // A person answers and presses 1.
    let sid2 = new_call_sid();
    let caller2 = "+15125550124";
    app.ring(&sid2, caller2, BUSINESS_NUMBER).await;
    let leg = [
        ("CallSid", "CAchildleg"),
        ("From", caller2),
        ("To", TEAM_PHONE),
    ];
    let screen2 = format!("/webhooks/twilio/voice/screen?parent={sid2}&number=%2B15125550100");
    let (status, prompt) = app.post_signed(&screen2, &leg).await;
    assert_eq!(status, 200);
    assert!(
        prompt.contains("<Gather numDigits=\"1\"") && prompt.contains("Acme Plumbing"),
        "{prompt}"
    );
    let result = format!("/webhooks/twilio/voice/screen-result?parent={sid2}");
    let mut pressed = leg.to_vec();
    pressed.push(("Digits", "1"));
    let (status, _) = app.post_signed(&result, &pressed).await;
    assert_eq!(status, 200);
    app.dial_result(&sid2, caller2, BUSINESS_NUMBER, "completed")
        .await;
    app.drain().await;
    assert_eq!(call(&app, &sid2).await.outcome.as_deref(), Some("answered"));
    assert_eq!(
        fake.sent().len(),
        1,
        "an answered screened call is not texted"
    );
    finish(app, fake).await;
}

async fn retried_webhooks_text_once(url: &str) {
    let (app, fake) = with_fake(url, TestAppOptions::default()).await;
    let sid = app.missed_call(CALLER, "no-answer").await;
    // Twilio retries the dial action and the status callback, before and after the send.
    app.dial_result(&sid, CALLER, BUSINESS_NUMBER, "no-answer")
        .await;
    app.drain().await;
    app.dial_result(&sid, CALLER, BUSINESS_NUMBER, "no-answer")
        .await;
    app.call_completed(&sid, CALLER, BUSINESS_NUMBER).await;
    app.ring(&sid, CALLER, BUSINESS_NUMBER).await;
    app.drain().await;
    assert_eq!(fake.sent().len(), 1);
    assert_eq!(fake.create_requests(), 1);
    assert_eq!(app.store.recent_calls(10).await.unwrap().len(), 1);
    assert_eq!(app.store.job_counts().await.unwrap(), (0, 0));
    finish(app, fake).await;
}

async fn forged_missing_and_stale_signatures_are_refused(url: &str) {
    let (app, fake) = with_fake(url, TestAppOptions::default()).await;
    let sid = new_call_sid();
    let params = [
        ("CallSid", sid.as_str()),
        ("From", CALLER),
        ("To", BUSINESS_NUMBER),
        ("DialCallStatus", "no-answer"),
    ];
    let owned: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    let path = "/webhooks/twilio/voice/dial-status";
    // Missing.
    assert_eq!(app.post_raw(path, &params, None).await.0, 403);
    // Forged with a guessed token.
    let forged = sign("not-the-token", &format!("{PUBLIC_URL}{path}"), &owned);
    assert_eq!(app.post_raw(path, &params, Some(&forged)).await.0, 403);
    // Signed for an old public URL (a stale webhook configuration, or a proxy's host).
    let stale = sign(
        app.token(),
        &format!("http://internal-host:8080{path}"),
        &owned,
    );
    assert_eq!(app.post_raw(path, &params, Some(&stale)).await.0, 403);
    // Valid signature, but a parameter changed on the way.
    let good = sign(app.token(), &format!("{PUBLIC_URL}{path}"), &owned);
    let tampered = [
        ("CallSid", sid.as_str()),
        ("From", "+15125550999"),
        ("To", BUSINESS_NUMBER),
        ("DialCallStatus", "no-answer"),
    ];
    assert_eq!(app.post_raw(path, &tampered, Some(&good)).await.0, 403);
    app.drain().await;
    assert!(
        app.store.recent_calls(10).await.unwrap().is_empty(),
        "nothing stored"
    );
    assert_eq!(fake.create_requests(), 0);
    // The genuine request still works.
    assert_eq!(app.post_raw(path, &params, Some(&good)).await.0, 200);
    finish(app, fake).await;
}

async fn shared_key_sha256_signature_is_accepted(url: &str) {
    let (app, fake) = with_fake(url, TestAppOptions::default()).await;
    let sid = new_call_sid();
    let path = "/webhooks/twilio/voice";
    let params = [
        ("CallSid", sid.as_str()),
        ("From", CALLER),
        ("To", BUSINESS_NUMBER),
    ];
    let owned: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    let sig = sign_with(
        Algorithm::HmacSha256,
        "shared-key-for-tests",
        &format!("{PUBLIC_URL}{path}"),
        &owned,
    );
    let resp = reqwest::Client::new()
        .post(format!("{}{path}", app.base_url))
        .header("X-Twilio-Signature", &sig)
        .header(
            "X-Twilio-Webhooks-Signature-Settings",
            "key=KS0001,algorithm=HMAC_SHA256",
        )
        .form(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    // Without the settings header the same signature is checked as HMAC-SHA1: refused.
    assert_eq!(app.post_raw(path, &params, Some(&sig)).await.0, 403);
    finish(app, fake).await;
}

async fn carrier_500_then_201_sends_one_text(url: &str) {
    let (app, fake) = with_manual_clock(url).await;
    fake.push_fault(Fault::ServerError);
    let sid = app.missed_call(CALLER, "no-answer").await;
    app.drain().await;
    assert_eq!(fake.create_requests(), 1);
    assert!(fake.sent().is_empty());
    assert_eq!(
        call(&app, &sid).await.text_back_status.as_deref(),
        Some("queued")
    );
    app.advance(Duration::from_secs(600));
    app.drain().await;
    assert_eq!(fake.create_requests(), 2);
    assert_eq!(fake.sent().len(), 1);
    assert_eq!(
        call(&app, &sid).await.text_back_status.as_deref(),
        Some("sent")
    );
    app.advance(Duration::from_secs(3600));
    app.drain().await;
    assert_eq!(fake.create_requests(), 2, "nothing more after success");
    finish(app, fake).await;
}

/// Eight attempts, each a 500: the text is given up on, and the call says after how many
/// (the count includes the last attempt: it said seven before).
async fn a_carrier_that_keeps_failing_is_given_up_on_with_the_count(url: &str) {
    let (app, fake) = with_manual_clock(url).await;
    for _ in 0..8 {
        fake.push_fault(Fault::ServerError);
    }
    let sid = app.missed_call(CALLER, "no-answer").await;
    app.drain().await;
    for _ in 0..10 {
        app.advance(Duration::from_secs(600));
        app.drain().await;
    }
    assert_eq!(fake.create_requests(), 8, "eight attempts, no more");
    assert!(fake.sent().is_empty());
    let c = call(&app, &sid).await;
    assert_eq!(c.text_back_status.as_deref(), Some("failed"));
    let reason = c.text_back_reason.unwrap_or_default();
    assert!(reason.starts_with("gave up after 8 attempts"), "{reason}");
    assert_eq!(
        app.store.job_counts().await.unwrap(),
        (0, 1),
        "nothing queued; the send job kept as dead"
    );
    finish(app, fake).await;
}

async fn carrier_21211_is_not_retried_and_reason_is_kept(url: &str) {
    let (app, fake) = with_manual_clock(url).await;
    fake.push_fault(Fault::Reject {
        code: 21211,
        message: "The 'To' number +15125550123 is not a valid phone number.".into(),
    });
    let sid = app.missed_call(CALLER, "no-answer").await;
    app.drain().await;
    app.advance(Duration::from_secs(3600));
    app.drain().await;
    assert_eq!(
        fake.create_requests(),
        1,
        "a 4xx rejection is never retried"
    );
    let c = call(&app, &sid).await;
    assert_eq!(c.text_back_status.as_deref(), Some("failed"));
    assert!(
        c.text_back_reason
            .as_deref()
            .unwrap_or_default()
            .contains("21211"),
        "{:?}",
        c.text_back_reason
    );
    let m = &app.store.recent_messages(1).await.unwrap()[0];
    assert_eq!((m.status.as_str(), m.error_code), ("failed", Some(21211)));
    assert_eq!(app.store.job_counts().await.unwrap(), (0, 0));
    finish(app, fake).await;
}

async fn carrier_429_waits_for_retry_after(url: &str) {
    let (app, fake) = with_manual_clock(url).await;
    fake.push_fault(Fault::RateLimited {
        retry_after_secs: 120,
    });
    app.missed_call(CALLER, "no-answer").await;
    app.drain().await;
    app.advance(Duration::from_secs(60));
    app.drain().await;
    assert_eq!(fake.create_requests(), 1, "Retry-After is honoured");
    app.advance(Duration::from_secs(61));
    app.drain().await;
    assert_eq!(fake.create_requests(), 2);
    assert_eq!(fake.sent().len(), 1);
    finish(app, fake).await;
}

async fn ambiguous_timeout_is_reconciled_not_resent(url: &str) {
    let options = TestAppOptions {
        manual_clock: true,
        carrier_timeout: Duration::from_millis(300),
        ..Default::default()
    };
    let (app, fake) = with_fake(url, options).await;
    fake.push_fault(Fault::AcceptSlowly {
        delay: Duration::from_secs(2),
    });
    let sid = app.missed_call(CALLER, "no-answer").await;
    app.drain().await;
    assert_eq!(
        fake.sent().len(),
        1,
        "the slow request did create the message"
    );
    assert_eq!(
        call(&app, &sid).await.text_back_status.as_deref(),
        Some("queued")
    );
    app.advance(Duration::from_secs(600));
    app.drain().await;
    assert_eq!(
        fake.create_requests(),
        1,
        "reconciled against the message list, not resent"
    );
    let c = call(&app, &sid).await;
    assert_eq!(c.text_back_status.as_deref(), Some("sent"));
    let m = &app.store.recent_messages(1).await.unwrap()[0];
    assert_eq!(
        m.carrier_message_id.as_deref(),
        Some(fake.sent()[0].sid.as_str())
    );
    finish(app, fake).await;
}

async fn restart_between_webhook_and_send_sends_once(url: &str) {
    let (app, fake) = with_fake(url, TestAppOptions::default()).await;
    let sid = app.missed_call(CALLER, "no-answer").await;
    // Stopped before any worker ran: the call and its job are durable.
    let app = app
        .restart(TestAppOptions {
            workers: 2,
            twilio: Some(fake.clone()),
            ..Default::default()
        })
        .await;
    let c = app
        .wait_for_text_back(&sid, Duration::from_secs(10))
        .await
        .expect("call");
    assert_eq!(c.text_back_status.as_deref(), Some("sent"));
    app.drain().await;
    assert_eq!(fake.sent().len(), 1);
    assert_eq!(fake.create_requests(), 1);
    finish(app, fake).await;
}

/// The run's step marks its text `submitting` in the step's own transaction, and the same
/// worker sends it as soon as that commits. A worker lost in between (here the step is
/// taken by hand and the jobs it hands back are dropped) leaves the text claimed and
/// marked, with nothing sent: once the lease runs out another worker checks the carrier's
/// message list, finds nothing, and sends it, once.
async fn a_worker_lost_between_the_step_and_the_send_texts_once(url: &str) {
    let (app, fake) = with_manual_clock(url).await;
    let sid = app.missed_call(CALLER, "no-answer").await;
    let lease = Duration::from_secs(60);
    let follow_on = take_step_by_hand(&app, lease).await;
    let ready = follow_on
        .iter()
        .find_map(|j| j.ready.as_deref())
        .expect("the step hands its worker the text, marked");
    assert_eq!(
        (
            ready.status.as_str(),
            ready.attempts,
            ready.to_phone.as_str()
        ),
        ("submitting", 1, CALLER)
    );
    drop(follow_on);

    app.drain().await;
    assert_eq!(fake.create_requests(), 0, "still leased by the lost worker");
    app.advance(lease + Duration::from_secs(1));
    app.drain().await;
    assert_eq!(
        (fake.list_requests(), fake.create_requests()),
        (1, 1),
        "looked for at the carrier first, then sent"
    );
    let sent = fake.sent();
    assert_eq!(
        (sent.len(), sent[0].to.as_str(), sent[0].body.as_str()),
        (1, CALLER, EXPECTED_TEXT)
    );
    assert_eq!(
        call(&app, &sid).await.text_back_status.as_deref(),
        Some("sent")
    );
    finish(app, fake).await;
}

/// Claims the missed call's trigger job and takes its step as worker "lost-worker" would,
/// with a plan that texts the caller back whatever the rules say; returns the jobs the
/// step hands its worker.
async fn take_step_by_hand(app: &TestApp, lease: Duration) -> Vec<textback_store::Job> {
    let now = app.state.now_ms();
    let claimed = app
        .store
        .claim_jobs("lost-worker", now, lease, 10)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1, "the missed call's trigger");
    let trigger = &claimed[0];
    let claim = textback_store::Claim {
        worker: "lost-worker",
        until_ms: now + lease.as_millis() as i64,
    };
    app.store
        .start_runs(
            trigger,
            now,
            &claim,
            |input| textback_store::StartPlan {
                runs: input
                    .workflows
                    .iter()
                    .map(|w| textback_store::StartRun {
                        workflow_id: w.id,
                        version: w.version,
                        stop_on_reply: false,
                    })
                    .collect(),
                ..Default::default()
            },
            |_| textback_store::RunPlan {
                actions: vec![textback_store::RunAction::TextBack {
                    body: EXPECTED_TEXT.into(),
                    carrier: "twilio".into(),
                    variant: None,
                    step: "0".into(),
                }],
                next: textback_store::RunNext::Done,
            },
        )
        .await
        .expect("step")
}

/// The step marks its text for the send as it inserts it, unless the contact has opted
/// out: then the text is left `pending` and unmarked, and its send job cancels it. (The
/// rules never text an opted-out caller; this is the last check, made with the plan
/// forced to text.)
async fn a_text_to_an_opted_out_caller_is_never_marked_for_sending(url: &str) {
    let (app, fake) = with_manual_clock(url).await;
    assert_eq!(app.text_in(CALLER, "STOP").await.0, 200);
    app.drain().await;
    let sid = app.missed_call(CALLER, "no-answer").await;
    let lease = Duration::from_secs(60);
    let follow_on = take_step_by_hand(&app, lease).await;
    assert_eq!(follow_on.len(), 1, "the text's send job");
    assert!(
        follow_on[0].ready.is_none(),
        "not handed over as ready to send"
    );
    let m = &app.store.recent_messages(1).await.unwrap()[0];
    assert_eq!((m.status.as_str(), m.to.as_str()), ("pending", CALLER));
    drop(follow_on);

    app.advance(lease + Duration::from_secs(1));
    app.drain().await;
    let m = &app.store.recent_messages(1).await.unwrap()[0];
    assert_eq!(m.status, "canceled");
    let c = call(&app, &sid).await;
    assert_eq!(
        (c.text_back_status.as_deref(), c.text_back_reason.as_deref()),
        (Some("canceled"), Some("opted_out"))
    );
    assert_eq!(
        (fake.list_requests(), fake.create_requests()),
        (0, 0),
        "nothing asked of the carrier"
    );
    finish(app, fake).await;
}

async fn background_workers_text_within_two_seconds(url: &str) {
    let (app, fake) = with_fake(
        url,
        TestAppOptions {
            workers: 2,
            ..Default::default()
        },
    )
    .await;
    let started = Instant::now();
    let sid = new_call_sid();
    app.ring(&sid, CALLER, BUSINESS_NUMBER).await;
    let dialed = Instant::now();
    app.dial_result(&sid, CALLER, BUSINESS_NUMBER, "no-answer")
        .await;
    let sent = fake.wait_for_sent(1, Duration::from_secs(5)).await;
    assert_eq!(sent.len(), 1);
    assert!(
        dialed.elapsed() < Duration::from_secs(2),
        "texted {:?} after the missed call",
        dialed.elapsed()
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    finish(app, fake).await;
}

async fn texting_rules_skip_with_reasons(url: &str) {
    let (app, fake) = with_manual_clock(url).await;
    let cases = [
        ("anonymous", "anonymous_caller"),
        ("+266696687", "anonymous_caller"),
        (TEAM_PHONE, "team_phone"),
        ("+15125550177", "do_not_text_list"),
        ("sip:someone@example.com", "unparseable_caller_id"),
    ];
    for (from, reason) in cases {
        let sid = app.missed_call(from, "no-answer").await;
        app.drain().await;
        let c = call(&app, &sid).await;
        assert_eq!(c.outcome.as_deref(), Some("missed"), "{from}");
        assert_eq!(c.text_back_status.as_deref(), Some("skipped"), "{from}");
        assert_eq!(c.text_back_reason.as_deref(), Some(reason), "{from}");
    }
    assert_eq!(fake.create_requests(), 0);
    // Cooldown: a second call within 15 minutes is not texted again; later it is.
    app.missed_call(CALLER, "no-answer").await;
    app.drain().await;
    app.advance(Duration::from_secs(5 * 60));
    let again = app.missed_call(CALLER, "busy").await;
    app.drain().await;
    assert_eq!(
        call(&app, &again).await.text_back_reason.as_deref(),
        Some("cooldown")
    );
    app.advance(Duration::from_secs(11 * 60));
    let later = app.missed_call(CALLER, "no-answer").await;
    app.drain().await;
    assert_eq!(
        call(&app, &later).await.text_back_status.as_deref(),
        Some("sent")
    );
    assert_eq!(fake.sent().len(), 2);
    finish(app, fake).await;
}

async fn unknown_number_is_told_and_nothing_is_stored(url: &str) {
    let (app, fake) = with_fake(url, TestAppOptions::default()).await;
    let sid = new_call_sid();
    let (status, twiml) = app.ring(&sid, CALLER, "+15125550111").await;
    assert_eq!(status, 200);
    assert!(
        twiml.contains("<Say>") && twiml.contains("not in service"),
        "{twiml}"
    );
    let (status, _) = app
        .dial_result(&sid, CALLER, "+15125550111", "no-answer")
        .await;
    assert_eq!(status, 200);
    app.drain().await;
    assert!(app.store.recent_calls(10).await.unwrap().is_empty());
    assert_eq!(fake.create_requests(), 0);
    finish(app, fake).await;
}

async fn bad_input_is_refused_and_changes_nothing(url: &str) {
    let (app, fake) = with_fake(url, TestAppOptions::default()).await;
    let sid = new_call_sid();
    let (status, body) = app
        .dial_result(&sid, CALLER, BUSINESS_NUMBER, "exploded")
        .await;
    assert_eq!(status, 400);
    assert!(body.contains("exploded"), "{body}");
    let (status, body) = app
        .post_signed(
            "/webhooks/twilio/voice",
            &[("CallSid", &sid), ("From", CALLER)],
        )
        .await;
    assert_eq!((status, body.contains("To")), (400, true), "{body}");
    let (status, _) = app.ring(&sid, CALLER, "+1-512-CALL-NOW").await;
    assert_eq!(status, 400);
    let huge = "x".repeat(200 * 1024);
    let (status, _) = app
        .post_signed(
            "/webhooks/twilio/voice",
            &[
                ("CallSid", &sid),
                ("From", CALLER),
                ("To", BUSINESS_NUMBER),
                ("Pad", &huge),
            ],
        )
        .await;
    assert_eq!(status, 413);
    app.drain().await;
    assert!(app.store.recent_calls(10).await.unwrap().is_empty());
    assert_eq!(fake.create_requests(), 0);
    finish(app, fake).await;
}

async fn health_endpoints(url: &str) {
    let app = TestApp::start(url, TestAppOptions::default()).await;
    assert_eq!(app.get("/healthz").await.0, 200);
    assert_eq!(app.get("/readyz").await, (200, "ready".to_owned()));
    app.stop().await;
}

async fn broken_template_never_sends_an_empty_greeting(url: &str) {
    let fake = FakeTwilio::start().await;
    let app = TestApp::start(
        url,
        TestAppOptions {
            twilio: Some(fake.clone()),
            ..Default::default()
        },
    )
    .await;
    // Saved behind the validation's back (an older version, a manual edit): still refused.
    app.seed_account("Hey {{contact.first_name}}, call us back!")
        .await;
    let sid = app.missed_call(CALLER, "no-answer").await;
    app.drain().await;
    let c = call(&app, &sid).await;
    assert_eq!(c.text_back_status.as_deref(), Some("failed"));
    assert!(
        c.text_back_reason
            .as_deref()
            .unwrap_or_default()
            .contains("contact.first_name"),
        "{:?}",
        c.text_back_reason
    );
    assert_eq!(fake.create_requests(), 0);
    finish(app, fake).await;
}

async fn caller_hanging_up_before_the_dial_is_missed(url: &str) {
    let (app, fake) = with_fake(url, TestAppOptions::default()).await;
    let sid = new_call_sid();
    app.ring(&sid, CALLER, BUSINESS_NUMBER).await;
    // No <Dial> result ever arrives; only the status callback.
    let (status, _) = app
        .post_signed(
            "/webhooks/twilio/voice/status",
            &[
                ("CallSid", &sid),
                ("AccountSid", ACCOUNT_SID),
                ("From", CALLER),
                ("To", BUSINESS_NUMBER),
                ("CallStatus", "canceled"),
            ],
        )
        .await;
    assert_eq!(status, 200);
    app.drain().await;
    let c = call(&app, &sid).await;
    assert_eq!(
        (c.outcome.as_deref(), c.status.as_str()),
        (Some("missed"), "canceled")
    );
    assert_eq!(fake.sent().len(), 1);
    finish(app, fake).await;
}

async fn voicemail_recording_attaches_to_the_call(url: &str) {
    let (app, fake) = with_fake(url, TestAppOptions::default()).await;
    let sid = app.missed_call(CALLER, "no-answer").await;
    let recording = "https://api.twilio.com/2010-04-01/Accounts/AC0/Recordings/RE1";
    let (status, _) = app
        .post_signed(
            "/webhooks/twilio/voice/recording",
            &[
                ("CallSid", &sid),
                ("From", CALLER),
                ("To", BUSINESS_NUMBER),
                ("RecordingUrl", recording),
                ("RecordingDuration", "12"),
            ],
        )
        .await;
    assert_eq!(status, 200);
    app.drain().await;
    let c = call(&app, &sid).await;
    assert_eq!(c.outcome.as_deref(), Some("voicemail"));
    assert_eq!(
        fake.sent().len(),
        1,
        "the text back does not wait for the voicemail"
    );

    // Twilio's transcription arrives later, on the callback the <Record> named; a failed
    // one adds nothing, a completed one attaches to the call and to its callback task.
    let transcription = |status: &'static str, text: &'static str| {
        let sid = sid.clone();
        let app = &app;
        async move {
            app.post_signed(
                "/webhooks/twilio/voice/transcription",
                &[
                    ("CallSid", sid.as_str()),
                    ("AccountSid", ACCOUNT_SID),
                    ("From", CALLER),
                    ("To", BUSINESS_NUMBER),
                    ("RecordingUrl", recording),
                    ("TranscriptionSid", "TR0123456789abcdef0123456789abcdef"),
                    ("TranscriptionStatus", status),
                    ("TranscriptionText", text),
                ],
            )
            .await
            .0
        }
    };
    assert_eq!(transcription("failed", "").await, 200);
    assert_eq!(call(&app, &sid).await.voicemail_transcript, None);
    let words = "Hi, the kitchen sink is leaking, please call me back.";
    assert_eq!(transcription("completed", words).await, 200);
    assert_eq!(
        call(&app, &sid).await.voicemail_transcript.as_deref(),
        Some(words)
    );
    let account = app
        .store
        .account_by_slug("acme-plumbing")
        .await
        .unwrap()
        .unwrap();
    let key = app.api_key(account.id).await;
    let (_, _, calls) = app.api("GET", "/api/v1/calls", Some(&key), None, &[]).await;
    assert_eq!(calls["data"][0]["voicemail_transcript"], words);
    finish(app, fake).await;
}

async fn delivery_reports_update_the_message(url: &str) {
    let (app, fake) = with_fake(url, TestAppOptions::default()).await;
    app.missed_call(CALLER, "no-answer").await;
    app.drain().await;
    let sid = fake.sent()[0].sid.clone();
    let report = |status: &'static str| {
        let sid = sid.clone();
        let app = &app;
        async move {
            app.post_signed(
                "/webhooks/twilio/sms/status",
                &[
                    ("MessageSid", &sid),
                    ("MessageStatus", status),
                    ("AccountSid", ACCOUNT_SID),
                    ("To", CALLER),
                    ("From", BUSINESS_NUMBER),
                ],
            )
            .await
            .0
        }
    };
    assert_eq!(report("delivered").await, 204);
    // A late "sent" report does not undo the delivery.
    assert_eq!(report("sent").await, 204);
    let m = &app.store.recent_messages(1).await.unwrap()[0];
    assert_eq!(
        (m.status.as_str(), m.carrier_status.as_deref()),
        ("delivered", Some("delivered"))
    );
    finish(app, fake).await;
}

async fn stop_opts_out_and_no_text_follows(url: &str) {
    let (app, fake) = with_manual_clock(url).await;
    let text = |body: &'static str| {
        let app = &app;
        async move { app.text_in(CALLER, body).await.0 }
    };
    assert_eq!(text("Stop").await, 200);
    let sid = app.missed_call(CALLER, "no-answer").await;
    app.drain().await;
    let c = call(&app, &sid).await;
    assert_eq!(
        (c.text_back_status.as_deref(), c.text_back_reason.as_deref()),
        (Some("skipped"), Some("opted_out"))
    );
    assert_eq!(
        fake.create_requests(),
        0,
        "never a text to someone who said STOP"
    );

    // Opted out while the text was still waiting to go out (the carrier failed the first
    // attempt): it never goes.
    assert_eq!(text("start").await, 200);
    fake.push_fault(Fault::ServerError);
    let sid = app.missed_call(CALLER, "no-answer").await;
    app.drain().await;
    assert_eq!(fake.create_requests(), 1);
    assert_eq!(
        call(&app, &sid).await.text_back_status.as_deref(),
        Some("queued")
    );
    assert_eq!(text("STOP").await, 200);
    app.advance(Duration::from_secs(3600));
    app.drain().await;
    let c = call(&app, &sid).await;
    assert_eq!(
        (c.text_back_status.as_deref(), c.text_back_reason.as_deref()),
        (Some("canceled"), Some("opted_out"))
    );
    assert_eq!(fake.create_requests(), 1, "no second attempt after STOP");
    assert!(fake.sent().is_empty());
    finish(app, fake).await;
}

/// A test app stopped before anything reached its server stops: the stop once went to a
/// server still loading its routes, which then served forever (the `workflows` test that
/// restarts and stops without a request hung about one run in thirty).
#[tokio::test]
async fn a_test_app_stopped_at_once_stops() {
    let db = TestDb::create(Backend::Sqlite).await.expect("sqlite");
    for _ in 0..5 {
        let app = TestApp::start(&db.url, TestAppOptions::default()).await;
        tokio::time::timeout(Duration::from_secs(20), app.stop())
            .await
            .expect("the server stopped");
    }
    db.drop_db().await;
}

/// `--role worker` answers only health and metrics: its webhooks and pages belong to the API
/// instances, so a misrouted carrier request is refused rather than half-handled.
#[tokio::test]
async fn a_worker_instance_serves_only_health_and_metrics() {
    let db = TestDb::create(Backend::Sqlite).await.expect("sqlite");
    let app = TestApp::start(
        &db.url,
        TestAppOptions {
            role: textback_server::InstanceRole::Worker,
            ..Default::default()
        },
    )
    .await;
    for (path, status) in [
        ("/healthz", 200),
        ("/readyz", 200),
        ("/metrics", 200),
        ("/login", 404),
        ("/api/v1/contacts", 404),
    ] {
        assert_eq!(app.get(path).await.0, status, "{path}");
    }
    let (status, _) = app.ring("CA0123", CALLER, BUSINESS_NUMBER).await;
    assert_eq!(status, 404, "no webhooks on a worker");
    app.stop().await;
    db.drop_db().await;
}

/// The database goes away in the middle of the day: the caller still rings the team (the
/// routing cache), and on no answer still hears the voicemail greeting (the result is
/// spooled to disk, not refused); when the database is back, the call is settled and texted
/// back, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missed_call_during_a_database_outage_is_texted_after_it() {
    let Some(db) = TestDb::postgres_or_skip().await else {
        return;
    };
    let (app, fake) = with_fake(&db.url, TestAppOptions::default()).await;
    // Restarted so the routing cache is warm, as a running server's is.
    let app = app
        .restart(TestAppOptions {
            twilio: Some(fake.clone()),
            ..Default::default()
        })
        .await;

    db.set_available(false).await;
    let sid = new_call_sid();
    let (status, dial) = app.ring(&sid, CALLER, BUSINESS_NUMBER).await;
    assert_eq!(status, 200, "{dial}");
    assert!(
        dial.contains(TEAM_PHONE),
        "the team's phone still rings: {dial}"
    );
    let (status, greeting) = app
        .dial_result(&sid, CALLER, BUSINESS_NUMBER, "no-answer")
        .await;
    assert_eq!(status, 200, "{greeting}");
    assert!(
        greeting.contains("<Record"),
        "the caller hears the greeting: {greeting}"
    );
    // Twilio retries nothing here, but a retried result is harmless too.
    assert_eq!(
        app.dial_result(&sid, CALLER, BUSINESS_NUMBER, "no-answer")
            .await
            .0,
        200
    );
    assert!(fake.sent().is_empty());

    db.set_available(true).await;
    let mut settled = None;
    for _ in 0..100 {
        if let Ok(Some(c)) = app.store.call_by_carrier_id(&sid).await
            && c.outcome.is_some()
        {
            settled = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let settled = settled.expect("the spooled call was settled after the outage");
    assert_eq!(settled.outcome.as_deref(), Some("missed"));
    app.drain().await;
    let sent = fake.sent();
    assert_eq!(sent.len(), 1, "texted back once: {sent:?}");
    assert_eq!(sent[0].to, CALLER);
    finish(app, fake).await;
    db.drop_db().await;
}
