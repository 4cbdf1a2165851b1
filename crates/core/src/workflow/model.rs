//! A checked workflow, compiled to a flat program: `if` becomes a conditional forward jump,
//! so a run's position is one number and every run ends.

use crate::account::TimeZoneName;
use crate::duration::HumanDuration;
use crate::phone::Phone;
use crate::template::MessageTemplate;

use super::spec::{ConditionSpec, StepSpec, TriggerSpec, WorkflowSpec};

/// The longest single wait: longer ones are almost always a typo (`30d` for `30m`).
const MAX_WAIT_SECS: u64 = 30 * 86_400;
const MAX_STEPS: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{place}: {why}")]
pub struct WorkflowError {
    /// Which step (`step 3 (send_sms)`, `step 5.else.1 (wait)`) or part.
    pub place: String,
    pub why: String,
}

fn err(place: impl Into<String>, why: impl ToString) -> WorkflowError {
    WorkflowError {
        place: place.into(),
        why: why.to_string(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerKind {
    MissedCall,
    VoicemailLeft,
    MessageReceived,
    TaskOverdue,
}

impl TriggerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerKind::MissedCall => "missed_call",
            TriggerKind::VoicemailLeft => "voicemail_left",
            TriggerKind::MessageReceived => "message_received",
            TriggerKind::TaskOverdue => "task_overdue",
        }
    }

    pub fn parse(s: &str) -> Option<TriggerKind> {
        Some(match s {
            "missed_call" => TriggerKind::MissedCall,
            "voicemail_left" => TriggerKind::VoicemailLeft,
            "message_received" => TriggerKind::MessageReceived,
            "task_overdue" => TriggerKind::TaskOverdue,
            _ => return None,
        })
    }
}

/// Which trigger events start a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerFilter {
    pub kind: TriggerKind,
    pub numbers: Vec<Phone>,
    /// `Some(true)`: only during business hours; `Some(false)`: only outside.
    pub business_open: Option<bool>,
    /// `Some(true)`: only new contacts; `Some(false)`: only known ones.
    pub new_contact: Option<bool>,
    pub tag_present: Vec<String>,
    pub tag_absent: Vec<String>,
}

/// The facts a trigger event is filtered on.
#[derive(Debug, Clone)]
pub struct TriggerFacts<'a> {
    pub kind: TriggerKind,
    pub number: Option<&'a str>,
    pub business_open: bool,
    pub new_contact: bool,
    pub tags: &'a [String],
}

impl TriggerFilter {
    pub fn matches(&self, f: &TriggerFacts<'_>) -> bool {
        let has = |t: &String| f.tags.iter().any(|x| x.eq_ignore_ascii_case(t));
        self.kind == f.kind
            && (self.numbers.is_empty()
                || f.number
                    .is_some_and(|n| self.numbers.iter().any(|p| p.as_str() == n)))
            && self.business_open.is_none_or(|b| b == f.business_open)
            && self.new_contact.is_none_or(|b| b == f.new_contact)
            && self.tag_present.iter().all(has)
            && !self.tag_absent.iter().any(has)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due {
    After(HumanDuration),
    EndOfDay,
    NextBusinessOpen,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitFor {
    Duration(HumanDuration),
    BusinessHoursOpen,
    /// Until the event happens, or `at_most` has passed.
    Event {
        event: WaitEvent,
        at_most: HumanDuration,
    },
}

/// Events a run can wait on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitEvent {
    /// The contact texts.
    Reply,
    /// A task this run created is marked done (or an answered call-back completed it).
    TaskDone,
}

impl WaitEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            WaitEvent::Reply => "reply",
            WaitEvent::TaskDone => "task_done",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldOp {
    Empty,
    NotEmpty,
    Equals(String),
    NotEquals(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    ContactReplied,
    TaskDone,
    HasTag(String),
    BusinessHours,
    ContactField { field: String, op: FieldOp },
}

/// Contact fields a condition can compare.
pub const CONTACT_FIELDS: &[&str] = &["first_name", "last_name", "phone"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instr {
    SendSms {
        variants: Vec<Variant>,
    },
    CreateTask {
        title: MessageTemplate,
        due: Due,
        assignee: Option<String>,
    },
    AddTag(String),
    RemoveTag(String),
    Wait(WaitFor),
    /// Falls through when the condition holds, else jumps to `otherwise`.
    Branch {
        condition: Condition,
        otherwise: usize,
    },
    Jump(usize),
    NotifyTeam {
        template: MessageTemplate,
        to: Vec<Phone>,
    },
    Webhook {
        url: String,
    },
    End,
}

/// One message of a `send_sms` step. `name` is `None` for a step with a single message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    pub name: Option<String>,
    pub template: MessageTemplate,
    pub weight: u32,
}

fn variant_letter(k: usize) -> String {
    char::from(b'A' + (k % 26) as u8).to_string()
}

/// Picks the variant for a run: random by weight, but fixed by the run's `seed`, so a
/// contact keeps the same variant for every step of their run (and a retried step too).
pub fn choose_variant(variants: &[Variant], seed: u64) -> usize {
    let total: u64 = variants.iter().map(|v| u64::from(v.weight)).sum();
    if total == 0 {
        return 0;
    }
    // splitmix64: spreads consecutive run ids evenly.
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    let mut pick = z % total;
    for (i, v) in variants.iter().enumerate() {
        let w = u64::from(v.weight);
        if pick < w {
            return i;
        }
        pick -= w;
    }
    0
}

/// A compiled program and, per instruction, the step it came from (for messages and logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    pub instrs: Vec<Instr>,
    pub places: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workflow {
    pub name: String,
    pub active: bool,
    pub stop_on_reply: bool,
    pub allow_reentry: bool,
    pub time_zone: Option<TimeZoneName>,
    pub trigger: TriggerFilter,
    pub program: Program,
}

fn phones(place: &str, list: &[String]) -> Result<Vec<Phone>, WorkflowError> {
    list.iter()
        .map(|n| Phone::parse(n).map_err(|e| err(place, e)))
        .collect()
}

fn tag(place: &str, t: &str) -> Result<String, WorkflowError> {
    let t = t.trim();
    if t.is_empty() || t.len() > 64 {
        return Err(err(place, "a tag is 1 to 64 characters"));
    }
    Ok(t.to_owned())
}

fn trigger(spec: &TriggerSpec) -> Result<TriggerFilter, WorkflowError> {
    let plain = |kind, numbers: &[String]| -> Result<TriggerFilter, WorkflowError> {
        Ok(TriggerFilter {
            kind,
            numbers: phones("trigger.numbers", numbers)?,
            business_open: None,
            new_contact: None,
            tag_present: vec![],
            tag_absent: vec![],
        })
    };
    match spec {
        TriggerSpec::MissedCall {
            numbers,
            business_hours,
            contact,
            tag_present,
            tag_absent,
        } => {
            let business_open = match business_hours.as_deref() {
                None | Some("any") => None,
                Some("open") => Some(true),
                Some("closed") => Some(false),
                Some(other) => {
                    return Err(err(
                        "trigger.business_hours",
                        format!("{other:?} is not one of any, open, closed"),
                    ));
                }
            };
            let new_contact = match contact.as_deref() {
                None | Some("any") => None,
                Some("new") => Some(true),
                Some("known") => Some(false),
                Some(other) => {
                    return Err(err(
                        "trigger.contact",
                        format!("{other:?} is not one of any, new, known"),
                    ));
                }
            };
            Ok(TriggerFilter {
                kind: TriggerKind::MissedCall,
                numbers: phones("trigger.numbers", numbers)?,
                business_open,
                new_contact,
                tag_present: tag_present
                    .iter()
                    .map(|t| tag("trigger.tag_present", t))
                    .collect::<Result<_, _>>()?,
                tag_absent: tag_absent
                    .iter()
                    .map(|t| tag("trigger.tag_absent", t))
                    .collect::<Result<_, _>>()?,
            })
        }
        TriggerSpec::VoicemailLeft { numbers } => plain(TriggerKind::VoicemailLeft, numbers),
        TriggerSpec::MessageReceived { numbers } => plain(TriggerKind::MessageReceived, numbers),
        TriggerSpec::TaskOverdue => plain(TriggerKind::TaskOverdue, &[]),
    }
}

fn condition(place: &str, c: &ConditionSpec) -> Result<Condition, WorkflowError> {
    Ok(match c {
        ConditionSpec::ContactReplied => Condition::ContactReplied,
        ConditionSpec::TaskDone => Condition::TaskDone,
        ConditionSpec::HasTag { tag: t } => Condition::HasTag(tag(place, t)?),
        ConditionSpec::BusinessHours => Condition::BusinessHours,
        ConditionSpec::ContactField { field, op, value } => {
            if !CONTACT_FIELDS.contains(&field.as_str()) {
                return Err(err(
                    place,
                    format!(
                        "{field:?} is not a contact field: use {}",
                        CONTACT_FIELDS.join(", ")
                    ),
                ));
            }
            let need = |v: &Option<String>| {
                v.clone()
                    .ok_or_else(|| err(place, format!("{op} needs a value")))
            };
            let op = match op.as_str() {
                "empty" => FieldOp::Empty,
                "not_empty" => FieldOp::NotEmpty,
                "equals" => FieldOp::Equals(need(value)?),
                "not_equals" => FieldOp::NotEquals(need(value)?),
                other => {
                    return Err(err(
                        place,
                        format!("{other:?} is not one of empty, not_empty, equals, not_equals"),
                    ));
                }
            };
            Condition::ContactField {
                field: field.clone(),
                op,
            }
        }
    })
}

fn compile(steps: &[StepSpec], prefix: &str, p: &mut Program) -> Result<(), WorkflowError> {
    let mut ended: Option<String> = None;
    for (i, step) in steps.iter().enumerate() {
        let place = format!("step {prefix}{} ({})", i + 1, step.kind());
        if let Some(end) = &ended {
            return Err(err(
                place,
                format!("is unreachable: {end} ends the run before it"),
            ));
        }
        if p.instrs.len() >= MAX_STEPS {
            return Err(err(
                place,
                format!("a workflow has at most {MAX_STEPS} steps"),
            ));
        }
        let template = |text: &str| MessageTemplate::parse(text).map_err(|e| err(place.clone(), e));
        match step {
            StepSpec::SendSms { message, variants } => {
                let list = match (message.trim().is_empty(), variants.is_empty()) {
                    (false, true) => vec![Variant {
                        name: None,
                        template: template(message)?,
                        weight: 1,
                    }],
                    (true, false) => {
                        if variants.len() > 26 {
                            return Err(err(place, "at most 26 variants"));
                        }
                        let mut list = Vec::with_capacity(variants.len());
                        for (k, v) in variants.iter().enumerate() {
                            if v.weight == 0 || v.weight > 1000 {
                                return Err(err(
                                    place,
                                    format!("variant {}: weight is 1 to 1000", k + 1),
                                ));
                            }
                            let name = v
                                .name
                                .clone()
                                .filter(|n| !n.trim().is_empty())
                                .unwrap_or_else(|| variant_letter(k));
                            if list
                                .iter()
                                .any(|x: &Variant| x.name.as_deref() == Some(name.as_str()))
                            {
                                return Err(err(place, format!("two variants are named {name:?}")));
                            }
                            let t = MessageTemplate::parse(&v.message)
                                .map_err(|e| err(place.clone(), format!("variant {name}: {e}")))?;
                            list.push(Variant {
                                name: Some(name),
                                template: t,
                                weight: v.weight,
                            });
                        }
                        list
                    }
                    (false, false) => return Err(err(place, "give message or variants, not both")),
                    (true, true) => {
                        return Err(err(place, "a send_sms step needs a message (or variants)"));
                    }
                };
                p.push(Instr::SendSms { variants: list }, &place);
            }
            StepSpec::CreateTask {
                title,
                due,
                assignee,
            } => {
                let title = template(title)?;
                let due = match due.as_deref() {
                    None | Some("end_of_day") => Due::EndOfDay,
                    Some("next_business_open") => Due::NextBusinessOpen,
                    Some(d) => Due::After(HumanDuration::parse(d).map_err(|_| {
                        err(place.clone(), format!("due {d:?} is not a duration (like 2h), end_of_day or next_business_open"))
                    })?),
                };
                p.push(
                    Instr::CreateTask {
                        title,
                        due,
                        assignee: assignee.clone().filter(|a| !a.trim().is_empty()),
                    },
                    &place,
                );
            }
            StepSpec::AddTag { tag: t } => {
                let t = tag(&place, t)?;
                p.push(Instr::AddTag(t), &place);
            }
            StepSpec::RemoveTag { tag: t } => {
                let t = tag(&place, t)?;
                p.push(Instr::RemoveTag(t), &place);
            }
            StepSpec::Wait { duration, until } => {
                let w = match (duration, until.as_deref()) {
                    (Some(d), None) => {
                        let d = HumanDuration::parse(d).map_err(|e| err(place.clone(), e))?;
                        if d.as_secs() == 0 || d.as_secs() > MAX_WAIT_SECS {
                            return Err(err(place, "a wait is between 1s and 30d"));
                        }
                        WaitFor::Duration(d)
                    }
                    (None, Some("business_hours")) => WaitFor::BusinessHoursOpen,
                    (Some(d), Some(ev @ ("reply" | "task_done"))) => {
                        let d = HumanDuration::parse(d).map_err(|e| err(place.clone(), e))?;
                        if d.as_secs() == 0 || d.as_secs() > MAX_WAIT_SECS {
                            return Err(err(place, "a wait is between 1s and 30d"));
                        }
                        let event = if ev == "reply" {
                            WaitEvent::Reply
                        } else {
                            WaitEvent::TaskDone
                        };
                        WaitFor::Event { event, at_most: d }
                    }
                    (None, Some("reply" | "task_done")) => {
                        return Err(err(
                            place,
                            "waiting for an event needs a bound too: for = \"1d\" is the longest it waits",
                        ));
                    }
                    (_, Some(other)) => {
                        return Err(err(
                            place,
                            format!("until {other:?}: use business_hours, reply or task_done"),
                        ));
                    }
                    (None, None) => {
                        return Err(err(
                            place,
                            "a wait needs a bound: for = \"30m\" or until = \"business_hours\"",
                        ));
                    }
                };
                p.push(Instr::Wait(w), &place);
            }
            StepSpec::If {
                condition: c,
                then,
                otherwise,
            } => {
                let cond = condition(&place, c)?;
                let branch_at = p.instrs.len();
                p.push(
                    Instr::Branch {
                        condition: cond,
                        otherwise: 0,
                    },
                    &place,
                );
                compile(then, &format!("{prefix}{}.then.", i + 1), p)?;
                let jump_at = p.instrs.len();
                p.push(Instr::Jump(0), &place);
                let else_start = p.instrs.len();
                compile(otherwise, &format!("{prefix}{}.else.", i + 1), p)?;
                let after = p.instrs.len();
                p.instrs[branch_at] = match &p.instrs[branch_at] {
                    Instr::Branch { condition, .. } => Instr::Branch {
                        condition: condition.clone(),
                        otherwise: else_start,
                    },
                    other => other.clone(),
                };
                p.instrs[jump_at] = Instr::Jump(after);
            }
            StepSpec::NotifyTeam { message, to } => {
                let t = template(message)?;
                let to = phones(&place, to)?;
                p.push(Instr::NotifyTeam { template: t, to }, &place);
            }
            StepSpec::Webhook { url } => {
                if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() > 2000
                {
                    return Err(err(place, format!("{url:?} is not an http(s) URL")));
                }
                p.push(Instr::Webhook { url: url.clone() }, &place);
            }
            StepSpec::End => {
                p.push(Instr::End, &place);
                ended = Some(place);
            }
        }
    }
    Ok(())
}

impl Program {
    fn push(&mut self, i: Instr, place: &str) {
        self.instrs.push(i);
        self.places.push(place.to_owned());
    }
}

impl Workflow {
    pub fn from_spec(spec: &WorkflowSpec) -> Result<Workflow, WorkflowError> {
        let name = spec.name.trim();
        if name.is_empty() || name.len() > 100 {
            return Err(err(
                "name",
                "a workflow needs a name of 1 to 100 characters",
            ));
        }
        let time_zone = match &spec.time_zone {
            Some(tz) => Some(TimeZoneName::parse(tz).map_err(|e| err("time_zone", e))?),
            None => None,
        };
        if spec.steps.is_empty() {
            return Err(err("steps", "a workflow needs at least one step"));
        }
        let mut program = Program {
            instrs: vec![],
            places: vec![],
        };
        compile(&spec.steps, "", &mut program)?;
        Ok(Workflow {
            name: name.to_owned(),
            active: spec.active,
            stop_on_reply: spec.stop_on_reply,
            allow_reentry: spec.allow_reentry,
            time_zone,
            trigger: trigger(&spec.trigger)?,
            program,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(toml_steps: Vec<StepSpec>) -> WorkflowSpec {
        WorkflowSpec {
            name: "W".into(),
            active: true,
            stop_on_reply: true,
            allow_reentry: true,
            time_zone: None,
            trigger: TriggerSpec::MissedCall {
                numbers: vec![],
                business_hours: None,
                contact: None,
                tag_present: vec![],
                tag_absent: vec![],
            },
            steps: toml_steps,
        }
    }

    fn sms(m: &str) -> StepSpec {
        StepSpec::sms(m)
    }

    #[test]
    fn if_compiles_to_forward_jumps() {
        let w = Workflow::from_spec(&spec(vec![
            sms("{{business.name}}: sorry we missed you"),
            StepSpec::If {
                condition: ConditionSpec::ContactReplied,
                then: vec![StepSpec::End],
                otherwise: vec![sms("{{business.name}}: still need help?")],
            },
            StepSpec::AddTag { tag: "Done".into() },
        ]))
        .unwrap();
        let i = &w.program.instrs;
        assert!(matches!(i[0], Instr::SendSms { .. }));
        assert_eq!(
            i[1],
            Instr::Branch {
                condition: Condition::ContactReplied,
                otherwise: 4
            }
        );
        assert_eq!(i[2], Instr::End);
        assert_eq!(i[3], Instr::Jump(5));
        assert!(matches!(i[4], Instr::SendSms { .. }));
        assert_eq!(i[5], Instr::AddTag("Done".into()));
        assert_eq!(w.program.places[4], "step 2.else.1 (send_sms)");
    }

    #[test]
    fn errors_name_the_step() {
        let e = Workflow::from_spec(&spec(vec![
            sms("ok {{business.name}}"),
            sms("Hi {{contact.frist_name}}"),
        ]))
        .unwrap_err();
        assert_eq!(e.place, "step 2 (send_sms)");
        assert!(e.why.contains("contact.frist_name"));
        let e =
            Workflow::from_spec(&spec(vec![StepSpec::End, sms("{{business.name}}")])).unwrap_err();
        assert_eq!(e.place, "step 2 (send_sms)");
        assert!(e.why.contains("unreachable"));
        let e = Workflow::from_spec(&spec(vec![StepSpec::Wait {
            duration: None,
            until: None,
        }]))
        .unwrap_err();
        assert!(e.why.contains("needs a bound"), "{e}");
        let e = Workflow::from_spec(&spec(vec![StepSpec::Wait {
            duration: Some("90d".into()),
            until: None,
        }]))
        .unwrap_err();
        assert!(e.why.contains("30d"), "{e}");
        let e = Workflow::from_spec(&spec(vec![StepSpec::If {
            condition: ConditionSpec::ContactField {
                field: "shoe_size".into(),
                op: "empty".into(),
                value: None,
            },
            then: vec![],
            otherwise: vec![],
        }]))
        .unwrap_err();
        assert!(e.why.contains("shoe_size"));
        assert!(Workflow::from_spec(&spec(vec![])).is_err());
    }

    #[test]
    fn variants_are_named_weighted_and_sticky() {
        let w = Workflow::from_spec(&spec(vec![StepSpec::SendSms {
            message: String::new(),
            variants: vec![
                crate::workflow::spec::VariantSpec {
                    name: None,
                    message: "{{business.name}}: A".into(),
                    weight: 3,
                },
                crate::workflow::spec::VariantSpec {
                    name: Some("short".into()),
                    message: "{{business.name}}: B".into(),
                    weight: 1,
                },
            ],
        }]))
        .unwrap();
        let Instr::SendSms { variants } = &w.program.instrs[0] else {
            panic!()
        };
        assert_eq!(
            variants
                .iter()
                .map(|v| v.name.clone().unwrap())
                .collect::<Vec<_>>(),
            vec!["A", "short"]
        );
        let mut counts = [0usize; 2];
        for run in 0..4000u64 {
            counts[choose_variant(variants, run)] += 1;
        }
        // 3:1 by weight, within a few percent.
        assert!((2800..3200).contains(&counts[0]), "{counts:?}");
        assert_eq!(choose_variant(variants, 17), choose_variant(variants, 17));
        let both = StepSpec::SendSms {
            message: "x {{business.name}}".into(),
            variants: vec![crate::workflow::spec::VariantSpec {
                name: None,
                message: "y".into(),
                weight: 1,
            }],
        };
        assert!(
            Workflow::from_spec(&spec(vec![both]))
                .unwrap_err()
                .why
                .contains("not both")
        );
    }

    #[test]
    fn trigger_filters() {
        let f = TriggerFilter {
            kind: TriggerKind::MissedCall,
            numbers: vec![Phone::parse("+15125550100").unwrap()],
            business_open: Some(false),
            new_contact: None,
            tag_present: vec![],
            tag_absent: vec!["Customer".into()],
        };
        let facts = TriggerFacts {
            kind: TriggerKind::MissedCall,
            number: Some("+15125550100"),
            business_open: false,
            new_contact: true,
            tags: &[],
        };
        assert!(f.matches(&facts));
        assert!(!f.matches(&TriggerFacts {
            business_open: true,
            ..facts.clone()
        }));
        assert!(!f.matches(&TriggerFacts {
            number: Some("+15125550101"),
            ..facts.clone()
        }));
        let tags = vec!["customer".to_owned()];
        assert!(!f.matches(&TriggerFacts {
            tags: &tags,
            ..facts.clone()
        }));
        assert!(!f.matches(&TriggerFacts {
            kind: TriggerKind::MessageReceived,
            ..facts
        }));
    }
}
