//! `textback apply FILE`: create or update accounts and numbers from a TOML account file.
//! Everything is validated before anything is written; a second run of the same file
//! changes nothing and says so.

use std::collections::BTreeMap;

use serde::Deserialize;
use textback_core::lint::{LintInput, MessageKind, Severity, lint};
use textback_core::ringing::{self, RingError};
use textback_core::workflow::{
    BUILTIN_NAME, QuietHours, StepSpec, TriggerSpec, VariantSpec, Workflow, WorkflowSpec,
    messages_of,
};
use textback_core::{
    AccountSlug, BusinessHours, HumanDuration, MessageTemplate, Phone, TimeZoneName,
};
use textback_store::{AccountRecord, NumberRecord, Store, StoreError, WorkflowChange};

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

/// The message new accounts get when the file gives none: names the business, owns the
/// missed call, offers a next step, one GSM-7 segment.
pub const DEFAULT_MESSAGE: &str = "Hi {{contact.first_name | default(\"there\")}}, this is {{business.name}}. Sorry we missed your call! How can we help? Reply here and we'll get right back to you.";

const DEFAULT_COOLDOWN_SECS: i64 = 15 * 60;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("the account file is not valid TOML: {0}")]
    Toml(String),
    #[error("{path}: {why}")]
    Invalid { path: String, why: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(path: impl Into<String>, why: impl ToString) -> ApplyError {
    ApplyError::Invalid {
        path: path.into(),
        why: why.to_string(),
    }
}

struct Planned {
    account: AccountRecord,
    numbers: Vec<NumberRecord>,
    /// (spec, builtin) in the order they are saved; the JSON is what the store versions.
    workflows: Vec<(WorkflowSpec, bool)>,
    /// Names of the explicit workflows, when the file lists them.
    keep: Option<Vec<String>>,
    /// Linter warnings on the account's messages, reported with the changes.
    warnings: Vec<String>,
}

/// Runs the linter on one message: errors reject the file, warnings are reported.
fn lint_message(
    place: &str,
    text: &str,
    kind: MessageKind,
    account: &AccountSpec,
    warnings: &mut Vec<String>,
) -> Result<(), ApplyError> {
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
) -> Result<(), ApplyError> {
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

pub fn parse(text: &str) -> Result<AccountFile, ApplyError> {
    toml::from_str(text).map_err(|e| ApplyError::Toml(e.to_string()))
}

fn validate(file: &AccountFile) -> Result<Vec<Planned>, ApplyError> {
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

fn account_changes(old: &AccountRecord, new: &AccountRecord) -> Vec<&'static str> {
    let mut c = Vec::new();
    if old.name != new.name {
        c.push("name");
    }
    if old.time_zone != new.time_zone {
        c.push("time_zone");
    }
    if old.booking_link != new.booking_link {
        c.push("booking_link");
    }
    if old.business_hours != new.business_hours {
        c.push("business_hours");
    }
    if old.quiet_hours != new.quiet_hours {
        c.push("quiet_hours");
    }
    if old.landline_lookup != new.landline_lookup {
        c.push("landline_lookup");
    }
    if old.do_not_text != new.do_not_text {
        c.push("do_not_text");
    }
    if old.text_back_enabled != new.text_back_enabled {
        c.push("text_back.enabled");
    }
    if old.text_back_template != new.text_back_template {
        c.push("text_back.message");
    }
    if old.cooldown_secs != new.cooldown_secs {
        c.push("text_back.cooldown");
    }
    c
}

fn number_changes(old: &NumberRecord, new: &NumberRecord) -> Vec<&'static str> {
    let mut c = Vec::new();
    if old.account_id != new.account_id {
        c.push("account");
    }
    if old.carrier != new.carrier {
        c.push("carrier");
    }
    if old.ring_to != new.ring_to {
        c.push("ring");
    }
    if old.ring_seconds != new.ring_seconds {
        c.push("ring_time");
    }
    if old.call_screening != new.call_screening {
        c.push("call_screening");
    }
    if old.registration != new.registration {
        c.push("registration");
    }
    if old.active != new.active {
        c.push("active");
    }
    c
}

/// Validates the whole file, then writes it. Returns one line per account and number.
pub async fn apply(store: &Store, text: &str, now_ms: i64) -> Result<Vec<String>, ApplyError> {
    let file = parse(text)?;
    let planned = validate(&file)?;
    let mut report = Vec::new();
    for p in planned {
        let existing = store.account_by_slug(&p.account.slug).await?;
        let account_id = match &existing {
            None => {
                let id = store.save_account(&p.account, now_ms).await?;
                report.push(format!("account {}: created", p.account.slug));
                id
            }
            Some(old) => {
                let changes = account_changes(old, &p.account);
                if changes.is_empty() {
                    report.push(format!("account {}: unchanged", p.account.slug));
                    old.id
                } else {
                    store.save_account(&p.account, now_ms).await?;
                    report.push(format!(
                        "account {}: updated {}",
                        p.account.slug,
                        changes.join(", ")
                    ));
                    old.id
                }
            }
        };
        for mut n in p.numbers {
            n.account_id = account_id;
            match store.number_by_e164(&n.e164).await? {
                None => {
                    store.save_number(&n, now_ms).await?;
                    report.push(format!("number {} ({}): created", n.e164, p.account.slug));
                }
                Some(old) => {
                    let changes = number_changes(&old, &n);
                    if changes.is_empty() {
                        report.push(format!("number {} ({}): unchanged", n.e164, p.account.slug));
                    } else {
                        store.save_number(&n, now_ms).await?;
                        report.push(format!(
                            "number {} ({}): updated {}",
                            n.e164,
                            p.account.slug,
                            changes.join(", ")
                        ));
                    }
                }
            }
        }
        for (spec, builtin) in &p.workflows {
            let json = spec.versioned_json();
            let change = store
                .save_workflow_by(
                    account_id,
                    &spec.name,
                    *builtin,
                    spec.active,
                    &json,
                    now_ms,
                    Some("textback apply"),
                )
                .await?;
            let state = if spec.active { "active" } else { "inactive" };
            let line = match change {
                WorkflowChange::Created => format!("created ({state})"),
                WorkflowChange::Updated {
                    version,
                    spec_changed,
                    ..
                } => {
                    if spec_changed {
                        format!("updated to version {version} ({state})")
                    } else {
                        format!("now {state}")
                    }
                }
                WorkflowChange::Unchanged => "unchanged".to_owned(),
            };
            report.push(format!(
                "workflow {:?} ({}): {line}",
                spec.name, p.account.slug
            ));
        }
        report.extend(p.warnings.iter().cloned());
        if let Some(keep) = &p.keep {
            for name in store
                .deactivate_other_workflows(account_id, keep, now_ms)
                .await?
            {
                report.push(format!(
                    "workflow {name:?} ({}): deactivated (not in the file)",
                    p.account.slug
                ));
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUICKSTART: &str = include_str!("../../../examples/quickstart.toml");

    async fn store() -> (Store, tempdir::Dir) {
        let dir = tempdir::Dir::new();
        let store = Store::connect(&format!("sqlite:{}", dir.path().join("t.db").display()))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        (store, dir)
    }

    mod tempdir {
        pub struct Dir(std::path::PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                let p =
                    std::env::temp_dir().join(format!("textback-apply-{:016x}", fastrand::u64(..)));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
            pub fn path(&self) -> &std::path::Path {
                &self.0
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[tokio::test]
    async fn quickstart_applies_then_is_unchanged() {
        let (store, _dir) = store().await;
        let first = apply(&store, QUICKSTART, 1).await.unwrap();
        assert_eq!(
            first,
            vec![
                "account acme-plumbing: created",
                "number +15125550100 (acme-plumbing): created",
                "workflow \"Text back (built-in)\" (acme-plumbing): created (inactive)",
                "workflow \"Missed call\" (acme-plumbing): created (active)",
            ]
        );
        let again = apply(&store, QUICKSTART, 2).await.unwrap();
        assert_eq!(
            again,
            vec![
                "account acme-plumbing: unchanged",
                "number +15125550100 (acme-plumbing): unchanged",
                "workflow \"Text back (built-in)\" (acme-plumbing): unchanged",
                "workflow \"Missed call\" (acme-plumbing): unchanged",
            ]
        );
        let route = store
            .route_for_number("+15125550100")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(route.account_name, "Acme Plumbing");
        assert_eq!(route.number.ring_to, vec!["+15125550199"]);
        assert_eq!(route.number.ring_seconds, 20);
        let changed = QUICKSTART.replace("ring_time = \"20s\"", "ring_time = \"25s\"");
        assert_ne!(changed, QUICKSTART, "the quickstart sets ring_time");
        let third = apply(&store, &changed, 3).await.unwrap();
        assert_eq!(
            third[1],
            "number +15125550100 (acme-plumbing): updated ring_time"
        );
        // Editing a workflow adds a version; leaving one out of the file deactivates it.
        let edited = QUICKSTART.replace("for = \"30m\"", "for = \"45m\"");
        assert_ne!(edited, QUICKSTART);
        let fourth = apply(&store, &edited, 4).await.unwrap();
        assert_eq!(
            fourth[3],
            "workflow \"Missed call\" (acme-plumbing): updated to version 2 (active)"
        );
        let builtin_on = edited.replace("enabled = false", "enabled = true");
        let fifth = apply(&store, &builtin_on, 5).await.unwrap();
        assert_eq!(
            fifth[2],
            "workflow \"Text back (built-in)\" (acme-plumbing): now active"
        );
    }

    #[tokio::test]
    async fn workflow_errors_name_the_workflow_and_step() {
        let (store, _dir) = store().await;
        let bad = QUICKSTART.replace("for = \"30m\"", "for = \"soon\"");
        let err = apply(&store, &bad, 1).await.unwrap_err().to_string();
        assert!(
            err.contains("workflows[0] (Missed call)") && err.contains("step 4 (wait)"),
            "{err}"
        );
        let unreachable = QUICKSTART.replace(
            "then = [{ type = \"end\" }]",
            "then = [{ type = \"end\" }, { type = \"add_tag\", tag = \"x\" }]",
        );
        let err = apply(&store, &unreachable, 1)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("step 5.then.2 (add_tag)") && err.contains("unreachable"),
            "{err}"
        );
        assert!(store.accounts().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn bad_input_names_the_place_and_changes_nothing() {
        let (store, _dir) = store().await;
        let broken =
            QUICKSTART.replace("Sorry we missed", "{{contact.first_name}}, sorry we missed");
        let err = apply(&store, &broken, 1).await.unwrap_err().to_string();
        assert!(
            err.contains("text_back.message") && err.contains("contact.first_name"),
            "{err}"
        );
        assert!(store.accounts().await.unwrap().is_empty());

        let bad_phone = QUICKSTART.replace("+15125550199", "+1-512-CALL-NOW");
        let err = apply(&store, &bad_phone, 1).await.unwrap_err().to_string();
        assert!(err.contains("numbers[0].ring[0]"), "{err}");

        let bad_tz = QUICKSTART.replace("America/Chicago", "Mars/Olympus");
        let err = apply(&store, &bad_tz, 1).await.unwrap_err().to_string();
        assert!(err.contains("time_zone"), "{err}");

        let typo = QUICKSTART.replace("ring_time", "ring_tme");
        let err = apply(&store, &typo, 1).await.unwrap_err().to_string();
        assert!(err.contains("ring_tme"), "{err}");
        assert!(store.accounts().await.unwrap().is_empty());
    }
}
