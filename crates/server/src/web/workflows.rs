//! Automations: each workflow with its state, version and steps in words; owners turn them
//! on and off. (The builder is still to come; `textback apply` and the API edit them.)

use axum::Form;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde_json::Value;
use textback_store::Role;

use super::pages::{account_of, frame};
use super::session::{CsrfForm, SignedIn};
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
    if !signed_in.csrf_ok(csrf) {
        return Err(WebError::Csrf);
    }
    if signed_in.session.user.role != Role::Owner {
        return Err(WebError::OwnerOnly);
    }
    let id = parse_id(raw, "workflow")?;
    let mut account = account_of(state, signed_in).await?;
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
