//! The REST API end to end on both stores: keys, scoping (another account's ids are 404 on
//! every route), problem+json errors, pagination, contacts, calls, conversations, tasks.

use serde_json::{Value, json};
use textback_store::{AccountRecord, NumberRecord};
use textback_testkit::on_both_stores;
use textback_testkit::test_app::BUSINESS_NUMBER;
use textback_testkit::{FakeTwilio, Receiver, TestApp};

on_both_stores!(
    a_missed_call_as_the_api_shows_it,
    another_accounts_key_gets_404_everywhere,
    keys_errors_and_validation,
    contacts_pages_tags_and_consent,
    replies_are_idempotent,
    idempotency_keys_expire_and_abandoned_ones_are_freed,
    metrics_parse_and_count_the_pipeline,
    event_webhooks_are_signed_and_delivered,
    the_report_counts_the_funnel,
    contacts_import_and_export,
    settings_and_workflows_through_the_api,
    smart_lists_filter_contacts,
    the_openapi_document_matches_the_routes,
);

const CALLER: &str = "+15125550123";

async fn start(url: &str) -> (TestApp, FakeTwilio, i64, String) {
    let (app, fake, account) = TestApp::with_twilio(url).await;
    let key = app.api_key(account.id).await;
    (app, fake, account.id, key)
}

async fn finish(app: TestApp, fake: FakeTwilio) {
    app.stop().await;
    fake.stop();
}

/// A second account with its own number and key.
async fn second_account(app: &TestApp) -> String {
    let account = AccountRecord {
        id: 0,
        slug: "other-co".into(),
        name: "Other Co".into(),
        time_zone: "America/New_York".into(),
        booking_link: None,
        business_hours: Default::default(),
        text_back_enabled: true,
        text_back_template: "{{business.name}}: sorry we missed you".into(),
        cooldown_secs: 900,
        do_not_text: vec![],
        landline_lookup: false,
        quiet_hours: "21:00-08:00".into(),
    };
    let id = app.store.save_account(&account, 0).await.unwrap();
    let number = NumberRecord {
        id: 0,
        account_id: id,
        e164: "+12125550100".into(),
        carrier: "twilio".into(),
        ring_to: vec![],
        ring_seconds: 20,
        call_screening: false,
        active: true,
        registration: "approved".into(),
    };
    app.store.save_number(&number, 0).await.unwrap();
    app.api_key(id).await
}

async fn a_missed_call_as_the_api_shows_it(url: &str) {
    let (app, fake, _, key) = start(url).await;
    app.missed_call(CALLER, "no-answer").await;
    app.drain().await;
    let (status, ct, body) = app
        .api(
            "GET",
            "/api/v1/contacts?phone=(512)%20555-0123",
            Some(&key),
            None,
            &[],
        )
        .await;
    assert_eq!((status, ct.as_str()), (200, "application/json"));
    let contact = &body["data"][0];
    assert_eq!(body["data"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(contact["phone"], CALLER);
    assert_eq!(contact["tags"], json!(["Missed Call"]));
    assert_eq!(contact["opted_out"], false);
    assert!(body["next_cursor"].is_null());
    let (_, _, calls) = app.api("GET", "/api/v1/calls", Some(&key), None, &[]).await;
    let call = &calls["data"][0];
    assert_eq!(call["outcome"], "missed");
    assert_eq!(call["text_back"], json!({"status": "sent", "reason": null}));
    let (_, _, one) = app
        .api(
            "GET",
            &format!("/api/v1/calls/{}", call["id"]),
            Some(&key),
            None,
            &[],
        )
        .await;
    assert_eq!(one["caller"], CALLER);
    let (_, _, tasks) = app.api("GET", "/api/v1/tasks", Some(&key), None, &[]).await;
    assert_eq!(tasks["data"].as_array().unwrap().len(), 1);
    assert_eq!(tasks["data"][0]["title"], format!("Call back {CALLER}"));
    let (_, _, convs) = app
        .api("GET", "/api/v1/conversations", Some(&key), None, &[])
        .await;
    let conv = convs["data"][0]["id"].as_i64().unwrap();
    let (_, _, msgs) = app
        .api(
            "GET",
            &format!("/api/v1/conversations/{conv}/messages"),
            Some(&key),
            None,
            &[],
        )
        .await;
    assert_eq!(msgs["data"][0]["kind"], "text_back");
    assert_eq!(msgs["data"][0]["status"], "queued");
    let (status, _, done) = app
        .api(
            "POST",
            &format!("/api/v1/tasks/{}/complete", tasks["data"][0]["id"]),
            Some(&key),
            None,
            &[],
        )
        .await;
    assert_eq!((status, done["changed"].clone()), (200, json!(true)));
    let (_, _, account) = app
        .api("GET", "/api/v1/account", Some(&key), None, &[])
        .await;
    assert_eq!(account["slug"], "acme-plumbing");
    let (_, _, wfs) = app
        .api("GET", "/api/v1/workflows", Some(&key), None, &[])
        .await;
    let recommended = wfs["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "Missed call")
        .unwrap();
    let (_, _, runs) = app
        .api(
            "GET",
            &format!("/api/v1/workflows/{}/runs", recommended["id"]),
            Some(&key),
            None,
            &[],
        )
        .await;
    assert_eq!(runs["data"][0]["status"], "waiting");
    assert_eq!(fake.sent().len(), 1);
    finish(app, fake).await;
}

async fn another_accounts_key_gets_404_everywhere(url: &str) {
    let (app, fake, _, key) = start(url).await;
    app.missed_call(CALLER, "no-answer").await;
    app.drain().await;
    let other = second_account(&app).await;
    let id = |v: &Value| v["data"][0]["id"].as_i64().unwrap();
    let contact = id(&app
        .api("GET", "/api/v1/contacts", Some(&key), None, &[])
        .await
        .2);
    let call = id(&app
        .api("GET", "/api/v1/calls", Some(&key), None, &[])
        .await
        .2);
    let conv = id(&app
        .api("GET", "/api/v1/conversations", Some(&key), None, &[])
        .await
        .2);
    let task = id(&app
        .api("GET", "/api/v1/tasks", Some(&key), None, &[])
        .await
        .2);
    let workflow = id(&app
        .api("GET", "/api/v1/workflows", Some(&key), None, &[])
        .await
        .2);
    // Make one of everything else that has an id.
    let (_, _, list) = app
        .api(
            "POST",
            "/api/v1/smart-lists",
            Some(&key),
            Some(json!({"name": "All", "filter": {}})),
            &[],
        )
        .await;
    let (_, _, hook) = app
        .api(
            "POST",
            "/api/v1/webhooks",
            Some(&key),
            Some(json!({"url": "https://example.com/hook", "events": ["call.missed"]})),
            &[],
        )
        .await;
    let id_for = |path: &str| -> i64 {
        let resource = path.trim_start_matches('/').split('/').next().unwrap();
        match resource {
            "contacts" => contact,
            "calls" => call,
            "conversations" => conv,
            "tasks" => task,
            "workflows" => workflow,
            "smart-lists" => list["id"].as_i64().unwrap(),
            "webhooks" => hook["id"].as_i64().unwrap(),
            other => panic!("no object for {other}: add it to this test"),
        }
    };
    // Every operation of the route table that takes an id, with the other account's key.
    let mut checked = 0;
    for op in textback_server::api::openapi::OPERATIONS
        .iter()
        .filter(|o| o.path.contains("{id}"))
    {
        let path = format!(
            "/api/v1{}",
            op.path
                .replace("{id}", &id_for(op.path).to_string())
                .replace("{tag}", "Missed%20Call")
        );
        let body = match op.body {
            Some("NewMessage") => Some(json!({"body": "hi"})),
            Some("ContactPatch") => Some(json!({"first_name": "Mallory"})),
            Some("Tag") => Some(json!({"tag": "x"})),
            Some("WorkflowSpec") => Some(
                json!({"name": "x", "trigger": {"type": "missed_call"}, "steps": [{"type": "end"}]}),
            ),
            _ => None,
        };
        let (status, ct, problem) = app
            .api(&op.method.to_uppercase(), &path, Some(&other), body, &[])
            .await;
        assert_eq!(status, 404, "{} {path}: {problem}", op.method);
        assert_eq!(ct, "application/problem+json");
        checked += 1;
    }
    assert_eq!(
        checked,
        textback_server::api::openapi::OPERATIONS
            .iter()
            .filter(|o| o.path.contains("{id}"))
            .count()
    );
    assert!(checked >= 18, "{checked} operations checked");
    // Lists show only the other account's own (empty) data.
    for path in [
        "/api/v1/contacts",
        "/api/v1/calls",
        "/api/v1/conversations",
        "/api/v1/tasks",
    ] {
        let (status, _, body) = app.api("GET", path, Some(&other), None, &[]).await;
        assert_eq!(
            (status, body["data"].as_array().unwrap().len()),
            (200, 0),
            "{path}"
        );
    }
    // Nothing changed for the owner.
    let (_, _, c) = app
        .api(
            "GET",
            &format!("/api/v1/contacts/{contact}"),
            Some(&key),
            None,
            &[],
        )
        .await;
    assert_eq!(
        (c["first_name"].clone(), c["opted_out"].clone()),
        (Value::Null, json!(false))
    );
    assert_eq!(fake.sent().len(), 1);
    finish(app, fake).await;
}

async fn keys_errors_and_validation(url: &str) {
    let (app, fake, account_id, key) = start(url).await;
    let (status, ct, p) = app.api("GET", "/api/v1/contacts", None, None, &[]).await;
    assert_eq!((status, ct.as_str()), (401, "application/problem+json"));
    assert_eq!(p["type"], "https://textback.dev/problems/unauthorized");
    assert_eq!(
        app.api("GET", "/api/v1/contacts", Some("tbk_nope"), None, &[])
            .await
            .0,
        401
    );
    let (status, _, p) = app
        .api(
            "POST",
            "/api/v1/contacts",
            Some(&key),
            Some(json!({"phone": "+1-512-CALL-NOW"})),
            &[],
        )
        .await;
    assert_eq!((status, p["field"].clone()), (422, json!("phone")));
    let (status, _, p) = app
        .api("GET", "/api/v1/contacts?limit=5000", Some(&key), None, &[])
        .await;
    assert_eq!((status, p["field"].clone()), (422, json!("limit")));
    let (status, _, p) = app
        .api(
            "POST",
            "/api/v1/contacts",
            Some(&key),
            Some(json!({"phone": CALLER, "favourite_colour": "red"})),
            &[],
        )
        .await;
    assert_eq!(status, 400, "{p}");
    assert_eq!(
        app.api("GET", "/api/v1/contacts/abc", Some(&key), None, &[])
            .await
            .0,
        404
    );
    let (status, _, _) = app
        .api(
            "POST",
            "/api/v1/contacts",
            Some(&key),
            Some(json!({"phone": CALLER})),
            &[],
        )
        .await;
    assert_eq!(status, 201);
    let (status, _, p) = app
        .api(
            "POST",
            "/api/v1/contacts",
            Some(&key),
            Some(json!({"phone": "512-555-0123"})),
            &[],
        )
        .await;
    assert_eq!(status, 409, "{p}");
    // A revoked key is refused.
    let keys = app.store.api_keys(account_id).await.unwrap();
    assert!(keys[0].last_used_at_ms.is_some());
    assert!(
        app.store
            .revoke_api_key(account_id, keys[0].id, 1)
            .await
            .unwrap()
    );
    assert_eq!(
        app.api("GET", "/api/v1/contacts", Some(&key), None, &[])
            .await
            .0,
        401
    );
    finish(app, fake).await;
}

async fn contacts_pages_tags_and_consent(url: &str) {
    let (app, fake, _, key) = start(url).await;
    for i in 0..5 {
        let phone = format!("+1512555{:04}", 2000 + i);
        let (status, _, c) = app
            .api(
                "POST",
                "/api/v1/contacts",
                Some(&key),
                Some(json!({"phone": phone, "first_name": format!("N{i}"), "tags": ["Lead"]})),
                &[],
            )
            .await;
        assert_eq!(status, 201, "{c}");
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/contacts?limit=2&tag=lead&cursor={c}"),
            None => "/api/v1/contacts?limit=2&tag=lead".to_owned(),
        };
        let (_, _, page) = app.api("GET", &path, Some(&key), None, &[]).await;
        for c in page["data"].as_array().unwrap() {
            seen.push(c["first_name"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, vec!["N4", "N3", "N2", "N1", "N0"]);
    let (_, _, page) = app
        .api(
            "GET",
            "/api/v1/contacts?phone=512-555-2003",
            Some(&key),
            None,
            &[],
        )
        .await;
    let id = page["data"][0]["id"].as_i64().unwrap();
    let (status, _, c) = app
        .api(
            "PATCH",
            &format!("/api/v1/contacts/{id}"),
            Some(&key),
            Some(json!({"last_name": "Rivera"})),
            &[],
        )
        .await;
    assert_eq!(
        (status, c["first_name"].clone(), c["last_name"].clone()),
        (200, json!("N3"), json!("Rivera"))
    );
    let (_, _, c) = app
        .api(
            "PATCH",
            &format!("/api/v1/contacts/{id}"),
            Some(&key),
            Some(json!({"first_name": null})),
            &[],
        )
        .await;
    assert!(c["first_name"].is_null());
    let (_, _, c) = app
        .api(
            "POST",
            &format!("/api/v1/contacts/{id}/tags"),
            Some(&key),
            Some(json!({"tag": "VIP"})),
            &[],
        )
        .await;
    assert_eq!(c["tags"], json!(["Lead", "VIP"]));
    // The list reads the whole page's tags at once: each contact still gets its own.
    let (_, _, page) = app
        .api("GET", "/api/v1/contacts?limit=10", Some(&key), None, &[])
        .await;
    let listed: Vec<(String, serde_json::Value)> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["phone"].as_str().unwrap().to_owned(), c["tags"].clone()))
        .collect();
    let expected: Vec<(String, serde_json::Value)> = (0..5)
        .rev()
        .map(|i| {
            let tags = if i == 3 {
                json!(["Lead", "VIP"])
            } else {
                json!(["Lead"])
            };
            (format!("+1512555{:04}", 2000 + i), tags)
        })
        .collect();
    assert_eq!(listed, expected);
    let (_, _, c) = app
        .api(
            "DELETE",
            &format!("/api/v1/contacts/{id}/tags/lead"),
            Some(&key),
            None,
            &[],
        )
        .await;
    assert_eq!(c["tags"], json!(["VIP"]));
    let (_, _, c) = app
        .api(
            "POST",
            &format!("/api/v1/contacts/{id}/opt-out"),
            Some(&key),
            Some(json!({"note": "asked on the phone"})),
            &[],
        )
        .await;
    assert_eq!(c["opted_out"], true);
    let (_, _, history) = app
        .api(
            "GET",
            &format!("/api/v1/contacts/{id}/consent"),
            Some(&key),
            None,
            &[],
        )
        .await;
    assert_eq!(history["data"][0]["source"], "api");
    assert_eq!(history["data"][0]["detail"], "asked on the phone");
    finish(app, fake).await;
}

async fn replies_are_idempotent(url: &str) {
    let (app, fake, _, key) = start(url).await;
    app.missed_call(CALLER, "no-answer").await;
    app.drain().await;
    let (_, _, convs) = app
        .api("GET", "/api/v1/conversations", Some(&key), None, &[])
        .await;
    let conv = convs["data"][0]["id"].as_i64().unwrap();
    let path = format!("/api/v1/conversations/{conv}/messages");
    let body = json!({"body": "Mike can be there at 3pm."});
    let (s1, _, r1) = app
        .api(
            "POST",
            &path,
            Some(&key),
            Some(body.clone()),
            &[("Idempotency-Key", "reply-1")],
        )
        .await;
    let (s2, _, r2) = app
        .api(
            "POST",
            &path,
            Some(&key),
            Some(body),
            &[("Idempotency-Key", "reply-1")],
        )
        .await;
    assert_eq!((s1, s2), (202, 202));
    assert_eq!(r1, r2, "the same answer");
    app.drain().await;
    assert_eq!(
        fake.sent()
            .iter()
            .filter(|m| m.body == "Mike can be there at 3pm.")
            .count(),
        1,
        "sent once"
    );
    // An opted-out contact cannot be texted.
    app.text_in(CALLER, "STOP").await;
    let (status, _, p) = app
        .api(
            "POST",
            &path,
            Some(&key),
            Some(json!({"body": "hello?"})),
            &[],
        )
        .await;
    assert_eq!(status, 409, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("opted out"));
    let (status, _, p) = app
        .api("POST", &path, Some(&key), Some(json!({"body": "  "})), &[])
        .await;
    assert_eq!((status, p["field"].clone()), (422, json!("body")));
    // Every POST honours the key: creating a contact twice answers the first 201 twice.
    let new = json!({"phone": "+15125550188", "first_name": "Idem"});
    let (s1, _, c1) = app
        .api(
            "POST",
            "/api/v1/contacts",
            Some(&key),
            Some(new.clone()),
            &[("Idempotency-Key", "create-1")],
        )
        .await;
    let (s2, _, c2) = app
        .api(
            "POST",
            "/api/v1/contacts",
            Some(&key),
            Some(new.clone()),
            &[("Idempotency-Key", "create-1")],
        )
        .await;
    assert_eq!((s1, s2), (201, 201));
    assert_eq!(c1, c2);
    // Without a key the duplicate is a conflict; a failed request frees its key.
    assert_eq!(
        app.api(
            "POST",
            "/api/v1/contacts",
            Some(&key),
            Some(new.clone()),
            &[]
        )
        .await
        .0,
        409
    );
    let bad = json!({"phone": "nope"});
    assert_eq!(
        app.api(
            "POST",
            "/api/v1/contacts",
            Some(&key),
            Some(bad),
            &[("Idempotency-Key", "create-2")]
        )
        .await
        .0,
        422
    );
    let good = json!({"phone": "+15125550189"});
    assert_eq!(
        app.api(
            "POST",
            "/api/v1/contacts",
            Some(&key),
            Some(good),
            &[("Idempotency-Key", "create-2")]
        )
        .await
        .0,
        201
    );
    finish(app, fake).await;
}

async fn metrics_parse_and_count_the_pipeline(url: &str) {
    let (app, fake, _, _) = start(url).await;
    app.missed_call(CALLER, "no-answer").await;
    app.drain().await;
    let (status, text) = app.get("/metrics").await;
    assert_eq!(status, 200);
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text format");
    let has = |name: &str| scrape.samples.iter().any(|s| s.metric == name);
    for m in [
        "textback_http_requests_total",
        "textback_calls_total",
        "textback_texts_total",
        "textback_text_back_total",
        "textback_queue_depth",
        "textback_queue_oldest_job_age_seconds",
    ] {
        assert!(has(m), "{m} missing from /metrics");
    }
    if app.store.backend() == "sqlite" {
        let sqlite = scrape
            .samples
            .iter()
            .find(|s| s.metric == "textback_sqlite_memory_bytes")
            .expect("SQLite's memory on /metrics");
        assert!(
            matches!(sqlite.value, prometheus_parse::Value::Gauge(b) if b > 0.0),
            "{sqlite:?}"
        );
    }
    assert!(
        scrape
            .samples
            .iter()
            .any(|s| s.metric.starts_with("textback_carrier_request_seconds")),
        "carrier latency histogram"
    );
    // Labels carry routes and outcomes, never a phone number.
    assert!(!text.contains("5125550123"), "no phone numbers in metrics");
    assert!(text.contains("route=\"/webhooks/twilio/voice/dial-status\""));
    finish(app, fake).await;
}

async fn event_webhooks_are_signed_and_delivered(url: &str) {
    let (app, fake, _, key) = start(url).await;
    let receiver = Receiver::start().await;
    let (status, _, p) = app
        .api("POST", "/api/v1/webhooks", Some(&key), Some(json!({"url": receiver.url, "events": ["call.missed", "text_back.sent", "contact.opted_out"]})), &[])
        .await;
    assert_eq!(status, 201, "{p}");
    let (status, _, p) = app
        .api(
            "POST",
            "/api/v1/webhooks",
            Some(&key),
            Some(json!({"url": receiver.url, "events": ["call.exploded"]})),
            &[],
        )
        .await;
    assert_eq!((status, p["field"].clone()), (422, json!("events")));
    let (_, _, subs) = app
        .api("GET", "/api/v1/webhooks", Some(&key), None, &[])
        .await;
    let secret = subs["signing_secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));

    app.missed_call(CALLER, "no-answer").await;
    app.drain().await;
    app.text_in(CALLER, "stop").await;
    app.drain().await;
    let got = receiver.received();
    let types: Vec<String> = got
        .iter()
        .map(|r| {
            serde_json::from_str::<Value>(&r.body).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        types,
        vec!["call.missed", "text_back.sent", "contact.opted_out"]
    );
    for r in &got {
        r.verify_standard_webhook(&secret)
            .expect("signed with the account's secret");
        assert!(
            r.verify_standard_webhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
                .is_err(),
            "another secret does not verify"
        );
    }
    let missed: Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(missed["data"]["caller"], CALLER);
    let (_, _, log) = app
        .api("GET", "/api/v1/webhooks/deliveries", Some(&key), None, &[])
        .await;
    assert!(
        log["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["status"] == "delivered")
    );
    let other = second_account(&app).await;
    assert_eq!(
        app.api(
            "DELETE",
            &format!("/api/v1/webhooks/{}", subs["data"][0]["id"]),
            Some(&other),
            None,
            &[]
        )
        .await
        .0,
        404
    );
    assert_eq!(
        app.api(
            "DELETE",
            &format!("/api/v1/webhooks/{}", subs["data"][0]["id"]),
            Some(&key),
            None,
            &[]
        )
        .await
        .0,
        204
    );
    receiver.stop();
    finish(app, fake).await;
}

async fn the_report_counts_the_funnel(url: &str) {
    let (app, fake, _, key) = start(url).await;
    app.missed_call(CALLER, "no-answer").await;
    app.missed_call("+15125550124", "busy").await;
    app.drain().await;
    // A minute later one caller replies, one text is delivered, one callback task is done.
    app.advance(std::time::Duration::from_secs(60));
    app.text_in(CALLER, "yes please").await;
    let first = fake.sent()[0].sid.clone();
    app.post_signed(
        "/webhooks/twilio/sms/status",
        &[("MessageSid", &first), ("MessageStatus", "delivered")],
    )
    .await;
    let (_, _, tasks) = app.api("GET", "/api/v1/tasks", Some(&key), None, &[]).await;
    let task = tasks["data"][0]["id"].as_i64().unwrap();
    app.api(
        "POST",
        &format!("/api/v1/tasks/{task}/complete"),
        Some(&key),
        None,
        &[],
    )
    .await;
    // An answered call counts as a call, not as missed.
    let answered = textback_testkit::test_app::new_call_sid();
    app.ring(&answered, "+15125550125", BUSINESS_NUMBER).await;
    app.dial_result(&answered, "+15125550125", BUSINESS_NUMBER, "completed")
        .await;
    let (status, _, r) = app
        .api("GET", "/api/v1/reports?days=7", Some(&key), None, &[])
        .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        r["funnel"],
        json!({"calls": 3, "missed": 2, "texted": 2, "delivered": 1, "replied": 1, "called_back": 1})
    );
    assert_eq!(r["by_day"].as_array().unwrap().len(), 1);
    assert!(r["median_seconds_to_text"].as_f64().is_some());
    assert_eq!(
        app.api("GET", "/api/v1/reports?days=0", Some(&key), None, &[])
            .await
            .0,
        422
    );
    finish(app, fake).await;
}

async fn contacts_import_and_export(url: &str) {
    let (app, fake, _, key) = start(url).await;
    let csv = "phone,first_name,last_name,tags\n(512) 555-0131,Ana,Lopez,Customer;VIP\n512-CALL-NOW,Bad,,\n+15125550132,Ben,,\n";
    let (status, body) = app
        .api_text(
            "POST",
            "/api/v1/contacts/import?dry_run=true",
            &key,
            csv,
            "text/csv",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let r: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (r["valid_rows"].clone(), r["created"].clone()),
        (json!(2), json!(0))
    );
    assert_eq!(r["errors"][0]["line"], 3);
    assert!(
        app.api("GET", "/api/v1/contacts", Some(&key), None, &[])
            .await
            .2["data"]
            .as_array()
            .unwrap()
            .is_empty(),
        "a dry run writes nothing"
    );
    let (_, body) = app
        .api_text("POST", "/api/v1/contacts/import", &key, csv, "text/csv")
        .await;
    let r: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (r["created"].clone(), r["updated"].clone()),
        (json!(2), json!(0))
    );
    // Importing again updates; a blank cell keeps the stored name.
    let again = "phone,first_name,tags\n+15125550131,,Returning\n";
    let (_, body) = app
        .api_text("POST", "/api/v1/contacts/import", &key, again, "text/csv")
        .await;
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["updated"], 1);
    let (status, csv_out) = app
        .api_text("GET", "/api/v1/contacts/export", &key, "", "text/plain")
        .await;
    assert_eq!(status, 200);
    assert!(
        csv_out.starts_with("phone,first_name,last_name,tags,opted_out,created_at\n"),
        "{csv_out}"
    );
    assert!(
        csv_out.contains("+15125550131,Ana,Lopez,Customer;Returning;VIP,false,"),
        "{csv_out}"
    );
    let (_, _, json_out) = app
        .api(
            "GET",
            "/api/v1/contacts/export?format=json",
            Some(&key),
            None,
            &[],
        )
        .await;
    assert_eq!(json_out["data"].as_array().unwrap().len(), 2);
    let (status, body) = app
        .api_text(
            "POST",
            "/api/v1/contacts/import",
            &key,
            "name\nx\n",
            "text/csv",
        )
        .await;
    assert_eq!(status, 422, "{body}");
    finish(app, fake).await;
}

async fn settings_and_workflows_through_the_api(url: &str) {
    let (app, fake, _, key) = start(url).await;
    let patch = json!({
        "name": "Acme Plumbing & Drains",
        "quiet_hours": "20:00-09:00",
        "cooldown": "30m",
        "text_back": {"enabled": true, "message": "Hi {{contact.first_name | default('there')}}, {{business.name}} here: sorry we missed your call! Reply here."},
        "do_not_text": ["(512) 555-0177"],
    });
    let (status, _, a) = app
        .api("PATCH", "/api/v1/account", Some(&key), Some(patch), &[])
        .await;
    assert_eq!(status, 200, "{a}");
    assert_eq!(
        (a["quiet_hours"].clone(), a["cooldown"].clone()),
        (json!("20:00-09:00"), json!("30m"))
    );
    assert_eq!(a["do_not_text"], json!(["+15125550177"]));
    assert_eq!(a["warnings"], json!([]));
    // Bad input names the field and changes nothing.
    for (body, field) in [
        (json!({"time_zone": "Mars/Olympus"}), "time_zone"),
        (
            json!({"text_back": {"message": "Hey {{contact.first_name}}!"}}),
            "text_back.message",
        ),
        (
            json!({"text_back": {"message": "{{business.name}}: sorry we missed you, book at bit.ly/x"}}),
            "text_back.message",
        ),
        (json!({"business_hours": {"mon": "9-5"}}), "business_hours"),
    ] {
        let (status, _, p) = app
            .api("PATCH", "/api/v1/account", Some(&key), Some(body), &[])
            .await;
        assert_eq!((status, p["field"].clone()), (422, json!(field)), "{p}");
    }
    let (_, _, a) = app
        .api("GET", "/api/v1/account", Some(&key), None, &[])
        .await;
    assert_eq!(a["name"], "Acme Plumbing & Drains");
    // The built-in text back followed the setting.
    let (_, _, wfs) = app
        .api("GET", "/api/v1/workflows", Some(&key), None, &[])
        .await;
    let builtin = wfs["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["builtin"] == true)
        .unwrap()
        .clone();
    assert_eq!(
        (builtin["active"].clone(), builtin["version"].clone()),
        (json!(true), json!(2))
    );

    // A workflow made, changed (a new version), switched off.
    let spec = json!({
        "name": "After hours",
        "trigger": {"type": "missed_call", "business_hours": "closed"},
        "steps": [{"type": "send_sms", "message": "{{business.name}}: we're closed, we'll call you first thing. Reply here!"}],
    });
    let (status, _, w) = app
        .api(
            "POST",
            "/api/v1/workflows",
            Some(&key),
            Some(spec.clone()),
            &[],
        )
        .await;
    assert_eq!((status, w["version"].clone()), (201, json!(1)), "{w}");
    assert_eq!(
        app.api(
            "POST",
            "/api/v1/workflows",
            Some(&key),
            Some(spec.clone()),
            &[]
        )
        .await
        .0,
        409
    );
    let mut changed = spec.clone();
    changed["steps"][0]["message"] =
        json!("{{business.name}}: closed now, we'll call you back first thing. Reply here!");
    let (status, _, w2) = app
        .api(
            "PUT",
            &format!("/api/v1/workflows/{}", w["id"]),
            Some(&key),
            Some(changed),
            &[],
        )
        .await;
    assert_eq!((status, w2["version"].clone()), (200, json!(2)), "{w2}");
    let (_, _, off) = app
        .api(
            "POST",
            &format!("/api/v1/workflows/{}/deactivate", w["id"]),
            Some(&key),
            None,
            &[],
        )
        .await;
    assert_eq!(off["active"], false);
    let bad =
        json!({"name": "Broken", "trigger": {"type": "missed_call"}, "steps": [{"type": "wait"}]});
    let (status, _, p) = app
        .api("POST", "/api/v1/workflows", Some(&key), Some(bad), &[])
        .await;
    assert_eq!(status, 422);
    assert_eq!(p["field"], "step 1 (wait)");
    finish(app, fake).await;
}

async fn smart_lists_filter_contacts(url: &str) {
    let (app, fake, _, key) = start(url).await;
    app.missed_call(CALLER, "no-answer").await;
    app.missed_call("+15125550124", "no-answer").await;
    app.drain().await;
    app.advance(std::time::Duration::from_secs(60));
    app.text_in(CALLER, "thanks!").await;
    let body = json!({"name": "Missed, no reply, last 7 days", "filter": {"tags": ["Missed Call"], "replied": false, "last_call_within": "7d"}});
    let (status, _, list) = app
        .api("POST", "/api/v1/smart-lists", Some(&key), Some(body), &[])
        .await;
    assert_eq!(status, 201, "{list}");
    let (_, _, members) = app
        .api(
            "GET",
            &format!("/api/v1/smart-lists/{}/members", list["id"]),
            Some(&key),
            None,
            &[],
        )
        .await;
    let phones: Vec<&str> = members["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["phone"].as_str().unwrap())
        .collect();
    assert_eq!(phones, vec!["+15125550124"]);
    let bad = json!({"name": "x", "filter": {"colour": "red"}});
    assert_eq!(
        app.api("POST", "/api/v1/smart-lists", Some(&key), Some(bad), &[])
            .await
            .0,
        400
    );
    let other = second_account(&app).await;
    assert_eq!(
        app.api(
            "GET",
            &format!("/api/v1/smart-lists/{}/members", list["id"]),
            Some(&other),
            None,
            &[]
        )
        .await
        .0,
        404
    );
    assert_eq!(
        app.api(
            "DELETE",
            &format!("/api/v1/smart-lists/{}", list["id"]),
            Some(&other),
            None,
            &[]
        )
        .await
        .0,
        404
    );
    assert_eq!(
        app.api(
            "DELETE",
            &format!("/api/v1/smart-lists/{}", list["id"]),
            Some(&key),
            None,
            &[]
        )
        .await
        .0,
        204
    );
    finish(app, fake).await;
}

async fn the_openapi_document_matches_the_routes(url: &str) {
    let (app, fake, _, _) = start(url).await;
    let (status, ct, doc) = app
        .api("GET", "/api/v1/openapi.json", None, None, &[])
        .await;
    assert_eq!((status, ct.as_str()), (200, "application/json"));
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let mut documented = 0;
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            documented += 1;
            // Every documented operation exists and asks for a key (not 404/405).
            let concrete = path.replace("{id}", "1").replace("{tag}", "x");
            let (status, _, _) = app
                .api(&method.to_uppercase(), &concrete, None, None, &[])
                .await;
            assert_eq!(status, 401, "{method} {path}");
        }
    }
    assert_eq!(documented, textback_server::api::openapi::OPERATIONS.len());
    let (status, html) = app.get("/api/v1/docs").await;
    assert_eq!(status, 200);
    assert!(
        html.contains("<title>Textback API reference</title>")
            && html.contains("/api/v1/contacts/{id}/consent")
    );
    finish(app, fake).await;
}

async fn idempotency_keys_expire_and_abandoned_ones_are_freed(url: &str) {
    use textback_store::{IDEMPOTENCY_WINDOW_MS, STALE_RESERVATION_MS, StoredResponse};
    let (app, fake, account, _key) = start(url).await;
    let store = &app.store;
    // Times from the app's own clock: its housekeeping runs at start-up too, and must see
    // these keys as fresh.
    let t0 = app
        .clock
        .as_ref()
        .map_or(0, |c| textback_core::Clock::now(c).as_millisecond());
    let answer = StoredResponse {
        status: 202,
        body: "{\"id\":1}".into(),
    };
    // A finished request's answer is replayed within the window, and not after it.
    assert_eq!(
        store
            .reserve_idempotency_key(account, "k1", t0)
            .await
            .unwrap(),
        Ok(None)
    );
    store
        .finish_idempotency_key(account, "k1", Some(&answer))
        .await
        .unwrap();
    assert_eq!(
        store
            .reserve_idempotency_key(account, "k1", t0 + 3_600_000)
            .await
            .unwrap(),
        Ok(Some(answer.clone()))
    );
    assert_eq!(
        store
            .reserve_idempotency_key(account, "k1", t0 + IDEMPOTENCY_WINDOW_MS + 1)
            .await
            .unwrap(),
        Ok(None),
        "a day later the key is new again"
    );

    // A request whose instance died mid-way: "in progress" at first, then freed.
    assert_eq!(
        store
            .reserve_idempotency_key(account, "k2", t0)
            .await
            .unwrap(),
        Ok(None)
    );
    assert_eq!(
        store
            .reserve_idempotency_key(account, "k2", t0 + 60_000)
            .await
            .unwrap(),
        Err(())
    );
    assert_eq!(
        store
            .reserve_idempotency_key(account, "k2", t0 + STALE_RESERVATION_MS + 1)
            .await
            .unwrap(),
        Ok(None)
    );

    // Housekeeping removes expired keys and sessions (on PostgreSQL under a lock, so two
    // instances at it at once remove each row once).
    let hash = textback_server::web::password::hash("housekeeping-1234").unwrap();
    let user = store
        .create_user(
            account,
            "sweep@example.com",
            "Sweep",
            textback_store::Role::Member,
            &hash,
            0,
        )
        .await
        .unwrap()
        .unwrap();
    store
        .create_session(user, "old", "csrf", t0, t0 + 1_000)
        .await
        .unwrap();
    store
        .create_session(user, "live", "csrf", t0, i64::MAX)
        .await
        .unwrap();
    let later = t0 + 3 * IDEMPOTENCY_WINDOW_MS;
    let mut swept = Vec::new();
    // The server's own round may hold the lock for a moment: then both of ours skip.
    for _ in 0..20 {
        let (a, b) = tokio::join!(store.housekeep(later), store.housekeep(later));
        swept.extend([a.unwrap(), b.unwrap()].into_iter().flatten());
        if !swept.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        swept.iter().map(|s| s.sessions).sum::<u64>(),
        1,
        "{swept:?}"
    );
    assert_eq!(
        swept.iter().map(|s| s.idempotency_keys).sum::<u64>(),
        2,
        "{swept:?}"
    );
    assert!(store.session("live", later).await.unwrap().is_some());

    finish(app, fake).await;
}
