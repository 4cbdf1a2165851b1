//! The workflow builder's form, as pure functions: a spec drawn as rows of fields, the
//! posted fields read back into a spec, and the edits its buttons ask for (add, remove,
//! move, branch, variants). The builder works without JavaScript: every button posts the
//! whole draft and gets it back changed; nothing is saved until "Save".
//!
//! A step's path is its 1-based position as checking reports it (`3`, `5.else.1`), so an
//! error from `Workflow::from_spec` ("step 5.else.1 (wait): …") points at its fields.
//! Field names are `{path}/{field}`; variant fields `{path}/v{k}/{field}`.

use std::collections::HashMap;

use serde::Serialize;
use textback_core::lint::MessageKind;
use textback_core::workflow::{
    ConditionSpec, StepSpec, TriggerSpec, VariantSpec, WorkflowSpec, messages_of,
};

/// The step types the builder offers, with their names in words.
pub const STEP_TYPES: &[(&str, &str)] = &[
    ("send_sms", "Send a text"),
    ("create_task", "Create a callback task"),
    ("add_tag", "Add a tag"),
    ("remove_tag", "Remove a tag"),
    ("wait", "Wait"),
    ("if", "If … then … otherwise (branch)"),
    ("notify_team", "Text the team"),
    ("webhook", "Call a webhook"),
    ("end", "End the run"),
];

/// What a builder button asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Save,
    /// Redraw with the linter's verdicts, saving nothing.
    Check,
    Add {
        list: String,
        kind: String,
    },
    Remove(String),
    Up(String),
    Down(String),
    AddVariant(String),
    RemoveVariant(String, usize),
}

impl Op {
    /// Reads the pressed button (`op`); `add:` takes its step type from that list's select.
    pub fn from_form(fields: &Fields<'_>) -> Option<Op> {
        let op = fields.get("op");
        let (verb, arg) = op.split_once(':').unwrap_or((op, ""));
        Some(match verb {
            "save" => Op::Save,
            "check" => Op::Check,
            "add" => Op::Add {
                list: arg.to_owned(),
                kind: fields.get(&format!("add/{arg}")).to_owned(),
            },
            "remove" => Op::Remove(arg.to_owned()),
            "up" => Op::Up(arg.to_owned()),
            "down" => Op::Down(arg.to_owned()),
            "add_variant" => Op::AddVariant(arg.to_owned()),
            "remove_variant" => {
                let (path, k) = arg.rsplit_once(':')?;
                Op::RemoveVariant(path.to_owned(), k.parse().ok()?)
            }
            _ => return None,
        })
    }
}

/// Posted fields by name (the last value wins, as with a plain form).
pub struct Fields<'a>(HashMap<&'a str, &'a str>);

impl<'a> Fields<'a> {
    pub fn new(pairs: &'a [(String, String)]) -> Fields<'a> {
        Fields(
            pairs
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
        )
    }

    pub fn get(&self, name: &str) -> &'a str {
        self.0.get(name).copied().unwrap_or("")
    }

    fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    fn opt(&self, name: &str) -> Option<String> {
        Some(self.get(name).trim())
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    }
}

/// A comma- or line-separated list, blanks dropped.
fn list(raw: &str) -> Vec<String> {
    raw.split([',', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The draft the form describes. Reading never fails: values checking would refuse (a
/// weight of "abc", an unknown choice) are carried through for `Workflow::from_spec` to
/// name, so the person sees the problem next to what they typed.
pub fn spec_from_form(f: &Fields<'_>, numbers: &[String]) -> WorkflowSpec {
    let chosen: Vec<String> = numbers
        .iter()
        .filter(|n| f.has(&format!("trigger/number/{n}")))
        .cloned()
        .collect();
    let trigger = match f.get("trigger/type") {
        "voicemail_left" => TriggerSpec::VoicemailLeft { numbers: chosen },
        "message_received" => TriggerSpec::MessageReceived { numbers: chosen },
        "task_overdue" => TriggerSpec::TaskOverdue,
        _ => TriggerSpec::MissedCall {
            numbers: chosen,
            business_hours: f.opt("trigger/business_hours").filter(|v| v != "any"),
            contact: f.opt("trigger/contact").filter(|v| v != "any"),
            tag_present: list(f.get("trigger/tag_present")),
            tag_absent: list(f.get("trigger/tag_absent")),
        },
    };
    WorkflowSpec {
        name: f.get("name").trim().to_owned(),
        active: f.has("active"),
        stop_on_reply: f.has("stop_on_reply"),
        allow_reentry: f.has("allow_reentry"),
        time_zone: f.opt("time_zone"),
        trigger,
        steps: steps_from_form(f, ""),
    }
}

fn steps_from_form(f: &Fields<'_>, prefix: &str) -> Vec<StepSpec> {
    let mut steps = Vec::new();
    for i in 1.. {
        let path = format!("{prefix}{i}");
        let field = |name: &str| f.get(&format!("{path}/{name}"));
        let step = match field("type") {
            "" => break,
            "send_sms" => {
                let mut variants = Vec::new();
                for k in 1.. {
                    let v = |name: &str| f.get(&format!("{path}/v{k}/{name}"));
                    if !f.has(&format!("{path}/v{k}/message")) {
                        break;
                    }
                    variants.push(VariantSpec {
                        name: Some(v("name").trim().to_owned()).filter(|n| !n.is_empty()),
                        message: v("message").to_owned(),
                        weight: v("weight").trim().parse().unwrap_or(0),
                    });
                }
                StepSpec::SendSms {
                    message: if variants.is_empty() {
                        field("message").to_owned()
                    } else {
                        String::new()
                    },
                    variants,
                }
            }
            "create_task" => StepSpec::CreateTask {
                title: field("title").to_owned(),
                due: match field("due") {
                    "after" => Some(field("due_after").trim().to_owned()),
                    "" => None,
                    other => Some(other.to_owned()),
                },
                assignee: f.opt(&format!("{path}/assignee")),
            },
            "add_tag" => StepSpec::AddTag {
                tag: field("tag").to_owned(),
            },
            "remove_tag" => StepSpec::RemoveTag {
                tag: field("tag").to_owned(),
            },
            "wait" => {
                let bound = Some(field("for").trim().to_owned()).filter(|d| !d.is_empty());
                match field("until") {
                    "business_hours" => StepSpec::Wait {
                        duration: None,
                        until: Some("business_hours".to_owned()),
                    },
                    "" | "time" => StepSpec::Wait {
                        duration: bound,
                        until: None,
                    },
                    event => StepSpec::Wait {
                        duration: bound,
                        until: Some(event.to_owned()),
                    },
                }
            }
            "if" => StepSpec::If {
                condition: match field("condition") {
                    "task_done" => ConditionSpec::TaskDone,
                    "has_tag" => ConditionSpec::HasTag {
                        tag: field("condition_tag").to_owned(),
                    },
                    "business_hours" => ConditionSpec::BusinessHours,
                    "contact_field" => ConditionSpec::ContactField {
                        field: field("field").to_owned(),
                        op: field("compare").to_owned(),
                        value: Some(field("value").to_owned()).filter(|v| !v.is_empty()),
                    },
                    _ => ConditionSpec::ContactReplied,
                },
                then: steps_from_form(f, &format!("{path}.then.")),
                otherwise: steps_from_form(f, &format!("{path}.else.")),
            },
            "notify_team" => StepSpec::NotifyTeam {
                message: field("message").to_owned(),
                to: list(field("to")),
            },
            "webhook" => StepSpec::Webhook {
                url: field("url").trim().to_owned(),
            },
            "end" => StepSpec::End,
            // A type no builder draws: left out rather than guessed at.
            _ => continue,
        };
        steps.push(step);
    }
    steps
}

/// A new step of `kind`, filled in where a sensible start exists.
fn new_step(kind: &str) -> Option<StepSpec> {
    Some(match kind {
        "send_sms" => StepSpec::sms(""),
        "create_task" => StepSpec::CreateTask {
            title: "Call back {{contact.name | default(contact.phone)}}".to_owned(),
            due: Some("end_of_day".to_owned()),
            assignee: None,
        },
        "add_tag" => StepSpec::AddTag { tag: String::new() },
        "remove_tag" => StepSpec::RemoveTag { tag: String::new() },
        "wait" => StepSpec::Wait {
            duration: Some("30m".to_owned()),
            until: None,
        },
        "if" => StepSpec::If {
            condition: ConditionSpec::ContactReplied,
            then: vec![],
            otherwise: vec![],
        },
        "notify_team" => StepSpec::NotifyTeam {
            message: "Missed call from {{contact.phone}}".to_owned(),
            to: vec![],
        },
        "webhook" => StepSpec::Webhook { url: String::new() },
        "end" => StepSpec::End,
        _ => return None,
    })
}

/// The list a prefix names: `""` the top, `3.then.` the yes-branch of step 3.
fn list_mut<'a>(steps: &'a mut Vec<StepSpec>, prefix: &str) -> Option<&'a mut Vec<StepSpec>> {
    let parts: Vec<&str> = prefix.split('.').filter(|p| !p.is_empty()).collect();
    let mut list = steps;
    for pair in parts.chunks(2) {
        let [n, branch] = pair else { return None };
        let i = n.parse::<usize>().ok()?.checked_sub(1)?;
        list = match (list.get_mut(i)?, *branch) {
            (StepSpec::If { then, .. }, "then") => then,
            (StepSpec::If { otherwise, .. }, "else") => otherwise,
            _ => return None,
        };
    }
    Some(list)
}

/// A step's list prefix and its 0-based index in that list.
fn split_path(path: &str) -> Option<(&str, usize)> {
    let (prefix, n) = match path.rfind('.') {
        Some(dot) => (&path[..=dot], &path[dot + 1..]),
        None => ("", path),
    };
    Some((prefix, n.parse::<usize>().ok()?.checked_sub(1)?))
}

/// Applies an edit to the draft; returns the path of the step to bring into focus.
/// An edit that names no step (a stale form) changes nothing.
pub fn apply(spec: &mut WorkflowSpec, op: &Op) -> Option<String> {
    match op {
        Op::Save | Op::Check => None,
        Op::Add { list, kind } => {
            let steps = list_mut(&mut spec.steps, list)?;
            steps.push(new_step(kind)?);
            Some(format!("{list}{}", steps.len()))
        }
        Op::Remove(path) => {
            let (prefix, i) = split_path(path)?;
            let steps = list_mut(&mut spec.steps, prefix)?;
            (i < steps.len()).then(|| steps.remove(i))?;
            None
        }
        Op::Up(path) => {
            let (prefix, i) = split_path(path)?;
            let steps = list_mut(&mut spec.steps, prefix)?;
            (i > 0 && i < steps.len()).then(|| steps.swap(i - 1, i))?;
            Some(format!("{prefix}{i}"))
        }
        Op::Down(path) => {
            let (prefix, i) = split_path(path)?;
            let steps = list_mut(&mut spec.steps, prefix)?;
            (i + 1 < steps.len()).then(|| steps.swap(i, i + 1))?;
            Some(format!("{prefix}{}", i + 2))
        }
        Op::AddVariant(path) => {
            let (prefix, i) = split_path(path)?;
            let StepSpec::SendSms { message, variants } =
                list_mut(&mut spec.steps, prefix)?.get_mut(i)?
            else {
                return None;
            };
            if variants.is_empty() {
                variants.push(VariantSpec {
                    name: None,
                    message: std::mem::take(message),
                    weight: 1,
                });
            }
            variants.push(VariantSpec {
                name: None,
                message: String::new(),
                weight: 1,
            });
            Some(path.clone())
        }
        Op::RemoveVariant(path, k) => {
            let (prefix, i) = split_path(path)?;
            let StepSpec::SendSms { message, variants } =
                list_mut(&mut spec.steps, prefix)?.get_mut(i)?
            else {
                return None;
            };
            let k = k.checked_sub(1).filter(|k| *k < variants.len())?;
            variants.remove(k);
            // One message left is a plain message again.
            if variants.len() == 1 {
                *message = variants.remove(0).message;
            }
            Some(path.clone())
        }
    }
}

/// One row of the drawn builder: a step, or the start or end of a branch.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "row", rename_all = "snake_case")]
pub enum Row {
    Step(Box<StepView>),
    /// "If yes" / "Otherwise": the steps of a branch follow, one level deeper.
    Branch {
        depth: usize,
        label: &'static str,
    },
    /// Where a list ends: the control that adds a step to it.
    Add {
        depth: usize,
        list: String,
        label: String,
    },
}

/// A step's fields, flattened for the template.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct StepView {
    pub path: String,
    /// The path in words: `5 › otherwise › 1`.
    pub label: String,
    /// What checking or the linter found wrong with this step, filled in by the page.
    pub problems: Vec<String>,
    pub depth: usize,
    pub kind: &'static str,
    pub kind_label: &'static str,
    pub first: bool,
    pub last: bool,
    pub message: String,
    pub variants: Vec<VariantView>,
    /// `text_back`, `follow_up` or `reply`: how the linter judges this step's messages.
    pub lint_kind: &'static str,
    pub title: String,
    pub due: String,
    pub due_after: String,
    pub assignee: String,
    pub tag: String,
    pub until: String,
    pub wait_for: String,
    pub condition: String,
    pub condition_tag: String,
    pub field: String,
    pub compare: String,
    pub value: String,
    pub to: String,
    pub url: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct VariantView {
    pub k: usize,
    pub name: String,
    pub message: String,
    pub weight: u32,
}

pub fn lint_kind_name(kind: MessageKind) -> &'static str {
    match kind {
        MessageKind::TextBack => "text_back",
        MessageKind::FollowUp => "follow_up",
        MessageKind::Reply => "reply",
    }
}

/// The builder's rows for a draft, top to bottom.
pub fn rows(spec: &WorkflowSpec) -> Vec<Row> {
    let missed = matches!(spec.trigger, TriggerSpec::MissedCall { .. });
    let kinds: HashMap<String, &'static str> = messages_of(&spec.steps, missed)
        .into_iter()
        .map(|m| (m.step, lint_kind_name(m.kind)))
        .collect();
    let mut out = Vec::new();
    draw(&spec.steps, "", 0, &kinds, &mut out);
    out
}

fn draw(
    steps: &[StepSpec],
    prefix: &str,
    depth: usize,
    kinds: &HashMap<String, &'static str>,
    out: &mut Vec<Row>,
) {
    for (i, s) in steps.iter().enumerate() {
        let path = format!("{prefix}{}", i + 1);
        let kind = s.kind();
        let mut v = StepView {
            depth,
            kind,
            kind_label: STEP_TYPES
                .iter()
                .find(|(k, _)| *k == kind)
                .map_or(kind, |(_, label)| label),
            first: i == 0,
            last: i + 1 == steps.len(),
            lint_kind: kinds.get(&path).copied().unwrap_or("follow_up"),
            ..StepView::default()
        };
        let mut branches = None;
        match s {
            StepSpec::SendSms { message, variants } => {
                v.message = message.clone();
                v.variants = variants
                    .iter()
                    .enumerate()
                    .map(|(k, x)| VariantView {
                        k: k + 1,
                        name: x.name.clone().unwrap_or_default(),
                        message: x.message.clone(),
                        weight: x.weight,
                    })
                    .collect();
            }
            StepSpec::CreateTask {
                title,
                due,
                assignee,
            } => {
                v.title = title.clone();
                match due.as_deref() {
                    None | Some("end_of_day") => v.due = "end_of_day".into(),
                    Some("next_business_open") => v.due = "next_business_open".into(),
                    Some(d) => {
                        v.due = "after".into();
                        v.due_after = d.to_owned();
                    }
                }
                v.assignee = assignee.clone().unwrap_or_default();
            }
            StepSpec::AddTag { tag } | StepSpec::RemoveTag { tag } => v.tag = tag.clone(),
            StepSpec::Wait { duration, until } => {
                v.wait_for = duration.clone().unwrap_or_default();
                v.until = until.clone().unwrap_or_else(|| "time".into());
            }
            StepSpec::If {
                condition,
                then,
                otherwise,
            } => {
                v.condition = match condition {
                    ConditionSpec::ContactReplied => "contact_replied",
                    ConditionSpec::TaskDone => "task_done",
                    ConditionSpec::HasTag { tag } => {
                        v.condition_tag = tag.clone();
                        "has_tag"
                    }
                    ConditionSpec::BusinessHours => "business_hours",
                    ConditionSpec::ContactField { field, op, value } => {
                        v.field = field.clone();
                        v.compare = op.clone();
                        v.value = value.clone().unwrap_or_default();
                        "contact_field"
                    }
                }
                .to_owned();
                branches = Some((then, otherwise));
            }
            StepSpec::NotifyTeam { message, to } => {
                v.message = message.clone();
                v.to = to.join(", ");
            }
            StepSpec::Webhook { url } => v.url = url.clone(),
            StepSpec::End => {}
        }
        v.label = path
            .replace(".then.", " › yes › ")
            .replace(".else.", " › otherwise › ");
        v.path = path.clone();
        out.push(Row::Step(Box::new(v)));
        if let Some((then, otherwise)) = branches {
            for (branch, label, list) in
                [("then", "If yes", then), ("else", "Otherwise", otherwise)]
            {
                out.push(Row::Branch {
                    depth: depth + 1,
                    label,
                });
                draw(list, &format!("{path}.{branch}."), depth + 1, kinds, out);
            }
        }
    }
    out.push(Row::Add {
        depth,
        list: prefix.to_owned(),
        label: if prefix.is_empty() {
            "Add a step".to_owned()
        } else {
            let (step, branch) = prefix
                .trim_end_matches('.')
                .rsplit_once('.')
                .unwrap_or(("", ""));
            let which = if branch == "then" { "yes" } else { "otherwise" };
            format!("Add a step to step {step}'s “{which}” branch")
        },
    });
}

/// The step path an error from checking points at: `step 5.else.1 (wait): …` → `5.else.1`.
pub fn error_path(place: &str) -> Option<&str> {
    let rest = place.strip_prefix("step ")?;
    Some(rest.split(' ').next().unwrap_or(rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The fields the builder draws for a spec, as a browser would post them.
    fn posted(spec: &WorkflowSpec) -> Vec<(String, String)> {
        let mut out = pairs(&[("name", &spec.name), ("trigger/type", "missed_call")]);
        for (flag, on) in [
            ("active", spec.active),
            ("stop_on_reply", spec.stop_on_reply),
            ("allow_reentry", spec.allow_reentry),
        ] {
            if on {
                out.push((flag.into(), "on".into()));
            }
        }
        for row in rows(spec) {
            let Row::Step(v) = row else { continue };
            let p = &v.path;
            let mut put = |k: &str, val: &str| out.push((format!("{p}/{k}"), val.to_owned()));
            put("type", v.kind);
            match v.kind {
                "send_sms" if v.variants.is_empty() => put("message", &v.message),
                "send_sms" => {
                    for x in &v.variants {
                        let k = x.k;
                        put(&format!("v{k}/name"), &x.name);
                        put(&format!("v{k}/message"), &x.message);
                        put(&format!("v{k}/weight"), &x.weight.to_string());
                    }
                }
                "create_task" => {
                    put("title", &v.title);
                    put("due", &v.due);
                    put("due_after", &v.due_after);
                    put("assignee", &v.assignee);
                }
                "add_tag" | "remove_tag" => put("tag", &v.tag),
                "wait" => {
                    put("until", &v.until);
                    put("for", &v.wait_for);
                }
                "if" => {
                    put("condition", &v.condition);
                    put("condition_tag", &v.condition_tag);
                }
                _ => {}
            }
        }
        out
    }

    #[test]
    fn a_drawn_workflow_reads_back_the_same() {
        let spec = WorkflowSpec::recommended("Hi from {{business.name}}, sorry we missed you.");
        let form = posted(&spec);
        let back = spec_from_form(&Fields::new(&form), &[]);
        assert_eq!(back, spec);
    }

    #[test]
    fn steps_are_added_moved_and_removed_inside_branches() {
        let mut spec = WorkflowSpec::recommended("Hi");
        // Step 5 is "if replied"; its yes-branch holds one "end".
        let focus = apply(
            &mut spec,
            &Op::Add {
                list: "5.then.".into(),
                kind: "add_tag".into(),
            },
        );
        assert_eq!(focus.as_deref(), Some("5.then.2"));
        let StepSpec::If { then, .. } = &spec.steps[4] else {
            panic!("step 5 is the branch")
        };
        assert_eq!(then.len(), 2);
        assert!(matches!(then[1], StepSpec::AddTag { .. }));

        assert_eq!(
            apply(&mut spec, &Op::Up("5.then.2".into())).as_deref(),
            Some("5.then.1")
        );
        let StepSpec::If { then, .. } = &spec.steps[4] else {
            panic!()
        };
        assert!(matches!(then[0], StepSpec::AddTag { .. }) && then[1] == StepSpec::End);

        apply(&mut spec, &Op::Remove("2".into()));
        assert_eq!(spec.steps.len(), 4);
        assert!(matches!(spec.steps[1], StepSpec::AddTag { .. }));
        apply(&mut spec, &Op::Down("1".into()));
        assert!(matches!(spec.steps[1], StepSpec::SendSms { .. }));
    }

    #[test]
    fn stale_or_forged_edits_change_nothing() {
        let spec = WorkflowSpec::recommended("Hi");
        for op in [
            Op::Remove("9".into()),
            Op::Remove("1.then.1".into()),
            Op::Up("1".into()),
            Op::Down("5".into()),
            Op::Add {
                list: "".into(),
                kind: "launch_rocket".into(),
            },
            Op::Add {
                list: "2.then.".into(),
                kind: "end".into(),
            },
            Op::AddVariant("2".into()),
            Op::RemoveVariant("1".into(), 3),
            Op::Remove("0".into()),
            Op::Remove("x".into()),
        ] {
            let mut draft = spec.clone();
            apply(&mut draft, &op);
            assert_eq!(draft, spec, "{op:?} changed the draft");
        }
    }

    #[test]
    fn a_message_becomes_variants_and_back() {
        let mut spec = WorkflowSpec::builtin_text_back("Hi there");
        apply(&mut spec, &Op::AddVariant("1".into()));
        let StepSpec::SendSms { message, variants } = &spec.steps[0] else {
            panic!()
        };
        assert!(message.is_empty());
        assert_eq!(variants.len(), 2);
        assert_eq!(variants[0].message, "Hi there");

        // Variants survive a round trip through the form.
        let form = posted(&spec);
        assert_eq!(spec_from_form(&Fields::new(&form), &[]).steps, spec.steps);

        apply(&mut spec, &Op::RemoveVariant("1".into(), 2));
        assert_eq!(spec.steps[0], StepSpec::sms("Hi there"));
    }

    #[test]
    fn buttons_are_read_from_the_op_field() {
        let form = pairs(&[("op", "add:3.else."), ("add/3.else.", "wait")]);
        assert_eq!(
            Op::from_form(&Fields::new(&form)),
            Some(Op::Add {
                list: "3.else.".into(),
                kind: "wait".into()
            })
        );
        let form = pairs(&[("op", "remove_variant:2.then.1:3")]);
        assert_eq!(
            Op::from_form(&Fields::new(&form)),
            Some(Op::RemoveVariant("2.then.1".into(), 3))
        );
        assert_eq!(Op::from_form(&Fields::new(&pairs(&[("op", "nuke")]))), None);
    }

    #[test]
    fn trigger_filters_and_numbers_are_read() {
        let form = pairs(&[
            ("trigger/type", "missed_call"),
            ("trigger/business_hours", "closed"),
            ("trigger/contact", "any"),
            ("trigger/tag_present", "VIP, Roofing"),
            ("trigger/number/+15005550006", "on"),
        ]);
        let spec = spec_from_form(
            &Fields::new(&form),
            &["+15005550006".into(), "+15005550007".into()],
        );
        assert_eq!(
            spec.trigger,
            TriggerSpec::MissedCall {
                numbers: vec!["+15005550006".into()],
                business_hours: Some("closed".into()),
                contact: None,
                tag_present: vec!["VIP".into(), "Roofing".into()],
                tag_absent: vec![],
            }
        );
    }

    #[test]
    fn errors_point_at_their_step() {
        assert_eq!(
            error_path("step 5.else.1 (wait): a wait needs a bound"),
            Some("5.else.1")
        );
        assert_eq!(error_path("trigger.numbers"), None);
    }
}
