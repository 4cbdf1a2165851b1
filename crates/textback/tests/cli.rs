//! The `textback` binary as a newcomer uses it: apply the quick start, serve, simulate a
//! call, list what happened, stop with SIGTERM. Once on the sandbox carrier and once with
//! Twilio settings pointed at a local Twilio stand-in.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use textback_testkit::FakeTwilio;
use textback_testkit::fake_twilio::{ACCOUNT_SID, AUTH_TOKEN};

const BIN: &str = env!("CARGO_BIN_EXE_textback");

fn quickstart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/quickstart.toml")
}

struct Workdir(PathBuf);

impl Workdir {
    fn new() -> Workdir {
        let p = std::env::temp_dir().join(format!("textback-cli-{:016x}", fastrand::u64(..)));
        std::fs::create_dir_all(&p).unwrap();
        Workdir(p)
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn textback(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("TWILIO_ACCOUNT_SID")
        .env_remove("TWILIO_AUTH_TOKEN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run textback")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

struct Server(Child);

impl Server {
    async fn start(dir: &Path, env: &[(&str, &str)], port: u16) -> Server {
        let mut cmd = Command::new(BIN);
        cmd.current_dir(dir)
            .arg("serve")
            .env_remove("DATABASE_URL")
            .env("TEXTBACK_LISTEN", format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let server = Server(cmd.spawn().expect("spawn serve"));
        textback_carriers::twilio::client::install_crypto_provider();
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if let Ok(r) = client
                .get(format!("http://127.0.0.1:{port}/readyz"))
                .send()
                .await
                && r.status().is_success()
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("textback serve did not become ready");
    }

    /// SIGTERM, then the exit status and what it logged.
    fn terminate(mut self) -> (bool, String) {
        let pid = self.0.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        let out = std::mem::replace(&mut self.0, Command::new("true").spawn().unwrap())
            .wait_with_output()
            .expect("wait");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_start_on_the_sandbox() {
    let dir = Workdir::new();
    let qs = quickstart();
    let qs = qs.to_str().unwrap();
    let applied = textback(&dir.0, &[], &["apply", qs]);
    assert!(applied.status.success(), "{applied:?}");
    assert_eq!(
        stdout(&applied),
        "account acme-plumbing: created\nnumber +15125550100 (acme-plumbing): created\n\
         workflow \"Text back (built-in)\" (acme-plumbing): created (inactive)\n\
         workflow \"Missed call\" (acme-plumbing): created (active)\n"
    );
    assert!(
        dir.0.join("textback.db").exists(),
        "the default database is a file in the working directory"
    );
    let again = textback(&dir.0, &[], &["apply", qs]);
    assert!(stdout(&again).contains("account acme-plumbing: unchanged"));

    let port = free_port();
    let server = Server::start(&dir.0, &[], port).await;
    let listen = format!("127.0.0.1:{port}");
    let env = [("TEXTBACK_LISTEN", listen.as_str())];
    let missed = textback(
        &dir.0,
        &env,
        &[
            "simulate-call",
            "--from",
            "+15125550123",
            "--to",
            "+15125550100",
        ],
    );
    let out = stdout(&missed);
    assert!(missed.status.success(), "{missed:?}");
    assert!(out.contains("outcome: missed"), "{out}");
    assert!(out.contains("text back: sent"), "{out}");
    assert!(
        out.contains("text to +15125550123 from +15125550100 via sandbox [sandbox]: Hi there, it's Acme Plumbing."),
        "{out}"
    );
    let answered = textback(
        &dir.0,
        &env,
        &[
            "simulate-call",
            "--from",
            "+15125550124",
            "--to",
            "+15125550100",
            "--answered",
        ],
    );
    let out = stdout(&answered);
    assert!(
        out.contains("outcome: answered") && !out.contains("text to"),
        "{out}"
    );

    let calls = stdout(&textback(&dir.0, &[], &["calls"]));
    assert_eq!(calls.lines().count(), 2, "{calls}");
    assert!(calls.contains("missed  text back: sent"), "{calls}");
    let messages = stdout(&textback(&dir.0, &[], &["messages"]));
    assert_eq!(messages.lines().count(), 1, "{messages}");

    // The recommended workflow left a callback task and a run waiting for its follow-up.
    let tasks = stdout(&textback(&dir.0, &[], &["tasks"]));
    assert_eq!(tasks.lines().count(), 1, "{tasks}");
    assert!(tasks.contains("[open]  Call back +15125550123"), "{tasks}");
    let id = tasks.split_whitespace().next().unwrap().to_owned();
    let done = textback(&dir.0, &[], &["tasks", "done", &id]);
    assert!(done.status.success(), "{done:?}");
    assert!(stdout(&textback(&dir.0, &[], &["tasks"])).is_empty());
    assert!(
        !textback(&dir.0, &[], &["tasks", "done", &id])
            .status
            .success(),
        "done once"
    );
    let workflows = stdout(&textback(
        &dir.0,
        &[],
        &["workflows", "--account", "acme-plumbing", "--runs"],
    ));
    assert!(
        workflows.contains("Missed call  version 1  active"),
        "{workflows}"
    );
    assert!(
        workflows.contains("missed_call  +15125550123  waiting until"),
        "{workflows}"
    );
    assert!(
        workflows.contains("create_task: task 1: Call back +15125550123"),
        "{workflows}"
    );

    let (clean, log) = server.terminate();
    assert!(clean, "graceful shutdown on SIGTERM: {log}");
    assert!(log.contains("stopped"), "{log}");
    assert!(
        !log.contains("5125550123"),
        "full phone numbers never reach the log: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_start_with_twilio_settings() {
    let fake = FakeTwilio::start().await;
    let dir = Workdir::new();
    assert!(
        textback(&dir.0, &[], &["apply", quickstart().to_str().unwrap()])
            .status
            .success()
    );
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let env = [
        ("TWILIO_ACCOUNT_SID", ACCOUNT_SID),
        ("TWILIO_AUTH_TOKEN", AUTH_TOKEN),
        ("TEXTBACK_TWILIO_API_BASE", fake.base_url.as_str()),
        ("TEXTBACK_PUBLIC_URL", "https://textback.example.test"),
        ("TEXTBACK_LISTEN", listen.as_str()),
    ];
    let server = Server::start(&dir.0, &env, port).await;
    let server_url = format!("http://{listen}");
    let sim = textback(
        &dir.0,
        &env,
        &[
            "simulate-call",
            "--from",
            "+15125550123",
            "--to",
            "+15125550100",
            "--server-url",
            &server_url,
        ],
    );
    let out = stdout(&sim);
    assert!(
        out.contains("text back: sent"),
        "{out}\n{}",
        String::from_utf8_lossy(&sim.stderr)
    );
    let sent = fake.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].to.as_str(), sent[0].from.as_str()),
        ("+15125550123", "+15125550100")
    );
    assert!(sent[0].body.contains("Acme Plumbing"));
    let (clean, log) = server.terminate();
    assert!(clean, "{log}");
    assert!(!log.contains(AUTH_TOKEN), "secrets never reach the log");
    fake.stop();
}

#[test]
fn a_wrong_setting_fails_at_start_naming_it() {
    let dir = Workdir::new();
    let out = textback(&dir.0, &[("TEXTBACK_LISTEN", "everywhere")], &["serve"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("TEXTBACK_LISTEN") && err.contains("everywhere"),
        "{err}"
    );
    let out = textback(&dir.0, &[("TWILIO_ACCOUNT_SID", ACCOUNT_SID)], &["serve"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("TWILIO_AUTH_TOKEN"),
        "{err}"
    );
    let out = textback(&dir.0, &[("DATABASE_URL", "mysql://db")], &["migrate"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("DATABASE_URL"),
        "{err}"
    );
}

/// A database Textback may read but not write (its permissions, a read-only mount) is
/// refused at start with the file named and why, and left exactly as it was.
#[test]
fn a_read_only_database_is_refused_at_start_and_left_alone() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;

    let dir = Workdir::new();
    assert!(textback(&dir.0, &[], &["migrate"]).status.success());
    let db = dir.0.join("textback.db");
    let before = std::fs::read(&db).unwrap();
    // Root may write whatever the modes say: the server then runs as `nobody`, from a copy
    // of the binary that user may run.
    let bin = dir.0.join("textback");
    std::fs::copy(BIN, &bin).unwrap();
    let mode = |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m));
    mode(&bin, 0o755).unwrap();
    mode(&db, 0o444).unwrap();
    mode(&dir.0, 0o555).unwrap();
    let mut cmd = Command::new(&bin);
    cmd.current_dir(&dir.0)
        .arg("serve")
        .env_remove("DATABASE_URL")
        .env("TEXTBACK_LISTEN", format!("127.0.0.1:{}", free_port()));
    // SAFETY: geteuid reads the process's user id and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        cmd.uid(65534).gid(65534);
    }
    let out = cmd.output().expect("run serve");
    mode(&dir.0, 0o755).unwrap();
    mode(&db, 0o644).unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "served a database it cannot write: {err}"
    );
    assert!(
        err.contains("cannot write to the SQLite database")
            && err.contains("textback.db")
            && err.contains("may only be read"),
        "{err}"
    );
    assert_eq!(std::fs::read(&db).unwrap(), before, "the file is unchanged");
    let calls = textback(&dir.0, &[], &["calls"]);
    assert!(calls.status.success(), "and still opens once writable");
}

#[test]
fn apply_refuses_a_broken_file_and_writes_nothing() {
    let dir = Workdir::new();
    let text = std::fs::read_to_string(quickstart())
        .unwrap()
        .replace("default(\\\"there\\\")", "upper");
    let file = dir.0.join("broken.toml");
    std::fs::write(&file, text).unwrap();
    let out = textback(&dir.0, &[], &["apply", file.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("text_back.message") && err.contains("contact.first_name"),
        "{err}"
    );
    let calls = textback(&dir.0, &[], &["calls"]);
    assert!(calls.status.success() && stdout(&calls).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reply_conversation_and_doctor() {
    let fake = FakeTwilio::start().await;
    let dir = Workdir::new();
    let text = std::fs::read_to_string(quickstart()).unwrap().replace(
        "call_screening = false",
        "call_screening = false\nregistration = \"approved\"",
    );
    let file = dir.0.join("accounts.toml");
    std::fs::write(&file, text).unwrap();
    assert!(
        textback(&dir.0, &[], &["apply", file.to_str().unwrap()])
            .status
            .success()
    );
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let public = "https://textback.example.test";
    let env = [
        ("TWILIO_ACCOUNT_SID", ACCOUNT_SID),
        ("TWILIO_AUTH_TOKEN", AUTH_TOKEN),
        ("TEXTBACK_TWILIO_API_BASE", fake.base_url.as_str()),
        ("TEXTBACK_TWILIO_MESSAGING_BASE", fake.base_url.as_str()),
        ("TEXTBACK_PUBLIC_URL", public),
        ("TEXTBACK_LISTEN", listen.as_str()),
    ];

    // Doctor before the number is pointed at us: the Twilio account does not own it.
    let out = textback(&dir.0, &env, &["doctor"]);
    let report = stdout(&out);
    assert!(!out.status.success(), "{report}");
    assert!(
        report.contains(
            "FAIL  acme-plumbing +15125550100  carrier: the Twilio account does not own this number"
        ),
        "{report}"
    );

    // Pointed at a stale server: the fix names our URL.
    fake.own_number(
        "+15125550100",
        "https://old.example.com/voice",
        &format!("{public}/webhooks/twilio/sms"),
        &format!("{public}/webhooks/twilio/voice/status"),
    );
    let report = stdout(&textback(&dir.0, &env, &["doctor"]));
    assert!(
        report.contains("voice_url: Voice URL is \"https://old.example.com/voice\""),
        "{report}"
    );
    assert!(
        report.contains(&format!(
            "fix: set the number's Voice URL (HTTP POST) to {public}/webhooks/twilio/voice"
        )),
        "{report}"
    );

    let server = Server::start(&dir.0, &env, port).await;
    let server_url = format!("http://{listen}");
    let sim = textback(
        &dir.0,
        &env,
        &[
            "simulate-call",
            "--from",
            "+15125550123",
            "--to",
            "+15125550100",
            "--server-url",
            &server_url,
        ],
    );
    assert!(stdout(&sim).contains("text back: sent"), "{}", stdout(&sim));

    let out = textback(
        &dir.0,
        &env,
        &[
            "reply",
            "--account",
            "acme-plumbing",
            "--to",
            "+15125550123",
            "Mike",
            "is",
            "on",
            "his",
            "way",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let sent = fake.wait_for_sent(2, Duration::from_secs(10)).await;
    assert_eq!(
        sent.last().map(|m| m.body.as_str()),
        Some("Mike is on his way")
    );

    let thread = stdout(&textback(
        &dir.0,
        &[],
        &[
            "conversation",
            "--account",
            "acme-plumbing",
            "--with",
            "+15125550123",
        ],
    ));
    assert_eq!(thread.lines().count(), 2, "{thread}");
    assert!(
        thread
            .lines()
            .nth(1)
            .unwrap()
            .ends_with("Mike is on his way"),
        "{thread}"
    );

    // Registration comes from Twilio when it can be read, whatever the file says.
    let report = stdout(&textback(&dir.0, &env, &["doctor"]));
    assert!(
        report.contains("registration: A2P 10DLC / toll-free registration is unregistered"),
        "{report}"
    );
    assert!(
        report.contains("the number is in no Messaging Service with an A2P campaign"),
        "{report}"
    );
    fake.set_a2p("+15125550100", "VERIFIED");
    let report = stdout(&textback(&dir.0, &env, &["doctor"]));
    assert!(report.contains("PASS  acme-plumbing +15125550100  registration: A2P 10DLC / toll-free registration approved (Twilio: A2P campaign VERIFIED"), "{report}");

    let json = stdout(&textback(&dir.0, &env, &["doctor", "--json"]));
    let findings: serde_json::Value =
        serde_json::from_str(&json).expect("doctor --json prints JSON");
    let last = findings
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "last_missed_call")
        .unwrap();
    assert!(
        last["message"].as_str().unwrap().contains("text back sent"),
        "{last}"
    );

    // Call the missed caller back through the business number.
    let tasks = stdout(&textback(&dir.0, &[], &["tasks"]));
    let task = tasks
        .split_whitespace()
        .next()
        .expect("a callback task")
        .to_owned();
    let out = textback(&dir.0, &env, &["call-back", &task]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        fake.placed_calls(),
        vec![(
            "+15125550199".to_owned(),
            "+15125550100".to_owned(),
            format!("{public}/webhooks/twilio/voice/callback?task={task}")
        )]
    );

    let refused = textback(
        &dir.0,
        &env,
        &[
            "reply",
            "--account",
            "acme-plumbing",
            "--to",
            "+1-512-CALL-NOW",
            "hi",
        ],
    );
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--to"));
    let (clean, _) = server.terminate();
    assert!(clean);
    fake.stop();
}

#[test]
fn lint_grades_a_message_as_json_and_fails_on_errors() {
    let dir = Workdir::new();
    let good = textback(
        &dir.0,
        &[],
        &[
            "lint",
            "--json",
            "Hi, it's Acme Plumbing. Sorry we missed your call! Reply here and we'll call you right back.",
        ],
    );
    assert!(good.status.success(), "{good:?}");
    let report: serde_json::Value = serde_json::from_slice(&good.stdout).unwrap();
    assert_eq!(report["encoding"], "GSM-7");
    assert_eq!(report["segments"], 1);
    assert_eq!(report["findings"].as_array().unwrap().len(), 0, "{report}");
    assert!(report["suggestion"].is_null());

    // From standard input, with a curly apostrophe and a link shortener.
    let mut child = Command::new(BIN)
        .current_dir(&dir.0)
        .args(["lint", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all("Hi, it\u{2019}s Acme Plumbing, sorry we missed your call! Book here: https://bit.ly/acme-book and we\u{2019}ll confirm by text right away.\n".as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "a link shortener is an error");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["encoding"], "UCS-2");
    assert_eq!(report["segments"], 2);
    let rules: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert!(
        rules.contains(&"link_shortener") && rules.contains(&"ucs2"),
        "{rules:?}"
    );
    assert_eq!(report["suggestion_segments"], 1);
    assert!(report["suggestion"].as_str().unwrap().contains("it's"));
    assert!(
        !dir.0.join("textback.db").exists(),
        "lint without --account touches no database"
    );
}

#[test]
fn contacts_import_dry_run_import_and_export() {
    let dir = Workdir::new();
    assert!(
        textback(&dir.0, &[], &["apply", quickstart().to_str().unwrap()])
            .status
            .success()
    );
    let file = dir.0.join("contacts.csv");
    std::fs::write(
        &file,
        "phone,first_name,last_name,tags\n(512) 555-0131,Ana,Lopez,VIP\nnot-a-number,X,,\n",
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let dry = textback(
        &dir.0,
        &[],
        &[
            "contacts",
            "import",
            f,
            "--account",
            "acme-plumbing",
            "--dry-run",
        ],
    );
    assert!(dry.status.success());
    assert!(
        stdout(&dry).contains("1 row(s) would be imported, 1 with errors"),
        "{}",
        stdout(&dry)
    );
    assert!(String::from_utf8_lossy(&dry.stderr).contains("line 3:"));
    let out = textback(
        &dir.0,
        &[],
        &["contacts", "import", f, "--account", "acme-plumbing"],
    );
    assert!(
        stdout(&out).contains("1 created, 0 updated, 1 row(s) with errors skipped"),
        "{}",
        stdout(&out)
    );
    let csv = stdout(&textback(
        &dir.0,
        &[],
        &["contacts", "export", "--account", "acme-plumbing"],
    ));
    assert!(csv.contains("+15125550131,Ana,Lopez,VIP,false,"), "{csv}");
}

#[test]
fn user_create_checks_its_input_and_refuses_a_taken_email() {
    let dir = Workdir::new();
    assert!(
        textback(&dir.0, &[], &["apply", quickstart().to_str().unwrap()])
            .status
            .success()
    );
    let create = |env: &[(&str, &str)], email: &str, role: &str| {
        textback(
            &dir.0,
            env,
            &[
                "user",
                "create",
                "--account",
                "acme-plumbing",
                "--email",
                email,
                "--name",
                "Pat Owner",
                "--role",
                role,
            ],
        )
    };
    let good = [("TEXTBACK_USER_PASSWORD", "plumbing-all-day-42")];
    let bad_role = create(&good, "pat@example.com", "admin");
    assert!(!bad_role.status.success());
    assert!(String::from_utf8_lossy(&bad_role.stderr).contains("use owner or member"));
    let short = create(
        &[("TEXTBACK_USER_PASSWORD", "short")],
        "pat@example.com",
        "owner",
    );
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 10 characters"));
    let ok = create(&good, "Pat@Example.com", "owner");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(stdout(&ok).contains("pat@example.com (owner) on acme-plumbing"));
    let taken = create(&good, "pat@example.com", "member");
    assert!(!taken.status.success());
    assert!(String::from_utf8_lossy(&taken.stderr).contains("already has a sign-in"));
}

/// Several instances on one PostgreSQL (SPEC §10): signed webhooks spread across them (one
/// call's ringing, result and Twilio's retry of the result each on a different instance),
/// one instance killed with SIGKILL halfway, and still every acknowledged missed call is
/// texted exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_share_one_postgres_and_survive_a_kill() {
    use textback_carriers::twilio::signature::sign;
    use textback_testkit::TestDb;

    let Some(db) = TestDb::postgres_or_skip().await else {
        return;
    };
    let dir = Workdir::new();
    let fake = FakeTwilio::start().await;
    let public = "https://textback.example.com";
    let env = [
        ("DATABASE_URL", db.url.as_str()),
        ("TEXTBACK_PUBLIC_URL", public),
        ("TWILIO_ACCOUNT_SID", ACCOUNT_SID),
        ("TWILIO_AUTH_TOKEN", AUTH_TOKEN),
        ("TEXTBACK_TWILIO_API_BASE", fake.base_url.as_str()),
        ("TEXTBACK_WORKERS", "2"),
    ];
    let qs = quickstart();
    let applied = textback(&dir.0, &env, &["apply", qs.to_str().unwrap()]);
    assert!(applied.status.success(), "{applied:?}");

    // Two instances doing everything and one API-only instance, all started at once.
    let ports = [free_port(), free_port(), free_port()];
    let roles = ["all", "all", "api"];
    let mut servers: Vec<Option<Server>> = Vec::new();
    for (port, role) in ports.iter().zip(roles) {
        let mut with_role = env.to_vec();
        with_role.push(("TEXTBACK_ROLE", role));
        servers.push(Some(Server::start(&dir.0, &with_role, *port).await));
    }

    let client = reqwest::Client::new();
    let post = |port: u16, path: &'static str, fields: Vec<(&'static str, String)>| {
        let client = client.clone();
        async move {
            let owned: Vec<(String, String)> = fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect();
            let signature = sign(AUTH_TOKEN, &format!("{public}{path}"), &owned);
            client
                .post(format!("http://127.0.0.1:{port}{path}"))
                .header("X-Twilio-Signature", signature)
                .form(&owned)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }
    };
    let calls = 300;
    let mut acknowledged = Vec::new();
    let mut alive = vec![0, 1, 2];
    for i in 0..calls {
        if i == calls / 2 {
            // SIGKILL: no shutdown, jobs it had claimed stay leased until the lease ends.
            let mut killed = servers[0].take().unwrap();
            killed.0.kill().unwrap();
            killed.0.wait().unwrap();
            alive.retain(|k| *k != 0);
        }
        let caller = textback_testkit::bench::caller(i);
        let sid = format!("CA{:032x}", fastrand::u128(..));
        let base = vec![
            ("CallSid", sid.clone()),
            ("AccountSid", ACCOUNT_SID.to_owned()),
            ("From", caller.clone()),
            ("To", "+15125550100".to_owned()),
        ];
        let pick = |k: usize| ports[alive[(i + k) % alive.len()]];
        let mut ringing = base.clone();
        ringing.push(("CallStatus", "ringing".to_owned()));
        ringing.push(("Direction", "inbound".to_owned()));
        assert_eq!(post(pick(1), "/webhooks/twilio/voice", ringing).await, 200);
        let mut result = base.clone();
        result.push(("CallStatus", "in-progress".to_owned()));
        result.push(("DialCallStatus", "no-answer".to_owned()));
        let path = "/webhooks/twilio/voice/dial-status";
        if post(pick(0), path, result.clone()).await == 200 {
            acknowledged.push(caller);
        }
        // Twilio retries the result on whichever instance the proxy picks.
        post(pick(2), path, result).await;
    }
    assert_eq!(acknowledged.len(), calls, "every webhook was acknowledged");

    // The killed instance's leased jobs are claimed again after the 60 s lease.
    let sent = fake
        .wait_for_sent(acknowledged.len(), Duration::from_secs(150))
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sent = if fake.sent().len() > sent.len() {
        fake.sent()
    } else {
        sent
    };
    let mut per_caller = std::collections::HashMap::new();
    for m in &sent {
        *per_caller.entry(m.to.clone()).or_insert(0) += 1;
    }
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|c| !per_caller.contains_key(*c))
        .collect();
    let doubled: Vec<(&String, &i32)> = per_caller.iter().filter(|(_, n)| **n > 1).collect();
    assert!(lost.is_empty(), "not texted: {lost:?}");
    assert!(doubled.is_empty(), "texted twice: {doubled:?}");

    for s in servers.into_iter().flatten() {
        let (ok, log) = s.terminate();
        assert!(ok, "{log}");
    }
    fake.stop();
    db.drop_db().await;
}

/// SQLite under load, SIGKILLed with webhooks in flight, then restarted on the same file:
/// every webhook that was answered 200 is texted exactly once (the writer answers only
/// after its batch commits), and no caller is texted twice, answered or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_killed_under_load_loses_and_doubles_nothing() {
    use textback_carriers::twilio::signature::sign;

    let dir = Workdir::new();
    let fake = FakeTwilio::start().await;
    let public = "https://textback.example.com";
    let env = [
        ("DATABASE_URL", "sqlite:textback.db"),
        ("TEXTBACK_PUBLIC_URL", public),
        ("TWILIO_ACCOUNT_SID", ACCOUNT_SID),
        ("TWILIO_AUTH_TOKEN", AUTH_TOKEN),
        ("TEXTBACK_TWILIO_API_BASE", fake.base_url.as_str()),
        // A full stderr pipe would stall the server; the test reads it only at the end.
        ("TEXTBACK_LOG", "warn"),
    ];
    let qs = quickstart();
    let applied = textback(&dir.0, &env, &["apply", qs.to_str().unwrap()]);
    assert!(applied.status.success(), "{applied:?}");
    let port = free_port();
    let mut server = Some(Server::start(&dir.0, &env, port).await);

    let client = reqwest::Client::new();
    let calls = 600;
    let kill_at = 300;
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut in_flight = 0;
    let mut next = 0;
    let mut acknowledged = Vec::new();
    while next < calls || in_flight > 0 {
        while next < calls && in_flight < 24 {
            if next == kill_at && server.is_some() {
                // SIGKILL with requests in flight: no shutdown, no last commit.
                let mut killed = server.take().unwrap();
                killed.0.kill().unwrap();
                killed.0.wait().unwrap();
                server = Some(Server::start(&dir.0, &env, port).await);
            }
            let caller = textback_testkit::bench::caller(next);
            let fields: Vec<(String, String)> = [
                ("CallSid", format!("CA{:032x}", fastrand::u128(..))),
                ("AccountSid", ACCOUNT_SID.to_owned()),
                ("From", caller.clone()),
                ("To", "+15125550100".to_owned()),
                ("CallStatus", "in-progress".to_owned()),
                ("DialCallStatus", "no-answer".to_owned()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
            let path = "/webhooks/twilio/voice/dial-status";
            let signature = sign(AUTH_TOKEN, &format!("{public}{path}"), &fields);
            let request = client
                .post(format!("http://127.0.0.1:{port}{path}"))
                .header("X-Twilio-Signature", signature)
                .form(&fields);
            let done = done_tx.clone();
            tokio::spawn(async move {
                let status = request
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0);
                let _ = done.send((caller, status));
            });
            in_flight += 1;
            next += 1;
        }
        let (caller, status) = done_rx.recv().await.expect("sender alive");
        in_flight -= 1;
        if status == 200 {
            acknowledged.push(caller);
        }
    }
    eprintln!(
        "{} of {calls} webhooks answered 200 around the kill",
        acknowledged.len()
    );
    assert!(
        acknowledged.len() >= calls - 24,
        "only the calls in flight at the kill may go unanswered: {} of {calls}",
        acknowledged.len()
    );

    // Jobs the killed process had claimed come back when their 60 s lease ends. Wait for
    // each acknowledged caller, not for a count: calls in flight at the kill may have been
    // stored without their answer reaching us, and their texts made up the count while
    // acknowledged ones still waited for the lease.
    let deadline = std::time::Instant::now() + Duration::from_secs(150);
    loop {
        let sent: std::collections::HashSet<String> =
            fake.sent().into_iter().map(|m| m.to).collect();
        if acknowledged.iter().all(|c| sent.contains(c)) || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut per_caller = std::collections::HashMap::new();
    for m in fake.sent() {
        *per_caller.entry(m.to.clone()).or_insert(0) += 1;
    }
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|c| !per_caller.contains_key(*c))
        .collect();
    let doubled: Vec<(&String, &i32)> = per_caller.iter().filter(|(_, n)| **n > 1).collect();
    assert!(lost.is_empty(), "acknowledged but not texted: {lost:?}");
    assert!(doubled.is_empty(), "texted twice: {doubled:?}");
    let (ok, log) = server.take().unwrap().terminate();
    assert!(ok, "{log}");
    fake.stop();
}

/// `serve`'s resident set at 1,000 missed calls/s stays at glibc's level only with
/// mimalloc committing on demand and handing freed pages back at once (docs/PERFORMANCE.md,
/// session 8): the options are set by number before Rust's start-up, so this reads them back
/// by name, as mimalloc itself prints them, and fails if a newer mimalloc renumbered them.
#[test]
fn the_allocator_hands_freed_memory_back() {
    let dir = Workdir::new();
    let run = |env: &[(&str, &str)]| {
        let mut all = vec![("MIMALLOC_VERBOSE", "1")];
        all.extend_from_slice(env);
        let out = textback(&dir.0, &all, &["--version"]);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let options = run(&[]);
    for line in ["option 'arena_eager_commit': 0", "option 'purge_delay': 0"] {
        assert!(options.contains(line), "{line:?} not in:\n{options}");
    }
    // An operator's own setting still wins.
    let options = run(&[("MIMALLOC_PURGE_DELAY", "250")]);
    assert!(
        options.contains("option 'purge_delay': 250"),
        "the environment's value not kept:\n{options}"
    );
}
