//! Account files (`textback apply FILE`): the TOML a business's accounts, numbers and
//! workflows are written in, and everything checked about them before anything is stored.
//! Pure: reading and checking a file touches no database, so it is tested (and fuzzed)
//! alone; the CLI saves what `plan` returns.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::account::{AccountRecord, NumberRecord};
use crate::lint::{LintInput, MessageKind, Severity, lint};
use crate::ringing::{self, RingError};
use crate::workflow::{
    BUILTIN_NAME, QuietHours, StepSpec, TriggerSpec, VariantSpec, Workflow, WorkflowSpec,
    messages_of,
};
use crate::{AccountSlug, BusinessHours, HumanDuration, MessageTemplate, Phone, TimeZoneName};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountFile {
    #[serde(default)]
    pub accounts: Vec<AccountSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountSpec {
    pub slug: String,
    pub name: String,
    pub time_zone: String,
    pub booking_link: Option<String>,
    #[serde(default)]
    pub business_hours: BTreeMap<String, String>,
    #[serde(default)]
    pub do_not_text: Vec<String>,
    /// Look up each caller's line type with Twilio Lookup and do not text landlines.
    #[serde(default)]
    pub landline_lookup: bool,
    /// Local times follow-ups wait out, like `21:00-08:00` (the default).
    pub quiet_hours: Option<String>,
    pub text_back: Option<TextBackSpec>,
    #[serde(default)]
    pub numbers: Vec<NumberSpec>,
    /// The account's workflows. Left out: the recommended workflow, carrying the text back
    /// message. Given: exactly these (others are deactivated), plus the built-in text back
    /// when it is enabled.
    pub workflows: Option<Vec<WorkflowSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextBackSpec {
    #[serde(default = "yes")]
    pub enabled: bool,
    pub message: Option<String>,
    /// Message variants to compare instead of one `message`.
    #[serde(default)]
    pub variants: Vec<VariantSpec>,
    pub cooldown: Option<HumanDuration>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumberSpec {
    pub number: String,
    #[serde(default = "twilio")]
    pub carrier: String,
    #[serde(default)]
    pub ring: Vec<String>,
    pub ring_time: Option<HumanDuration>,
    #[serde(default)]
    pub call_screening: bool,
    #[serde(default = "yes")]
    pub active: bool,
    /// A2P 10DLC (or toll-free verification) status: unregistered, pending, approved,
    /// rejected.
    #[serde(default = "unregistered")]
    pub registration: String,
}

fn unregistered() -> String {
    "unregistered".to_owned()
}

pub const REGISTRATION_STATES: &[&str] = &["unregistered", "pending", "approved", "rejected"];

fn twilio() -> String {
    "twilio".to_owned()
}

/// The message new accounts get when the file gives none, and the one the web set-up
/// offers: names the business, owns the missed call, offers a next step, one GSM-7
/// segment. The quick start's wording.
pub const DEFAULT_MESSAGE: &str = "Hi {{contact.first_name | default(\"there\")}}, it's {{business.name}}. Sorry we missed your call! How can we help? Reply here and we'll get right back to you.";

const DEFAULT_COOLDOWN_SECS: i64 = 15 * 60;
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountFileError {
    #[error("the account file is not valid TOML: {0}")]
    Toml(String),
    #[error("{path}: {why}")]
    Invalid { path: String, why: String },
}

fn invalid(path: impl Into<String>, why: impl ToString) -> AccountFileError {
    AccountFileError::Invalid {
        path: path.into(),
        why: why.to_string(),
    }
}
/// One account of the file, checked and ready to save.
#[derive(Debug, Clone)]
pub struct Planned {
    pub account: AccountRecord,
    pub numbers: Vec<NumberRecord>,
    /// (spec, builtin) in the order they are saved; the JSON is what the store versions.
    pub workflows: Vec<(WorkflowSpec, bool)>,
    /// Names of the explicit workflows, when the file lists them.
    pub keep: Option<Vec<String>>,
    /// Linter warnings on the account's messages, reported with the changes.
    pub warnings: Vec<String>,
}

/// Runs the linter on one message: errors reject the file, warnings are reported.
fn lint_message(
    place: &str,
    text: &str,
    kind: MessageKind,
    account: &AccountSpec,
    warnings: &mut Vec<String>,
) -> Result<(), AccountFileError> {
    let report = lint(&LintInput {
        text,
        kind,
        business_name: Some(account.name.trim()),
        booking_link: account.booking_link.as_deref(),
    });
    for f in &report.findings {
        match f.severity {
            Severity::Error => return Err(invalid(place, format!("{}: {}", f.rule, f.message))),
            Severity::Warning => {
                warnings.push(format!("warning: {place}: {}: {}", f.rule, f.message))
            }
            Severity::Info => {}
        }
    }
    Ok(())
}

/// Lints every message of a workflow's steps (see `workflow::messages_of` for which kind each is).
fn lint_steps(
    place: &str,
    steps: &[StepSpec],
    missed_call: bool,
    account: &AccountSpec,
    warnings: &mut Vec<String>,
) -> Result<(), AccountFileError> {
    for m in messages_of(steps, missed_call) {
        lint_message(
            &format!("{place}.{}", m.field),
            m.text,
            m.kind,
            account,
            warnings,
        )?;
    }
    Ok(())
}

fn parse(text: &str) -> Result<AccountFile, AccountFileError> {
    toml::from_str(text).map_err(|e| AccountFileError::Toml(e.to_string()))
}

/// Reads and checks an account file: every account in it, ready to save, or the first
/// thing wrong with it, named by its place in the file.
pub fn plan(text: &str) -> Result<Vec<Planned>, AccountFileError> {
    validate(&parse(text)?)
}

fn validate(file: &AccountFile) -> Result<Vec<Planned>, AccountFileError> {
    let mut planned = Vec::new();
    let mut seen_numbers: BTreeMap<String, String> = BTreeMap::new();
    let mut seen_slugs = std::collections::BTreeSet::new();
    for (i, a) in file.accounts.iter().enumerate() {
        let at = format!("accounts[{i}]");
        let slug = AccountSlug::parse(&a.slug).map_err(|e| invalid(format!("{at}.slug"), e))?;
        if !seen_slugs.insert(slug.to_string()) {
            return Err(invalid(
                format!("{at}.slug"),
                format!("{slug} appears twice in the file"),
            ));
        }
        let at = format!("accounts[{i}] ({slug})");
        if a.name.trim().is_empty() {
            return Err(invalid(
                format!("{at}.name"),
                "the business name is required; it goes into every text",
            ));
        }
        let tz =
            TimeZoneName::parse(&a.time_zone).map_err(|e| invalid(format!("{at}.time_zone"), e))?;
        let hours = BusinessHours::from_map(&a.business_hours)
            .map_err(|e| invalid(format!("{at}.business_hours"), e))?;
        if let Some(link) = &a.booking_link
            && !(link.starts_with("https://") || link.starts_with("http://"))
        {
            return Err(invalid(
                format!("{at}.booking_link"),
                format!("{link:?} must be a web address starting with https://"),
            ));
        }
        let mut do_not_text = Vec::new();
        for (j, n) in a.do_not_text.iter().enumerate() {
            do_not_text.push(
                Phone::parse(n)
                    .map_err(|e| invalid(format!("{at}.do_not_text[{j}]"), e))?
                    .to_string(),
            );
        }
        let tb = a.text_back.as_ref();
        let variants: Vec<VariantSpec> = tb.map(|t| t.variants.clone()).unwrap_or_default();
        if tb.is_some_and(|t| t.message.is_some()) && !variants.is_empty() {
            return Err(invalid(
                format!("{at}.text_back"),
                "give message or variants, not both",
            ));
        }
        let message = tb
            .and_then(|t| t.message.clone())
            .or_else(|| variants.first().map(|v| v.message.clone()))
            .unwrap_or_else(|| DEFAULT_MESSAGE.to_owned());
        MessageTemplate::parse(&message)
            .map_err(|e| invalid(format!("{at}.text_back.message"), e))?;
        let mut warnings = Vec::new();
        if tb.is_some_and(|t| t.message.is_some()) {
            lint_message(
                &format!("{at}.text_back.message"),
                &message,
                MessageKind::TextBack,
                a,
                &mut warnings,
            )?;
        }
        // The text back step, with one message or the variants to compare.
        let first_step = if variants.is_empty() {
            StepSpec::sms(&message)
        } else {
            let step = StepSpec::SendSms {
                message: String::new(),
                variants: variants.clone(),
            };
            let check = WorkflowSpec {
                steps: vec![step.clone()],
                ..WorkflowSpec::builtin_text_back(&message)
            };
            Workflow::from_spec(&check)
                .map_err(|e| invalid(format!("{at}.text_back.variants"), e.why))?;
            lint_steps(
                &format!("{at}.text_back"),
                std::slice::from_ref(&step),
                true,
                a,
                &mut warnings,
            )?;
            step
        };
        let cooldown = tb
            .and_then(|t| t.cooldown)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(DEFAULT_COOLDOWN_SECS);
        let account = AccountRecord {
            id: 0,
            slug: slug.to_string(),
            name: a.name.trim().to_owned(),
            time_zone: tz.to_string(),
            booking_link: a.booking_link.clone(),
            business_hours: hours.to_map(),
            text_back_enabled: tb.is_some_and(|t| t.enabled),
            text_back_template: message,
            cooldown_secs: cooldown,
            do_not_text,
            landline_lookup: a.landline_lookup,
            quiet_hours: match &a.quiet_hours {
                Some(q) => QuietHours::parse(q)
                    .map_err(|e| invalid(format!("{at}.quiet_hours"), e))?
                    .to_string_hhmm(),
                None => QuietHours::default().to_string_hhmm(),
            },
        };
        let mut numbers = Vec::new();
        for (j, n) in a.numbers.iter().enumerate() {
            let np = format!("{at}.numbers[{j}]");
            let e164 = Phone::parse(&n.number)
                .map_err(|e| invalid(format!("{np}.number"), e))?
                .to_string();
            if let Some(other) = seen_numbers.insert(e164.clone(), slug.to_string()) {
                return Err(invalid(
                    format!("{np}.number"),
                    format!("{e164} is listed twice (also under {other})"),
                ));
            }
            if !matches!(n.carrier.as_str(), "twilio" | "telnyx" | "sandbox") {
                return Err(invalid(
                    format!("{np}.carrier"),
                    format!(
                        "{:?} is not a carrier Textback supports: use \"twilio\", \"telnyx\" or \"sandbox\"",
                        n.carrier
                    ),
                ));
            }
            let ring_to = ringing::team_phones(&e164, &n.ring).map_err(|e| match e {
                RingError::BadPhone { index, why } => invalid(format!("{np}.ring[{index}]"), why),
                RingError::RingsItself { index } => {
                    invalid(format!("{np}.ring[{index}]"), "a number cannot ring itself")
                }
                RingError::RingTime => invalid(format!("{np}.ring_time"), e),
            })?;
            if !REGISTRATION_STATES.contains(&n.registration.as_str()) {
                return Err(invalid(
                    format!("{np}.registration"),
                    format!(
                        "{:?} is not a registration state: use {}",
                        n.registration,
                        REGISTRATION_STATES.join(", ")
                    ),
                ));
            }
            let ring = n
                .ring_time
                .map(|d| d.as_secs())
                .unwrap_or(ringing::DEFAULT_RING_SECS);
            let ring =
                ringing::ring_seconds(ring).map_err(|e| invalid(format!("{np}.ring_time"), e))?;
            numbers.push(NumberRecord {
                id: 0,
                account_id: 0,
                e164,
                carrier: n.carrier.clone(),
                ring_to,
                ring_seconds: ring as i64,
                call_screening: n.call_screening,
                active: n.active,
                registration: n.registration.clone(),
            });
        }
        let enabled = tb.is_some_and(|t| t.enabled);
        let mut workflows = Vec::new();
        let keep = match &a.workflows {
            None => {
                let mut recommended = WorkflowSpec::recommended(&account.text_back_template);
                recommended.steps[0] = first_step.clone();
                recommended.active = tb.is_none_or(|t| t.enabled);
                let mut builtin = WorkflowSpec::builtin_text_back(&account.text_back_template);
                builtin.steps[0] = first_step.clone();
                builtin.active = false;
                workflows.push((builtin, true));
                workflows.push((recommended, false));
                None
            }
            Some(list) => {
                let mut builtin = WorkflowSpec::builtin_text_back(&account.text_back_template);
                builtin.steps[0] = first_step.clone();
                builtin.active = enabled;
                workflows.push((builtin, true));
                let mut names = Vec::new();
                for (j, w) in list.iter().enumerate() {
                    let wp = format!("{at}.workflows[{j}] ({})", w.name.trim());
                    if w.name.trim() == BUILTIN_NAME {
                        return Err(invalid(
                            wp,
                            format!(
                                "{BUILTIN_NAME:?} is the built-in text back's name; choose another"
                            ),
                        ));
                    }
                    Workflow::from_spec(w).map_err(|e| invalid(&wp, e))?;
                    let missed_call = matches!(w.trigger, TriggerSpec::MissedCall { .. });
                    lint_steps(&wp, &w.steps, missed_call, a, &mut warnings)?;
                    if names.contains(&w.name.trim().to_owned()) {
                        return Err(invalid(wp, "two workflows have this name"));
                    }
                    names.push(w.name.trim().to_owned());
                    let mut w = w.clone();
                    w.name = w.name.trim().to_owned();
                    workflows.push((w, false));
                }
                Some(names)
            }
        };
        planned.push(Planned {
            account,
            numbers,
            workflows,
            keep,
            warnings,
        });
    }
    Ok(planned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quick_start_file_plans_its_account_number_and_workflows() {
        let planned = plan(include_str!("../../../examples/quickstart.toml")).unwrap();
        assert_eq!(planned.len(), 1);
        let p = &planned[0];
        assert_eq!(p.account.slug, "acme-plumbing");
        assert_eq!(p.numbers[0].e164, "+15125550100");
        assert_eq!(p.numbers[0].account_id, 0, "the CLI fills in the saved id");
        // The built-in text back comes first, then the file's own workflows.
        assert!(p.workflows[0].1);
        assert!(p.workflows.len() >= 2 && !p.workflows[1].1);
        assert_eq!(p.keep.as_ref().map(Vec::len), Some(p.workflows.len() - 1));
    }

    #[test]
    fn a_number_under_two_accounts_is_named_where_it_repeats() {
        let file = r#"
            [[accounts]]
            slug = "a"
            name = "A"
            time_zone = "America/Chicago"
            [[accounts.numbers]]
            number = "+1 512 555 0100"

            [[accounts]]
            slug = "b"
            name = "B"
            time_zone = "America/Chicago"
            [[accounts.numbers]]
            number = "+15125550100"
        "#;
        assert_eq!(
            plan(file).unwrap_err(),
            AccountFileError::Invalid {
                path: "accounts[1] (b).numbers[0].number".into(),
                why: "+15125550100 is listed twice (also under a)".into(),
            }
        );
    }

    #[test]
    fn what_is_not_toml_or_not_ours_is_refused_as_such() {
        assert!(matches!(
            plan("accounts = ["),
            Err(AccountFileError::Toml(_))
        ));
        let unknown =
            "[[accounts]]\nslug = \"a\"\nname = \"A\"\ntime_zone = \"UTC\"\ncolour = \"red\"\n";
        match plan(unknown) {
            Err(AccountFileError::Toml(why)) => assert!(why.contains("colour"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
}
