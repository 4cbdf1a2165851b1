//! The message linter: grades a text on what good missed-call texts do (SPEC §6). Each rule
//! has a name, a severity and a one-line reason. Templates are graded on realistic
//! renderings: the account's real business name, a short and a long first name, and the
//! fallback.

use serde::Serialize;

use crate::segments::{self, Encoding};
use crate::template::{MessageTemplate, RenderContext, TemplateError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub rule: &'static str,
    pub severity: Severity,
    pub message: String,
}

/// What the message is for: the rules differ a little.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// The first text after a missed call.
    TextBack,
    /// A later, unprompted text (workflow follow-ups).
    FollowUp,
    /// A team member's reply in a conversation, or a team notification.
    Reply,
}

#[derive(Debug, Clone)]
pub struct LintInput<'a> {
    pub text: &'a str,
    pub kind: MessageKind,
    /// The account's business name, when known (else a typical one is assumed).
    pub business_name: Option<&'a str>,
    pub booking_link: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub encoding: &'static str,
    /// Segments of the text as given.
    pub segments: usize,
    pub characters: usize,
    /// Segments over the realistic renderings of a template: (fewest, most).
    pub rendered_segments: (usize, usize),
    pub findings: Vec<Finding>,
    /// The GSM-7 text smart encoding would send, when it saves segments.
    pub suggestion: Option<String>,
    pub suggestion_segments: Option<usize>,
}

impl Report {
    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Error)
    }
}

const AUTOMATED: &[&str] = &[
    "thank you for calling",
    "thanks for calling",
    "we noticed you called",
    "we noticed that you called",
    "your call is important",
    "do not reply",
    "don't reply",
    "dont reply",
    "this is an automated",
    "automated message",
    "automatic reply",
    "auto-reply",
    "valued customer",
    "dear customer",
    "please be advised",
];

const ACKNOWLEDGES: &[&str] = &[
    "missed your call",
    "missed you",
    "missed the call",
    "missed a call",
    "missed call",
    "couldn't get to the phone",
    "couldnt get to the phone",
    "couldn't answer",
    "couldn't pick up",
    "couldnt pick up",
    "saw you called",
    "saw your call",
    "you called",
    "you just called",
    "sorry we missed",
    "call.time",
];

const NEXT_STEP: &[&str] = &[
    "reply",
    "text us",
    "text me",
    "text back",
    "call you back",
    "call you right back",
    "call back",
    "call us",
    "give us a call",
    "book",
    "schedule",
    "appointment",
    "http://",
    "https://",
    "business.booking_link",
    "let us know",
    "?",
];

const SHORTENERS: &[&str] = &[
    "bit.ly",
    "tinyurl.com",
    "goo.gl",
    "ow.ly",
    "t.co",
    "is.gd",
    "buff.ly",
    "rebrand.ly",
    "cutt.ly",
    "shorturl.at",
    "tiny.cc",
    "bl.ink",
    "rb.gy",
    "t.ly",
    "s.id",
    "lnkd.in",
    "v.gd",
    "shorte.st",
    "tiny.one",
];

const PROMOTIONAL: &[&str] = &[
    "% off",
    "discount",
    "coupon",
    "promo",
    "special offer",
    "deal",
    "sale",
    "limited time",
    "free ",
];

fn finding(rule: &'static str, severity: Severity, message: impl Into<String>) -> Finding {
    Finding {
        rule,
        severity,
        message: message.into(),
    }
}

fn template_finding(e: &TemplateError) -> Finding {
    match e {
        TemplateError::UnknownField { .. } => {
            finding("unknown_field", Severity::Error, e.to_string())
        }
        TemplateError::NoFallback { .. } | TemplateError::EmptyGap(..) => {
            finding("empty_field_risk", Severity::Error, e.to_string())
        }
        TemplateError::Empty => finding("empty_message", Severity::Error, e.to_string()),
        _ => finding("template_syntax", Severity::Error, e.to_string()),
    }
}

/// Whole-word containment for short tokens ("t.co" must not match "t.com").
fn contains_domain(lower: &str, domain: &str) -> bool {
    lower.match_indices(domain).any(|(i, _)| {
        let before = lower[..i].chars().last();
        let after = lower[i + domain.len()..].chars().next();
        before.is_none_or(|c| !c.is_alphanumeric() && c != '.' && c != '-')
            && after
                .is_none_or(|c| c == '/' || c.is_whitespace() || matches!(c, ')' | ',' | '!' | '?'))
    })
}

/// Words that start sentences or are capitalised anyway, never a business's name.
const COMMON_CAPITALISED: &[&str] = &[
    "I",
    "I'm",
    "I'll",
    "We",
    "We're",
    "We'll",
    "Hi",
    "Hey",
    "Hello",
    "Sorry",
    "Thanks",
    "Thank",
    "Please",
    "Reply",
    "Call",
    "Text",
    "STOP",
    "HELP",
    "OK",
    "Ok",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
    "AM",
    "PM",
];

/// Whether the text has a capitalised word that does not open a sentence (a name).
fn has_proper_name(text: &str) -> bool {
    let mut sentence_start = true;
    for word in text.split_whitespace() {
        let clean = word.trim_matches(|c: char| !c.is_alphanumeric() && c != '\'');
        let capitalised = clean.chars().next().is_some_and(char::is_uppercase);
        if capitalised && !sentence_start && !COMMON_CAPITALISED.contains(&clean) {
            return true;
        }
        sentence_start = word.ends_with(['.', '!', '?', ':']);
    }
    false
}

fn shouting(text: &str) -> bool {
    let words: Vec<&str> = text
        .split(|c: char| !c.is_alphabetic())
        .filter(|w| w.chars().count() >= 3)
        .collect();
    let mut run = 0;
    for w in &words {
        // "STOP" and "HELP" are carrier keywords, written in capitals on purpose.
        if w.chars().all(char::is_uppercase) && !matches!(*w, "STOP" | "HELP" | "START") {
            run += 1;
            if run >= 3 {
                return true;
            }
        } else {
            run = 0;
        }
    }
    false
}

fn renderings(template: &MessageTemplate, input: &LintInput<'_>) -> Vec<String> {
    let business = input.business_name.unwrap_or("Acme Plumbing");
    let base = RenderContext {
        contact_phone: "+15125550123".into(),
        contact_first_name: None,
        contact_last_name: None,
        business_name: business.into(),
        business_phone: "+15125550100".into(),
        business_booking_link: Some(
            input
                .booking_link
                .unwrap_or("https://example.com/book")
                .into(),
        ),
        call_time: "10:45 AM".into(),
        user_first_name: Some("Sam".into()),
    };
    let names = [None, Some("Al"), Some("Maximilian-Alexander")];
    names
        .iter()
        .filter_map(|n| {
            let ctx = RenderContext {
                contact_first_name: n.map(str::to_owned),
                contact_last_name: n.map(|_| "Rodriguez-Smith".to_owned()),
                ..base.clone()
            };
            template.render(&ctx).ok()
        })
        .collect()
}

pub fn lint(input: &LintInput<'_>) -> Report {
    let text = input.text;
    let lower = text.to_lowercase();
    let mut findings = Vec::new();
    let given = segments::count(text);

    let rendered: Vec<String> = match MessageTemplate::parse(text) {
        Ok(t) => renderings(&t, input),
        Err(e) => {
            findings.push(template_finding(&e));
            Vec::new()
        }
    };
    let samples: Vec<&str> = if rendered.is_empty() {
        vec![text]
    } else {
        rendered.iter().map(String::as_str).collect()
    };
    let counts: Vec<segments::Segments> = samples.iter().map(|s| segments::count(s)).collect();
    let min = counts.iter().map(|c| c.segments).min().unwrap_or(0);
    let max = counts.iter().map(|c| c.segments).max().unwrap_or(0);

    let names_business = lower.contains("business.name")
        || match input.business_name.map(str::trim).filter(|b| !b.is_empty()) {
            Some(b) => lower.contains(&b.to_lowercase()),
            // No account to compare with: a proper name in the text will do.
            None => has_proper_name(text),
        };
    if !names_business && input.kind != MessageKind::Reply {
        findings.push(finding(
            "names_business",
            Severity::Warning,
            "does not name the business: people ignore texts from numbers they do not know; add {{business.name}}",
        ));
    }
    if input.kind == MessageKind::TextBack && !ACKNOWLEDGES.iter().any(|p| lower.contains(p)) {
        findings.push(finding(
            "acknowledges_call",
            Severity::Warning,
            "does not acknowledge the call: say you missed it (\"Sorry we missed your call\")",
        ));
    }
    if input.kind != MessageKind::Reply && !NEXT_STEP.iter().any(|p| lower.contains(p)) {
        findings.push(finding(
            "next_step",
            Severity::Warning,
            "offers no next step: invite a reply, promise a call back, or give the booking link",
        ));
    }
    if max > 2 {
        findings.push(finding(
            "over_two_segments",
            Severity::Warning,
            format!("takes up to {max} segments: each costs a text, and long texts read as marketing; aim for one"),
        ));
    } else if max > 1 {
        findings.push(finding(
            "over_one_segment",
            Severity::Warning,
            format!("takes {} segments{}: a text back should fit in one (160 GSM-7 characters, 70 with any other character)", max, if min < max { " for long names" } else { "" }),
        ));
    }
    let suggestion = segments::gsm_suggestion(text);
    let suggestion_segments = suggestion.as_deref().map(|s| {
        MessageTemplate::parse(s)
            .ok()
            .map(|t| renderings(&t, input))
            .filter(|r| !r.is_empty())
            .map(|r| {
                r.iter()
                    .map(|x| segments::count(x).segments)
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or_else(|| segments::count(s).segments)
    });
    if counts.iter().any(|c| c.encoding == Encoding::Ucs2) {
        let chars: String = segments::non_gsm_chars(text)
            .iter()
            .map(|c| format!("{c:?} (U+{:04X})", u32::from(*c)))
            .collect::<Vec<_>>()
            .join(", ");
        match suggestion_segments {
            Some(s) if s < max => findings.push(finding(
                "ucs2",
                Severity::Warning,
                format!(
                    "{chars} force UCS-2: {max} segment(s) instead of {s}; use the GSM-7 suggestion"
                ),
            )),
            _ => findings.push(finding(
                "ucs2",
                Severity::Info,
                format!("{chars} force UCS-2 (70 characters per segment)"),
            )),
        }
    }
    if let Some(p) = AUTOMATED.iter().find(|p| lower.contains(*p)) {
        findings.push(finding(
            "reads_automated",
            Severity::Warning,
            format!("\"{p}\" reads as an automated message; write as a person would"),
        ));
    }
    if shouting(text) {
        findings.push(finding(
            "shouting",
            Severity::Warning,
            "several words in capitals read as shouting",
        ));
    }
    let bangs = text.matches('!').count();
    if bangs > 1 {
        findings.push(finding(
            "exclamations",
            Severity::Warning,
            format!("{bangs} exclamation marks read as marketing; one is plenty"),
        ));
    }
    if let Some(d) = SHORTENERS.iter().find(|d| contains_domain(&lower, d)) {
        findings.push(finding(
            "link_shortener",
            Severity::Error,
            format!("{d} is a public link shortener: carriers filter texts that use them; link your own domain"),
        ));
    }
    if input.kind == MessageKind::FollowUp
        && PROMOTIONAL.iter().any(|p| lower.contains(p))
        && !lower.contains("stop")
    {
        findings.push(finding(
            "opt_out_language",
            Severity::Warning,
            "a marketing-style follow-up should say how to opt out (\"Reply STOP to opt out\")",
        ));
    }
    findings.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.rule.cmp(b.rule)));
    Report {
        encoding: given.encoding.as_str(),
        segments: given.segments,
        characters: text.chars().count(),
        rendered_segments: (min, max),
        findings,
        suggestion: suggestion
            .filter(|_| suggestion_segments.is_some_and(|s| s < max.max(given.segments))),
        suggestion_segments: suggestion_segments.filter(|s| *s < max.max(given.segments)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_back(text: &str) -> Report {
        lint(&LintInput {
            text,
            kind: MessageKind::TextBack,
            business_name: Some("Acme Plumbing"),
            booking_link: None,
        })
    }

    fn rules(r: &Report) -> Vec<&'static str> {
        r.findings
            .iter()
            .filter(|f| f.severity >= Severity::Warning)
            .map(|f| f.rule)
            .collect()
    }

    /// Messages a business owner would write, that must pass clean.
    #[test]
    fn good_messages_pass_clean() {
        for m in [
            "Hi {{contact.first_name | default(\"there\")}}, it's {{business.name}}. Sorry we missed your call! How can we help? Reply here and we'll get right back to you.",
            "Hey, this is Mike at Acme Plumbing - sorry I missed your call. I'm on a job; text me what you need and I'll call you back within the hour.",
            "{{business.name}} here, sorry we missed you at {{call.time}}. Book a time that suits you: {{business.booking_link | default(\"reply here\")}}",
        ] {
            let r = text_back(m);
            assert!(rules(&r).is_empty(), "{m}: {:#?}", r.findings);
            assert_eq!(r.rendered_segments.1, 1, "{m}");
        }
    }

    #[test]
    fn the_classic_mistakes_are_named() {
        let r = text_back(
            "Thank you for calling! Your call is important to us!! We will get back to you.",
        );
        let got = rules(&r);
        for rule in [
            "reads_automated",
            "exclamations",
            "names_business",
            "acknowledges_call",
            "next_step",
        ] {
            assert!(got.contains(&rule), "{rule} in {got:?}");
        }
        let r = text_back("Acme Plumbing: sorry we missed you! Book at https://bit.ly/acme");
        assert!(r.has_errors());
        assert_eq!(r.findings[0].rule, "link_shortener");
        // t.co must not match example.com.
        assert!(
            !text_back(
                "Acme Plumbing: sorry we missed you, reply here or see https://acme.com/book"
            )
            .has_errors()
        );
        let r = text_back("ACME PLUMBING CALLING BACK: sorry we missed your call, reply here");
        assert!(rules(&r).contains(&"shouting"));
    }

    #[test]
    fn template_errors_are_errors() {
        let r = text_back("Hey {{contact.first_name}}, Acme Plumbing missed your call, reply here");
        assert!(r.has_errors());
        assert_eq!(r.findings[0].rule, "empty_field_risk");
        let r = text_back("Hey {{contact.nickname | default('x')}}, sorry we missed your call");
        assert_eq!(r.findings[0].rule, "unknown_field");
    }

    #[test]
    fn a_curly_apostrophe_is_caught_with_the_gsm_suggestion() {
        let m = format!(
            "Hi, it\u{2019}s Acme Plumbing, sorry we missed your call. {} Reply here.",
            "We are on a job across town today but will call you back."
        );
        let r = text_back(&m);
        assert_eq!(r.encoding, "UCS-2");
        assert_eq!(r.segments, 2);
        let ucs2 = r.findings.iter().find(|f| f.rule == "ucs2").unwrap();
        assert_eq!(ucs2.severity, Severity::Warning);
        assert!(ucs2.message.contains("U+2019"));
        assert_eq!(
            r.suggestion.as_deref(),
            Some(m.replace('\u{2019}', "'").as_str())
        );
        assert_eq!(r.suggestion_segments, Some(1));
    }

    #[test]
    fn long_names_can_push_a_template_over_one_segment() {
        let m = format!(
            "Hi {{{{contact.first_name | default(\"there\")}}}}, it's {{{{business.name}}}}. Sorry we missed your call! {} Reply here.",
            "x".repeat(85)
        );
        let r = text_back(&m);
        assert_eq!(r.rendered_segments, (1, 2));
        assert!(rules(&r).contains(&"over_one_segment"));
    }

    #[test]
    fn without_an_account_a_proper_name_counts_as_naming_the_business() {
        let anon = |text| {
            lint(&LintInput {
                text,
                kind: MessageKind::TextBack,
                business_name: None,
                booking_link: None,
            })
        };
        assert!(
            !rules(&anon(
                "Hi, it's Acme Plumbing, sorry we missed your call. Reply here!"
            ))
            .contains(&"names_business")
        );
        assert!(
            !rules(&anon(
                "Hey this is Mike with Rapid Rooter, sorry I missed your call. Text me here."
            ))
            .contains(&"names_business")
        );
        assert!(
            rules(&anon(
                "Sorry we missed your call. Reply here and we will call you back."
            ))
            .contains(&"names_business")
        );
    }

    #[test]
    fn promotional_follow_ups_need_opt_out_language() {
        let follow = |text| {
            lint(&LintInput {
                text,
                kind: MessageKind::FollowUp,
                business_name: Some("Acme"),
                booking_link: None,
            })
        };
        assert!(
            rules(&follow(
                "Acme: 20% off drain cleaning this week, reply to book"
            ))
            .contains(&"opt_out_language")
        );
        assert!(
            !rules(&follow(
                "Acme: 20% off drain cleaning this week, reply to book. Reply STOP to opt out"
            ))
            .contains(&"opt_out_language")
        );
    }
}
