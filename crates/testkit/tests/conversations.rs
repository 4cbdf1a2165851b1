//! Conversations and compliance, end to end on both stores: replies join conversations,
//! STOP (and plain-language requests) are honoured, HELP is answered, carrier errors
//! change what happens next, landlines are not texted.

use std::time::Duration;

use textback_store::{Reply, ReplyRefused};
use textback_testkit::fake_twilio::ACCOUNT_SID;
use textback_testkit::on_both_stores;
use textback_testkit::test_app::{BUSINESS_NUMBER, MESSAGE};
use textback_testkit::{FakeTwilio, Fault, TestApp, TestAppOptions};

on_both_stores!(
    stop_then_start_across_missed_calls,
    plain_language_opt_out_is_honoured_with_evidence,
    help_is_answered_naming_the_business_unless_opted_out,
    replies_join_the_conversation_with_media_once,
    undelivered_30007_is_visible_on_the_call,
    carrier_21610_marks_the_contact_opted_out,
    missed_calls_arriving_together_each_end_as_alone,
    not_a_mobile_is_not_texted_again,
    landlines_are_looked_up_once_and_not_texted,
    a_failed_lookup_never_blocks_the_text,
    team_replies_go_through_the_outbox,
);

const CALLER: &str = "+15125550123";

async fn start(url: &str, options: TestAppOptions) -> (TestApp, FakeTwilio) {
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
    app.seed_account(MESSAGE).await;
    (app, fake)
}

async fn finish(app: TestApp, fake: FakeTwilio) {
    app.stop().await;
    fake.stop();
}

/// An inbound text from `from`, signed; returns the status and TwiML.
async fn text(app: &TestApp, from: &str, body: &str, extra: &[(&str, &str)]) -> (u16, String) {
    let sid = format!("SM{:032x}", fastrand::u128(..));
    text_with_sid(app, &sid, from, body, extra).await
}

async fn text_with_sid(
    app: &TestApp,
    sid: &str,
    from: &str,
    body: &str,
    extra: &[(&str, &str)],
) -> (u16, String) {
    let mut params = vec![
        ("MessageSid", sid),
        ("AccountSid", ACCOUNT_SID),
        ("From", from),
        ("To", BUSINESS_NUMBER),
        ("Body", body),
    ];
    params.extend_from_slice(extra);
    app.post_signed("/webhooks/twilio/sms", &params).await
}

async fn text_back(app: &TestApp, from: &str) -> (Option<String>, Option<String>) {
    let sid = app.missed_call(from, "no-answer").await;
    app.drain().await;
    let c = app.store.call_by_carrier_id(&sid).await.unwrap().unwrap();
    (c.text_back_status, c.text_back_reason)
}

async fn account_id(app: &TestApp) -> i64 {
    app.store
        .account_by_slug("acme-plumbing")
        .await
        .unwrap()
        .unwrap()
        .id
}

const AFTER_COOLDOWN: Duration = Duration::from_secs(16 * 60);

async fn stop_then_start_across_missed_calls(url: &str) {
    let (app, fake) = start(url, TestAppOptions::default()).await;
    assert_eq!(text_back(&app, CALLER).await.0.as_deref(), Some("sent"));
    let (status, twiml) = text(&app, CALLER, "STOP", &[]).await;
    assert_eq!(status, 200);
    assert!(
        !twiml.contains("<Message>"),
        "Twilio confirms STOP itself: {twiml}"
    );
    app.advance(AFTER_COOLDOWN);
    assert_eq!(
        text_back(&app, CALLER).await,
        (Some("skipped".into()), Some("opted_out".into()))
    );
    text(&app, CALLER, "start", &[]).await;
    app.advance(AFTER_COOLDOWN);
    assert_eq!(text_back(&app, CALLER).await.0.as_deref(), Some("sent"));
    assert_eq!(fake.sent().len(), 2);
    let history = app
        .store
        .consent_history(account_id(&app).await, CALLER)
        .await
        .unwrap();
    let changes: Vec<(bool, &str)> = history
        .iter()
        .map(|e| (e.opted_out, e.source.as_str()))
        .collect();
    assert_eq!(changes, vec![(true, "keyword"), (false, "keyword")]);
    finish(app, fake).await;
}

async fn plain_language_opt_out_is_honoured_with_evidence(url: &str) {
    let (app, fake) = start(url, TestAppOptions::default()).await;
    text(&app, CALLER, "Please stop texting me, thanks", &[]).await;
    assert_eq!(
        text_back(&app, CALLER).await,
        (Some("skipped".into()), Some("opted_out".into()))
    );
    // An ordinary reply that mentions stopping changes nothing.
    let other = "+15125550124";
    text(&app, other, "Can you stop by tomorrow at 10?", &[]).await;
    assert_eq!(text_back(&app, other).await.0.as_deref(), Some("sent"));
    let history = app
        .store
        .consent_history(account_id(&app).await, CALLER)
        .await
        .unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(
        (history[0].source.as_str(), history[0].detail.as_deref()),
        ("free_text", Some("stop texting"))
    );
    assert!(
        app.store
            .consent_history(account_id(&app).await, other)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(fake.sent().len(), 1);
    finish(app, fake).await;
}

async fn help_is_answered_naming_the_business_unless_opted_out(url: &str) {
    let (app, fake) = start(url, TestAppOptions::default()).await;
    let (status, twiml) = text(&app, CALLER, "HELP", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(twiml.matches("<Message>").count(), 1, "{twiml}");
    assert!(
        twiml.contains("Acme Plumbing") && twiml.contains("STOP"),
        "{twiml}"
    );
    let thread = app
        .store
        .conversation("acme-plumbing", CALLER, 10)
        .await
        .unwrap();
    assert_eq!(
        thread.iter().map(|m| m.kind.as_str()).collect::<Vec<_>>(),
        vec!["inbound", "keyword_reply"]
    );
    // Never a text to an opted-out number, a HELP answer included.
    text(&app, CALLER, "stop", &[]).await;
    let (_, twiml) = text(&app, CALLER, "info", &[]).await;
    assert!(!twiml.contains("<Message>"), "{twiml}");
    assert_eq!(fake.create_requests(), 0);
    finish(app, fake).await;
}

async fn replies_join_the_conversation_with_media_once(url: &str) {
    let (app, fake) = start(url, TestAppOptions::default()).await;
    text_back(&app, CALLER).await;
    let photo = "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1";
    let extra = [
        ("NumMedia", "1"),
        ("MediaUrl0", photo),
        ("MediaContentType0", "image/jpeg"),
    ];
    let (status, twiml) = text_with_sid(
        &app,
        "SMreply1",
        CALLER,
        "Water heater is leaking, pic attached",
        &extra,
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        twiml.contains("<Response></Response>"),
        "empty TwiML: {twiml}"
    );
    // Twilio retries the webhook: stored once.
    text_with_sid(
        &app,
        "SMreply1",
        CALLER,
        "Water heater is leaking, pic attached",
        &extra,
    )
    .await;
    let thread = app
        .store
        .conversation("acme-plumbing", CALLER, 10)
        .await
        .unwrap();
    assert_eq!(thread.len(), 2, "{thread:#?}");
    assert_eq!(
        (thread[0].kind.as_str(), thread[1].direction.as_str()),
        ("text_back", "inbound")
    );
    assert_eq!(thread[1].media, vec![photo.to_owned()]);
    assert_eq!(thread[1].body, "Water heater is leaking, pic attached");
    finish(app, fake).await;
}

async fn undelivered_30007_is_visible_on_the_call(url: &str) {
    let (app, fake) = start(url, TestAppOptions::default()).await;
    let sid = app.missed_call(CALLER, "no-answer").await;
    app.drain().await;
    let message_sid = fake.sent()[0].sid.clone();
    for (status, code) in [("sent", ""), ("undelivered", "30007")] {
        let (s, _) = app
            .post_signed(
                "/webhooks/twilio/sms/status",
                &[
                    ("MessageSid", &message_sid),
                    ("MessageStatus", status),
                    ("ErrorCode", code),
                    ("AccountSid", ACCOUNT_SID),
                ],
            )
            .await;
        assert_eq!(s, 204);
    }
    let c = app.store.call_by_carrier_id(&sid).await.unwrap().unwrap();
    assert_eq!(c.text_back_status.as_deref(), Some("undelivered"));
    let reason = c.text_back_reason.unwrap_or_default();
    assert!(
        reason.contains("30007") && reason.contains("filtered"),
        "{reason}"
    );
    let m = &app.store.recent_messages(1).await.unwrap()[0];
    assert_eq!(
        (m.status.as_str(), m.error_code),
        ("undelivered", Some(30007))
    );
    let errors = app
        .store
        .carrier_errors_since(account_id(&app).await, 0)
        .await
        .unwrap();
    assert_eq!(
        errors.iter().map(|e| (e.code, e.count)).collect::<Vec<_>>(),
        vec![(30007, 1)]
    );
    finish(app, fake).await;
}

async fn carrier_21610_marks_the_contact_opted_out(url: &str) {
    let (app, fake) = start(url, TestAppOptions::default()).await;
    fake.push_fault(Fault::Reject {
        code: 21610,
        message: "Attempt to send to unsubscribed recipient".into(),
    });
    let (status, reason) = text_back(&app, CALLER).await;
    assert_eq!(status.as_deref(), Some("failed"));
    assert!(reason.unwrap_or_default().contains("opted out"));
    let history = app
        .store
        .consent_history(account_id(&app).await, CALLER)
        .await
        .unwrap();
    assert_eq!(
        history
            .iter()
            .map(|e| (e.opted_out, e.source.as_str()))
            .collect::<Vec<_>>(),
        vec![(true, "carrier_21610")]
    );
    app.advance(AFTER_COOLDOWN);
    assert_eq!(
        text_back(&app, CALLER).await,
        (Some("skipped".into()), Some("opted_out".into()))
    );
    assert_eq!(fake.create_requests(), 1);
    finish(app, fake).await;
}

/// Twenty missed calls at once (on PostgreSQL their dial results, their runs' starts and
/// their send outcomes are written in shared transactions): each is texted or refused once, each refusal keeps
/// its reason and its effect on the contact, and the subscription hears of each miss and each text.
async fn missed_calls_arriving_together_each_end_as_alone(url: &str) {
    let (app, fake) = start(url, TestAppOptions::default()).await;
    let account = account_id(&app).await;
    app.store
        .save_subscription(
            account,
            "http://127.0.0.1:9/hook",
            &["call.missed".into(), "text_back.sent".into()],
            true,
            0,
        )
        .await
        .unwrap();
    for _ in 0..3 {
        fake.push_fault(Fault::Reject {
            code: 21610,
            message: "Attempt to send to unsubscribed recipient".into(),
        });
    }
    for _ in 0..2 {
        fake.push_fault(Fault::Reject {
            code: 21211,
            message: "Invalid 'To' Phone Number".into(),
        });
    }
    let callers: Vec<String> = (0..20)
        .map(|i| format!("+1512555{:04}", 4000 + i))
        .collect();
    let app = std::sync::Arc::new(app);
    let mut calls = Vec::new();
    for caller in &callers {
        let (app, caller) = (app.clone(), caller.clone());
        calls.push(tokio::spawn(async move {
            app.missed_call(&caller, "no-answer").await
        }));
    }
    let mut sids = Vec::new();
    for c in calls {
        sids.push(c.await.unwrap());
    }
    app.drain().await;
    assert_eq!(fake.create_requests(), 20, "one send each");
    assert_eq!(fake.sent().len(), 15);
    let mut statuses = std::collections::BTreeMap::new();
    for sid in &sids {
        let c = app.store.call_by_carrier_id(sid).await.unwrap().unwrap();
        assert_eq!(c.outcome.as_deref(), Some("missed"));
        let reason = c.text_back_reason.unwrap_or_default();
        let key = match c.text_back_status.as_deref() {
            Some("sent") => "sent",
            Some("failed") if reason.contains("opted out") => "failed, opted out",
            Some("failed") if reason.contains("21211") => "failed, 21211",
            other => panic!("{sid}: {other:?} {reason}"),
        };
        *statuses.entry(key).or_insert(0) += 1;
    }
    assert_eq!(
        statuses.into_iter().collect::<Vec<_>>(),
        vec![("failed, 21211", 2), ("failed, opted out", 3), ("sent", 15)]
    );
    let mut opted_out = 0;
    for caller in &callers {
        let history = app.store.consent_history(account, caller).await.unwrap();
        opted_out += history
            .iter()
            .filter(|e| e.opted_out && e.source == "carrier_21610")
            .count();
    }
    assert_eq!(opted_out, 3, "each 21610 opts its contact out");
    assert_eq!(
        app.store.deliveries(account, 100).await.unwrap().len(),
        20 + 15,
        "a call.missed for each call, a text_back.sent for each text"
    );
    // What still waits is the 35 deliveries (nothing listens on port 9): every send is done.
    assert_eq!(app.store.job_counts().await.unwrap(), (35, 0));
    if url.starts_with("postgres") {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        // Each row's xmin is the transaction that last wrote it: the send outcome's.
        let transactions: i64 = sqlx::query_scalar(
            "SELECT count(DISTINCT xmin::text) FROM messages WHERE kind = 'text_back'",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert!(
            transactions < 20,
            "{transactions} transactions for 20 send outcomes"
        );
        // The conversations were written when the runs started: together too.
        let transactions: i64 =
            sqlx::query_scalar("SELECT count(DISTINCT xmin::text) FROM conversations")
                .fetch_one(&mut conn)
                .await
                .unwrap();
        assert!(
            transactions < 20,
            "{transactions} transactions for 20 runs started"
        );
        conn.close().await.unwrap();
    }
    let app = std::sync::Arc::into_inner(app).expect("the calls are done");
    finish(app, fake).await;
}

async fn not_a_mobile_is_not_texted_again(url: &str) {
    let (app, fake) = start(url, TestAppOptions::default()).await;
    fake.push_fault(Fault::Reject {
        code: 21614,
        message: "'To' number is not a valid mobile number".into(),
    });
    assert_eq!(text_back(&app, CALLER).await.0.as_deref(), Some("failed"));
    app.advance(AFTER_COOLDOWN);
    assert_eq!(
        text_back(&app, CALLER).await,
        (Some("skipped".into()), Some("not_textable".into()))
    );
    // 30006 from a delivery report does the same for another caller.
    let other = "+15125550124";
    text_back(&app, other).await;
    let sid = fake.sent()[0].sid.clone();
    app.post_signed(
        "/webhooks/twilio/sms/status",
        &[
            ("MessageSid", &sid),
            ("MessageStatus", "undelivered"),
            ("ErrorCode", "30006"),
        ],
    )
    .await;
    app.advance(AFTER_COOLDOWN);
    assert_eq!(
        text_back(&app, other).await.1.as_deref(),
        Some("not_textable")
    );
    assert_eq!(fake.create_requests(), 2);
    finish(app, fake).await;
}

async fn landlines_are_looked_up_once_and_not_texted(url: &str) {
    let (app, fake) = start(
        url,
        TestAppOptions {
            landline_lookup: true,
            ..Default::default()
        },
    )
    .await;
    fake.set_line_type(CALLER, "landline");
    assert_eq!(
        text_back(&app, CALLER).await,
        (Some("skipped".into()), Some("landline".into()))
    );
    app.advance(AFTER_COOLDOWN);
    assert_eq!(text_back(&app, CALLER).await.1.as_deref(), Some("landline"));
    assert_eq!(fake.lookups(), 1, "cached per number");
    let mobile = "+15125550124";
    assert_eq!(text_back(&app, mobile).await.0.as_deref(), Some("sent"));
    assert_eq!(fake.lookups(), 2);
    assert_eq!(fake.sent().len(), 1);
    finish(app, fake).await;
}

async fn a_failed_lookup_never_blocks_the_text(url: &str) {
    let (app, fake) = start(
        url,
        TestAppOptions {
            landline_lookup: true,
            ..Default::default()
        },
    )
    .await;
    fake.set_line_type(CALLER, "fail");
    assert_eq!(text_back(&app, CALLER).await.0.as_deref(), Some("sent"));
    assert_eq!(fake.lookups(), 1);
    finish(app, fake).await;
}

async fn team_replies_go_through_the_outbox(url: &str) {
    let (app, fake) = start(url, TestAppOptions::default()).await;
    text_back(&app, CALLER).await;
    text(&app, CALLER, "Yes please, can someone come today?", &[]).await;
    let reply = Reply {
        account_slug: "acme-plumbing".into(),
        from_number: None,
        to_phone: CALLER.into(),
        body: "Hi! Mike can be there at 3pm.".into(),
        carrier: "twilio".into(),
    };
    let id = app
        .store
        .queue_reply(&reply, app.state.now_ms())
        .await
        .unwrap()
        .expect("queued");
    assert!(id > 0);
    app.drain().await;
    let sent = fake.sent();
    assert_eq!(
        sent.last().map(|m| m.body.as_str()),
        Some("Hi! Mike can be there at 3pm.")
    );
    let thread = app
        .store
        .conversation("acme-plumbing", CALLER, 10)
        .await
        .unwrap();
    assert_eq!(
        thread.iter().map(|m| m.kind.as_str()).collect::<Vec<_>>(),
        vec!["text_back", "inbound", "reply"]
    );
    // A reply queued just before the contact says STOP is stopped by the sender's final
    // consent check, the last step before the carrier.
    let late = Reply {
        body: "One more thing!".into(),
        ..reply.clone()
    };
    app.store
        .queue_reply(&late, app.state.now_ms())
        .await
        .unwrap()
        .expect("queued");
    text(&app, CALLER, "STOP", &[]).await;
    app.drain().await;
    assert_eq!(fake.sent().len(), 2, "the late reply never left");
    let last = app
        .store
        .conversation("acme-plumbing", CALLER, 10)
        .await
        .unwrap();
    let late_msg = last.iter().find(|m| m.body == "One more thing!").unwrap();
    assert_eq!(
        (late_msg.status.as_str(), late_msg.error_message.as_deref()),
        ("canceled", Some("opted_out"))
    );
    // Refusals are specific and change nothing.
    assert_eq!(
        app.store
            .queue_reply(&reply, app.state.now_ms())
            .await
            .unwrap(),
        Err(ReplyRefused::OptedOut)
    );
    let unknown = Reply {
        account_slug: "nope".into(),
        ..reply.clone()
    };
    assert!(matches!(
        app.store.queue_reply(&unknown, 0).await.unwrap(),
        Err(ReplyRefused::UnknownAccount(_))
    ));
    let wrong_from = Reply {
        from_number: Some("+15125550111".into()),
        to_phone: "+15125550124".into(),
        ..reply
    };
    assert!(matches!(
        app.store.queue_reply(&wrong_from, 0).await.unwrap(),
        Err(ReplyRefused::NotOurNumber(_))
    ));
    app.drain().await;
    assert_eq!(fake.sent().len(), 2);
    finish(app, fake).await;
}
