//! A number on Telnyx, end to end through the real server on both stores: a missed call
//! through TeXML voice webhooks texted back once; texts in through Ed25519-signed webhooks
//! (a forged or replayed one refused, nothing recorded), replies out through the Telnyx
//! stand-in's Messages API, delivery reports, HELP answered through the API, STOP honoured.

use serde_json::json;
use textback_core::Clock;
use textback_store::{AccountRecord, NumberRecord};
use textback_testkit::on_both_stores;
use textback_testkit::test_app::{BUSINESS_NUMBER, MESSAGE, PUBLIC_URL};
use textback_testkit::{FakeTelnyx, TestApp, TestAppOptions};

const CALLER: &str = "+15125550123";

on_both_stores!(
    a_telnyx_number_texts_both_ways,
    a_missed_call_on_telnyx_is_texted_back_once
);

/// The server with Telnyx configured against a stand-in, and Acme's number moved to Telnyx
/// (with the recommended workflow, or the plain built-in text back); the app's time in
/// Unix seconds.
async fn on_telnyx(url: &str, recommended: bool) -> (TestApp, FakeTelnyx, AccountRecord, i64) {
    let telnyx = FakeTelnyx::start().await;
    let app = TestApp::start(
        url,
        TestAppOptions {
            telnyx: Some(telnyx.clone()),
            manual_clock: true,
            ..Default::default()
        },
    )
    .await;
    let (account, number) = if recommended {
        app.seed_recommended(MESSAGE).await
    } else {
        app.seed_account(MESSAGE).await
    };
    app.store
        .save_number(
            &NumberRecord {
                carrier: "telnyx".into(),
                ..number
            },
            0,
        )
        .await
        .unwrap();
    let now = app.clock.as_ref().unwrap().now().as_second();
    (app, telnyx, account, now)
}

/// Posts a messaging webhook as Telnyx would, signed by `signer` at `at` (Unix seconds).
async fn webhook(app: &TestApp, signer: &FakeTelnyx, at: i64, body: &serde_json::Value) -> u16 {
    let raw = body.to_string();
    let mut req = reqwest::Client::new()
        .post(format!("{}/webhooks/telnyx/messaging", app.base_url))
        .header("content-type", "application/json")
        .body(raw.clone());
    for (name, value) in signer.sign(at, raw.as_bytes()) {
        req = req.header(name, value);
    }
    req.send().await.expect("request").status().as_u16()
}

fn received(id: &str, text: &str) -> serde_json::Value {
    json!({"data": {"record_type": "event", "id": format!("ev-{id}"), "event_type": "message.received",
        "occurred_at": "2026-11-30T15:00:00Z",
        "payload": {"record_type": "message", "direction": "inbound", "id": id, "type": "SMS",
            "from": {"phone_number": CALLER, "carrier": "T-MOBILE USA, INC.", "line_type": "Wireless"},
            "to": [{"phone_number": BUSINESS_NUMBER, "status": "webhook_delivered"}],
            "text": text, "media": [], "parts": 1}}})
}

async fn a_telnyx_number_texts_both_ways(url: &str) {
    let (app, telnyx, account, now) = on_telnyx(url, true).await;

    // A forged webhook (another key) and a replayed one (ten minutes old) are refused and
    // leave nothing behind.
    let stranger = FakeTelnyx::start().await;
    assert_eq!(
        webhook(&app, &stranger, now, &received("m0", "Hello?")).await,
        403
    );
    assert_eq!(
        webhook(&app, &telnyx, now - 600, &received("m0", "Hello?")).await,
        403
    );
    assert!(app.store.recent_messages(10).await.unwrap().is_empty());

    // A real one joins the conversation; a retried delivery of it changes nothing.
    let first = received("m1", "Hi, can you come Tuesday?");
    assert_eq!(webhook(&app, &telnyx, now, &first).await, 204);
    assert_eq!(webhook(&app, &telnyx, now + 5, &first).await, 204);
    let msgs = app.store.recent_messages(10).await.unwrap();
    assert_eq!(msgs.len(), 1);
    assert_eq!(
        (msgs[0].body.as_str(), msgs[0].carrier.as_str()),
        ("Hi, can you come Tuesday?", "telnyx")
    );

    // A reply from the API goes out through Telnyx, with our webhook for its status.
    let key = app.api_key(account.id).await;
    let (_, _, convs) = app
        .api("GET", "/api/v1/conversations", Some(&key), None, &[])
        .await;
    let conv = convs["data"][0]["id"].as_i64().unwrap();
    let (status, _, _) = app
        .api(
            "POST",
            &format!("/api/v1/conversations/{conv}/messages"),
            Some(&key),
            Some(json!({"body": "Yes, Tuesday at 9 works. See you then!"})),
            &[],
        )
        .await;
    assert_eq!(status, 202);
    app.drain().await;
    let sent = telnyx.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].from.as_str(), sent[0].to.as_str()),
        (BUSINESS_NUMBER, CALLER)
    );
    assert_eq!(
        sent[0].webhook_url.as_deref(),
        Some(format!("{PUBLIC_URL}/webhooks/telnyx/messaging").as_str())
    );

    // Telnyx reports it delivered.
    let delivered = json!({"data": {"event_type": "message.finalized", "id": "ev-f1",
        "occurred_at": "2026-11-30T15:00:09Z",
        "payload": {"id": sent[0].id, "to": [{"phone_number": CALLER, "status": "delivered"}], "errors": []}}});
    assert_eq!(webhook(&app, &telnyx, now + 9, &delivered).await, 204);
    let reply = app
        .store
        .recent_messages(10)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.carrier_message_id.as_deref() == Some(sent[0].id.as_str()))
        .expect("the reply");
    assert_eq!(reply.status, "delivered");

    // A later text fails at the carrier with 40300 (the recipient had texted STOP to
    // Telnyx directly): the contact is marked opted out, and nothing more goes to them.
    let (status, _, _) = app
        .api(
            "POST",
            &format!("/api/v1/conversations/{conv}/messages"),
            Some(&key),
            Some(json!({"body": "Running 10 minutes late, sorry!"})),
            &[],
        )
        .await;
    assert_eq!(status, 202);
    app.drain().await;
    let late = telnyx.sent()[1].id.clone();
    let blocked = json!({"data": {"event_type": "message.finalized", "id": "ev-f2",
        "occurred_at": "2026-11-30T15:00:12Z",
        "payload": {"id": late, "to": [{"phone_number": CALLER, "status": "delivery_failed"}],
            "errors": [{"code": "40300", "title": "Blocked due to STOP message"}]}}});
    assert_eq!(webhook(&app, &telnyx, now + 12, &blocked).await, 204);
    let (status, _, _) = app
        .api(
            "POST",
            &format!("/api/v1/conversations/{conv}/messages"),
            Some(&key),
            Some(json!({"body": "Are you still there?"})),
            &[],
        )
        .await;
    assert_eq!(
        status, 409,
        "a contact the carrier reports as opted out is not texted"
    );
    // START opts them back in, as the keyword does on Twilio.
    assert_eq!(
        webhook(&app, &telnyx, now + 15, &received("m1b", "START")).await,
        204
    );
    app.drain().await;

    // HELP is answered through the API (Telnyx has no reply-in-response); after STOP,
    // nothing more goes out, the HELP answer included.
    assert_eq!(
        webhook(&app, &telnyx, now + 20, &received("m2", "HELP")).await,
        204
    );
    app.drain().await;
    let sent = telnyx.sent();
    assert_eq!(sent.len(), 3);
    assert!(
        sent[2]
            .text
            .starts_with("Acme Plumbing: reply to this message"),
        "{}",
        sent[2].text
    );
    assert_eq!(
        webhook(&app, &telnyx, now + 30, &received("m3", "STOP")).await,
        204
    );
    assert_eq!(
        webhook(&app, &telnyx, now + 40, &received("m4", "HELP")).await,
        204
    );
    app.drain().await;
    assert_eq!(telnyx.sent().len(), 3, "nothing to an opted-out contact");
    let (status, _, _) = app
        .api(
            "POST",
            &format!("/api/v1/conversations/{conv}/messages"),
            Some(&key),
            Some(json!({"body": "Still there?"})),
            &[],
        )
        .await;
    assert_eq!(status, 409, "a reply to an opted-out contact is refused");

    app.stop().await;
    telnyx.stop();
    stranger.stop();
}

/// Posts a TeXML voice callback as Telnyx would: form-encoded, Ed25519-signed.
async fn texml(
    app: &TestApp,
    signer: &FakeTelnyx,
    at: i64,
    path: &str,
    params: &[(&str, &str)],
) -> (u16, String) {
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    let mut req = reqwest::Client::new()
        .post(format!("{}{path}", app.base_url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.clone());
    for (name, value) in signer.sign(at, body.as_bytes()) {
        req = req.header(name, value);
    }
    let resp = req.send().await.expect("request");
    (
        resp.status().as_u16(),
        resp.text().await.unwrap_or_default(),
    )
}

async fn a_missed_call_on_telnyx_is_texted_back_once(url: &str) {
    let (app, telnyx, _, now) = on_telnyx(url, false).await;
    let call = [
        ("AccountSid", "f5586561-8ff0-4291-a51b-c7dfe4139ff9"),
        (
            "CallSid",
            "v3:9X2vxPDFY2RHSJ1EdMS0RHRksMTg7ldNxdjWbVr9zBjbGjGsSe-aiQ",
        ),
        ("From", CALLER),
        ("To", BUSINESS_NUMBER),
    ];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut v = call.to_vec();
        v.extend_from_slice(extra);
        v
    };

    // Ringing: TeXML dials the team, with its result coming back on the Telnyx path.
    let (status, dial) = texml(
        &app,
        &telnyx,
        now,
        "/webhooks/telnyx/voice",
        &with(&[("CallStatus", "ringing"), ("Direction", "inbound")]),
    )
    .await;
    assert_eq!(status, 200, "{dial}");
    assert!(dial.contains("<Dial timeout=\"20\""), "{dial}");
    assert!(
        dial.contains(&format!(
            "action=\"{PUBLIC_URL}/webhooks/telnyx/voice/dial-status\""
        )),
        "{dial}"
    );

    // Nobody answered: the caller hears the voicemail greeting, and gets one text back,
    // through Telnyx, even when Telnyx retries the result.
    let result = with(&[
        ("CallStatus", "in-progress"),
        ("DialCallStatus", "no-answer"),
    ]);
    let (status, greeting) = texml(
        &app,
        &telnyx,
        now + 21,
        "/webhooks/telnyx/voice/dial-status",
        &result,
    )
    .await;
    assert_eq!(status, 200);
    assert!(greeting.contains(&format!("<Record maxLength=\"120\" playBeep=\"true\" action=\"{PUBLIC_URL}/webhooks/telnyx/voice/recording\"")), "{greeting}");
    assert!(
        greeting.contains(&format!(
            "transcription=\"true\" transcriptionCallback=\"{PUBLIC_URL}/webhooks/telnyx/voice/transcription\""
        )),
        "TeXML's own attribute names, not Twilio's: {greeting}"
    );
    assert_eq!(
        texml(
            &app,
            &telnyx,
            now + 22,
            "/webhooks/telnyx/voice/dial-status",
            &result
        )
        .await
        .0,
        200
    );
    app.drain().await;
    let sent = telnyx.sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        (sent[0].from.as_str(), sent[0].to.as_str()),
        (BUSINESS_NUMBER, CALLER)
    );
    assert!(sent[0].text.contains("Acme Plumbing"), "{}", sent[0].text);
    let c = app
        .store
        .call_by_carrier_id(call[1].1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.outcome.as_deref(), Some("missed"));

    // The caller left a voicemail; Telnyx transcribed it later, to the callback the
    // <Record> named, with the fields of its TexmlTranscriptionWebhook.
    let recording_url = "https://api.telnyx.com/v2/recordings/35094891.wav";
    // Both callbacks name the recording.
    let of_recording = |extra: &[(&'static str, &'static str)]| {
        let mut v = with(&[
            ("RecordingSid", "35094891-3290-4142-b2c2-b2eda57534cf"),
            ("RecordingUrl", recording_url),
        ]);
        v.extend_from_slice(extra);
        v
    };
    let (status, _) = texml(
        &app,
        &telnyx,
        now + 60,
        "/webhooks/telnyx/voice/recording",
        &of_recording(&[("CallStatus", "in-progress"), ("RecordingDuration", "9")]),
    )
    .await;
    assert_eq!(status, 200);
    let words = "Hi, it's Dana, the kitchen sink is leaking, please call me back.";
    let (status, _) = texml(
        &app,
        &telnyx,
        now + 90,
        "/webhooks/telnyx/voice/transcription",
        &of_recording(&[
            ("CallSidLegacy", call[1].1),
            ("CallStatus", "completed"),
            ("TranscriptionSid", "b08f0fa1-a32c-4218-b3b5-9cf78941ccac"),
            ("TranscriptionStatus", "completed"),
            ("TranscriptionText", words),
        ]),
    )
    .await;
    assert_eq!(status, 200);
    let c = app
        .store
        .call_by_carrier_id(call[1].1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.recording_url.as_deref(), Some(recording_url));
    assert_eq!(c.voicemail_transcript.as_deref(), Some(words));

    // The Telnyx path takes only Telnyx's signature, and a stale one is a replay.
    assert_eq!(
        texml(
            &app,
            &FakeTelnyx::start().await,
            now,
            "/webhooks/telnyx/voice/dial-status",
            &result
        )
        .await
        .0,
        403
    );
    assert_eq!(
        texml(
            &app,
            &telnyx,
            now - 400,
            "/webhooks/telnyx/voice/dial-status",
            &result
        )
        .await
        .0,
        403
    );
    let (status, _) = app
        .post_signed("/webhooks/telnyx/voice/dial-status", &result)
        .await;
    assert_eq!(status, 403, "a Twilio signature on the Telnyx path");
    assert_eq!(
        texml(
            &app,
            &telnyx,
            now,
            "/webhooks/twilio/voice/dial-status",
            &result
        )
        .await
        .0,
        403,
        "a Telnyx signature on the Twilio path"
    );
    app.drain().await;
    assert_eq!(telnyx.sent().len(), 1);

    app.stop().await;
    telnyx.stop();
}
