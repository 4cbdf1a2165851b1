//! The web UI in a real headless Chromium: sign in with the keyboard at phone width, see the
//! missed call and what happened to it, sign out. Set `TEXTBACK_SCREENSHOTS=docs/screenshots`
//! (relative to the workspace) to refresh the committed screenshots.

use std::path::PathBuf;

use textback_server::web::password;
use textback_store::Role;
use textback_testkit::browser::{Chromedriver, ENTER};
use textback_testkit::{Backend, TestApp, TestAppOptions, TestDb};

const CALLER: &str = "+15125550123";
const PASSWORD: &str = "plumbing-all-day-42";

fn screenshot_dir() -> Option<PathBuf> {
    std::env::var_os("TEXTBACK_SCREENSHOTS").map(|d| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(d)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_on_a_phone_and_see_todays_missed_call() {
    let Some(driver) = Chromedriver::start().await else {
        return;
    };
    let db = TestDb::create(Backend::Sqlite).await.expect("sqlite");
    let (app, fake, account) = TestApp::with_twilio(&db.url).await;
    let hash = password::hash(PASSWORD).unwrap();
    app.store
        .create_user(
            account.id,
            "owner@example.com",
            "Pat Owner",
            Role::Owner,
            &hash,
            0,
        )
        .await
        .unwrap();
    app.missed_call(CALLER, "no-answer").await;
    app.drain().await;

    let shots = screenshot_dir();
    let browser = driver.open(390, 844).await;
    browser.goto(&format!("{}/", app.base_url)).await;
    assert!(browser.current_url().await.ends_with("/login"));
    assert_eq!(browser.title().await, "Sign in · Textback");
    browser.screenshot(shots.as_deref(), "login").await;

    // A wrong password keeps the visitor on the sign-in page with a plain message.
    browser.type_into("#email", "owner@example.com").await;
    browser
        .type_into("#password", &format!("wrong-password{ENTER}"))
        .await;
    browser
        .wait_for_text("That email and password do not match.")
        .await;

    // Enter in the password field submits the form: no mouse needed.
    browser
        .type_into("#password", &format!("{PASSWORD}{ENTER}"))
        .await;
    let today = browser.wait_for_text("Missed calls today (1)").await;
    assert_eq!(browser.title().await, "Today · Textback");
    assert!(today.contains(CALLER), "{today}");
    assert!(today.contains("Texted back"), "{today}");
    assert!(today.contains("Callbacks to make (1)"), "{today}");
    browser.screenshot(shots.as_deref(), "today").await;

    // The inbox: the thread is open when the customer texts; the message appears without
    // a reload (server-sent events).
    browser.click("nav a[href='/inbox']").await;
    browser.wait_for_text("Inbox").await;
    browser.click("main a[href^='/inbox/']").await;
    browser.wait_for_text("Sorry we missed your call").await;
    browser.script("window.stillThisPage = true;").await;
    let (status, _) = app
        .text_in(CALLER, "Can you come today? The kitchen is flooding")
        .await;
    assert_eq!(status, 200);
    browser
        .wait_for_text("Can you come today? The kitchen is flooding")
        .await;
    assert_eq!(
        browser
            .script("return window.stillThisPage === true;")
            .await,
        serde_json::Value::Bool(true),
        "the message arrived without reloading the page"
    );

    // Typing updates the segment count; an emoji switches the encoding.
    browser.type_into("#body", "On our way 🚐").await;
    browser
        .wait_for_text("12 characters · 1 segment (UCS-2")
        .await;
    browser.screenshot(shots.as_deref(), "thread").await;
    browser.click("form.reply button[type=submit]").await;
    browser.wait_for_text("Sent.").await;
    app.drain().await;
    assert!(
        fake.sent()
            .iter()
            .any(|m| m.to == CALLER && m.body == "On our way 🚐"),
        "the carrier stand-in received the reply"
    );

    // The callback, done from Today with the keyboard-reachable Done button.
    browser.click("nav a[href='/']").await;
    browser.wait_for_text("Callbacks to make (1)").await;
    browser.click("form[action$='/complete'] button").await;
    browser.wait_for_text("Callbacks to make (0)").await;

    // Settings: editing the text back message, the linter reacts as you type.
    browser.click("nav a[href='/settings']").await;
    browser.wait_for_text("Looks good.").await;
    browser
        .script("document.getElementById('message').value = '';")
        .await;
    browser
        .type_into("#message", "Hey {{contact.first_name}}, call us back")
        .await;
    browser.wait_for_text("has no fallback").await;
    browser.screenshot(shots.as_deref(), "settings").await;

    // Send a test call from Today: the page follows it to the text, the task and the tag,
    // and the conversation is in the inbox.
    browser.click("nav a[href='/']").await;
    browser.wait_for_text("Send a test call").await;
    browser.click("form[action='/test-call'] button").await;
    browser.wait_for_text("Test call").await;
    app.drain().await;
    let shown = browser.wait_for_text("Call back +12025550100").await;
    assert!(
        shown.contains("Texted back") && shown.contains("Missed Call"),
        "{shown}"
    );
    browser.screenshot(shots.as_deref(), "test-call").await;
    browser.click("nav a[href='/inbox']").await;
    browser.wait_for_text("+12025550100").await;

    // The workflow builder: a new workflow, its message linted as it is typed, a step
    // added and removed, saved as version 1.
    browser.click("nav a[href='/workflows']").await;
    browser.wait_for_text("Automations").await;
    browser.click("main a[href='/workflows/new']").await;
    browser.wait_for_text("Step 5 › otherwise › 1").await;
    assert_eq!(browser.title().await, "New workflow · Textback");
    browser.type_into("#name", "Evenings").await;
    browser
        .script("document.getElementById('1/message').value = '';")
        .await;
    browser
        .type_into(
            "[id='1/message']",
            "Hey {{contact.first_name}}, we missed you",
        )
        .await;
    browser.wait_for_text("has no fallback").await;
    browser
        .script("document.getElementById('1/message').value = '';")
        .await;
    browser
        .type_into(
            "[id='1/message']",
            "Sorry we missed you! {{business.name}} will call you back soon.",
        )
        .await;
    browser.click("button[value='add:']").await;
    browser.wait_for_text("Step 6 · Send a text").await;
    browser
        .screenshot(shots.as_deref(), "workflow-builder")
        .await;
    browser.click("button[value='remove:6']").await;
    let page = browser.wait_for_no_text("Step 6").await;
    assert!(page.contains("Step 5 › yes › 1"), "{page}");
    browser.click("button[value='save']").await;
    let detail = browser.wait_for_text("Version 1").await;
    assert!(detail.contains("by owner@example.com"), "{detail}");
    browser.screenshot(shots.as_deref(), "workflow").await;

    // The other pages, at phone width, each titled.
    for (link, title, shows, shot) in [
        ("/calls", "Calls · Textback", CALLER, "calls"),
        (
            "/tasks",
            "Tasks · Textback",
            "Call back +12025550100",
            "tasks",
        ),
        ("/contacts", "Contacts · Textback", CALLER, "contacts"),
        ("/reports", "Reports · Textback", "Download CSV", "reports"),
    ] {
        browser.click(&format!("nav a[href='{link}']")).await;
        browser.wait_for_text(shows).await;
        assert_eq!(browser.title().await, title);
        browser.screenshot(shots.as_deref(), shot).await;
    }

    // Settings' own pages: numbers, and team and access.
    browser.click("nav a[href='/settings']").await;
    browser.click("main a[href='/settings/numbers']").await;
    browser.wait_for_text("Team phones it rings").await;
    assert_eq!(browser.title().await, "Numbers · Textback");
    browser.screenshot(shots.as_deref(), "numbers").await;
    browser
        .goto(&format!("{}/settings/team", app.base_url))
        .await;
    browser.wait_for_text("Webhook subscriptions").await;
    assert_eq!(browser.title().await, "Team and access · Textback");
    browser.screenshot(shots.as_deref(), "team").await;

    browser.click("header button[type=submit]").await;
    browser.wait_for_text("Sign in to Textback").await;
    browser.goto(&format!("{}/", app.base_url)).await;
    assert!(
        browser.current_url().await.ends_with("/login"),
        "signed out"
    );

    browser.close().await;
    drop(driver);
    app.stop().await;
    fake.stop();
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_run_setup_with_the_linter_reacting() {
    let Some(driver) = Chromedriver::start().await else {
        return;
    };
    let db = TestDb::create(Backend::Sqlite).await.expect("sqlite");
    let app = TestApp::start(&db.url, TestAppOptions::default()).await;
    let token = textback_server::web::setup::setup_token(&app.store)
        .await
        .unwrap()
        .expect("a setup token");
    let shots = screenshot_dir();
    let browser = driver.open(390, 844).await;
    browser
        .goto(&format!("{}/setup?token={token}", app.base_url))
        .await;
    assert_eq!(browser.title().await, "Set up Textback · Textback");
    browser.wait_for_text("Looks good.").await;

    // The linter reacts as the message is edited: a first name without a fallback is the
    // "Hey ," mistake.
    browser
        .script("document.getElementById('message').value = '';")
        .await;
    browser
        .type_into(
            "#message",
            "Hey {{contact.first_name}}, sorry we missed you",
        )
        .await;
    let text = browser.wait_for_text("error").await;
    assert!(!text.contains("Looks good."), "{text}");
    browser.screenshot(shots.as_deref(), "setup").await;
    browser
        .script("document.getElementById('message').value = '';")
        .await;
    browser
        .type_into(
            "#message",
            "Hi {{contact.first_name | default(\"there\")}}, it's {{business.name}}. Sorry we missed your call! Reply here and we'll help.",
        )
        .await;
    browser.wait_for_text("Looks good.").await;

    browser.type_into("#name", "Pat Owner").await;
    browser.type_into("#email", "pat@acme.example").await;
    browser.type_into("#password", PASSWORD).await;
    browser.type_into("#business", "Acme Plumbing").await;
    browser.type_into("#ring", "(512) 555-0199").await;
    browser.click("form button[type=submit]").await;
    browser.wait_for_text("Missed calls today (0)").await;
    assert_eq!(browser.title().await, "Today · Textback");

    browser.close().await;
    drop(driver);
    app.stop().await;
    db.drop_db().await;
}
