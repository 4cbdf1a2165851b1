//! Message templates with merge fields (`{{contact.first_name | default("there")}}`).
//!
//! A template is checked when it is saved: every merge field must be one we know, and any
//! field that can be empty for some contact must carry a fallback. Rendering then treats a
//! missing value as *undefined* (never as an empty string), so `default(...)` applies and a
//! field without a fallback fails loudly instead of producing "Hey ,".

use std::collections::BTreeMap;
use std::fmt;

use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};

/// Merge fields that always have a value.
const ALWAYS_SET: &[&str] = &[
    "contact.phone",
    "business.name",
    "business.phone",
    "call.time",
];
/// Merge fields that can be missing for a given contact, account or user.
const MAY_BE_EMPTY: &[&str] = &[
    "contact.first_name",
    "contact.last_name",
    "contact.name",
    "business.booking_link",
    "user.first_name",
];

/// Longest template we accept: ten SMS segments of UCS-2 is far beyond any sane text back.
const MAX_TEMPLATE_CHARS: usize = 1600;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("the message is empty")]
    Empty,
    #[error("the message is {0} characters long; the limit is {MAX_TEMPLATE_CHARS}")]
    TooLong(usize),
    #[error("the message template has a syntax error: {0}")]
    Syntax(String),
    #[error("unknown merge field {{{{{field}}}}}; known fields are: {known}")]
    UnknownField { field: String, known: String },
    #[error(
        "merge field {{{{{field}}}}} can be empty and has no fallback; write {{{{{field} | default(\"…\")}}}}"
    )]
    NoFallback { field: String },
    #[error("the message renders empty or leaves an empty gap when {0} is missing: {1:?}")]
    EmptyGap(String, String),
    #[error("rendering failed: {0}")]
    Render(String),
}

/// A template that passed the save-time checks.
#[derive(Clone, PartialEq, Eq)]
pub struct MessageTemplate {
    source: String,
}

impl fmt::Debug for MessageTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageTemplate({:?})", self.source)
    }
}

/// The values a template can use. `None` (or a blank string) means "not known".
#[derive(Debug, Clone, Default)]
pub struct RenderContext {
    pub contact_phone: String,
    pub contact_first_name: Option<String>,
    pub contact_last_name: Option<String>,
    pub business_name: String,
    pub business_phone: String,
    pub business_booking_link: Option<String>,
    pub call_time: String,
    pub user_first_name: Option<String>,
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // SMS is plain text: no HTML escaping of names like "O'Brien" or "A&B Plumbing".
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env
}

fn present(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl RenderContext {
    fn to_value(&self, without: Option<&str>) -> Value {
        let mut fields: BTreeMap<&str, Option<String>> = BTreeMap::new();
        let first = present(&self.contact_first_name);
        let last = present(&self.contact_last_name);
        let name = match (first, last) {
            (Some(f), Some(l)) => Some(format!("{f} {l}")),
            (Some(f), None) => Some(f.to_owned()),
            (None, Some(l)) => Some(l.to_owned()),
            (None, None) => None,
        };
        fields.insert("contact.phone", Some(self.contact_phone.clone()));
        fields.insert("contact.first_name", first.map(str::to_owned));
        fields.insert("contact.last_name", last.map(str::to_owned));
        fields.insert("contact.name", name);
        fields.insert("business.name", Some(self.business_name.trim().to_owned()));
        fields.insert("business.phone", Some(self.business_phone.clone()));
        fields.insert(
            "business.booking_link",
            present(&self.business_booking_link).map(str::to_owned),
        );
        fields.insert("call.time", Some(self.call_time.clone()));
        fields.insert(
            "user.first_name",
            present(&self.user_first_name).map(str::to_owned),
        );

        let mut roots: BTreeMap<&str, Vec<(&str, String)>> = BTreeMap::new();
        for (path, value) in fields {
            let (root, leaf) = path.split_once('.').unwrap_or((path, ""));
            let entry = roots.entry(root).or_default();
            if let Some(v) = value
                && Some(path) != without
            {
                entry.push((leaf, v));
            }
        }
        Value::from_pairs(
            roots
                .into_iter()
                .map(|(root, leaves)| (root, Value::from_pairs(leaves))),
        )
    }

    /// A context where every field has a value: the starting point of save-time checks.
    fn sample() -> RenderContext {
        RenderContext {
            contact_phone: "+15125550123".into(),
            contact_first_name: Some("Sam".into()),
            contact_last_name: Some("Rivera".into()),
            business_name: "Acme Plumbing".into(),
            business_phone: "+15125550100".into(),
            business_booking_link: Some("https://example.com/book".into()),
            call_time: "3:42 PM".into(),
            user_first_name: Some("Jo".into()),
        }
    }

    fn sparse() -> RenderContext {
        RenderContext {
            contact_first_name: None,
            contact_last_name: None,
            business_booking_link: None,
            user_first_name: None,
            ..RenderContext::sample()
        }
    }
}

impl MessageTemplate {
    /// Checks a template the way it is checked when saved.
    pub fn parse(source: &str) -> Result<MessageTemplate, TemplateError> {
        if source.trim().is_empty() {
            return Err(TemplateError::Empty);
        }
        let len = source.chars().count();
        if len > MAX_TEMPLATE_CHARS {
            return Err(TemplateError::TooLong(len));
        }
        let env = environment();
        let tmpl = env
            .template_from_str(source)
            .map_err(|e| TemplateError::Syntax(describe(&e)))?;
        let used = tmpl.undeclared_variables(true);
        let mut used: Vec<String> = used.into_iter().collect();
        used.sort();
        for field in &used {
            let known =
                ALWAYS_SET.contains(&field.as_str()) || MAY_BE_EMPTY.contains(&field.as_str());
            if !known {
                let mut all: Vec<&str> = ALWAYS_SET.iter().chain(MAY_BE_EMPTY).copied().collect();
                all.sort();
                return Err(TemplateError::UnknownField {
                    field: field.clone(),
                    known: all.join(", "),
                });
            }
        }
        let template = MessageTemplate {
            source: source.to_owned(),
        };
        // Each optional field on its own must be survivable...
        for field in used.iter().filter(|f| MAY_BE_EMPTY.contains(&f.as_str())) {
            let ctx = RenderContext::sample().to_value(Some(field));
            match tmpl.render(ctx) {
                Err(e) if e.kind() == minijinja::ErrorKind::UndefinedError => {
                    return Err(TemplateError::NoFallback {
                        field: field.clone(),
                    });
                }
                Err(e) => return Err(TemplateError::Render(describe(&e))),
                Ok(out) => {
                    check_output(&out).map_err(|o| TemplateError::EmptyGap(field.clone(), o))?
                }
            }
        }
        // ...and so must all of them missing at once.
        let out = template
            .render(&RenderContext::sparse())
            .map_err(|e| match e {
                TemplateError::Render(o) => {
                    TemplateError::EmptyGap("every optional field".into(), o)
                }
                other => other,
            })?;
        check_output(&out)
            .map_err(|o| TemplateError::EmptyGap("every optional field".into(), o))?;
        Ok(template)
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders for one contact. Refuses (rather than sends) output that is empty, still holds
    /// template syntax, or has an empty gap where a name should be.
    pub fn render(&self, ctx: &RenderContext) -> Result<String, TemplateError> {
        let env = environment();
        let out = env
            .render_str(&self.source, ctx.to_value(None))
            .map_err(|e| TemplateError::Render(describe(&e)))?;
        let out = out.trim().to_owned();
        check_output(&out).map_err(TemplateError::Render)?;
        Ok(out)
    }
}

fn describe(e: &minijinja::Error) -> String {
    match e.detail() {
        Some(d) => format!("{} ({d})", e.kind()),
        None => e.kind().to_string(),
    }
}

/// Output that must never reach a phone: blank, unrendered syntax, or "Hey ," gaps.
fn check_output(out: &str) -> Result<(), String> {
    let trimmed = out.trim();
    let bad = trimmed.is_empty()
        || trimmed.contains("{{")
        || trimmed.contains("}}")
        || trimmed.contains("{%")
        || trimmed.starts_with(',')
        || trimmed.contains(" ,")
        || trimmed.contains(" .");
    if bad {
        Err(format!("rendered text {trimmed:?} is empty or has a gap"))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "Hey {{contact.first_name | default(\"there\")}}, this is {{business.name}}. Sorry we missed your call! How can we help?";

    #[test]
    fn unknown_caller_gets_the_fallback() {
        let t = MessageTemplate::parse(GOOD).unwrap();
        let out = t.render(&RenderContext::sparse()).unwrap();
        assert_eq!(
            out,
            "Hey there, this is Acme Plumbing. Sorry we missed your call! How can we help?"
        );
        let named = RenderContext {
            contact_first_name: Some("Sam".into()),
            ..RenderContext::sparse()
        };
        assert!(t.render(&named).unwrap().starts_with("Hey Sam,"));
    }

    #[test]
    fn blank_names_count_as_missing() {
        let t = MessageTemplate::parse(GOOD).unwrap();
        let blank = RenderContext {
            contact_first_name: Some("   ".into()),
            ..RenderContext::sparse()
        };
        assert!(t.render(&blank).unwrap().starts_with("Hey there,"));
    }

    #[test]
    fn field_without_fallback_is_rejected_naming_it() {
        let err = MessageTemplate::parse("Hey {{contact.first_name}}, call us back!").unwrap_err();
        assert_eq!(
            err,
            TemplateError::NoFallback {
                field: "contact.first_name".into()
            }
        );
        assert!(err.to_string().contains("contact.first_name"));
    }

    #[test]
    fn always_set_fields_need_no_fallback() {
        assert!(
            MessageTemplate::parse("{{business.name}} here, we missed you at {{call.time}}.")
                .is_ok()
        );
    }

    #[test]
    fn unknown_field_and_syntax_errors() {
        assert!(matches!(
            MessageTemplate::parse("Hi {{contact.frist_name | default('x')}}"),
            Err(TemplateError::UnknownField { .. })
        ));
        assert!(matches!(
            MessageTemplate::parse("Hi {{contact.first_name"),
            Err(TemplateError::Syntax(_))
        ));
        assert!(matches!(
            MessageTemplate::parse("  "),
            Err(TemplateError::Empty)
        ));
    }

    #[test]
    fn an_empty_fallback_is_still_a_gap() {
        assert!(matches!(
            MessageTemplate::parse(
                "Hey {{contact.first_name | default(\"\")}}, it's {{business.name}}."
            ),
            Err(TemplateError::EmptyGap(..))
        ));
    }

    #[test]
    fn no_html_escaping() {
        let t = MessageTemplate::parse(
            "Hi {{contact.name | default(\"there\")}}, {{business.name}} here.",
        )
        .unwrap();
        let ctx = RenderContext {
            contact_first_name: Some("Pat".into()),
            contact_last_name: Some("O'Brien".into()),
            business_name: "A&B Plumbing".into(),
            ..RenderContext::sparse()
        };
        assert_eq!(
            t.render(&ctx).unwrap(),
            "Hi Pat O'Brien, A&B Plumbing here."
        );
    }
}
