//! `textback`: the missed call text back server and its operator commands.

mod apply;
mod config;
use textback_server::doctor;
mod memory;
mod simulate;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use textback_carriers::twilio::TwilioCredentials;
use textback_core::{Clock, SystemClock};
use textback_server::{App, InstanceRole, ServerConfig};
use textback_store::Store;

#[derive(Parser)]
#[command(
    name = "textback",
    version,
    about = "Missed call text back: every missed call gets one warm text, once."
)]
struct Cli {
    /// Optional TOML file with the same settings as the flags (lowest precedence).
    #[arg(long, env = "TEXTBACK_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// sqlite:PATH (default sqlite:textback.db in the working directory) or postgres://…
    #[arg(long, env = "DATABASE_URL", global = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct ServerArgs {
    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long, env = "TEXTBACK_LISTEN")]
    listen: Option<String>,
    /// The base URL the carrier calls; signatures are checked against it.
    #[arg(long, env = "TEXTBACK_PUBLIC_URL")]
    public_url: Option<String>,
    #[arg(long, env = "TWILIO_ACCOUNT_SID")]
    twilio_account_sid: Option<String>,
    #[arg(long, env = "TWILIO_AUTH_TOKEN", hide_env_values = true)]
    twilio_auth_token: Option<String>,
    /// Twilio's API base URL (tests point it at a local stand-in).
    #[arg(long, env = "TEXTBACK_TWILIO_API_BASE")]
    twilio_api_base: Option<String>,
    /// Twilio Lookup's base URL, for landline detection.
    #[arg(long, env = "TEXTBACK_TWILIO_LOOKUP_BASE")]
    twilio_lookup_base: Option<String>,
    /// Twilio Messaging's base URL (A2P 10DLC and toll-free status, read by doctor).
    #[arg(long, env = "TEXTBACK_TWILIO_MESSAGING_BASE")]
    twilio_messaging_base: Option<String>,
    /// Telnyx API key (sends texts for numbers with carrier = "telnyx").
    #[arg(long, env = "TELNYX_API_KEY", hide_env_values = true)]
    telnyx_api_key: Option<String>,
    /// Telnyx's webhook public key (base64 Ed25519, from the portal).
    #[arg(long, env = "TELNYX_PUBLIC_KEY")]
    telnyx_public_key: Option<String>,
    /// Telnyx's API base URL (tests point it at a local stand-in).
    #[arg(long, env = "TEXTBACK_TELNYX_API_BASE")]
    telnyx_api_base: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: webhooks, health checks and the workers that send texts.
    Serve {
        #[command(flatten)]
        server: ServerArgs,
        /// Key for webhooks Twilio signs with HMAC-SHA256 (Webhook Settings shared key).
        #[arg(long, env = "TWILIO_WEBHOOK_SHARED_KEY", hide_env_values = true)]
        twilio_webhook_shared_key: Option<String>,
        /// Worker loops sending texts (0: this instance only answers HTTP).
        #[arg(long, env = "TEXTBACK_WORKERS")]
        workers: Option<usize>,
        /// Let workflow webhooks reach private and loopback addresses.
        #[arg(long, env = "TEXTBACK_ALLOW_PRIVATE_WEBHOOKS")]
        allow_private_webhooks: bool,
        /// What this instance does when several share one PostgreSQL: `api` (webhooks, API,
        /// web UI; no workers), `worker` (jobs only) or `all`.
        #[arg(long, env = "TEXTBACK_ROLE", default_value = "all")]
        role: String,
        /// Where call results wait on disk while the database is unavailable.
        #[arg(long, env = "TEXTBACK_SPOOL_DIR", default_value = "spool")]
        spool_dir: std::path::PathBuf,
    },
    /// Callback tasks: list them, or mark one done.
    Tasks {
        #[command(subcommand)]
        command: Option<TasksCommand>,
        /// Only this account.
        #[arg(long)]
        account: Option<String>,
        /// Only open tasks past their due time.
        #[arg(long)]
        overdue: bool,
        /// Done tasks too.
        #[arg(long)]
        all: bool,
    },
    /// Grade a message: segments, encoding, and what good missed-call texts do.
    Lint {
        /// The message (read from standard input when left out).
        message: Vec<String>,
        /// Grade with this account's business name and booking link.
        #[arg(long)]
        account: Option<String>,
        /// What the message is: text-back (default), follow-up or reply.
        #[arg(long, default_value = "text-back")]
        kind: String,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Call a missed caller back through the business number: Twilio rings the team phone,
    /// then connects it to the contact. An answered call-back completes the task.
    CallBack {
        #[command(flatten)]
        server: ServerArgs,
        /// The callback task.
        task: i64,
        /// The team phone to ring first (default: the number's first team phone).
        #[arg(long)]
        team_phone: Option<String>,
    },
    /// The funnel (calls → missed → texted → delivered → replied → called back) by day,
    /// median times, and reply rates by variant.
    Report {
        #[arg(long)]
        account: String,
        #[arg(long, default_value_t = 7)]
        days: i64,
        #[arg(long)]
        json: bool,
    },
    /// Import and export contacts.
    Contacts {
        #[command(subcommand)]
        command: ContactsCommand,
    },
    /// Print the first-run setup link for the web UI (only while no one can sign in).
    SetupLink {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Team members who sign in to the web UI.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// API keys for the REST API: each is scoped to one account.
    ApiKey {
        #[command(subcommand)]
        command: ApiKeyCommand,
    },
    /// Compare message variants: sent, delivered, replied within 24 h, reply rate with its
    /// 95% interval, and which variant leads with what confidence.
    Variants {
        #[arg(long)]
        account: String,
        #[arg(long)]
        json: bool,
    },
    /// An account's workflows, and what their recent runs did.
    Workflows {
        #[arg(long)]
        account: String,
        /// Also list recent runs with each step's outcome.
        #[arg(long)]
        runs: bool,
    },
    /// Apply the database migrations and exit.
    Migrate,
    /// Create or update accounts and numbers from a TOML account file.
    Apply {
        /// The account file, like examples/quickstart.toml.
        file: PathBuf,
    },
    /// Play Twilio's part of a call against a running server, signed, and show what happened.
    SimulateCall {
        #[command(flatten)]
        server: ServerArgs,
        /// The caller's number.
        #[arg(long)]
        from: String,
        /// The business number that is called.
        #[arg(long)]
        to: String,
        /// A team member answers (and presses 1 when call screening is on).
        #[arg(long)]
        answered: bool,
        /// The DialCallStatus to report: no-answer (default), busy, failed, canceled, completed.
        #[arg(long)]
        dial_status: Option<String>,
        /// Where the server listens, when it differs from TEXTBACK_LISTEN.
        #[arg(long)]
        server_url: Option<String>,
    },
    /// List recent calls with their outcome and text back.
    Calls {
        #[arg(long, default_value_t = 20)]
        limit: i64,
        /// Only missed calls that were not texted, with the reason for each.
        #[arg(long)]
        not_texted: bool,
    },
    /// Reply to a contact from the account's number, through the same outbox as every text.
    Reply {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(long)]
        account: String,
        /// The contact's number.
        #[arg(long)]
        to: String,
        /// The account number to text from (needed when the account has several).
        #[arg(long)]
        from: Option<String>,
        /// The text.
        #[arg(required = true, num_args = 1..)]
        message: Vec<String>,
    },
    /// Show the conversation with one contact and their consent history.
    Conversation {
        #[arg(long)]
        account: String,
        /// The contact's number.
        #[arg(long)]
        with: String,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Run the troubleshooting checklist: numbers, webhooks, registration, carrier errors.
    Doctor {
        #[command(flatten)]
        server: ServerArgs,
        /// Only this account.
        #[arg(long)]
        account: Option<String>,
        /// Print the findings as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List recent texts (sandbox texts included).
    Messages {
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
}

#[derive(Subcommand)]
enum ApiKeyCommand {
    /// Make a key and print it (the only time it is shown).
    Create {
        #[arg(long)]
        account: String,
        /// What the key is for, to tell keys apart later.
        #[arg(long, default_value = "api")]
        name: String,
    },
    /// List an account's keys (without the keys themselves).
    List {
        #[arg(long)]
        account: String,
    },
    /// Revoke a key by its id: requests with it are refused from now on.
    Revoke {
        #[arg(long)]
        account: String,
        id: i64,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a team member. The password is read from TEXTBACK_USER_PASSWORD, or else from
    /// the first line of standard input (so it never appears in the shell history).
    Create {
        #[arg(long)]
        account: String,
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// owner (settings, team, keys) or member (inbox, calls, tasks).
        #[arg(long, default_value = "member")]
        role: String,
    },
}

#[derive(Subcommand)]
enum ContactsCommand {
    /// Import contacts from a CSV file: phone,first_name,last_name,tags (tags split by ;).
    Import {
        file: PathBuf,
        #[arg(long)]
        account: String,
        /// Check every row and report, without writing anything.
        #[arg(long)]
        dry_run: bool,
    },
    /// Export contacts as CSV (default) or JSON to standard output.
    Export {
        #[arg(long)]
        account: String,
        #[arg(long, default_value = "csv")]
        format: String,
    },
}

#[derive(Subcommand)]
enum TasksCommand {
    /// Mark a task done (the contact was called back).
    Done { id: i64 },
}

#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("database: {0}")]
    Store(#[from] textback_store::StoreError),
    #[error(transparent)]
    Apply(#[from] apply::ApplyError),
    #[error(transparent)]
    Simulate(#[from] simulate::SimulateError),
    #[error(transparent)]
    Start(#[from] textback_server::StartError),
    #[error("cannot listen for SIGTERM and SIGINT: {0}")]
    Signals(std::io::Error),
    #[error("cannot listen on {addr}: {error}")]
    Bind { addr: String, error: std::io::Error },
    #[error("cannot read {path}: {error}")]
    ReadFile {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{0}")]
    Refused(String),
    #[error("doctor found {0} failing check(s)")]
    DoctorFailed(usize),
}

/// mimalloc instead of glibc's allocator for Rust's allocations: per-thread heaps without
/// arena locks, and freed pages handed back to the system on their own; measured in
/// docs/PERFORMANCE.md (session 8). SQLite's own allocations still go through glibc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    memory::limit_malloc_arenas();
    let cli = Cli::parse();
    textback_carriers::twilio::client::install_crypto_provider();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TEXTBACK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

const SANDBOX_TOKEN_KEY: &str = "sandbox_auth_token";

async fn open_store(url: &str) -> Result<Store, CliError> {
    let store = Store::connect(url).await?;
    store.migrate().await?;
    Ok(store)
}

async fn sandbox_token(store: &Store) -> Result<String, CliError> {
    Ok(store
        .setting_or_insert(SANDBOX_TOKEN_KEY, || {
            textback_core::secret::random_token(32)
        })
        .await?)
}

async fn run(cli: Cli) -> Result<(), CliError> {
    let file = config::load_file(cli.config.as_deref())?;
    let database_url = config::database_url(cli.database_url.clone(), &file)?;
    match cli.command {
        Command::Serve {
            server,
            twilio_webhook_shared_key,
            workers,
            allow_private_webhooks,
            role,
            spool_dir,
        } => {
            let role = InstanceRole::parse(&role).ok_or_else(|| {
                CliError::Refused(format!("--role {role:?}: use api, worker or all"))
            })?;
            memory::return_freed_memory_periodically();
            let listen = config::listen(server.listen, &file)?;
            let public_url = config::public_url(server.public_url, &file, listen)?;
            let twilio =
                config::twilio(server.twilio_account_sid, server.twilio_auth_token, &file)?;
            let api_base = config::twilio_api_base(server.twilio_api_base, &file)?;
            let lookup_base = config::twilio_lookup_base(server.twilio_lookup_base, &file)?;
            let telnyx = config::telnyx(
                server.telnyx_api_key,
                server.telnyx_public_key,
                server.telnyx_api_base,
                &file,
            )?;
            let store = open_store(&database_url).await?;
            let sandbox_token = sandbox_token(&store).await?;
            let workers = workers.or(file.workers).unwrap_or(4);
            if role == InstanceRole::Worker && workers == 0 {
                return Err(CliError::Refused(
                    "--role worker with 0 workers would do nothing: give --workers 1 or more"
                        .into(),
                ));
            }
            let workers = if role == InstanceRole::Api {
                0
            } else {
                workers
            };
            let config = ServerConfig {
                public_url: public_url.clone(),
                twilio: twilio.map(|t| TwilioCredentials {
                    account_sid: t.account_sid,
                    auth_token: t.auth_token,
                }),
                twilio_api_base: api_base,
                twilio_lookup_base: lookup_base,
                telnyx,
                webhook_shared_key: twilio_webhook_shared_key.or(file.twilio_webhook_shared_key),
                sandbox_token,
                workers,
                carrier_timeout: Duration::from_secs(10),
                allow_private_webhooks,
                role,
                spool_dir: Some(spool_dir),
            };
            let carrier = if config.twilio.is_some() {
                "twilio"
            } else {
                "sandbox (no Twilio credentials)"
            };
            let shutdown = shutdown_signal().map_err(CliError::Signals)?;
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .map_err(|error| CliError::Bind {
                    addr: listen.to_string(),
                    error,
                })?;
            tracing::info!(%listen, %public_url, database = store.backend(), carrier, workers, role = role.as_str(), "textback is serving");
            if store.user_count().await? == 0 {
                tracing::info!(
                    "no one can sign in to the web UI yet: run `textback setup-link` for the first-run setup page, or `textback user create`"
                );
            }
            let clock: Arc<dyn Clock> = Arc::new(SystemClock);
            App::new(store.clone(), config, clock)?
                .serve(listener, shutdown)
                .await?;
            store.close().await;
            tracing::info!("stopped");
            Ok(())
        }
        Command::Migrate => {
            let store = Store::connect(&database_url).await?;
            let n = store.migrate().await?;
            println!(
                "{n} migration(s) applied to the {} database",
                store.backend()
            );
            Ok(())
        }
        Command::Apply { file: path } => {
            let text = std::fs::read_to_string(&path).map_err(|error| CliError::ReadFile {
                path: path.clone(),
                error,
            })?;
            let store = open_store(&database_url).await?;
            for line in apply::apply(&store, &text, SystemClock.now().as_millisecond()).await? {
                println!("{line}");
            }
            Ok(())
        }
        Command::SimulateCall {
            server,
            from,
            to,
            answered,
            dial_status,
            server_url,
        } => {
            let listen = config::listen(server.listen, &file)?;
            let public_url = config::public_url(server.public_url, &file, listen)?;
            let twilio =
                config::twilio(server.twilio_account_sid, server.twilio_auth_token, &file)?;
            let store = open_store(&database_url).await?;
            let auth_token = match twilio {
                Some(t) => t.auth_token,
                None => sandbox_token(&store).await?,
            };
            let server_url = server_url.unwrap_or_else(|| format!("http://{listen}"));
            let sim = simulate::Simulation {
                server_url: server_url.trim_end_matches('/').to_owned(),
                public_url,
                auth_token,
                from,
                to,
                answered,
                dial_status,
                wait: Duration::from_secs(10),
            };
            for line in simulate::run(&sim, &store).await? {
                println!("{line}");
            }
            Ok(())
        }
        Command::Calls { limit, not_texted } => {
            let store = open_store(&database_url).await?;
            let calls = if not_texted {
                store.recent_calls_not_texted(limit).await?
            } else {
                store.recent_calls(limit).await?
            };
            for c in calls {
                println!(
                    "{}  {}  {} -> {}  {}  text back: {}{}",
                    format_time(c.started_at_ms),
                    c.carrier_call_id,
                    c.caller,
                    c.number,
                    c.outcome.as_deref().unwrap_or(&c.status),
                    c.text_back_status.as_deref().unwrap_or("-"),
                    c.text_back_reason
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                );
            }
            Ok(())
        }
        Command::Reply {
            server,
            account,
            to,
            from,
            message,
        } => reply(&database_url, &file, server, account, to, from, message).await,
        Command::Conversation {
            account,
            with,
            limit,
        } => conversation(&database_url, &account, &with, limit).await,
        Command::Doctor {
            server,
            account,
            json,
        } => doctor(&database_url, &file, server, account, json).await,
        Command::Tasks {
            command: Some(TasksCommand::Done { id }),
            ..
        } => {
            let store = open_store(&database_url).await?;
            if store
                .complete_task(id, SystemClock.now().as_millisecond())
                .await?
            {
                println!("task {id}: done");
                Ok(())
            } else {
                Err(CliError::Refused(format!("there is no open task {id}")))
            }
        }
        Command::Tasks {
            command: None,
            account,
            overdue,
            all,
        } => {
            let store = open_store(&database_url).await?;
            let filter = match (overdue, all) {
                (true, _) => {
                    textback_store::TaskFilter::OverdueAt(SystemClock.now().as_millisecond())
                }
                (false, true) => textback_store::TaskFilter::All,
                (false, false) => textback_store::TaskFilter::Open,
            };
            for t in store.tasks(account.as_deref(), filter, 200).await? {
                println!(
                    "{:>5}  {}  due {}  [{}]  {}{}{}",
                    t.id,
                    t.account,
                    format_time(t.due_at_ms),
                    t.status,
                    t.title,
                    t.assignee
                        .map(|a| format!("  (for {a})"))
                        .unwrap_or_default(),
                    t.recording_url
                        .map(|r| format!("  voicemail: {r}"))
                        .unwrap_or_default()
                );
            }
            Ok(())
        }
        Command::Lint {
            message,
            account,
            kind,
            json,
        } => lint_command(&database_url, message, account, &kind, json).await,
        Command::Variants { account, json } => {
            variants_command(&database_url, &account, json).await
        }
        Command::CallBack {
            server,
            task,
            team_phone,
        } => call_back(&database_url, &file, server, task, team_phone).await,
        Command::ApiKey { command } => api_key(&database_url, command).await,
        Command::User { command } => user_command(&database_url, command).await,
        Command::SetupLink { server } => {
            let listen = config::listen(server.listen, &file)?;
            let public_url = config::public_url(server.public_url, &file, listen)?;
            let store = open_store(&database_url).await?;
            match textback_server::web::setup::setup_token(&store).await? {
                Some(token) => {
                    println!("{}/setup?token={token}", public_url.trim_end_matches('/'));
                    Ok(())
                }
                None => Err(CliError::Refused(
                    "setup is done: someone can sign in already (add more people with `textback user create`)".into(),
                )),
            }
        }
        Command::Contacts { command } => contacts_command(&database_url, command).await,
        Command::Report {
            account,
            days,
            json,
        } => report(&database_url, &account, days, json).await,
        Command::Workflows { account, runs } => {
            let store = open_store(&database_url).await?;
            let Some(acct) = store.account_by_slug(&account).await? else {
                return Err(CliError::Refused(format!("no account {account:?}")));
            };
            for w in store.workflows_of_account(acct.id).await? {
                println!(
                    "{}  version {}  {}{}",
                    w.name,
                    w.version,
                    if w.active { "active" } else { "inactive" },
                    if w.builtin {
                        "  (the built-in text back)"
                    } else {
                        ""
                    }
                );
            }
            if runs {
                for r in store.runs(acct.id, 50).await? {
                    println!(
                        "run {}  {} v{}  {}  {}  {}{}",
                        r.id,
                        r.workflow,
                        r.version,
                        r.trigger,
                        r.contact_phone.as_deref().unwrap_or("-"),
                        r.status,
                        match (r.stop_reason, r.resume_at_ms) {
                            (Some(why), _) => format!(" ({why})"),
                            (None, Some(at)) => format!(" until {}", format_time(at)),
                            _ => String::new(),
                        }
                    );
                    for (place, what) in r.log {
                        println!("      {place}: {what}");
                    }
                }
            }
            Ok(())
        }
        Command::Messages { limit } => {
            let store = open_store(&database_url).await?;
            for m in store.recent_messages(limit).await? {
                println!(
                    "{}  {} -> {}  via {} [{}]  {}{}",
                    format_time(m.created_at_ms),
                    m.from,
                    m.to,
                    m.carrier,
                    m.status,
                    m.body,
                    m.error_message
                        .map(|e| format!("  ({e})"))
                        .unwrap_or_default()
                );
            }
            Ok(())
        }
    }
}

/// `[==========>         ] 1500/3000 rows (50%)`
fn progress_bar(done: usize, total: usize) -> String {
    const WIDTH: usize = 30;
    let filled = (done * WIDTH)
        .checked_div(total)
        .unwrap_or(WIDTH)
        .min(WIDTH);
    let arrow = if filled < WIDTH { ">" } else { "" };
    let percent = (done * 100).checked_div(total).unwrap_or(100);
    format!(
        "[{}{arrow}{}] {done}/{total} rows ({percent}%)",
        "=".repeat(filled),
        " ".repeat(WIDTH - filled - arrow.len()),
    )
}

async fn contacts_command(database_url: &str, command: ContactsCommand) -> Result<(), CliError> {
    let store = open_store(database_url).await?;
    let account_of = |slug: &str| {
        let store = store.clone();
        let slug = slug.to_owned();
        async move {
            store
                .account_by_slug(&slug)
                .await?
                .ok_or_else(|| CliError::Refused(format!("no account {slug:?}")))
        }
    };
    match command {
        ContactsCommand::Import {
            file,
            account,
            dry_run,
        } => {
            let acct = account_of(&account).await?;
            let data = std::fs::read(&file).map_err(|error| CliError::ReadFile {
                path: file.clone(),
                error,
            })?;
            let (rows, errors) = textback_server::contacts_io::parse(&data)
                .map_err(|e| CliError::Refused(e.to_string()))?;
            for e in &errors {
                eprintln!("line {}: {}", e.line, e.error);
            }
            if dry_run {
                println!(
                    "dry run: {} row(s) would be imported, {} with errors; nothing was written",
                    rows.len(),
                    errors.len()
                );
                return Ok(());
            }
            let (mut created, mut updated) = (0, 0);
            let total = rows.len();
            // A bar only where someone watches; redirected stderr stays clean for logs.
            let show_progress = total > 500 && std::io::stderr().is_terminal();
            let mut done = 0;
            for chunk in rows.chunks(500) {
                let (c, u) = store
                    .import_contacts(acct.id, chunk, SystemClock.now().as_millisecond())
                    .await?;
                created += c;
                updated += u;
                done += chunk.len();
                if show_progress {
                    eprint!("\r{}", progress_bar(done, total));
                }
            }
            if show_progress {
                eprintln!();
            }
            println!(
                "{created} created, {updated} updated, {} row(s) with errors skipped",
                errors.len()
            );
            Ok(())
        }
        ContactsCommand::Export { account, format } => {
            let acct = account_of(&account).await?;
            let mut all = Vec::new();
            let mut before = None;
            loop {
                let page = store
                    .contacts_page(acct.id, None, None, before, 500)
                    .await?;
                let done = page.len() < 500;
                before = page.last().map(|c| c.id);
                all.extend(page);
                if done {
                    break;
                }
            }
            match format.as_str() {
                "csv" => print!("{}", textback_server::contacts_io::to_csv(&all)),
                "json" => println!("{}", serde_json::to_string_pretty(&all).unwrap_or_default()),
                other => {
                    return Err(CliError::Refused(format!(
                        "--format {other:?}: use csv or json"
                    )));
                }
            }
            Ok(())
        }
    }
}

async fn report(database_url: &str, account: &str, days: i64, json: bool) -> Result<(), CliError> {
    if !(1..=366).contains(&days) {
        return Err(CliError::Refused("--days is 1 to 366".into()));
    }
    let store = open_store(database_url).await?;
    let Some(acct) = store.account_by_slug(account).await? else {
        return Err(CliError::Refused(format!("no account {account:?}")));
    };
    let Some(r) =
        textback_server::reports::build(&store, acct.id, days, SystemClock.now().as_millisecond())
            .await?
    else {
        return Err(CliError::Refused(format!("no account {account:?}")));
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
        return Ok(());
    }
    let f = &r["funnel"];
    println!(
        "{account}, last {days} day(s), {}",
        r["time_zone"].as_str().unwrap_or_default()
    );
    println!(
        "calls {}  missed {}  texted {}  delivered {}  replied {}  called back {}",
        f["calls"], f["missed"], f["texted"], f["delivered"], f["replied"], f["called_back"]
    );
    let secs = |v: &serde_json::Value| {
        v.as_f64()
            .map(|s| format!("{s:.1} s"))
            .unwrap_or_else(|| "-".into())
    };
    println!(
        "median time to text {}  to call back {}",
        secs(&r["median_seconds_to_text"]),
        secs(&r["median_seconds_to_call_back"])
    );
    for d in r["by_day"].as_array().into_iter().flatten() {
        println!(
            "  {}  calls {}  missed {}  texted {}  replied {}  called back {}",
            d["date"].as_str().unwrap_or_default(),
            d["calls"],
            d["missed"],
            d["texted"],
            d["replied"],
            d["called_back"]
        );
    }
    Ok(())
}

async fn user_command(database_url: &str, command: UserCommand) -> Result<(), CliError> {
    let UserCommand::Create {
        account,
        email,
        name,
        role,
    } = command;
    let role = textback_store::Role::parse(&role)
        .ok_or_else(|| CliError::Refused(format!("--role {role:?}: use owner or member")))?;
    let email = textback_store::normalize_email(&email).ok_or_else(|| {
        CliError::Refused(format!(
            "--email {:?} is not an email address",
            email.trim()
        ))
    })?;
    if name.trim().is_empty() {
        return Err(CliError::Refused("--name must not be empty".into()));
    }
    let password = match std::env::var("TEXTBACK_USER_PASSWORD") {
        Ok(p) => p,
        Err(_) => {
            if std::io::stdin().is_terminal() {
                eprint!("password for {email} (shown as you type): ");
            }
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map_err(|e| CliError::Refused(format!("cannot read the password: {e}")))?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    let hash = textback_server::web::password::hash(&password)
        .map_err(|e| CliError::Refused(e.to_string()))?;
    let store = open_store(database_url).await?;
    let acct = store
        .account_by_slug(&account)
        .await?
        .ok_or_else(|| CliError::Refused(format!("no account {account:?}")))?;
    let now = SystemClock.now().as_millisecond();
    match store
        .create_user(acct.id, &email, &name, role, &hash, now)
        .await?
    {
        Some(id) => {
            println!("user {id}: {email} ({}) on {}", role.as_str(), acct.slug);
            Ok(())
        }
        None => Err(CliError::Refused(format!(
            "{email} already has a sign-in; emails are unique across accounts"
        ))),
    }
}

async fn api_key(database_url: &str, command: ApiKeyCommand) -> Result<(), CliError> {
    let store = open_store(database_url).await?;
    let account_id = |slug: String| {
        let store = store.clone();
        async move {
            store
                .account_by_slug(&slug)
                .await?
                .map(|a| a.id)
                .ok_or_else(|| CliError::Refused(format!("no account {slug:?}")))
        }
    };
    let now = SystemClock.now().as_millisecond();
    match command {
        ApiKeyCommand::Create { account, name } => {
            let id = account_id(account).await?;
            let key = textback_server::api::new_key();
            let prefix: String = key.chars().take(10).collect();
            store
                .create_api_key(
                    id,
                    name.trim(),
                    &prefix,
                    &textback_server::api::key_hash(&key),
                    now,
                )
                .await?;
            println!("{key}");
            eprintln!("this key is shown once: keep it somewhere safe");
        }
        ApiKeyCommand::List { account } => {
            let id = account_id(account).await?;
            for k in store.api_keys(id).await? {
                println!(
                    "{:>4}  {}…  {}  created {}  last used {}{}",
                    k.id,
                    k.prefix,
                    k.name,
                    format_time(k.created_at_ms),
                    k.last_used_at_ms
                        .map(format_time)
                        .unwrap_or_else(|| "never".into()),
                    if k.revoked { "  (revoked)" } else { "" }
                );
            }
        }
        ApiKeyCommand::Revoke { account, id } => {
            let account = account_id(account).await?;
            if !store.revoke_api_key(account, id, now).await? {
                return Err(CliError::Refused(format!(
                    "no active key {id} in this account"
                )));
            }
            println!("key {id}: revoked");
        }
    }
    Ok(())
}

async fn call_back(
    database_url: &str,
    file: &config::FileConfig,
    server: ServerArgs,
    task: i64,
    team_phone: Option<String>,
) -> Result<(), CliError> {
    let listen = config::listen(server.listen, file)?;
    let public_url = config::public_url(server.public_url, file, listen)?;
    let Some(twilio) = config::twilio(server.twilio_account_sid, server.twilio_auth_token, file)?
    else {
        return Err(CliError::Refused(
            "calling back needs Twilio: set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN".into(),
        ));
    };
    let api_base = config::twilio_api_base(server.twilio_api_base, file)?;
    let lookup_base = config::twilio_lookup_base(server.twilio_lookup_base, file)?;
    let store = open_store(database_url).await?;
    let Some((_, number, team)) = store.callback_target(task).await? else {
        return Err(CliError::Refused(format!(
            "there is no open task {task} with a contact to call"
        )));
    };
    let team_phone = match team_phone {
        Some(p) => textback_core::Phone::parse(&p)
            .map_err(|e| CliError::Refused(format!("--team-phone: {e}")))?
            .to_string(),
        None => team.first().cloned().ok_or_else(|| {
            CliError::Refused("the number has no team phone; pass --team-phone".into())
        })?,
    };
    let client = textback_carriers::twilio::TwilioClient::new(
        &api_base,
        &lookup_base,
        TwilioCredentials {
            account_sid: twilio.account_sid,
            auth_token: twilio.auth_token,
        },
        Duration::from_secs(10),
    )
    .map_err(|e| CliError::Refused(format!("cannot build the HTTP client: {e}")))?;
    let url = format!("{public_url}/webhooks/twilio/voice/callback?task={task}");
    let sid = client
        .place_call(&team_phone, &number, &url)
        .await
        .map_err(CliError::Refused)?;
    println!("calling {team_phone} now (call {sid}); answering connects you to the caller");
    Ok(())
}

async fn variants_command(database_url: &str, account: &str, json: bool) -> Result<(), CliError> {
    use textback_core::variants::{VariantCounts, compare};
    let store = open_store(database_url).await?;
    let Some(acct) = store.account_by_slug(account).await? else {
        return Err(CliError::Refused(format!("no account {account:?}")));
    };
    let rows = store.variant_counts(acct.id).await?;
    // One comparison per workflow step that has variants.
    let mut groups: Vec<((String, String), Vec<VariantCounts>)> = Vec::new();
    for r in rows {
        let key = (r.workflow.clone(), r.step.clone());
        let counts = VariantCounts {
            name: r.variant,
            sent: r.sent.max(0) as u64,
            delivered: r.delivered.max(0) as u64,
            replied: r.replied.max(0) as u64,
        };
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, list)) => list.push(counts),
            None => groups.push((key, vec![counts])),
        }
    }
    let compared: Vec<serde_json::Value> = groups
        .iter()
        .map(|((workflow, step), counts)| {
            let c = compare(counts);
            serde_json::json!({"workflow": workflow, "step": step, "comparison": c})
        })
        .collect();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&compared).unwrap_or_else(|_| "[]".into())
        );
        return Ok(());
    }
    if groups.is_empty() {
        println!("no texts with variants yet");
    }
    for ((workflow, step), counts) in &groups {
        let c = compare(counts);
        println!("{workflow} / {step}");
        for v in &c.variants {
            println!(
                "  {:<10} sent {:>5}  delivered {:>5}  replied {:>5}  reply rate {:>5.1}% (95% CI {:.1}-{:.1}%)",
                v.name,
                v.sent,
                v.delivered,
                v.replied,
                v.reply_rate * 100.0,
                v.ci_low * 100.0,
                v.ci_high * 100.0
            );
        }
        if let (Some(leader), Some(conf)) = (&c.leader, c.confidence) {
            println!(
                "  {leader} leads; confidence it is really better: {:.0}%",
                conf * 100.0
            );
        }
    }
    Ok(())
}

async fn lint_command(
    database_url: &str,
    message: Vec<String>,
    account: Option<String>,
    kind: &str,
    json: bool,
) -> Result<(), CliError> {
    use std::io::Read;
    use textback_core::lint::{LintInput, MessageKind, Severity, lint};
    let kind = match kind {
        "text-back" | "text_back" => MessageKind::TextBack,
        "follow-up" | "follow_up" => MessageKind::FollowUp,
        "reply" => MessageKind::Reply,
        other => {
            return Err(CliError::Refused(format!(
                "--kind {other:?}: use text-back, follow-up or reply"
            )));
        }
    };
    let text = if message.is_empty() {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).map_err(|e| {
            CliError::Refused(format!("cannot read the message from standard input: {e}"))
        })?;
        s.trim_end_matches(['\n', '\r']).to_owned()
    } else {
        message.join(" ")
    };
    let acct = match &account {
        Some(slug) => {
            let store = open_store(database_url).await?;
            Some(
                store
                    .account_by_slug(slug)
                    .await?
                    .ok_or_else(|| CliError::Refused(format!("no account {slug:?}")))?,
            )
        }
        None => None,
    };
    let report = lint(&LintInput {
        text: &text,
        kind,
        business_name: acct.as_ref().map(|a| a.name.as_str()),
        booking_link: acct.as_ref().and_then(|a| a.booking_link.as_deref()),
    });
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_else(|_| "{}".into())
        );
    } else {
        let (lo, hi) = report.rendered_segments;
        let rendered = if lo == hi {
            format!("{hi}")
        } else {
            format!("{lo} to {hi}")
        };
        println!(
            "{}, {} segment(s), {} characters; rendered for real contacts: {rendered} segment(s)",
            report.encoding, report.segments, report.characters
        );
        for f in &report.findings {
            let label = match f.severity {
                Severity::Error => "error  ",
                Severity::Warning => "warning",
                Severity::Info => "info   ",
            };
            println!("{label}  {}: {}", f.rule, f.message);
        }
        if let (Some(s), Some(n)) = (&report.suggestion, report.suggestion_segments) {
            println!("suggestion ({n} segment(s)): {s}");
        }
        if report.findings.iter().all(|f| f.severity == Severity::Info) {
            println!("looks good");
        }
    }
    if report.has_errors() {
        Err(CliError::Refused("the message has errors".into()))
    } else {
        Ok(())
    }
}

fn format_time(ms: i64) -> String {
    format_time_inner(ms)
}

async fn reply(
    database_url: &str,
    file: &config::FileConfig,
    server: ServerArgs,
    account: String,
    to: String,
    from: Option<String>,
    message: Vec<String>,
) -> Result<(), CliError> {
    let to =
        textback_core::Phone::parse(&to).map_err(|e| CliError::Refused(format!("--to: {e}")))?;
    let from = match from {
        Some(f) => Some(
            textback_core::Phone::parse(&f)
                .map_err(|e| CliError::Refused(format!("--from: {e}")))?
                .to_string(),
        ),
        None => None,
    };
    let body = message.join(" ").trim().to_owned();
    if body.is_empty() {
        return Err(CliError::Refused("the message is empty".into()));
    }
    if body.chars().count() > 1600 {
        return Err(CliError::Refused(
            "the message is longer than 1600 characters".into(),
        ));
    }
    let twilio = config::twilio(server.twilio_account_sid, server.twilio_auth_token, file)?;
    let store = open_store(database_url).await?;
    let reply = textback_store::Reply {
        account_slug: account,
        from_number: from,
        to_phone: to.to_string(),
        body,
        carrier: if twilio.is_some() {
            "twilio"
        } else {
            "sandbox"
        }
        .to_owned(),
    };
    match store
        .queue_reply(&reply, SystemClock.now().as_millisecond())
        .await?
    {
        Ok(id) => {
            println!("queued message {id} to {to}; the running server sends it");
            Ok(())
        }
        Err(refused) => Err(CliError::Refused(refused.to_string())),
    }
}

async fn conversation(
    database_url: &str,
    account: &str,
    with: &str,
    limit: i64,
) -> Result<(), CliError> {
    let phone =
        textback_core::Phone::parse(with).map_err(|e| CliError::Refused(format!("--with: {e}")))?;
    let store = open_store(database_url).await?;
    let Some(acct) = store.account_by_slug(account).await? else {
        return Err(CliError::Refused(format!("no account {account:?}")));
    };
    for m in store.conversation(account, phone.as_str(), limit).await? {
        let who = if m.direction == "inbound" {
            "them"
        } else {
            "us  "
        };
        let media = if m.media.is_empty() {
            String::new()
        } else {
            format!("  [{} media: {}]", m.media.len(), m.media.join(" "))
        };
        let err = m
            .error_message
            .map(|e| format!("  ({e})"))
            .unwrap_or_default();
        println!(
            "{}  {who}  [{}] {}{media}{err}",
            format_time(m.created_at_ms),
            m.status,
            m.body
        );
    }
    let history = store.consent_history(acct.id, phone.as_str()).await?;
    for e in history {
        println!(
            "{}  consent: {} ({}{})",
            format_time(e.at_ms),
            if e.opted_out { "opted out" } else { "opted in" },
            e.source,
            e.detail.map(|d| format!(": {d:?}")).unwrap_or_default()
        );
    }
    Ok(())
}

async fn doctor(
    database_url: &str,
    file: &config::FileConfig,
    server: ServerArgs,
    account: Option<String>,
    json: bool,
) -> Result<(), CliError> {
    let listen = config::listen(server.listen, file)?;
    let public_url = config::public_url(server.public_url, file, listen)?;
    let twilio = config::twilio(server.twilio_account_sid, server.twilio_auth_token, file)?;
    let api_base = config::twilio_api_base(server.twilio_api_base, file)?;
    let lookup_base = config::twilio_lookup_base(server.twilio_lookup_base, file)?;
    let messaging_base = config::twilio_messaging_base(server.twilio_messaging_base, file)?;
    let client = match twilio {
        Some(t) => Some(
            textback_carriers::twilio::TwilioClient::new(
                &api_base,
                &lookup_base,
                TwilioCredentials {
                    account_sid: t.account_sid,
                    auth_token: t.auth_token,
                },
                Duration::from_secs(10),
            )
            .map_err(|e| CliError::Refused(format!("cannot build the HTTP client: {e}")))?
            .with_messaging_base(&messaging_base),
        ),
        None => None,
    };
    let store = open_store(database_url).await?;
    let facts = doctor::gather(
        &store,
        client.as_ref(),
        &public_url,
        account.as_deref(),
        SystemClock.now().as_millisecond(),
    )
    .await?;
    if let (Some(slug), true) = (&account, facts.is_empty()) {
        return Err(CliError::Refused(format!("no account {slug:?}")));
    }
    let findings: Vec<doctor::Finding> = facts.iter().flat_map(doctor::evaluate).collect();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&findings).unwrap_or_else(|_| "[]".into())
        );
    } else if findings.is_empty() {
        println!("no accounts yet: textback apply examples/quickstart.toml");
    } else {
        print!("{}", doctor::render_text(&findings));
    }
    let fails = findings
        .iter()
        .filter(|f| f.status == doctor::Status::Fail)
        .count();
    if fails > 0 {
        Err(CliError::DoctorFailed(fails))
    } else {
        Ok(())
    }
}

fn format_time_inner(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

/// Listens for SIGTERM and SIGINT from the moment it is called; the future resolves at the
/// first. axum first polls the shutdown future on a task of its own, which can run after
/// the first requests are answered: a listener made only then loses a SIGTERM that comes in
/// between (seen: a `serve` stopped right after `/readyz` answered kept serving).
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = interrupt.recv() => {}
            }
            tracing::info!("shutting down: finishing requests in flight");
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("shutting down: finishing requests in flight");
        })
    }
}

#[cfg(test)]
mod tests {
    use super::progress_bar;

    /// Regression: the listener used to be made when the future was first polled, and a
    /// SIGTERM before that was lost (or, before any listener, killed the process at once).
    #[cfg(unix)]
    #[tokio::test]
    async fn a_sigterm_before_the_shutdown_future_runs_still_stops_the_server() {
        let stop = super::shutdown_signal().expect("signal listeners");
        // SAFETY: kill with our own pid and a signal the listeners above now handle.
        let sent = unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
        assert_eq!(sent, 0);
        tokio::time::timeout(std::time::Duration::from_secs(10), stop)
            .await
            .expect("the SIGTERM sent before the first poll stops the server");
    }

    #[test]
    fn progress_bar_fills_with_the_rows_done() {
        assert_eq!(
            progress_bar(0, 1000),
            format!("[>{}] 0/1000 rows (0%)", " ".repeat(29))
        );
        assert_eq!(
            progress_bar(500, 1000),
            format!(
                "[{}>{}] 500/1000 rows (50%)",
                "=".repeat(15),
                " ".repeat(14)
            )
        );
        assert_eq!(
            progress_bar(1000, 1000),
            format!("[{}] 1000/1000 rows (100%)", "=".repeat(30))
        );
    }
}
