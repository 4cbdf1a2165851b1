//! Automations: each workflow with its state, version and steps in words; owners turn them
//! on and off, build new ones and change them in the builder (`workflow_form` holds its
//! pure half), and see every version with who saved it, restoring an older one.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde_json::Value;
use textback_core::lint::{LintInput, Severity, lint};
use textback_core::workflow::{BUILTIN_NAME, TriggerSpec, Workflow, WorkflowSpec, messages_of};
use textback_store::{AccountRecord, Role, WorkflowRecord};

use super::pages::{account_of, frame, local_time, zone};
use super::session::{CsrfForm, SignedIn};
use super::settings::{owner_account, owner_only};
use super::workflow_form::{self, Fields, Op, Row, STEP_TYPES};
use super::{WebError, parse_id, render};
use crate::AppState;
use crate::account_settings::{SettingsChange, apply, save};

/// "Send a text → create a task → add a tag → wait → if …"
fn steps_in_words(spec: &str) -> String {
    let spec: Value = serde_json::from_str(spec).unwrap_or(Value::Null);
    let words: Vec<String> = spec["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| match s["type"].as_str().unwrap_or("step") {
            "send_sms" => "send a text".to_owned(),
            "create_task" => "create a callback task".to_owned(),
            "add_tag" => format!("tag “{}”", s["tag"].as_str().unwrap_or("")),
            "wait" => format!("wait {}", s["for"].as_str().unwrap_or("")),
            "if" => "if …, then … else …".to_owned(),
            other => other.replace('_', " "),
        })
        .collect();
    if words.is_empty() {
        "No steps.".into()
    } else {
        let mut s = words.join(" → ");
        if let Some(first) = s.get(..1) {
            s = first.to_uppercase() + &s[1..];
        }
        s
    }
}

pub async fn list(
    State(state): State<AppState>,
    signed_in: SignedIn,
) -> Result<Response, WebError> {
    let account = account_of(&state, &signed_in).await?;
    let workflows: Vec<minijinja::Value> = state
        .store
        .workflows_of_account(account.id)
        .await?
        .iter()
        .map(|w| {
            context! {
                id => w.id,
                name => &w.name,
                builtin => w.builtin,
                active => w.active,
                version => w.version,
                steps => steps_in_words(&w.spec),
            }
        })
        .collect();
    Ok(render(
        "workflows.html",
        context! {
            workflows => workflows,
            owner => signed_in.session.user.role == Role::Owner,
            ..frame(&signed_in, &account, "workflows", "Automations")
        },
    )?
    .into_response())
}

async fn set_active(
    state: &AppState,
    signed_in: &SignedIn,
    raw: &str,
    csrf: Option<&str>,
    active: bool,
) -> Result<Response, WebError> {
    let mut account = owner_account(state, signed_in, csrf).await?;
    let id = parse_id(raw, "workflow")?;
    let w = state
        .store
        .workflows_of_account(account.id)
        .await?
        .into_iter()
        .find(|w| w.id == id)
        .ok_or(WebError::NotFound("workflow"))?;
    if w.builtin {
        // The built-in text back is the account's setting: change it there so both agree.
        let change = SettingsChange {
            text_back_enabled: Some(active),
            ..SettingsChange::default()
        };
        apply(&mut account, &change).map_err(|e| WebError::Template(e.to_string()))?;
        save(state, &account, &change).await?;
    } else {
        state
            .store
            .save_workflow(account.id, &w.name, false, active, &w.spec, state.now_ms())
            .await?;
    }
    Ok(Redirect::to("/workflows").into_response())
}

pub async fn activate(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(raw): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, WebError> {
    set_active(&state, &signed_in, &raw, form.csrf.as_deref(), true).await
}

pub async fn deactivate(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(raw): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, WebError> {
    set_active(&state, &signed_in, &raw, form.csrf.as_deref(), false).await
}

async fn workflow_of(
    state: &AppState,
    account: &AccountRecord,
    raw: &str,
) -> Result<WorkflowRecord, WebError> {
    let id = parse_id(raw, "workflow")?;
    state
        .store
        .workflow_of_account(account.id, id)
        .await?
        .ok_or(WebError::NotFound("workflow"))
}

/// A stored spec; a version that no longer reads (older shape) opens as an empty draft
/// rather than an error page, keeping its name.
fn spec_of(w: &WorkflowRecord) -> WorkflowSpec {
    serde_json::from_str(&w.spec).unwrap_or_else(|_| WorkflowSpec {
        name: w.name.clone(),
        steps: vec![],
        ..WorkflowSpec::builtin_text_back("")
    })
}

/// One workflow: what it does, its linter notes, every version (owners restore one).
pub async fn detail(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(raw): Path<String>,
) -> Result<Response, WebError> {
    let account = account_of(&state, &signed_in).await?;
    let w = workflow_of(&state, &account, &raw).await?;
    let tz = zone(&account);
    let today = jiff::Timestamp::from_millisecond(state.now_ms())
        .map(|t| tz.to_datetime(t).date())
        .ok();
    let versions: Vec<minijinja::Value> = state
        .store
        .workflow_versions(w.id)
        .await?
        .iter()
        .map(|v| {
            let when = jiff::Timestamp::from_millisecond(v.created_at_ms)
                .map(|t| {
                    let local = tz.to_datetime(t);
                    if Some(local.date()) == today {
                        format!("today {}", local_time(v.created_at_ms, &tz))
                    } else {
                        local.strftime("%b %-d, %Y %-I:%M %p").to_string()
                    }
                })
                .unwrap_or_default();
            context! {
                version => v.version,
                current => v.version == w.version,
                when => when,
                by => v.saved_by.as_deref().unwrap_or("before authors were recorded"),
                steps => steps_in_words(&v.spec),
            }
        })
        .collect();
    let spec = spec_of(&w);
    let notes: Vec<String> = draft_findings(&spec, &account)
        .into_iter()
        .map(|f| format!("{}: {}", f.place, f.message))
        .collect();
    Ok(render(
        "workflow.html",
        context! {
            w => context! {
                id => w.id,
                name => &w.name,
                builtin => w.builtin,
                active => w.active,
                version => w.version,
                steps => steps_in_words(&w.spec),
            },
            notes => notes,
            versions => versions,
            owner => signed_in.session.user.role == Role::Owner,
            ..frame(&signed_in, &account, "workflows", &w.name)
        },
    )?
    .into_response())
}

/// What the linter says about a draft's messages, each with the step it belongs to.
struct Finding {
    path: String,
    place: String,
    error: bool,
    message: String,
}

fn draft_findings(spec: &WorkflowSpec, account: &AccountRecord) -> Vec<Finding> {
    let missed = matches!(spec.trigger, TriggerSpec::MissedCall { .. });
    let mut out = Vec::new();
    for m in messages_of(&spec.steps, missed) {
        let report = lint(&LintInput {
            text: m.text,
            kind: m.kind,
            business_name: Some(account.name.as_str()),
            booking_link: account.booking_link.as_deref(),
        });
        let label = m
            .step
            .replace(".then.", " › yes › ")
            .replace(".else.", " › otherwise › ");
        let place = match m.variant {
            Some(k) => format!("Step {label}, variant {}", k + 1),
            None => format!("Step {label}"),
        };
        for f in report.findings {
            if f.severity == Severity::Info {
                continue;
            }
            out.push(Finding {
                path: m.step.clone(),
                place: place.clone(),
                error: f.severity == Severity::Error,
                message: f.message,
            });
        }
    }
    out
}

/// A builder page for a draft, with what is wrong with it (nothing on a fresh open).
struct Builder<'a> {
    spec: &'a WorkflowSpec,
    /// `None` for a new workflow.
    id: Option<i64>,
    error: Option<String>,
    error_path: Option<String>,
    findings: Vec<Finding>,
    focus: Option<String>,
}

impl<'a> Builder<'a> {
    /// A draft drawn as it is: nothing found wrong yet, nothing in focus.
    fn fresh(spec: &'a WorkflowSpec, id: Option<i64>) -> Builder<'a> {
        Builder {
            spec,
            id,
            error: None,
            error_path: None,
            findings: vec![],
            focus: None,
        }
    }
}

async fn builder_page(
    state: &AppState,
    signed_in: &SignedIn,
    account: &AccountRecord,
    b: Builder<'_>,
    status: StatusCode,
) -> Result<Response, WebError> {
    let spec = b.spec;
    let numbers = state.store.numbers_of_account(account.id).await?;
    let team = state.store.users_of_account(account.id).await?;
    let mut rows = workflow_form::rows(spec);
    for row in &mut rows {
        if let Row::Step(v) = row {
            if b.error_path.as_deref() == Some(v.path.as_str()) {
                v.problems.extend(b.error.clone());
            }
            v.problems.extend(
                b.findings
                    .iter()
                    .filter(|f| f.path == v.path)
                    .map(|f| f.message.clone()),
            );
        }
    }
    let (trigger, chosen, hours, caller, tag_present, tag_absent) = match &spec.trigger {
        TriggerSpec::MissedCall {
            numbers,
            business_hours,
            contact,
            tag_present,
            tag_absent,
        } => (
            "missed_call",
            numbers.clone(),
            business_hours.clone().unwrap_or_else(|| "any".into()),
            contact.clone().unwrap_or_else(|| "any".into()),
            tag_present.join(", "),
            tag_absent.join(", "),
        ),
        TriggerSpec::VoicemailLeft { numbers } => (
            "voicemail_left",
            numbers.clone(),
            "any".into(),
            "any".into(),
            String::new(),
            String::new(),
        ),
        TriggerSpec::MessageReceived { numbers } => (
            "message_received",
            numbers.clone(),
            "any".into(),
            "any".into(),
            String::new(),
            String::new(),
        ),
        TriggerSpec::TaskOverdue => (
            "task_overdue",
            vec![],
            "any".into(),
            "any".into(),
            String::new(),
            String::new(),
        ),
    };
    let title = match b.id {
        Some(_) => format!("Change “{}”", spec.name),
        None => "New workflow".to_owned(),
    };
    let action = match b.id {
        Some(id) => format!("/workflows/{id}/edit"),
        None => "/workflows/new".to_owned(),
    };
    let findings: Vec<minijinja::Value> = b
        .findings
        .iter()
        .map(|f| context! { place => &f.place, error => f.error, message => &f.message })
        .collect();
    let body = render(
        "workflow_edit.html",
        context! {
            new => b.id.is_none(),
            id => b.id,
            action => action,
            d => context! {
                name => &spec.name,
                active => spec.active,
                stop_on_reply => spec.stop_on_reply,
                allow_reentry => spec.allow_reentry,
                time_zone => spec.time_zone.as_deref().unwrap_or(""),
                trigger => trigger,
                business_hours => hours,
                caller => caller,
                tag_present => tag_present,
                tag_absent => tag_absent,
            },
            numbers => numbers.iter().map(|n| context! {
                e164 => &n.e164,
                chosen => chosen.contains(&n.e164),
            }).collect::<Vec<_>>(),
            team => team.iter().map(|u| context! { email => &u.email, name => &u.name }).collect::<Vec<_>>(),
            rows => minijinja::Value::from(minijinja::value::Serde(&rows)),
            step_types => STEP_TYPES.iter().map(|(k, l)| context! { key => *k, label => *l }).collect::<Vec<_>>(),
            error => b.error,
            findings => findings,
            focus => b.focus,
            account_zone => &account.time_zone,
            business => &account.name,
            ..frame(signed_in, account, "workflows", &title)
        },
    )?;
    Ok((status, body).into_response())
}

pub async fn new_form(
    State(state): State<AppState>,
    signed_in: SignedIn,
) -> Result<Response, WebError> {
    owner_only(&signed_in)?;
    let account = account_of(&state, &signed_in).await?;
    // The recommended shape is the best start: most businesses only change the words.
    let mut spec = WorkflowSpec::recommended(&account.text_back_template);
    spec.name = String::new();
    let b = Builder::fresh(&spec, None);
    builder_page(&state, &signed_in, &account, b, StatusCode::OK).await
}

pub async fn edit_form(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(raw): Path<String>,
) -> Result<Response, WebError> {
    owner_only(&signed_in)?;
    let account = account_of(&state, &signed_in).await?;
    let w = workflow_of(&state, &account, &raw).await?;
    if w.builtin {
        return Ok(Redirect::to("/settings").into_response());
    }
    let mut spec = spec_of(&w);
    spec.active = w.active;
    let b = Builder::fresh(&spec, Some(w.id));
    builder_page(&state, &signed_in, &account, b, StatusCode::OK).await
}

pub async fn new_submit(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    submit(&state, &signed_in, None, &pairs).await
}

pub async fn edit_submit(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(raw): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    submit(&state, &signed_in, Some(&raw), &pairs).await
}

/// Every builder button lands here: edits redraw the draft; "Save" checks it and, when
/// nothing is wrong, saves it as the workflow's next version.
async fn submit(
    state: &AppState,
    signed_in: &SignedIn,
    raw_id: Option<&str>,
    pairs: &[(String, String)],
) -> Result<Response, WebError> {
    let fields = Fields::new(pairs);
    let csrf = Some(fields.get("csrf")).filter(|c| !c.is_empty());
    let account = owner_account(state, signed_in, csrf).await?;
    let current = match raw_id {
        Some(raw) => {
            let w = workflow_of(state, &account, raw).await?;
            if w.builtin {
                return Ok(Redirect::to("/settings").into_response());
            }
            Some(w)
        }
        None => None,
    };
    let numbers: Vec<String> = state
        .store
        .numbers_of_account(account.id)
        .await?
        .into_iter()
        .map(|n| n.e164)
        .collect();
    let mut spec = workflow_form::spec_from_form(&fields, &numbers);
    if let Some(w) = &current {
        // The name identifies a workflow (account files and the API match on it), and
        // on/off has its own switch: the builder changes neither.
        spec.name = w.name.clone();
        spec.active = w.active;
    }
    let op = Op::from_form(&fields).unwrap_or(Op::Check);
    let mut b = Builder::fresh(&spec, current.as_ref().map(|w| w.id));
    if op != Op::Save {
        let mut draft = spec.clone();
        let focus = workflow_form::apply(&mut draft, &op);
        let mut b = Builder {
            spec: &draft,
            focus,
            ..b
        };
        if op == Op::Check {
            b.findings = draft_findings(&draft, &account);
            (b.error, b.error_path) = first_problem(&draft, &b.findings);
        }
        return builder_page(state, signed_in, &account, b, StatusCode::OK).await;
    }
    let name = spec.name.trim();
    let problem = if name.is_empty() {
        Some("give the workflow a name".to_owned())
    } else if name == BUILTIN_NAME {
        Some(format!(
            "“{BUILTIN_NAME}” is the built-in text back's name; choose another"
        ))
    } else if current.is_none()
        && state
            .store
            .workflows_of_account(account.id)
            .await?
            .iter()
            .any(|w| w.name == name)
    {
        Some(format!(
            "a workflow named “{name}” exists already; choose another name"
        ))
    } else {
        None
    };
    b.findings = draft_findings(&spec, &account);
    (b.error, b.error_path) = match problem {
        Some(problem) => (Some(problem), None),
        None => first_problem(&spec, &b.findings),
    };
    if b.error.is_some() {
        return builder_page(
            state,
            signed_in,
            &account,
            b,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    state
        .store
        .save_workflow_by(
            account.id,
            name,
            false,
            spec.active,
            &spec.versioned_json(),
            state.now_ms(),
            Some(&signed_in.session.user.email),
        )
        .await?;
    let saved = state
        .store
        .workflows_of_account(account.id)
        .await?
        .into_iter()
        .find(|w| w.name == name)
        .ok_or(WebError::NotFound("workflow"))?;
    Ok(Redirect::to(&format!("/workflows/{}", saved.id)).into_response())
}

/// What stops a draft from saving, and the step it is on: the linter's errors first (they
/// name the step in words and already show beside it), then checking's.
fn first_problem(spec: &WorkflowSpec, findings: &[Finding]) -> (Option<String>, Option<String>) {
    if let Some(f) = findings.iter().find(|f| f.error) {
        return (Some(format!("{}: {}", f.place, f.message)), None);
    }
    match Workflow::from_spec(spec) {
        Ok(_) => (None, None),
        Err(e) => (
            Some(e.to_string()),
            workflow_form::error_path(&e.place).map(str::to_owned),
        ),
    }
}

/// Makes an older version current again, as a new version (history only grows).
pub async fn restore(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path((raw, raw_version)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, WebError> {
    let account = owner_account(&state, &signed_in, form.csrf.as_deref()).await?;
    let w = workflow_of(&state, &account, &raw).await?;
    let wanted = parse_id(&raw_version, "version")?;
    let old = state
        .store
        .workflow_versions(w.id)
        .await?
        .into_iter()
        .find(|v| v.version == wanted)
        .ok_or(WebError::NotFound("version"))?;
    if !w.builtin {
        state
            .store
            .save_workflow_by(
                account.id,
                &w.name,
                false,
                w.active,
                &old.spec,
                state.now_ms(),
                Some(&signed_in.session.user.email),
            )
            .await?;
    }
    Ok(Redirect::to(&format!("/workflows/{}", w.id)).into_response())
}

#[cfg(test)]
mod tests {
    use super::steps_in_words;

    #[test]
    fn steps_read_as_a_sentence() {
        let spec = r#"{"steps":[{"type":"send_sms"},{"type":"add_tag","tag":"Missed Call"},{"type":"wait","for":"30m"}]}"#;
        assert_eq!(
            steps_in_words(spec),
            "Send a text → tag “Missed Call” → wait 30m"
        );
        assert_eq!(steps_in_words("not json"), "No steps.");
    }
}
