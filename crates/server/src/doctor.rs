//! `textback doctor`: the usual troubleshooting checklist, automated. Facts are gathered
//! first (database, and Twilio when credentials are set); `evaluate` turns them into
//! findings with pure code.

use serde::Serialize;
use textback_carriers::twilio::TwilioClient;
use textback_carriers::twilio::client::{IncomingNumber, Registration};
use textback_core::carrier_error::{Effect, describe_for};
use textback_core::phone::redact;
use textback_core::workflow::{Instr, TriggerKind, Workflow, WorkflowSpec};
use textback_store::{
    AccountRecord, CallView, ErrorCount, NumberRecord, Store, StoreError, WorkflowRecord,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Info,
    Warn,
    Fail,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Info => "INFO",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub account: String,
    pub number: Option<String>,
    pub check: &'static str,
    pub status: Status,
    pub message: String,
    pub fix: Option<String>,
}

/// What the carrier says about one of our numbers.
#[derive(Debug, Clone)]
pub enum CarrierView {
    /// Sandbox mode: nothing to ask.
    NotChecked,
    Missing,
    Found(IncomingNumber),
    Unreadable(String),
}

/// The registration Twilio reports for a number, when it could be read.
#[derive(Debug, Clone)]
pub enum RegistrationView {
    NotRead,
    Read(Registration),
    Unreadable(String),
}

pub struct AccountFacts {
    pub account: AccountRecord,
    pub workflows: Vec<WorkflowRecord>,
    pub numbers: Vec<(NumberRecord, CarrierView, RegistrationView)>,
    pub errors: Vec<ErrorCount>,
    pub last_missed: Option<CallView>,
    pub public_url: String,
    pub twilio: bool,
}

/// Days of carrier errors `doctor` looks at.
pub const ERROR_WINDOW_DAYS: i64 = 7;

pub fn evaluate(f: &AccountFacts) -> Vec<Finding> {
    let slug = f.account.slug.clone();
    let mut out = Vec::new();
    let mut add = |number: Option<&str>,
                   check: &'static str,
                   status: Status,
                   message: String,
                   fix: Option<String>| {
        out.push(Finding {
            account: slug.clone(),
            number: number.map(str::to_owned),
            check,
            status,
            message,
            fix,
        })
    };

    if f.twilio {
        let host = f
            .public_url
            .split("://")
            .nth(1)
            .unwrap_or_default()
            .split(['/', ':'])
            .next()
            .unwrap_or_default();
        if matches!(host, "127.0.0.1" | "localhost" | "0.0.0.0" | "[::1]") {
            add(
                None,
                "public_url",
                Status::Fail,
                format!(
                    "TEXTBACK_PUBLIC_URL is {}: Twilio cannot reach it",
                    f.public_url
                ),
                Some("set TEXTBACK_PUBLIC_URL to the https address Twilio calls".into()),
            );
        } else if f.public_url.starts_with("http://") {
            add(
                None,
                "public_url",
                Status::Warn,
                format!("TEXTBACK_PUBLIC_URL {} is not https", f.public_url),
                Some("serve Textback behind TLS; webhooks carry caller numbers".into()),
            );
        }
    }

    // Which automations would text a missed call, and whether each one is valid.
    let mut texting = Vec::new();
    for w in f.workflows.iter().filter(|w| w.active) {
        let compiled = serde_json::from_str::<WorkflowSpec>(&w.spec)
            .map_err(|e| e.to_string())
            .and_then(|spec| Workflow::from_spec(&spec).map_err(|e| e.to_string()));
        match compiled {
            Err(e) => add(
                None,
                "workflows",
                Status::Fail,
                format!("workflow {:?} is not valid: {e}", w.name),
                Some("fix it in the account file and apply".into()),
            ),
            Ok(wf) => {
                let texts = wf
                    .program
                    .instrs
                    .iter()
                    .any(|i| matches!(i, Instr::SendSms { .. }));
                if wf.trigger.kind == TriggerKind::MissedCall && texts {
                    texting.push(w.name.clone());
                }
            }
        }
    }
    match texting.len() {
        0 => add(
            None,
            "text_back",
            Status::Warn,
            "no active automation texts missed calls: they are recorded but not texted".into(),
            Some("turn on [accounts.text_back] or a missed_call workflow and apply".into()),
        ),
        1 => add(
            None,
            "text_back",
            Status::Pass,
            format!("missed calls are texted back by {:?}", texting[0]),
            None,
        ),
        _ => add(
            None,
            "text_back",
            Status::Pass,
            format!(
                "missed calls are texted back by {} automations ({}); each call still gets one text back, the others record \"already texted back\"",
                texting.len(),
                texting.join(", ")
            ),
            None,
        ),
    }
    add(
        None,
        "automations",
        Status::Pass,
        "one text back per missed call is enforced across all automations".into(),
        None,
    );

    if f.numbers.is_empty() {
        add(
            None,
            "numbers",
            Status::Fail,
            "the account has no phone number".into(),
            Some("add one under [[accounts.numbers]] and apply".into()),
        );
    }
    for (n, view, reg) in &f.numbers {
        let num = Some(n.e164.as_str());
        if !n.active {
            add(
                num,
                "active",
                Status::Warn,
                "the number is inactive: calls ring but are never texted".into(),
                Some("set active = true".into()),
            );
        }
        if n.ring_to.is_empty() {
            add(
                num,
                "ring",
                Status::Warn,
                "the number rings nobody: every call goes straight to voicemail".into(),
                Some("list the team's phones in ring = [...]".into()),
            );
        } else {
            add(
                num,
                "ring",
                Status::Pass,
                format!(
                    "rings {} phone(s) for {} s",
                    n.ring_to.len(),
                    n.ring_seconds
                ),
                None,
            );
        }
        if !n.call_screening && !n.ring_to.is_empty() {
            add(num, "call_screening", Status::Info, "call screening is off: a team phone's own voicemail picking up counts as answered and is not texted".into(), Some("set call_screening = true for numbers that ring cell phones".into()));
        }
        let voice = format!("{}/webhooks/twilio/voice", f.public_url);
        let sms = format!("{}/webhooks/twilio/sms", f.public_url);
        let status_cb = format!("{}/webhooks/twilio/voice/status", f.public_url);
        match view {
            CarrierView::NotChecked if n.carrier == "telnyx" => add(num, "carrier", Status::Info, "Telnyx number: doctor does not read its setup at Telnyx yet".into(), Some(format!("in the Telnyx portal, set the TeXML application's voice URL to {0}/webhooks/telnyx/voice (status callback {0}/webhooks/telnyx/voice/status) and the messaging profile's webhook to {0}/webhooks/telnyx/messaging", f.public_url))),
            CarrierView::NotChecked => add(num, "carrier", Status::Info, "sandbox carrier: texts are recorded, not sent (set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN to go live)".into(), None),
            CarrierView::Missing => add(num, "carrier", Status::Fail, "the Twilio account does not own this number".into(), Some("buy or port the number into this Twilio account, or fix the number in the account file".into())),
            CarrierView::Unreadable(e) => add(num, "carrier", Status::Fail, format!("could not read the number at Twilio: {e}"), Some("check TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and the network".into())),
            CarrierView::Found(inc) => {
                let same = |a: &Option<String>, b: &str| a.as_deref().map(|x| x.trim_end_matches('/')) == Some(b);
                if same(&inc.voice_url, &voice) {
                    add(num, "voice_url", Status::Pass, "Voice URL points at this server".into(), None);
                } else {
                    add(num, "voice_url", Status::Fail, format!("Voice URL is {:?}: calls do not reach Textback", inc.voice_url.as_deref().unwrap_or("")), Some(format!("set the number's Voice URL (HTTP POST) to {voice}")));
                }
                if same(&inc.sms_url, &sms) {
                    add(num, "sms_url", Status::Pass, "Messaging URL points at this server".into(), None);
                } else {
                    add(num, "sms_url", Status::Fail, format!("Messaging URL is {:?}: replies and opt-outs do not reach Textback", inc.sms_url.as_deref().unwrap_or("")), Some(format!("set the number's Messaging URL (HTTP POST) to {sms}")));
                }
                if same(&inc.status_callback, &status_cb) {
                    add(num, "status_callback", Status::Pass, "call status callback points at this server".into(), None);
                } else {
                    add(num, "status_callback", Status::Warn, format!("call status callback is {:?}: callers who hang up while it rings are missed only through the Dial result", inc.status_callback.as_deref().unwrap_or("")), Some(format!("set the number's status callback to {status_cb}")));
                }
            }
        }
        if f.twilio {
            let (status, from) = match reg {
                RegistrationView::Read(r) => (
                    r.status.to_owned(),
                    format!(
                        " (Twilio: {}; the account file says {})",
                        r.detail, n.registration
                    ),
                ),
                RegistrationView::Unreadable(e) => (
                    n.registration.clone(),
                    format!(" (from the account file; Twilio could not be asked: {e})"),
                ),
                RegistrationView::NotRead => (
                    n.registration.clone(),
                    " (from the account file)".to_owned(),
                ),
            };
            match status.as_str() {
                "approved" => add(num, "registration", Status::Pass, format!("A2P 10DLC / toll-free registration approved{from}"), None),
                "pending" => add(num, "registration", Status::Fail, format!("A2P 10DLC / toll-free registration is pending: carriers may filter or block texts until it is approved{from}"), Some("follow the registration in the Twilio console; set registration = \"approved\" when it is".into())),
                other => add(num, "registration", Status::Fail, format!("A2P 10DLC / toll-free registration is {other}: US carriers block unregistered traffic{from}"), Some("register the brand and campaign (or verify the toll-free number) in the Twilio console".into())),
            }
        }
    }

    let mut any_error = false;
    for e in &f.errors {
        any_error = true;
        let known = describe_for(&e.carrier, e.code);
        let status = match known.effect {
            Effect::Filtered => Status::Fail,
            Effect::Other | Effect::Unreachable => Status::Warn,
            Effect::NotTextable | Effect::OptedOut => Status::Info,
        };
        add(
            None,
            "carrier_errors",
            status,
            format!(
                "{} text(s) hit {} error {} in the last {ERROR_WINDOW_DAYS} days: {}",
                e.count, e.carrier, e.code, known.reason
            ),
            Some(known.fix.to_owned()),
        );
    }
    if !any_error {
        add(
            None,
            "carrier_errors",
            Status::Pass,
            format!("no carrier errors in the last {ERROR_WINDOW_DAYS} days"),
            None,
        );
    }

    match &f.last_missed {
        None => add(
            None,
            "last_missed_call",
            Status::Warn,
            "no missed call recorded yet".into(),
            Some(match f.numbers.first() {
                Some((n, _, _)) => format!(
                    "call {} and do not answer, or run: textback simulate-call --from +15125550123 --to {}",
                    n.e164, n.e164
                ),
                None => "add a number first".into(),
            }),
        ),
        Some(c) => {
            let status = c.text_back_status.as_deref().unwrap_or("pending");
            let reason = c
                .text_back_reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            let at = jiff::Timestamp::from_millisecond(c.started_at_ms)
                .map(|t| t.to_string())
                .unwrap_or_default();
            let level = match status {
                "sent" | "delivered" | "queued" | "skipped" => Status::Info,
                _ => Status::Warn,
            };
            add(
                None,
                "last_missed_call",
                level,
                format!(
                    "last missed call {at} from {} to {}: text back {status}{reason}",
                    redact(&c.caller),
                    c.number
                ),
                None,
            );
        }
    }
    out
}

pub async fn gather(
    store: &Store,
    twilio: Option<&TwilioClient>,
    public_url: &str,
    only: Option<&str>,
    now_ms: i64,
) -> Result<Vec<AccountFacts>, StoreError> {
    let mut accounts = store.accounts().await?;
    if let Some(slug) = only {
        accounts.retain(|a| a.slug == slug);
    }
    let mut out = Vec::with_capacity(accounts.len());
    for account in accounts {
        let mut numbers = Vec::new();
        for n in store.numbers_of_account(account.id).await? {
            let view = match (twilio, n.carrier.as_str()) {
                (Some(client), "twilio") => match client.incoming_number(&n.e164).await {
                    Ok(Some(found)) => CarrierView::Found(found),
                    Ok(None) => CarrierView::Missing,
                    Err(e) => CarrierView::Unreadable(e),
                },
                _ => CarrierView::NotChecked,
            };
            let reg = match (twilio, &view) {
                (Some(client), CarrierView::Found(_)) => {
                    let toll_free =
                        textback_core::Phone::parse(&n.e164).is_ok_and(|p| p.is_toll_free());
                    match client.registration(&n.e164, toll_free).await {
                        Ok(r) => RegistrationView::Read(r),
                        Err(e) => RegistrationView::Unreadable(e),
                    }
                }
                _ => RegistrationView::NotRead,
            };
            numbers.push((n, view, reg));
        }
        let since = now_ms - ERROR_WINDOW_DAYS * 24 * 3600 * 1000;
        out.push(AccountFacts {
            workflows: store.workflows_of_account(account.id).await?,
            errors: store.carrier_errors_since(account.id, since).await?,
            last_missed: store.last_missed_call(account.id).await?,
            account,
            numbers,
            public_url: public_url.to_owned(),
            twilio: twilio.is_some(),
        });
    }
    Ok(out)
}

pub fn render_text(findings: &[Finding]) -> String {
    let mut s = String::new();
    for f in findings {
        let place = match &f.number {
            Some(n) => format!("{} {}", f.account, n),
            None => f.account.clone(),
        };
        s.push_str(&format!(
            "{}  {place}  {}: {}\n",
            f.status.label(),
            f.check,
            f.message
        ));
        if let (Some(fix), true) = (&f.fix, f.status >= Status::Warn) {
            s.push_str(&format!("      fix: {fix}\n"));
        }
    }
    let fails = findings.iter().filter(|f| f.status == Status::Fail).count();
    let warns = findings.iter().filter(|f| f.status == Status::Warn).count();
    s.push_str(&format!("{fails} failed, {warns} warning(s)\n"));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use textback_core::carrier_error::describe_telnyx;

    fn facts(twilio: bool, view: CarrierView, registration: &str) -> AccountFacts {
        AccountFacts {
            account: AccountRecord {
                id: 1,
                slug: "acme".into(),
                name: "Acme".into(),
                time_zone: "UTC".into(),
                booking_link: None,
                business_hours: Default::default(),
                text_back_enabled: true,
                text_back_template: "{{business.name}} here, sorry we missed you!".into(),
                cooldown_secs: 900,
                do_not_text: vec![],
                landline_lookup: false,
                quiet_hours: "21:00-08:00".into(),
            },
            numbers: vec![(
                NumberRecord {
                    id: 1,
                    account_id: 1,
                    e164: "+15125550100".into(),
                    carrier: "twilio".into(),
                    ring_to: vec!["+15125550199".into()],
                    ring_seconds: 20,
                    call_screening: true,
                    active: true,
                    registration: registration.into(),
                },
                view,
                RegistrationView::NotRead,
            )],
            workflows: vec![WorkflowRecord {
                id: 1,
                account_id: 1,
                name: "Text back (built-in)".into(),
                builtin: true,
                active: true,
                version: 1,
                spec: WorkflowSpec::builtin_text_back(
                    "{{business.name}} here, sorry we missed you!",
                )
                .versioned_json(),
            }],
            errors: vec![],
            last_missed: None,
            public_url: "https://tb.example.com".into(),
            twilio,
        }
    }

    fn status_of(findings: &[Finding], check: &str) -> Status {
        findings
            .iter()
            .find(|f| f.check == check)
            .map(|f| f.status)
            .unwrap_or(Status::Pass)
    }

    fn incoming(voice: &str) -> IncomingNumber {
        IncomingNumber {
            sid: "PN1".into(),
            phone_number: "+15125550100".into(),
            voice_url: Some(voice.into()),
            voice_method: Some("POST".into()),
            sms_url: Some("https://tb.example.com/webhooks/twilio/sms".into()),
            sms_method: Some("POST".into()),
            status_callback: Some("https://tb.example.com/webhooks/twilio/voice/status".into()),
        }
    }

    #[test]
    fn a_telnyx_number_gets_its_webhook_urls() {
        let mut f = facts(false, CarrierView::NotChecked, "approved");
        f.numbers[0].0.carrier = "telnyx".into();
        let findings = evaluate(&f);
        let carrier = findings.iter().find(|x| x.check == "carrier").unwrap();
        assert_eq!(carrier.status, Status::Info);
        let fix = carrier.fix.as_deref().unwrap_or("");
        assert!(
            fix.contains("https://tb.example.com/webhooks/telnyx/voice"),
            "{fix}"
        );
        assert!(fix.contains("/webhooks/telnyx/messaging"), "{fix}");
    }

    #[test]
    fn a_well_configured_number_passes() {
        let f = evaluate(&facts(
            true,
            CarrierView::Found(incoming("https://tb.example.com/webhooks/twilio/voice")),
            "approved",
        ));
        assert!(f.iter().all(|x| x.status != Status::Fail), "{f:#?}");
        assert_eq!(status_of(&f, "voice_url"), Status::Pass);
    }

    #[test]
    fn a_voice_url_elsewhere_fails_with_the_fix() {
        let f = evaluate(&facts(
            true,
            CarrierView::Found(incoming("https://old.example.com/voice")),
            "approved",
        ));
        let v = f.iter().find(|x| x.check == "voice_url").unwrap();
        assert_eq!(v.status, Status::Fail);
        assert!(
            v.fix
                .as_deref()
                .unwrap()
                .contains("https://tb.example.com/webhooks/twilio/voice")
        );
    }

    #[test]
    fn automations_are_counted_and_broken_ones_fail() {
        let mut x = facts(false, CarrierView::NotChecked, "approved");
        let f = evaluate(&x);
        assert!(f.iter().any(|f| f.check == "text_back"
            && f.status == Status::Pass
            && f.message.contains("Text back (built-in)")));
        x.workflows[0].active = false;
        assert_eq!(status_of(&evaluate(&x), "text_back"), Status::Warn);
        x.workflows[0].active = true;
        x.workflows[0].spec =
            WorkflowSpec::builtin_text_back("Hey {{contact.first_name}}").versioned_json();
        assert_eq!(status_of(&evaluate(&x), "workflows"), Status::Fail);
    }

    #[test]
    fn registration_not_approved_fails() {
        for r in ["unregistered", "pending", "rejected"] {
            let f = evaluate(&facts(true, CarrierView::Missing, r));
            assert_eq!(status_of(&f, "registration"), Status::Fail, "{r}");
        }
        // The sandbox needs no registration.
        let f = evaluate(&facts(false, CarrierView::NotChecked, "unregistered"));
        assert!(f.iter().all(|x| x.check != "registration"));
    }

    #[test]
    fn filtering_errors_name_10dlc() {
        let mut x = facts(true, CarrierView::Missing, "approved");
        x.errors = vec![ErrorCount {
            carrier: "twilio".into(),
            code: 30034,
            count: 3,
            last_at_ms: 0,
        }];
        let f = evaluate(&x);
        let e = f.iter().find(|f| f.check == "carrier_errors").unwrap();
        assert_eq!(e.status, Status::Fail);
        assert!(e.message.contains("30034") && e.fix.as_deref().unwrap().contains("10DLC"));
    }

    #[test]
    fn each_carriers_codes_are_read_in_its_own_table() {
        let mut x = facts(true, CarrierView::Missing, "approved");
        // 40300 is Telnyx's "recipient opted out"; Twilio has no such code.
        x.errors = vec![ErrorCount {
            carrier: "telnyx".into(),
            code: 40300,
            count: 2,
            last_at_ms: 0,
        }];
        let f = evaluate(&x);
        let e = f.iter().find(|f| f.check == "carrier_errors").unwrap();
        assert_eq!(e.status, Status::Info, "{e:?}");
        assert!(e.message.contains("telnyx error 40300"), "{}", e.message);
        assert_eq!(
            e.message,
            format!(
                "2 text(s) hit telnyx error 40300 in the last {ERROR_WINDOW_DAYS} days: {}",
                describe_telnyx(40300).reason
            )
        );
    }
}
