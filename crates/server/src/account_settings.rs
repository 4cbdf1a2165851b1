//! Changing an account's settings: each value checked the same way whether it comes from
//! the REST API or the settings page, and the built-in text back workflow kept in step.

use std::collections::BTreeMap;

use textback_core::lint::{Finding, LintInput, MessageKind, Severity, lint};
use textback_core::phone::{Country, Phone};
use textback_core::workflow::{QuietHours, WorkflowSpec};
use textback_core::{BusinessHours, HumanDuration, MessageTemplate, TimeZoneName};
use textback_store::{AccountRecord, StoreError};

use crate::AppState;

/// What to change; `None` leaves a setting as it is.
#[derive(Debug, Default)]
pub struct SettingsChange {
    pub name: Option<String>,
    /// `Some(None)` removes the link.
    pub booking_link: Option<Option<String>>,
    pub time_zone: Option<String>,
    pub business_hours: Option<BTreeMap<String, String>>,
    pub quiet_hours: Option<String>,
    /// A duration such as `15m`.
    pub cooldown: Option<String>,
    pub text_back_message: Option<String>,
    pub text_back_enabled: Option<bool>,
    pub do_not_text: Option<Vec<String>>,
    pub landline_lookup: Option<bool>,
}

/// A value that cannot be saved, and which one (named as the API names it).
#[derive(Debug, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Invalid {
    pub field: String,
    pub message: String,
}

fn invalid(field: &str, message: impl ToString) -> Invalid {
    Invalid {
        field: field.to_owned(),
        message: message.to_string(),
    }
}

/// Applies `change` to `a` if every value is valid (else `a` is left as it was); returns
/// the linter's warnings on a new text back message.
pub fn apply(a: &mut AccountRecord, change: &SettingsChange) -> Result<Vec<Finding>, Invalid> {
    let mut next = a.clone();
    if let Some(n) = &change.name {
        let n = n.trim();
        if n.is_empty() || n.chars().count() > 100 {
            return Err(invalid("name", "the business name is 1 to 100 characters"));
        }
        next.name = n.to_owned();
    }
    if let Some(link) = &change.booking_link {
        next.booking_link = match link.as_deref().map(str::trim).filter(|l| !l.is_empty()) {
            Some(l) if l.starts_with("https://") || l.starts_with("http://") => Some(l.to_owned()),
            Some(_) => {
                return Err(invalid(
                    "booking_link",
                    "a web address starting with https://",
                ));
            }
            None => None,
        };
    }
    if let Some(tz) = &change.time_zone {
        next.time_zone = TimeZoneName::parse(tz)
            .map_err(|e| invalid("time_zone", e))?
            .to_string();
    }
    if let Some(h) = &change.business_hours {
        next.business_hours = BusinessHours::from_map(h)
            .map_err(|e| invalid("business_hours", e))?
            .to_map();
    }
    if let Some(q) = &change.quiet_hours {
        next.quiet_hours = QuietHours::parse(q)
            .map_err(|e| invalid("quiet_hours", e))?
            .to_string_hhmm();
    }
    if let Some(c) = &change.cooldown {
        next.cooldown_secs = HumanDuration::parse(c)
            .map_err(|e| invalid("cooldown", e))?
            .as_secs() as i64;
    }
    if let Some(list) = &change.do_not_text {
        next.do_not_text = list
            .iter()
            .map(|n| {
                Phone::parse_in(n, Country::US)
                    .map(|p| p.to_string())
                    .map_err(|e| invalid("do_not_text", e))
            })
            .collect::<Result<_, _>>()?;
    }
    if let Some(l) = change.landline_lookup {
        next.landline_lookup = l;
    }
    let mut warnings = Vec::new();
    if let Some(m) = &change.text_back_message {
        MessageTemplate::parse(m).map_err(|e| invalid("text_back.message", e))?;
        let report = lint(&LintInput {
            text: m,
            kind: MessageKind::TextBack,
            business_name: Some(&next.name),
            booking_link: next.booking_link.as_deref(),
        });
        if let Some(e) = report
            .findings
            .iter()
            .find(|f| f.severity == Severity::Error)
        {
            return Err(invalid(
                "text_back.message",
                format!("{}: {}", e.rule, e.message),
            ));
        }
        warnings = report
            .findings
            .into_iter()
            .filter(|f| f.severity == Severity::Warning)
            .collect();
        next.text_back_template = m.clone();
    }
    if let Some(e) = change.text_back_enabled {
        next.text_back_enabled = e;
    }
    *a = next;
    Ok(warnings)
}

/// Saves the account; when the text back changed, its preset workflow too.
pub async fn save(
    state: &AppState,
    a: &AccountRecord,
    change: &SettingsChange,
) -> Result<(), StoreError> {
    let now = state.now_ms();
    state.store.save_account(a, now).await?;
    if change.text_back_message.is_some() || change.text_back_enabled.is_some() {
        // The built-in text back is a preset workflow: keep it in step.
        let mut builtin = WorkflowSpec::builtin_text_back(&a.text_back_template);
        builtin.active = a.text_back_enabled;
        state
            .store
            .save_workflow(
                a.id,
                &builtin.name,
                true,
                builtin.active,
                &builtin.versioned_json(),
                now,
            )
            .await?;
    }
    Ok(())
}
