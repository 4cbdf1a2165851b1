//! The web UI over real HTTP on both stores: sign-in, sessions, CSRF, the sign-in rate
//! limit, and the Today page after a missed call. (The browser-driven suite is issue #7's
//! next step; these pin the server's side of each rule.)

use std::collections::BTreeMap;

use textback_core::workflow::WorkflowSpec;
use textback_server::web::password;
use textback_store::{AccountRecord, Role};
use textback_testkit::fake_twilio::ACCOUNT_SID;
use textback_testkit::on_both_stores;
use textback_testkit::test_app::{BUSINESS_NUMBER, TEAM_PHONE};
use textback_testkit::{FakeTwilio, TestApp, TestAppOptions};

on_both_stores!(
    sign_in_sign_out_and_csrf,
    today_shows_the_missed_call_and_its_callback,
    repeated_wrong_passwords_lock_the_email,
    inbox_thread_reply_and_task_done,
    first_run_setup_creates_the_business_and_signs_the_owner_in,
    tasks_mine_all_overdue_assign_and_done,
    contacts_search_consent_history_and_smart_lists,
    reports_chart_and_csv,
    settings_for_owners_checked_and_applied,
    a_test_call_shows_the_text_the_task_and_the_tag,
    automations_listed_and_switched_by_owners,
    workflow_builder_edits_checks_saves_and_keeps_versions,
    numbers_ring_the_phones_the_owner_sets,
    team_keys_and_webhooks_managed_by_owners,
    a_busy_day_says_how_many_and_mine_finds_mine,
    call_back_rings_the_team_and_the_answer_marks_the_task,
    people_change_their_own_password,
);

const CALLER: &str = "+15125550123";
const PASSWORD: &str = "plumbing-all-day-42";

/// A browser without JavaScript: keeps cookies, does not follow redirects.
struct Browser {
    base: String,
    http: reqwest::Client,
    cookies: BTreeMap<String, String>,
}

struct Page {
    status: u16,
    location: Option<String>,
    set_cookies: Vec<String>,
    body: String,
}

impl Browser {
    fn new(app: &TestApp) -> Browser {
        Browser {
            base: app.base_url.clone(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: BTreeMap::new(),
        }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let resp = req.header("cookie", cookie).send().await.expect("request");
        let set_cookies: Vec<String> = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        for c in &set_cookies {
            let pair = c.split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            if v.is_empty() {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), v.to_owned());
            }
        }
        Page {
            status: resp.status().as_u16(),
            location: resp
                .headers()
                .get("location")
                .map(|v| v.to_str().unwrap().to_owned()),
            set_cookies,
            body: resp.text().await.unwrap(),
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let req = self.http.get(format!("{}{path}", self.base));
        self.send(req).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let req = self.http.post(format!("{}{path}", self.base)).form(form);
        self.send(req).await
    }

    /// Loads the sign-in page and submits it.
    async fn sign_in(&mut self, email: &str, password: &str) -> Page {
        let form = self.get("/login").await;
        let csrf = hidden(&form.body, "csrf");
        self.post(
            "/login",
            &[("email", email), ("password", password), ("csrf", &csrf)],
        )
        .await
    }
}

/// The first task's Done form action (`/tasks/N/complete`).
fn done_action(html: &str) -> String {
    let end = html.find("/complete\"").expect("a Done button") + "/complete".len();
    let start = html[..end].rfind('"').unwrap() + 1;
    html[start..end].to_owned()
}

/// The value of a hidden form field.
fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#x2f;", "/")
        .replace("&amp;", "&")
}

/// `name="value"` attributes of one tag (bare ones like `checked` map to "").
fn attributes(tag: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = tag;
    while let Some(eq_or_space) = rest.find(|c: char| c == '=' || c.is_whitespace()) {
        let key = rest[..eq_or_space].trim().to_owned();
        rest = &rest[eq_or_space..];
        if rest.starts_with("=\"") {
            let end = rest[2..].find('"').map_or(rest.len(), |e| e + 2);
            out.insert(key, unescape(&rest[2..end]));
            rest = rest.get(end + 1..).unwrap_or("");
        } else {
            if !key.is_empty() {
                out.insert(key, String::new());
            }
            rest = rest.trim_start();
        }
    }
    if !rest.trim().is_empty() {
        out.insert(rest.trim().to_owned(), String::new());
    }
    out
}

/// What a browser would submit from the first `<form>` whose action is `action`, without
/// the buttons: inputs, ticked boxes, textareas and each select's chosen option.
fn form_fields(html: &str, action: &str) -> Vec<(String, String)> {
    // Templates escape `/` in values.
    let escaped = format!("action=\"{}\"", action.replace('/', "&#x2f;"));
    let marker = format!("action=\"{action}\"");
    let start = html
        .find(&marker)
        .or_else(|| html.find(&escaped))
        .unwrap_or_else(|| panic!("no form for {action}"));
    let form = &html[start..];
    let form = &form[..form.find("</form>").unwrap()];
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(open) = form[at..].find('<').map(|i| i + at) {
        let close = form[open..].find('>').unwrap() + open;
        let tag = &form[open + 1..close];
        let (name, attrs) = tag.split_once(' ').unwrap_or((tag, ""));
        let a = attributes(attrs.trim_end_matches('/'));
        at = close + 1;
        let Some(field) = a.get("name").cloned() else {
            continue;
        };
        match name {
            "input" => match a.get("type").map(String::as_str) {
                Some("submit") => {}
                Some("checkbox") if !a.contains_key("checked") => {}
                Some("checkbox") => {
                    out.push((field, a.get("value").cloned().unwrap_or("on".into())))
                }
                _ => out.push((field, a.get("value").cloned().unwrap_or_default())),
            },
            "textarea" => {
                let end = form[at..].find("</textarea>").unwrap() + at;
                out.push((field, unescape(&form[at..end])));
                at = end;
            }
            "select" => {
                let end = form[at..].find("</select>").unwrap() + at;
                let options: Vec<BTreeMap<String, String>> = form[at..end]
                    .split("<option")
                    .skip(1)
                    .map(|o| attributes(&o[..o.find('>').unwrap()]))
                    .collect();
                let chosen = options
                    .iter()
                    .find(|o| o.contains_key("selected"))
                    .or(options.first())
                    .and_then(|o| o.get("value").cloned())
                    .unwrap_or_default();
                out.push((field, chosen));
                at = end;
            }
            _ => {}
        }
    }
    out
}

/// Sets a field (replacing it) in a scraped form.
fn set(form: &mut Vec<(String, String)>, name: &str, value: &str) {
    form.retain(|(k, _)| k != name);
    form.push((name.to_owned(), value.to_owned()));
}

async fn press(browser: &mut Browser, action: &str, form: &[(String, String)], op: &str) -> Page {
    let mut pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    pairs.push(("op", op));
    browser.post(action, &pairs).await
}

async fn start(url: &str) -> (TestApp, FakeTwilio, AccountRecord) {
    TestApp::with_twilio(url).await
}

async fn add_user_as(app: &TestApp, account_id: i64, email: &str, name: &str, role: Role) {
    let hash = password::hash(PASSWORD).unwrap();
    app.store
        .create_user(account_id, email, name, role, &hash, 0)
        .await
        .unwrap()
        .expect("a new email");
}

async fn add_user(app: &TestApp, account_id: i64, email: &str, name: &str) {
    add_user_as(app, account_id, email, name, Role::Owner).await;
}

async fn add_member(app: &TestApp, account_id: i64, email: &str, name: &str) {
    add_user_as(app, account_id, email, name, Role::Member).await;
}

/// Someone signed in to a second account, "Other Co".
async fn stranger(app: &TestApp, account: &AccountRecord) -> Browser {
    let other = app
        .store
        .save_account(
            &AccountRecord {
                id: 0,
                slug: "other-co".into(),
                name: "Other Co".into(),
                ..account.clone()
            },
            0,
        )
        .await
        .unwrap();
    add_user(app, other, "someone@other.example", "Sam Other").await;
    let mut browser = Browser::new(app);
    browser.sign_in("someone@other.example", PASSWORD).await;
    browser
}

async fn sign_in_sign_out_and_csrf(url: &str) {
    let (app, fake, account) = start(url).await;
    let mut browser = Browser::new(&app);

    // Before anyone exists, the home page explains how to create the first owner.
    let home = browser.get("/").await;
    assert_eq!(
        (home.status, home.location.as_deref()),
        (303, Some("/login"))
    );
    let setup = browser.get("/login").await;
    assert!(
        setup.body.contains("No one can sign in yet"),
        "{}",
        setup.body
    );

    add_user(&app, account.id, "Owner@Example.com", "Pat Owner").await;
    // The same email (any case) cannot be added twice.
    let again = app
        .store
        .create_user(
            account.id,
            "owner@example.COM",
            "Other",
            Role::Member,
            "x",
            0,
        )
        .await
        .unwrap();
    assert_eq!(again, None);

    // A form posted without the sign-in page's token is refused and signs no one in.
    let forged = browser
        .post(
            "/login",
            &[("email", "owner@example.com"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(forged.status, 403);
    assert!(forged.body.contains("Form expired"));

    let wrong = browser
        .sign_in("owner@example.com", "not-the-password")
        .await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("That email and password do not match."));
    assert!(!browser.cookies.contains_key("textback_session"));

    let ok = browser.sign_in("OWNER@example.com", PASSWORD).await;
    assert_eq!((ok.status, ok.location.as_deref()), (303, Some("/")));
    let session_cookie = ok
        .set_cookies
        .iter()
        .find(|c| c.starts_with("textback_session="))
        .expect("a session cookie");
    assert!(session_cookie.contains("HttpOnly") && session_cookie.contains("SameSite=Lax"));
    // The database holds only a hash of the cookie's token.
    let token = browser.cookies["textback_session"].clone();
    assert!(app.store.session(&token, 1).await.unwrap().is_none());

    let home = browser.get("/").await;
    assert_eq!(home.status, 200);
    assert!(home.body.contains("<title>Today · Textback</title>"));
    assert!(home.body.contains("Pat Owner"));

    // Signing out needs the session's form token; without it nothing happens.
    let refused = browser.post("/logout", &[]).await;
    assert_eq!(refused.status, 403);
    assert_eq!(browser.get("/").await.status, 200);
    let csrf = hidden(&home.body, "csrf");
    let out = browser.post("/logout", &[("csrf", &csrf)]).await;
    assert_eq!((out.status, out.location.as_deref()), (303, Some("/login")));
    // The old token is dead even if a copy of the cookie was kept.
    browser.cookies.insert("textback_session".into(), token);
    let after = browser.get("/").await;
    assert_eq!(
        (after.status, after.location.as_deref()),
        (303, Some("/login"))
    );

    app.stop().await;
    fake.stop();
}

async fn today_shows_the_missed_call_and_its_callback(url: &str) {
    let (app, fake, account) = start(url).await;
    add_user(&app, account.id, "owner@example.com", "Pat Owner").await;
    let sid = app.missed_call(CALLER, "no-answer").await;
    app.drain().await;
    // The caller left a voicemail, and Twilio transcribed it.
    let recording = "https://api.twilio.com/2010-04-01/Accounts/AC0/Recordings/RE1";
    for (path, extra) in [
        (
            "/webhooks/twilio/voice/recording",
            ("RecordingDuration", "9"),
        ),
        (
            "/webhooks/twilio/voice/transcription",
            ("TranscriptionStatus", "completed"),
        ),
    ] {
        let (status, _) = app
            .post_signed(
                path,
                &[
                    ("CallSid", sid.as_str()),
                    ("AccountSid", ACCOUNT_SID),
                    ("From", CALLER),
                    ("To", BUSINESS_NUMBER),
                    ("RecordingUrl", recording),
                    extra,
                    ("TranscriptionText", "Water <everywhere> in the basement"),
                ],
            )
            .await;
        assert_eq!(status, 200);
    }

    let mut browser = Browser::new(&app);
    browser.sign_in("owner@example.com", PASSWORD).await;
    // The voicemail and its words show on the call and on its callback task, escaped.
    let words = "“Water &lt;everywhere&gt; in the basement”";
    for page in ["/calls", "/tasks?show=all", "/"] {
        let body = browser.get(page).await.body;
        assert!(body.contains(words), "{page}: {body}");
        assert!(
            body.contains(&format!(
                "<audio controls preload=\"none\" src=\"{}",
                recording.replace('/', "&#x2f;")
            )),
            "{page}: {body}"
        );
    }
    let today = browser.get("/").await;
    assert_eq!(today.status, 200);
    assert!(
        today.body.contains("Missed calls today (1)"),
        "{}",
        today.body
    );
    assert!(today.body.contains(CALLER));
    assert!(today.body.contains("Texted back"));
    // The week's funnel: the one missed call, texted back.
    for step in [
        "<strong>1</strong> Missed",
        "<strong>1</strong> Texted back <small>(100% of missed)</small>",
    ] {
        assert!(today.body.contains(step), "{step}: {}", today.body);
    }
    assert!(
        today.body.contains("Callbacks to make (1)"),
        "{}",
        today.body
    );

    // A member of another account sees none of it.
    let mut stranger = stranger(&app, &account).await;
    let theirs = stranger.get("/").await;
    assert_eq!(theirs.status, 200);
    assert!(theirs.body.contains("Missed calls today (0)"));
    assert!(theirs.body.contains("Callbacks to make (0)"));
    assert!(!theirs.body.contains(CALLER));
    assert!(!stranger.get("/calls").await.body.contains(CALLER));

    app.stop().await;
    fake.stop();
}

async fn repeated_wrong_passwords_lock_the_email(url: &str) {
    let (app, fake, account) = start(url).await;
    add_user(&app, account.id, "owner@example.com", "Pat Owner").await;
    let mut browser = Browser::new(&app);
    for _ in 0..5 {
        assert_eq!(
            browser.sign_in("owner@example.com", "guess").await.status,
            401
        );
    }
    // Locked: even the right password waits, and the page says for how long.
    let locked = browser.sign_in("owner@example.com", PASSWORD).await;
    assert_eq!(locked.status, 429);
    assert!(
        locked
            .body
            .contains("Too many failed sign-ins for this email. Try again in 15 minutes."),
        "{}",
        locked.body
    );
    app.advance(std::time::Duration::from_secs(16 * 60));
    let ok = browser.sign_in("owner@example.com", PASSWORD).await;
    assert_eq!(ok.status, 303);
    app.stop().await;
    fake.stop();
}

async fn customer_texts(app: &TestApp, body: &str) {
    assert_eq!(app.text_in(CALLER, body).await.0, 200);
    app.drain().await;
}

async fn inbox_thread_reply_and_task_done(url: &str) {
    let (app, fake, account) = start(url).await;
    add_user(&app, account.id, "owner@example.com", "Pat Owner").await;
    app.missed_call(CALLER, "no-answer").await;
    app.drain().await;
    customer_texts(&app, "Hi, can someone come fix a leak today?").await;

    let mut browser = Browser::new(&app);
    browser.sign_in("owner@example.com", PASSWORD).await;
    let inbox = browser.get("/inbox").await;
    assert_eq!(inbox.status, 200);
    assert!(inbox.body.contains("Waiting for a reply"), "{}", inbox.body);
    assert!(inbox.body.contains("1 new"), "{}", inbox.body);
    let href_at = inbox
        .body
        .find("href=\"/inbox/")
        .expect("a conversation link")
        + 6;
    let thread_path = inbox.body[href_at..].split('"').next().unwrap().to_owned();

    let thread = browser.get(&thread_path).await;
    assert_eq!(thread.status, 200);
    assert!(
        thread.body.contains("Sorry we missed your call"),
        "the text back is in the thread"
    );
    assert!(thread.body.contains("can someone come fix a leak today?"));
    assert!(thread.body.contains("Received"));
    // Opening the thread reads it, for this user only.
    assert!(!browser.get("/inbox").await.body.contains("1 new"));
    add_member(&app, account.id, "mike@example.com", "Mike Tech").await;
    let mut mike = Browser::new(&app);
    mike.sign_in("mike@example.com", PASSWORD).await;
    assert!(mike.get("/inbox").await.body.contains("1 new"));

    // A reply goes to the carrier from the business number.
    let csrf = hidden(&thread.body, "csrf");
    let sent = browser
        .post(
            &format!("{thread_path}/reply"),
            &[("csrf", &csrf), ("body", "Yes! Mike can be there at 3pm.")],
        )
        .await;
    assert_eq!(sent.status, 303);
    app.drain().await;
    let to_caller: Vec<_> = fake.sent().into_iter().filter(|m| m.to == CALLER).collect();
    assert_eq!(to_caller.len(), 2, "the text back and the reply");
    assert_eq!(to_caller[1].body, "Yes! Mike can be there at 3pm.");
    assert_eq!(to_caller[1].from, BUSINESS_NUMBER);
    let after = browser.get(sent.location.as_deref().unwrap()).await;
    assert!(after.body.contains("Sent."));
    assert!(after.body.contains("Yes! Mike can be there at 3pm."));

    // An empty reply is refused with a reason, and nothing is sent.
    let empty = browser
        .post(
            &format!("{thread_path}/reply"),
            &[("csrf", &csrf), ("body", "  ")],
        )
        .await;
    assert_eq!(empty.status, 422);
    assert!(empty.body.contains("Not sent: the message is empty."));

    // The live segment count, as the carrier will bill it.
    let count = browser
        .http
        .post(format!("{}/ui/segments", browser.base))
        .header(
            "cookie",
            format!("textback_session={}", browser.cookies["textback_session"]),
        )
        .body("Thanks! 👍")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        count.starts_with("9 characters · 1 segment (UCS-2"),
        "{count}"
    );

    // Once they opt out, the thread says so and offers no reply box.
    customer_texts(&app, "STOP").await;
    let stopped = browser.get(&thread_path).await;
    assert!(stopped.body.contains("This contact opted out of texts."));
    assert!(!stopped.body.contains("action=\"/inbox/"));
    let refused = browser
        .post(
            &format!("{thread_path}/reply"),
            &[("csrf", &csrf), ("body", "Still there?")],
        )
        .await;
    assert_eq!(refused.status, 409);
    app.drain().await;
    assert!(!fake.sent().iter().any(|m| m.body == "Still there?"));

    // "Done" on the callback task from Today.
    let today = browser.get("/").await;
    assert!(today.body.contains("Callbacks to make (1)"));
    let action = done_action(&today.body);
    let forged = browser.post(&action, &[]).await;
    assert_eq!(forged.status, 403);
    let done = browser.post(&action, &[("csrf", &csrf)]).await;
    assert_eq!((done.status, done.location.as_deref()), (303, Some("/")));
    assert!(
        browser
            .get("/")
            .await
            .body
            .contains("Callbacks to make (0)")
    );

    // Someone from another account gets "not found" for this thread and task.
    let mut stranger = stranger(&app, &account).await;
    assert_eq!(stranger.get(&thread_path).await.status, 404);
    assert_eq!(
        stranger
            .get(&format!("{thread_path}/messages"))
            .await
            .status,
        404
    );
    assert_eq!(
        stranger.get(&format!("{thread_path}/events")).await.status,
        404
    );
    let their_csrf = hidden(&stranger.get("/").await.body, "csrf");
    assert_eq!(
        stranger
            .post(&action, &[("csrf", &their_csrf)])
            .await
            .status,
        404
    );
    assert!(!stranger.get("/inbox").await.body.contains(CALLER));

    // An open live-update stream does not hold up a shutdown.
    let stream = browser
        .http
        .get(format!("{}{thread_path}/events", browser.base))
        .header(
            "cookie",
            format!("textback_session={}", browser.cookies["textback_session"]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        stream.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    tokio::time::timeout(std::time::Duration::from_secs(10), app.stop())
        .await
        .expect("the server stops with an event stream open");
    drop(stream);
    fake.stop();
}

async fn first_run_setup_creates_the_business_and_signs_the_owner_in(url: &str) {
    let fake = FakeTwilio::start().await;
    let app = TestApp::start(
        url,
        TestAppOptions {
            twilio: Some(fake.clone()),
            manual_clock: true,
            ..Default::default()
        },
    )
    .await;
    let mut browser = Browser::new(&app);
    let without = browser.get("/setup").await;
    assert_eq!(without.status, 403);
    assert!(without.body.contains("textback setup-link"));
    let token = textback_server::web::setup::setup_token(&app.store)
        .await
        .unwrap()
        .expect("a token before anyone can sign in");
    let form = browser.get(&format!("/setup?token={token}")).await;
    assert_eq!(form.status, 200);
    assert!(form.body.contains("Set up Textback"));

    let message = "Hi {{contact.first_name | default(\"there\")}}, it's {{business.name}}. Sorry we missed you! Reply here and we'll help.";
    let mut fields = vec![
        ("token", token.as_str()),
        ("name", "Pat Owner"),
        ("email", "pat@acme.example"),
        ("password", "short"),
        ("business", "Acme Plumbing & Heating"),
        ("time_zone", "America/Chicgo"),
        ("hours", "08:00-17:00"),
        ("number", "not a number"),
        ("ring", TEAM_PHONE),
        ("message", message),
    ];
    // Every problem at once, each named; nothing is written.
    let bad = browser.post("/setup", &fields).await;
    assert_eq!(bad.status, 422);
    for expected in [
        "Nothing was saved",
        "Time zone",
        "The number customers call",
        "Password",
    ] {
        assert!(bad.body.contains(expected), "{expected}: {}", bad.body);
    }
    assert!(
        bad.body.contains("value=\"Acme Plumbing &amp; Heating\""),
        "the form keeps what was typed"
    );
    assert!(
        !bad.body.contains("short"),
        "the password is not echoed back"
    );
    assert_eq!(app.store.user_count().await.unwrap(), 0);
    assert!(
        app.store
            .account_by_slug("acme-plumbing-heating")
            .await
            .unwrap()
            .is_none()
    );

    fields[3].1 = PASSWORD;
    fields[5].1 = "America/Chicago";
    fields[7].1 = "(512) 555-0100";
    let ok = browser.post("/setup", &fields).await;
    assert_eq!(
        (ok.status, ok.location.as_deref()),
        (303, Some("/?welcome=1")),
        "{}",
        ok.body
    );
    let home = browser.get("/?welcome=1").await;
    assert_eq!(home.status, 200);
    assert!(
        home.body
            .contains(">Pat Owner</a> · Acme Plumbing &amp; Heating")
    );

    // The business is live: a missed call on its number is texted back with its message.
    app.missed_call(CALLER, "no-answer").await;
    app.drain().await;
    let sent = fake.sent();
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(
        sent[0].body,
        "Hi there, it's Acme Plumbing & Heating. Sorry we missed you! Reply here and we'll help."
    );

    // Setup is closed once someone can sign in, even with the old link.
    assert_eq!(
        browser
            .get(&format!("/setup?token={token}"))
            .await
            .location
            .as_deref(),
        Some("/login")
    );
    let again = Browser::new(&app).post("/setup", &fields).await;
    assert_eq!(again.location.as_deref(), Some("/login"));
    assert_eq!(app.store.user_count().await.unwrap(), 1);

    // The live linter's verdict on a draft: for signed-in people once setup is done.
    let lint_request = || {
        browser
            .http
            .post(format!("{}/ui/lint?business=Acme", browser.base))
            .body("Hey {{contact.first_name}}, call us")
    };
    let anonymous = lint_request().send().await.unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    let lint = lint_request()
        .header(
            "cookie",
            format!("textback_session={}", browser.cookies["textback_session"]),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        lint.contains("lint-error") || lint.contains("lint-warning"),
        "{lint}"
    );

    app.stop().await;
    fake.stop();
}

async fn tasks_mine_all_overdue_assign_and_done(url: &str) {
    let (app, fake, account) = start(url).await;
    add_user(&app, account.id, "owner@example.com", "Pat Owner").await;
    add_member(&app, account.id, "mike@example.com", "Mike Tech").await;
    app.missed_call(CALLER, "no-answer").await;
    app.drain().await;

    let mut owner = Browser::new(&app);
    owner.sign_in("owner@example.com", PASSWORD).await;
    let all = owner.get("/tasks").await;
    assert_eq!(all.status, 200);
    assert!(
        all.body.contains(&format!("Call back {CALLER}")),
        "{}",
        all.body
    );
    assert!(all.body.contains("Unassigned"));
    assert!(
        owner
            .get("/tasks?show=mine")
            .await
            .body
            .contains("Nothing assigned to you.")
    );
    assert!(
        owner
            .get("/tasks?show=overdue")
            .await
            .body
            .contains("Nothing overdue.")
    );

    let complete = done_action(&all.body);
    let assign = complete.replace("/complete", "/assign");
    let csrf = hidden(&all.body, "csrf");
    // Give it to Mike: it is his, not the owner's.
    let given = owner
        .post(
            &assign,
            &[
                ("csrf", &csrf),
                ("assignee", "MIKE@example.com"),
                ("back", "/tasks?show=all"),
            ],
        )
        .await;
    assert_eq!(
        (given.status, given.location.as_deref()),
        (303, Some("/tasks?show=all"))
    );
    assert!(owner.get("/tasks").await.body.contains("Mike Tech"));
    assert!(
        owner
            .get("/tasks?show=mine")
            .await
            .body
            .contains("Nothing assigned to you.")
    );
    let mut mike = Browser::new(&app);
    mike.sign_in("mike@example.com", PASSWORD).await;
    assert!(
        mike.get("/tasks?show=mine")
            .await
            .body
            .contains(&format!("Call back {CALLER}"))
    );

    // Only the account's own team, and redirects stay on this site.
    let stranger = owner
        .post(
            &assign,
            &[("csrf", &csrf), ("assignee", "someone@elsewhere.example")],
        )
        .await;
    assert_eq!(stranger.status, 404);
    assert!(
        owner.get("/tasks").await.body.contains("Mike Tech"),
        "unchanged"
    );
    let bounced = owner
        .post(
            &assign,
            &[
                ("csrf", &csrf),
                ("assignee", ""),
                ("back", "//evil.example/"),
            ],
        )
        .await;
    assert_eq!(bounced.location.as_deref(), Some("/"));
    assert!(owner.get("/tasks").await.body.contains("Unassigned"));

    // Past its due time it is overdue; Done takes it off every list.
    app.advance(std::time::Duration::from_secs(24 * 3600));
    let overdue = owner.get("/tasks?show=overdue").await;
    assert!(overdue.body.contains("Overdue since"), "{}", overdue.body);
    let done = owner
        .post(
            &complete,
            &[("csrf", &csrf), ("back", "/tasks?show=overdue")],
        )
        .await;
    assert_eq!(done.location.as_deref(), Some("/tasks?show=overdue"));
    assert!(
        owner
            .get("/tasks")
            .await
            .body
            .contains("Nothing to call back.")
    );
    let again = owner
        .post(&assign, &[("csrf", &csrf), ("assignee", "")])
        .await;
    assert_eq!(again.status, 404, "a done task cannot be reassigned");

    app.stop().await;
    fake.stop();
}

async fn contacts_search_consent_history_and_smart_lists(url: &str) {
    let (app, fake, account) = start(url).await;
    add_user(&app, account.id, "owner@example.com", "Pat Owner").await;
    let key = app.api_key(account.id).await;
    let (status, _) = app
        .api_text(
            "POST",
            "/api/v1/contacts/import",
            &key,
            "phone,first_name,last_name,tags\n+15125550177,Ana,Lopez,VIP\n",
            "text/csv",
        )
        .await;
    assert_eq!(status, 200);
    app.missed_call(CALLER, "no-answer").await;
    app.drain().await;

    let mut browser = Browser::new(&app);
    browser.sign_in("owner@example.com", PASSWORD).await;
    let all = browser.get("/contacts").await;
    assert!(all.body.contains("Ana Lopez") && all.body.contains(CALLER));
    let ana = browser.get("/contacts?q=aNa").await;
    assert!(
        ana.body.contains("Ana Lopez") && !ana.body.contains(CALLER),
        "{}",
        ana.body
    );
    let by_digits = browser.get("/contacts?q=555-0123").await;
    assert!(by_digits.body.contains(CALLER) && !by_digits.body.contains("Ana Lopez"));
    let wildcard = browser.get("/contacts?q=%25").await;
    assert!(
        wildcard.body.contains("No contacts match."),
        "a % is a character, not a wildcard"
    );

    // A smart list: "Missed Call, not replied, last 7 days".
    let csrf = hidden(&all.body, "csrf");
    let bad = browser
        .post(
            "/smart-lists",
            &[("csrf", &csrf), ("name", "Recent"), ("within", "a week")],
        )
        .await;
    assert_eq!(bad.status, 422);
    assert!(bad.body.contains("Last call within"), "{}", bad.body);
    let saved = browser
        .post(
            "/smart-lists",
            &[
                ("csrf", &csrf),
                ("name", "Missed Call, not replied, last 7 days"),
                ("tag", "Missed Call"),
                ("replied", "no"),
                ("within", "7d"),
            ],
        )
        .await;
    assert_eq!(saved.status, 303);
    let list_path = saved.location.clone().unwrap();
    let members = browser.get(&list_path).await;
    assert!(
        members
            .body
            .contains("Missed Call, not replied, last 7 days")
    );
    assert!(
        members.body.contains(CALLER) && !members.body.contains("Ana Lopez"),
        "{}",
        members.body
    );

    // They text STOP: the list drops them (they replied) and their page shows the evidence.
    customer_texts(&app, "STOP").await;
    assert!(
        !browser
            .get(&list_path)
            .await
            .body
            .contains(&format!("</strong> {CALLER}"))
    );
    let at = by_digits.body.find("href=\"/contacts/").unwrap() + 6;
    let contact_path = by_digits.body[at..].split('"').next().unwrap().to_owned();
    let page = browser.get(&contact_path).await;
    assert!(page.body.contains("Opted out of texts."), "{}", page.body);
    assert!(page.body.contains("Consent history"));
    assert!(page.body.contains("“STOP”"), "{}", page.body);

    // Another account sees neither the contact nor the list.
    let mut stranger = stranger(&app, &account).await;
    assert_eq!(stranger.get(&contact_path).await.status, 404);
    assert_eq!(stranger.get(&list_path).await.status, 404);
    assert!(!stranger.get("/contacts").await.body.contains("Ana Lopez"));

    app.stop().await;
    fake.stop();
}

async fn reports_chart_and_csv(url: &str) {
    let (app, fake, account) = start(url).await;
    add_user(&app, account.id, "owner@example.com", "Pat Owner").await;
    app.missed_call(CALLER, "no-answer").await;
    app.drain().await;
    app.advance(std::time::Duration::from_secs(90));
    customer_texts(&app, "Yes please call me").await;

    let mut browser = Browser::new(&app);
    browser.sign_in("owner@example.com", PASSWORD).await;
    let page = browser.get("/reports?days=30").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("aria-current=\"page\">Last 30 days"));
    assert!(page.body.contains("<svg role=\"img\""));
    assert!(page.body.contains(": 1 missed</title>"), "{}", page.body);
    assert!(page.body.contains(": 1 replied</title>"), "{}", page.body);
    assert!(
        page.body
            .contains("<strong>1</strong> Replied <small>(100% of missed)</small>")
    );

    let resp = browser
        .http
        .get(format!("{}/reports.csv?days=7", browser.base))
        .header(
            "cookie",
            format!("textback_session={}", browser.cookies["textback_session"]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(
        resp.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("textback-acme-plumbing-7-days.csv")
    );
    let csv = resp.text().await.unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("date,calls,missed,texted,delivered,replied,called_back")
    );
    let day: Vec<&str> = lines.next().expect("today's row").split(',').collect();
    assert_eq!(&day[1..], ["1", "1", "1", "0", "1", "0"], "{csv}");

    // Signed out, the CSV is not handed out.
    let anonymous = Browser::new(&app).get("/reports.csv").await;
    assert_eq!(
        (anonymous.status, anonymous.location.as_deref()),
        (303, Some("/login"))
    );

    app.stop().await;
    fake.stop();
}

async fn settings_for_owners_checked_and_applied(url: &str) {
    let (app, fake, account) = start(url).await;
    add_user(&app, account.id, "owner@example.com", "Pat Owner").await;
    add_member(&app, account.id, "mike@example.com", "Mike Tech").await;

    let mut mike = Browser::new(&app);
    mike.sign_in("mike@example.com", PASSWORD).await;
    assert!(!mike.get("/").await.body.contains("href=\"/settings\""));
    let refused = mike.get("/settings").await;
    assert_eq!(refused.status, 403);
    assert!(refused.body.contains("only an owner"));

    let mut owner = Browser::new(&app);
    owner.sign_in("owner@example.com", PASSWORD).await;
    let page = owner.get("/settings").await;
    assert_eq!(page.status, 200);
    assert!(
        page.body
            .contains("It is Mon 9:00 AM in America&#x2f;Chicago: open now."),
        "{}",
        page.body
    );
    assert!(page.body.contains("(1 number)") && page.body.contains("(2 people)"));
    let csrf = hidden(&page.body, "csrf");
    let good_message = "Hi {{contact.first_name | default(\"there\")}}, Acme here. Sorry we missed you! Reply and we'll help.";
    let mut fields = vec![
        ("csrf", csrf.as_str()),
        ("name", "Acme Plumbing"),
        ("booking_link", ""),
        ("time_zone", "America/Chicago"),
        ("hours_mon", "09:00-17:00"),
        ("hours_tue", "09:00-17:00"),
        ("hours_sat", ""),
        ("quiet_hours", "21:00-08:00"),
        ("cooldown", "30m"),
        ("message", "Hey {{contact.first_name}}, sorry we missed you"),
        ("do_not_text", "(512) 555-0150\n"),
        ("text_back_enabled", "on"),
    ];
    // The "Hey ," mistake is refused, with the field named, and nothing changes.
    let bad = owner.post("/settings", &fields).await;
    assert_eq!(bad.status, 422);
    assert!(
        bad.body.contains("Nothing was saved: Text back message"),
        "{}",
        bad.body
    );
    let unchanged = app.store.account_by_id(account.id).await.unwrap().unwrap();
    assert_eq!(unchanged.text_back_template, account.text_back_template);
    assert_eq!(unchanged.cooldown_secs, account.cooldown_secs);

    fields[9].1 = good_message;
    let ok = owner.post("/settings", &fields).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(ok.body.contains("Saved."));
    let saved = app.store.account_by_id(account.id).await.unwrap().unwrap();
    assert_eq!(saved.text_back_template, good_message);
    assert_eq!(saved.cooldown_secs, 1800);
    assert_eq!(saved.do_not_text, vec!["+15125550150".to_owned()]);
    assert!(saved.text_back_enabled);
    assert_eq!(
        saved.business_hours.get("mon").map(String::as_str),
        Some("09:00-17:00")
    );
    assert!(
        saved
            .business_hours
            .get("wed")
            .is_none_or(|v| v == "closed")
    );

    // The doctor's checks as a page, for owners.
    let doctor = owner.get("/doctor").await;
    assert_eq!(doctor.status, 200);
    assert!(doctor.body.contains("<title>Doctor · Textback</title>"));
    assert!(
        doctor.body.contains("<strong>PASS</strong>"),
        "{}",
        doctor.body
    );
    assert_eq!(mike.get("/doctor").await.status, 403);

    // The do-not-text list is in force at once.
    app.missed_call("+15125550150", "no-answer").await;
    app.drain().await;
    assert!(!fake.sent().iter().any(|m| m.to == "+15125550150"));

    app.stop().await;
    fake.stop();
}

async fn a_test_call_shows_the_text_the_task_and_the_tag(url: &str) {
    let (app, fake, account) = start(url).await;
    add_user(&app, account.id, "owner@example.com", "Pat Owner").await;
    let mut browser = Browser::new(&app);
    browser.sign_in("owner@example.com", PASSWORD).await;
    let today = browser.get("/").await;
    assert!(today.body.contains("Send a test call"));
    let csrf = hidden(&today.body, "csrf");
    assert_eq!(browser.post("/test-call", &[]).await.status, 403);

    let started = browser.post("/test-call", &[("csrf", &csrf)]).await;
    assert_eq!(started.status, 303, "{}", started.body);
    let page_path = started.location.clone().unwrap();
    assert!(page_path.starts_with("/test-call/CA"));
    app.drain().await;
    let page = browser.get(&page_path).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Texted back"), "{}", page.body);
    assert!(page.body.contains("Sorry we missed your call"));
    assert!(page.body.contains("Call back +12025550100"));
    assert!(page.body.contains("Missed Call"));
    assert!(
        !page.body.contains("http-equiv=\"refresh\""),
        "done: no more refreshing"
    );
    // The fictional caller's text stayed in the sandbox although Twilio is configured.
    assert!(
        fake.sent()
            .iter()
            .all(|m| m.to != textback_server::web::TEST_CALLER)
    );
    assert!(browser.get("/inbox").await.body.contains("+12025550100"));

    // A second test call right away is not texted again: the cooldown.
    let again = browser.post("/test-call", &[("csrf", &csrf)]).await;
    app.drain().await;
    let second = browser.get(again.location.as_deref().unwrap()).await;
    assert!(
        second
            .body
            .contains("Not texted: this caller was already texted back"),
        "{}",
        second.body
    );

    // Test calls are real calls, but the business's reports leave them out.
    let csv = browser.get("/reports.csv?days=7").await.body;
    let missed: u64 = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(2).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(missed, 0, "{csv}");

    // Another account cannot look at it.
    let mut stranger = stranger(&app, &account).await;
    assert_eq!(stranger.get(&page_path).await.status, 404);

    app.stop().await;
    fake.stop();
}

async fn automations_listed_and_switched_by_owners(url: &str) {
    let (app, fake, account) = start(url).await;
    add_user(&app, account.id, "owner@example.com", "Pat Owner").await;
    add_member(&app, account.id, "mike@example.com", "Mike Tech").await;
    let mut owner = Browser::new(&app);
    owner.sign_in("owner@example.com", PASSWORD).await;
    let page = owner.get("/workflows").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<title>Automations · Textback</title>"));
    assert!(
        page.body
            .contains("Send a text → create a callback task → tag “Missed Call” → wait 30m"),
        "{}",
        page.body
    );
    let csrf = hidden(&page.body, "csrf");
    let recommended = app
        .store
        .workflows_of_account(account.id)
        .await
        .unwrap()
        .into_iter()
        .find(|w| !w.builtin)
        .unwrap();
    assert!(recommended.active);

    // A member sees them but cannot switch them.
    let mut mike = Browser::new(&app);
    mike.sign_in("mike@example.com", PASSWORD).await;
    let theirs = mike.get("/workflows").await;
    assert!(!theirs.body.contains("Turn off"));
    let mike_csrf = hidden(&theirs.body, "csrf");
    let path = format!("/workflows/{}/deactivate", recommended.id);
    assert_eq!(mike.post(&path, &[("csrf", &mike_csrf)]).await.status, 403);

    // Off: a missed call is no longer texted by it (and nothing else is on).
    let off = owner.post(&path, &[("csrf", &csrf)]).await;
    assert_eq!(off.location.as_deref(), Some("/workflows"));
    assert!(owner.get("/workflows").await.body.contains("Off · version"));
    app.missed_call(CALLER, "no-answer").await;
    app.drain().await;
    assert!(fake.sent().is_empty(), "{:#?}", fake.sent());

    // The built-in text back switched on here is the account's setting too.
    let builtin = app
        .store
        .workflows_of_account(account.id)
        .await
        .unwrap()
        .into_iter()
        .find(|w| w.builtin)
        .unwrap();
    let on = owner
        .post(
            &format!("/workflows/{}/activate", builtin.id),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(on.status, 303);
    assert!(
        app.store
            .account_by_id(account.id)
            .await
            .unwrap()
            .unwrap()
            .text_back_enabled
    );

    // Another account's owner: not found, and nothing changes.
    let mut stranger = stranger(&app, &account).await;
    let their_csrf = hidden(&stranger.get("/").await.body, "csrf");
    let on = format!("/workflows/{}/activate", recommended.id);
    assert_eq!(
        stranger.post(&on, &[("csrf", &their_csrf)]).await.status,
        404
    );
    assert!(owner.get("/workflows").await.body.contains("Off · version"));

    app.stop().await;
    fake.stop();
}

async fn workflow_builder_edits_checks_saves_and_keeps_versions(url: &str) {
    let (app, fake, account) = start(url).await;
    add_user(&app, account.id, "owner@example.com", "Pat Owner").await;
    add_member(&app, account.id, "mike@example.com", "Mike Tech").await;
    let mut owner = Browser::new(&app);
    owner.sign_in("owner@example.com", PASSWORD).await;
    let workflows_before = app.store.workflows_of_account(account.id).await.unwrap();

    // A new workflow starts from the recommended one, branch and all.
    let page = owner.get("/workflows/new").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<title>New workflow · Textback</title>"));
    assert!(
        page.body.contains("Step 5 › yes › 1 · End the run"),
        "{}",
        page.body
    );
    let mut form = form_fields(&page.body, "/workflows/new");
    set(&mut form, "name", "After hours");
    set(&mut form, "trigger/business_hours", "closed");

    // Adding a team text to the "otherwise" branch redraws the draft; nothing is saved.
    set(&mut form, "add/5.else.", "notify_team");
    let page = press(&mut owner, "/workflows/new", &form, "add:5.else.").await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("Step 5 › otherwise › 2 · Text the team"),
        "{}",
        page.body
    );
    assert_eq!(
        app.store.workflows_of_account(account.id).await.unwrap(),
        workflows_before
    );

    // A bad phone on that step is refused, pointing at the step; still nothing saved.
    let mut form = form_fields(&page.body, "/workflows/new");
    set(&mut form, "5.else.2/to", "not a phone");
    let page = press(&mut owner, "/workflows/new", &form, "save").await;
    assert_eq!(page.status, 422);
    assert!(
        page.body.contains("Not saved: step 5.else.2 (notify_team)"),
        "{}",
        page.body
    );
    assert_eq!(
        app.store.workflows_of_account(account.id).await.unwrap(),
        workflows_before
    );

    // "Hey {{contact.first_name}}," could text "Hey ,": the linter refuses it.
    let mut form = form_fields(&page.body, "/workflows/new");
    set(&mut form, "5.else.2/to", "");
    set(
        &mut form,
        "1/message",
        "Hey {{contact.first_name}}, sorry we missed you at {{business.name}}.",
    );
    let page = press(&mut owner, "/workflows/new", &form, "save").await;
    assert_eq!(page.status, 422);
    assert!(page.body.contains("Not saved: Step 1"), "{}", page.body);

    // Two variants of the text back, then saved.
    let mut form = form_fields(&page.body, "/workflows/new");
    set(
        &mut form,
        "1/message",
        "Sorry we missed you! {{business.name}} will call you back shortly.",
    );
    let page = press(&mut owner, "/workflows/new", &form, "add_variant:1").await;
    let mut form = form_fields(&page.body, "/workflows/new");
    assert!(
        form.iter()
            .any(|(k, v)| k == "1/v1/message" && v.starts_with("Sorry we missed you!"))
    );
    set(
        &mut form,
        "1/v2/message",
        "{{business.name}} here: we missed your call and will ring you back soon.",
    );
    set(&mut form, "1/v2/name", "Short");
    let saved = press(&mut owner, "/workflows/new", &form, "save").await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let created = app
        .store
        .workflows_of_account(account.id)
        .await
        .unwrap()
        .into_iter()
        .find(|w| w.name == "After hours")
        .expect("saved");
    assert_eq!(saved.location, Some(format!("/workflows/{}", created.id)));
    assert!(created.active);
    let spec: WorkflowSpec = serde_json::from_str(&created.spec).unwrap();
    let textback_core::workflow::StepSpec::SendSms { variants, .. } = &spec.steps[0] else {
        panic!("step 1 texts")
    };
    assert_eq!(variants.len(), 2);
    assert_eq!(variants[1].name.as_deref(), Some("Short"));
    assert!(matches!(
        &spec.trigger,
        textback_core::workflow::TriggerSpec::MissedCall { business_hours: Some(h), .. } if h == "closed"
    ));

    // Changing it: move the tag before the task; a second version, by whom and when.
    let edit = format!("/workflows/{}/edit", created.id);
    let page = owner.get(&edit).await;
    let form = form_fields(&page.body, &edit);
    let page = press(&mut owner, &edit, &form, "down:2").await;
    assert!(page.body.contains("Step 2 · Add a tag"), "{}", page.body);
    let form = form_fields(&page.body, &edit);
    assert_eq!(press(&mut owner, &edit, &form, "save").await.status, 303);
    let detail = owner.get(&format!("/workflows/{}", created.id)).await;
    assert!(
        detail
            .body
            .contains("Version 2</strong> <span class=\"badge\">current</span>"),
        "{}",
        detail.body
    );
    assert!(
        detail
            .body
            .contains("Send a text → tag “Missed Call” → create a callback task")
    );
    assert!(detail.body.contains("by owner@example.com"));
    let versions = app.store.workflow_versions(created.id).await.unwrap();
    assert_eq!(versions.len(), 2);

    // Restoring version 1 makes it current again, as version 3.
    let csrf = hidden(&detail.body, "csrf");
    let restore = format!("/workflows/{}/versions/1/restore", created.id);
    assert_eq!(owner.post(&restore, &[("csrf", &csrf)]).await.status, 303);
    let versions = app.store.workflow_versions(created.id).await.unwrap();
    assert_eq!(versions[0].version, 3);
    assert_eq!(versions[0].spec, versions[2].spec);

    // Members see it but cannot build or change; another account cannot even see it.
    let mut mike = Browser::new(&app);
    mike.sign_in("mike@example.com", PASSWORD).await;
    assert_eq!(
        mike.get(&format!("/workflows/{}", created.id)).await.status,
        200
    );
    assert_eq!(mike.get("/workflows/new").await.status, 403);
    assert_eq!(mike.get(&edit).await.status, 403);
    let mut stranger = stranger(&app, &account).await;
    assert_eq!(
        stranger
            .get(&format!("/workflows/{}", created.id))
            .await
            .status,
        404
    );
    let their_csrf = hidden(&stranger.get("/").await.body, "csrf");
    assert_eq!(
        stranger
            .post(&restore, &[("csrf", &their_csrf)])
            .await
            .status,
        404
    );
    assert_eq!(
        app.store.workflow_versions(created.id).await.unwrap().len(),
        3
    );

    app.stop().await;
    fake.stop();
}

async fn numbers_ring_the_phones_the_owner_sets(url: &str) {
    let (app, fake, account) = start(url).await;
    add_user(&app, account.id, "owner@example.com", "Pat Owner").await;
    let mut owner = Browser::new(&app);
    owner.sign_in("owner@example.com", PASSWORD).await;
    let page = owner.get("/settings/numbers").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<title>Numbers · Textback</title>"));
    assert!(page.body.contains(BUSINESS_NUMBER));
    let number = app
        .store
        .number_by_e164(BUSINESS_NUMBER)
        .await
        .unwrap()
        .unwrap();
    let action = format!("/settings/numbers/{}", number.id);
    let csrf = hidden(&page.body, "csrf");

    // A typo in a team phone is refused, saying which, and changes nothing.
    let bad = owner
        .post(
            &action,
            &[
                ("csrf", &csrf),
                ("ring_to", "+15125550111\n555-CALL-ME"),
                ("ring_seconds", "30"),
            ],
        )
        .await;
    assert_eq!(bad.status, 422);
    assert!(
        bad.body.contains("Not saved: team phone 2:"),
        "{}",
        bad.body
    );
    assert!(
        bad.body.contains("555-CALL-ME"),
        "what was typed stays in the box"
    );
    let short = owner
        .post(
            &action,
            &[
                ("csrf", &csrf),
                ("ring_to", "+15125550111"),
                ("ring_seconds", "2"),
            ],
        )
        .await;
    assert_eq!(short.status, 422);
    assert!(short.body.contains("ring time must be between 5s and 600s"));
    assert_eq!(
        app.store
            .number_by_e164(BUSINESS_NUMBER)
            .await
            .unwrap()
            .unwrap(),
        number
    );

    let saved = owner
        .post(
            &action,
            &[
                ("csrf", &csrf),
                ("ring_to", "+1 512 555 0111\n+15125550112"),
                ("ring_seconds", "30"),
                ("call_screening", "on"),
            ],
        )
        .await;
    assert_eq!(saved.status, 200, "{}", saved.body);
    assert!(saved.body.contains(&format!("Saved {BUSINESS_NUMBER}.")));
    let now = app
        .store
        .number_by_e164(BUSINESS_NUMBER)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(now.ring_to, vec!["+15125550111", "+15125550112"]);
    assert_eq!(now.ring_seconds, 30);
    assert!(now.call_screening);

    // The next call rings the new phones for the new time.
    let (status, twiml) = app
        .ring(
            "CA00000000000000000000000000000001",
            CALLER,
            BUSINESS_NUMBER,
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        twiml.contains("+15125550111") && twiml.contains("+15125550112"),
        "{twiml}"
    );
    assert!(twiml.contains("timeout=\"30\""), "{twiml}");
    assert!(!twiml.contains(TEAM_PHONE), "{twiml}");

    // Another account's owner cannot touch it.
    let mut stranger = stranger(&app, &account).await;
    let their_csrf = hidden(&stranger.get("/").await.body, "csrf");
    let theirs = stranger
        .post(
            &action,
            &[
                ("csrf", &their_csrf),
                ("ring_to", "+15125550999"),
                ("ring_seconds", "10"),
            ],
        )
        .await;
    assert_eq!(theirs.status, 404);
    assert_eq!(
        app.store
            .number_by_e164(BUSINESS_NUMBER)
            .await
            .unwrap()
            .unwrap(),
        now
    );

    app.stop().await;
    fake.stop();
}

async fn team_keys_and_webhooks_managed_by_owners(url: &str) {
    let (app, fake, account) = start(url).await;
    add_user(&app, account.id, "owner@example.com", "Pat Owner").await;
    let mut owner = Browser::new(&app);
    owner.sign_in("owner@example.com", PASSWORD).await;
    let page = owner.get("/settings/team").await;
    assert_eq!(page.status, 200);
    assert!(
        page.body
            .contains("<title>Team and access · Textback</title>")
    );
    let csrf = hidden(&page.body, "csrf");

    // Adding a member: a short password and a taken email are refused.
    let member = |password: &'static str, email: &'static str| {
        [
            ("name", "Mike Tech"),
            ("email", email),
            ("role", "member"),
            ("password", password),
        ]
    };
    let with_csrf = |fields: [(&'static str, &'static str); 4]| {
        let mut v: Vec<(&str, &str)> = fields.to_vec();
        v.push(("csrf", csrf.as_str()));
        v
    };
    let short = owner
        .post(
            "/settings/team",
            &with_csrf(member("short", "Mike@Example.com")),
        )
        .await;
    assert_eq!(short.status, 422);
    assert!(
        short.body.contains("at least 10 characters"),
        "{}",
        short.body
    );
    let taken = owner
        .post(
            "/settings/team",
            &with_csrf(member(PASSWORD, "owner@example.com")),
        )
        .await;
    assert!(
        taken.body.contains("owner@example.com already signs in"),
        "{}",
        taken.body
    );
    let added = owner
        .post(
            "/settings/team",
            &with_csrf(member(PASSWORD, "Mike@Example.com")),
        )
        .await;
    assert_eq!(added.status, 200);
    assert!(
        added
            .body
            .contains("Mike Tech can sign in now as mike@example.com"),
        "{}",
        added.body
    );
    let mut mike = Browser::new(&app);
    assert_eq!(mike.sign_in("mike@example.com", PASSWORD).await.status, 303);
    assert_eq!(mike.get("/").await.status, 200);
    assert_eq!(
        mike.get("/settings/team").await.status,
        403,
        "members cannot manage the team"
    );

    // The last owner cannot stop being one.
    let users = app.store.users_of_account(account.id).await.unwrap();
    let pat = users
        .iter()
        .find(|u| u.email == "owner@example.com")
        .unwrap()
        .id;
    let mike_id = users
        .iter()
        .find(|u| u.email == "mike@example.com")
        .unwrap()
        .id;
    let demote = owner
        .post(
            &format!("/settings/team/{pat}/role"),
            &[("csrf", &csrf), ("role", "member")],
        )
        .await;
    assert_eq!(demote.status, 422);
    assert!(demote.body.contains("at least one owner"));
    assert_eq!(
        app.store
            .user_by_email("owner@example.com")
            .await
            .unwrap()
            .unwrap()
            .role,
        Role::Owner
    );

    // Removing Mike signs him out at once.
    let removed = owner
        .post(
            &format!("/settings/team/{mike_id}/remove"),
            &[("csrf", &csrf)],
        )
        .await;
    assert!(
        removed.body.contains("can no longer sign in"),
        "{}",
        removed.body
    );
    assert_eq!(mike.get("/").await.status, 303);
    assert_eq!(
        mike.sign_in("mike@example.com", PASSWORD).await.status,
        401,
        "a removed member's password no longer works"
    );

    // An API key: shown once, works, and stops working when revoked.
    let created = owner
        .post(
            "/settings/api-keys",
            &[("csrf", &csrf), ("name", "Our CRM")],
        )
        .await;
    let key_start = created.body.find("tbk_").expect("the new key is shown");
    let key: String = created.body[key_start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    assert_eq!(
        app.api("GET", "/api/v1/contacts", Some(&key), None, &[])
            .await
            .0,
        200
    );
    assert!(
        !owner.get("/settings/team").await.body.contains(&key),
        "shown only once"
    );
    let keys = app.store.api_keys(account.id).await.unwrap();
    let revoke = format!("/settings/api-keys/{}/revoke", keys[0].id);
    assert!(
        owner
            .post(&revoke, &[("csrf", &csrf)])
            .await
            .body
            .contains("Key revoked")
    );
    assert_eq!(
        app.api("GET", "/api/v1/contacts", Some(&key), None, &[])
            .await
            .0,
        401
    );

    // A webhook subscription: events are required; then it is listed and removable.
    let none = owner
        .post(
            "/settings/webhooks",
            &[("csrf", &csrf), ("url", "https://crm.example.com/hook")],
        )
        .await;
    assert_eq!(none.status, 422);
    assert!(none.body.contains("subscribe to at least one event"));
    assert!(
        app.store
            .subscriptions(account.id)
            .await
            .unwrap()
            .is_empty()
    );
    let added = owner
        .post(
            "/settings/webhooks",
            &[
                ("csrf", &csrf),
                ("url", "https://crm.example.com/hook"),
                ("event", "call.missed"),
                ("event", "task.created"),
            ],
        )
        .await;
    assert!(
        added
            .body
            .contains("A call was missed; A callback task was created"),
        "{}",
        added.body
    );
    let subs = app.store.subscriptions(account.id).await.unwrap();
    assert_eq!(subs[0].events, vec!["call.missed", "task.created"]);

    // Another account's owner cannot remove it, nor revoke our keys.
    let mut stranger = stranger(&app, &account).await;
    let their_csrf = hidden(&stranger.get("/").await.body, "csrf");
    let path = format!("/settings/webhooks/{}/remove", subs[0].id);
    assert_eq!(
        stranger.post(&path, &[("csrf", &their_csrf)]).await.status,
        404
    );
    assert!(app.store.subscriptions(account.id).await.unwrap()[0].active);
    assert!(
        owner
            .post(&path, &[("csrf", &csrf)])
            .await
            .body
            .contains("Subscription removed")
    );
    assert!(!app.store.subscriptions(account.id).await.unwrap()[0].active);

    app.stop().await;
    fake.stop();
}

/// Regression: Today counted at most 100 callbacks, and "Mine" looked for the member's
/// tasks among the first 200 only.
async fn a_busy_day_says_how_many_and_mine_finds_mine(url: &str) {
    let (app, fake, account) = start(url).await;
    add_user(&app, account.id, "owner@example.com", "Pat Owner").await;
    let calls = 205;
    for i in 0..calls {
        app.missed_call(&textback_testkit::bench::caller(i), "no-answer")
            .await;
    }
    app.drain().await;
    let open = app
        .store
        .tasks(Some(&account.slug), textback_store::TaskFilter::Open, 1000)
        .await
        .unwrap();
    assert_eq!(open.len(), calls);
    let last = open.last().unwrap();
    app.store
        .assign_task(account.id, last.id, Some("owner@example.com"))
        .await
        .unwrap();

    let mut owner = Browser::new(&app);
    owner.sign_in("owner@example.com", PASSWORD).await;
    let today = owner.get("/").await.body;
    assert!(
        today.contains(&format!("Missed calls today ({calls})")),
        "{today}"
    );
    assert!(
        today.contains(&format!("Callbacks to make ({calls})")),
        "{today}"
    );
    assert!(today.contains(&format!("{} more on the Tasks page", calls - 50)));
    assert!(today.contains(&format!("{} more on the Calls page", calls - 50)));
    let mine = owner.get("/tasks?show=mine").await.body;
    assert!(mine.contains(&last.title), "{mine}");
    assert_eq!(mine.matches("<li class=\"card").count(), 1, "only mine");
    let all = owner.get("/tasks?show=all").await.body;
    assert!(
        all.contains(&format!("Showing the 200 due soonest of {calls}.")),
        "{all}"
    );

    app.stop().await;
    fake.stop();
}

async fn call_back_rings_the_team_and_the_answer_marks_the_task(url: &str) {
    let (app, fake, account) = start(url).await;
    add_user(&app, account.id, "owner@example.com", "Pat Owner").await;
    app.missed_call(CALLER, "no-answer").await;
    app.drain().await;
    let task = app
        .store
        .tasks(Some(&account.slug), textback_store::TaskFilter::Open, 10)
        .await
        .unwrap()
        .remove(0);

    let mut owner = Browser::new(&app);
    owner.sign_in("owner@example.com", PASSWORD).await;
    // The Calls page offers it on the missed call, as do Today and Tasks on the task.
    let action = format!("/tasks/{}/call-back", task.id);
    let form = format!("action=\"{action}\"");
    for page in ["/calls", "/", "/tasks?show=all"] {
        let body = owner.get(page).await.body;
        assert!(body.contains(&form), "{page}: {body}");
    }
    let calls = owner.get("/calls").await.body;
    let csrf = hidden(&calls, "csrf");
    let page = owner
        .post(&action, &[("csrf", &csrf), ("back", "/calls")])
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body
            .contains(&format!("Your phone ({TEAM_PHONE}) is ringing now")),
        "{}",
        page.body
    );
    let placed = fake.placed_calls();
    assert_eq!(placed.len(), 1);
    let (to, from, callback) = &placed[0];
    assert_eq!((to.as_str(), from.as_str()), (TEAM_PHONE, BUSINESS_NUMBER));
    assert!(callback.ends_with(&format!("/webhooks/twilio/voice/callback?task={}", task.id)));

    // The team member answers; Twilio dials the caller, who picks up: the task is done.
    let sid = textback_testkit::test_app::new_call_sid();
    let fields = [
        ("CallSid", sid.as_str()),
        ("From", BUSINESS_NUMBER),
        ("To", TEAM_PHONE),
    ];
    let (status, twiml) = app
        .post_signed(
            &format!("/webhooks/twilio/voice/callback?task={}", task.id),
            &fields,
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        twiml.contains(&format!("<Number>{CALLER}</Number>")),
        "{twiml}"
    );
    let mut answered = fields.to_vec();
    answered.push(("DialCallStatus", "completed"));
    let (status, _) = app
        .post_signed(
            &format!("/webhooks/twilio/voice/callback-status?task={}", task.id),
            &answered,
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        !owner.get("/calls").await.body.contains(&form),
        "no open task: no button"
    );
    assert!(owner.get("/").await.body.contains("Callbacks to make (0)"));

    // Another account cannot ring anyone over our task.
    let mut stranger = stranger(&app, &account).await;
    let their_csrf = hidden(&stranger.get("/").await.body, "csrf");
    assert_eq!(
        stranger
            .post(&action, &[("csrf", &their_csrf)])
            .await
            .status,
        404
    );
    assert_eq!(fake.placed_calls().len(), 1);

    app.stop().await;
    fake.stop();
}

async fn people_change_their_own_password(url: &str) {
    let (app, fake, account) = start(url).await;
    add_member(&app, account.id, "mike@example.com", "Mike Tech").await;
    let mut phone = Browser::new(&app);
    phone.sign_in("mike@example.com", PASSWORD).await;
    let mut laptop = Browser::new(&app);
    laptop.sign_in("mike@example.com", PASSWORD).await;

    let page = laptop.get("/password").await;
    assert_eq!(page.status, 200);
    assert!(
        page.body
            .contains("<title>Your password · Textback</title>")
    );
    let csrf = hidden(&page.body, "csrf");
    let new = "a-better-password-2026";
    let change = |current: &'static str, new: &'static str, again: &'static str| {
        [
            ("csrf", csrf.clone()),
            ("current", current.to_owned()),
            ("new", new.to_owned()),
            ("again", again.to_owned()),
        ]
    };
    let post = |form: [(&'static str, String); 4]| {
        form.iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect::<Vec<_>>()
    };
    for (form, why) in [
        (
            change("not-my-password", new, new),
            "current password is not right",
        ),
        (
            change(PASSWORD, new, "a-better-password-2025"),
            "two new passwords differ",
        ),
        (change(PASSWORD, "short", "short"), "at least 10 characters"),
    ] {
        let pairs = post(form);
        let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let refused = laptop.post("/password", &refs).await;
        assert_eq!(refused.status, 422);
        assert!(refused.body.contains(why), "{}", refused.body);
    }
    assert_eq!(phone.get("/").await.status, 200, "nothing changed yet");

    let pairs = post(change(PASSWORD, new, new));
    let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let changed = laptop.post("/password", &refs).await;
    assert_eq!(changed.status, 200);
    assert!(
        changed
            .body
            .contains("Every other browser signed in as you has been signed out")
    );
    assert_eq!(
        laptop.get("/").await.status,
        200,
        "this browser stays signed in"
    );
    assert_eq!(
        phone.get("/").await.status,
        303,
        "the other one is signed out"
    );
    let mut fresh = Browser::new(&app);
    assert_eq!(
        fresh.sign_in("mike@example.com", PASSWORD).await.status,
        401
    );
    assert_eq!(fresh.sign_in("mike@example.com", new).await.status, 303);

    app.stop().await;
    fake.stop();
}
