//! Plans what workflow runs do, from the facts the store read: which workflows a trigger
//! starts, and what each step of a run does (the texting rules of SPEC §5 for the text
//! back, templates, tasks, tags, notifications, webhooks). All pure; the store carries out
//! the plan in one transaction.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock, Mutex};

use jiff::Timestamp;
use jiff::tz::TimeZone;
use textback_core::text_back::decide;
use textback_core::workflow::{
    Effect, Instr, Next, QuietHours, RunContext, SendKind, TriggerFacts, TriggerKind, Workflow,
    WorkflowSpec, advance, choose_variant,
};
use textback_core::{
    BusinessHours, CallerId, MessageTemplate, Phone, RenderContext, TextBackDecision, TextBackFacts,
};
use textback_store::{RunAction, RunInput, RunNext, RunPlan, StartPlan, StartRun, TriggerInput};

/// Compiled workflows by their stored spec. A spec's text decides its compiled form, and
/// every run step and trigger needs one: compiling (JSON, then every template) took a
/// noticeable share of each missed call. Bounded: cleared when it holds `COMPILED_MAX`.
static COMPILED: LazyLock<Mutex<HashMap<String, Arc<Workflow>>>> = LazyLock::new(Default::default);
const COMPILED_MAX: usize = 512;

fn compile(spec: &str) -> Result<Arc<Workflow>, String> {
    if let Some(found) = COMPILED.lock().ok().and_then(|c| c.get(spec).cloned()) {
        return Ok(found);
    }
    let parsed: WorkflowSpec =
        serde_json::from_str(spec).map_err(|e| format!("stored workflow is not readable: {e}"))?;
    let workflow = Arc::new(Workflow::from_spec(&parsed).map_err(|e| e.to_string())?);
    if let Ok(mut cache) = COMPILED.lock() {
        if cache.len() >= COMPILED_MAX {
            cache.clear();
        }
        cache.insert(spec.to_owned(), workflow.clone());
    }
    Ok(workflow)
}

fn zone(name: &str) -> TimeZone {
    TimeZone::get(name).unwrap_or(TimeZone::UTC)
}

fn hours(map: &BTreeMap<String, String>) -> BusinessHours {
    BusinessHours::from_map(map).unwrap_or_default()
}

/// Which workflows a trigger event starts.
pub fn plan_start(input: &TriggerInput) -> StartPlan {
    let Some(kind) = TriggerKind::parse(&input.kind) else {
        return StartPlan::default();
    };
    let mut runs = Vec::new();
    let mut broken = Vec::new();
    for record in &input.workflows {
        let workflow = match compile(&record.spec) {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(workflow = %record.name, error = %e, "workflow skipped");
                broken.push(format!(
                    "the automation {:?} is not valid: {e}",
                    record.name
                ));
                continue;
            }
        };
        let tz = workflow
            .time_zone
            .as_ref()
            .map(|t| t.tz().clone())
            .unwrap_or_else(|| zone(&input.account.time_zone));
        let at = Timestamp::from_millisecond(input.at_ms).unwrap_or(Timestamp::UNIX_EPOCH);
        let facts = TriggerFacts {
            kind,
            number: input.number.as_deref(),
            business_open: hours(&input.account.business_hours).is_open(at, &tz),
            new_contact: input.new_contact,
            tags: &input.tags,
        };
        if !workflow.trigger.matches(&facts) {
            continue;
        }
        if !workflow.allow_reentry && input.entered_before.contains(&record.id) {
            continue;
        }
        runs.push(StartRun {
            workflow_id: record.id,
            version: record.version,
            stop_on_reply: workflow.stop_on_reply,
        });
    }
    let none_failed = runs.is_empty() && !broken.is_empty();
    let none_reason = runs.is_empty().then(|| {
        if let Some(first) = broken.first() {
            first.clone()
        } else if input.workflows.is_empty() {
            "text_back_disabled".to_owned()
        } else {
            "no_workflow_matched".to_owned()
        }
    });
    StartPlan {
        runs,
        none_reason,
        none_failed,
    }
}

fn render_context(input: &RunInput) -> RenderContext {
    let tz = zone(&input.account.time_zone);
    let call_time = input
        .call
        .as_ref()
        .and_then(|c| Timestamp::from_millisecond(c.started_at_ms).ok())
        .map(|t| tz.to_datetime(t).strftime("%-I:%M %p").to_string())
        .unwrap_or_default();
    RenderContext {
        contact_phone: input
            .contact
            .as_ref()
            .map(|c| c.phone.clone())
            .unwrap_or_default(),
        contact_first_name: input.contact.as_ref().and_then(|c| c.first_name.clone()),
        contact_last_name: input.contact.as_ref().and_then(|c| c.last_name.clone()),
        business_name: input.account.name.clone(),
        business_phone: input
            .number
            .as_ref()
            .map(|n| n.e164.clone())
            .unwrap_or_default(),
        business_booking_link: input.account.booking_link.clone(),
        call_time,
        user_first_name: None,
    }
}

/// The text back of SPEC §5: the rules first, then the template.
fn text_back(
    input: &RunInput,
    template: &MessageTemplate,
    ctx: &RenderContext,
    now: Timestamp,
    carrier: &str,
) -> RunAction {
    let caller = match (&input.call, &input.contact) {
        (Some(call), _) => match &call.caller_phone {
            Some(p) => Phone::from_stored(p)
                .map(CallerId::Number)
                .unwrap_or_else(|_| CallerId::Unparseable(p.clone())),
            None => CallerId::from_carrier(&call.caller),
        },
        (None, Some(c)) => Phone::from_stored(&c.phone)
            .map(CallerId::Number)
            .unwrap_or(CallerId::Anonymous),
        (None, None) => CallerId::Anonymous,
    };
    // Team phones and the do-not-text list are stored in E.164 (checked when saved), so
    // comparing text is comparing numbers; parsing each entry per call cost 6% of the
    // pipeline's time.
    let listed = |list: &[String]| {
        caller
            .phone()
            .is_some_and(|p| list.iter().any(|n| n == p.as_str()))
    };
    let team: &[String] = input
        .number
        .as_ref()
        .map(|n| n.ring_to.as_slice())
        .unwrap_or(&[]);
    let facts = TextBackFacts {
        caller: &caller,
        // The run exists because an active automation matched the call.
        text_back_enabled: true,
        number_active: input.number.as_ref().is_some_and(|n| n.active),
        caller_is_team_phone: listed(team),
        caller_on_do_not_text_list: listed(&input.account.do_not_text),
        contact_opted_out: input.contact.as_ref().is_some_and(|c| c.opted_out),
        contact_not_textable: input.contact.as_ref().is_some_and(|c| !c.textable),
        caller_is_landline: input.caller_line_type.as_deref() == Some("landline"),
        last_text_back_at: input
            .last_text_back_at_ms
            .and_then(|ms| Timestamp::from_millisecond(ms).ok()),
        cooldown: std::time::Duration::from_secs(input.account.cooldown_secs.max(0) as u64),
        now,
    };
    if let TextBackDecision::Skip(reason) = decide(&facts) {
        return RunAction::TextBackNotSent {
            status: "skipped".into(),
            reason: reason.code().into(),
        };
    }
    match template.render(ctx) {
        Ok(body) => RunAction::TextBack {
            body,
            carrier: carrier.to_owned(),
            variant: None,
            step: String::new(),
        },
        Err(e) => RunAction::TextBackNotSent {
            status: "failed".into(),
            reason: format!("the text back message could not be rendered: {e}"),
        },
    }
}

fn log(place: &str, what: impl Into<String>) -> RunAction {
    RunAction::Log {
        place: place.to_owned(),
        what: what.into(),
    }
}

/// What one step of a run does.
pub fn plan_run(input: &RunInput, now: Timestamp, carrier: &str) -> RunPlan {
    let workflow = match compile(&input.spec) {
        Ok(w) => w,
        Err(e) => {
            return RunPlan {
                actions: vec![],
                next: RunNext::Fail(e),
            };
        }
    };
    let tz = workflow
        .time_zone
        .as_ref()
        .map(|t| t.tz().clone())
        .unwrap_or_else(|| zone(&input.account.time_zone));
    let hours = hours(&input.account.business_hours);
    let mut fields = BTreeMap::new();
    if let Some(c) = &input.contact {
        fields.insert("first_name", c.first_name.clone());
        fields.insert("last_name", c.last_name.clone());
        fields.insert("phone", Some(c.phone.clone()));
    }
    let ctx = RunContext {
        now,
        tz: &tz,
        hours: &hours,
        quiet: QuietHours::parse(&input.account.quiet_hours).unwrap_or_default(),
        trigger: TriggerKind::parse(&input.trigger).unwrap_or(TriggerKind::MissedCall),
        waited: input.waited,
        contact_replied: input
            .contact
            .as_ref()
            .is_some_and(|c| c.replied_since_start),
        tags: input.tags.clone(),
        fields,
        task_done: input.task_done,
        wait_deadline: input
            .wait_deadline_ms
            .and_then(|ms| Timestamp::from_millisecond(ms).ok()),
    };
    let pc = usize::try_from(input.pc).unwrap_or(usize::MAX);
    let (effects, next) = advance(&workflow.program, pc, &ctx);
    let render = render_context(input);
    let program = &workflow.program;
    let mut actions = Vec::with_capacity(effects.len());
    for effect in effects {
        match effect {
            Effect::SendSms { pc, kind } => {
                let (Some(Instr::SendSms { variants }), place) =
                    (program.instrs.get(pc), &program.places[pc])
                else {
                    continue;
                };
                // Random by weight, fixed per run: the contact keeps their variant.
                let Some(chosen) = variants.get(choose_variant(variants, input.run_id as u64))
                else {
                    continue;
                };
                let template = &chosen.template;
                let variant = chosen.name.clone();
                if kind == SendKind::TextBack {
                    actions.push(match text_back(input, template, &render, now, carrier) {
                        RunAction::TextBack { body, carrier, .. } => RunAction::TextBack {
                            body,
                            carrier,
                            variant,
                            step: place.clone(),
                        },
                        other => other,
                    });
                    continue;
                }
                match &input.contact {
                    None => actions.push(log(place, "skipped: no contact number to text")),
                    Some(c) if c.opted_out => actions.push(log(place, "skipped: opted_out")),
                    Some(c) if !c.textable => actions.push(log(place, "skipped: not_textable")),
                    Some(_) => match template.render(&render) {
                        Ok(body) => actions.push(RunAction::Send {
                            kind: kind.as_str().to_owned(),
                            body,
                            carrier: carrier.to_owned(),
                            variant,
                            step: place.clone(),
                        }),
                        Err(e) => actions.push(log(place, format!("failed: {e}"))),
                    },
                }
            }
            Effect::CreateTask { pc, due_at } => {
                if let Some(Instr::CreateTask {
                    title, assignee, ..
                }) = program.instrs.get(pc)
                {
                    match title.render(&render) {
                        Ok(title) => actions.push(RunAction::Task {
                            title,
                            due_at_ms: due_at.as_millisecond(),
                            assignee: assignee.clone(),
                        }),
                        Err(e) => actions.push(log(&program.places[pc], format!("failed: {e}"))),
                    }
                }
            }
            Effect::AddTag(t) => actions.push(RunAction::AddTag(t)),
            Effect::RemoveTag(t) => actions.push(RunAction::RemoveTag(t)),
            Effect::NotifyTeam { pc } => {
                if let Some(Instr::NotifyTeam { template, to }) = program.instrs.get(pc) {
                    let to: Vec<String> = if to.is_empty() {
                        input
                            .number
                            .as_ref()
                            .map(|n| n.ring_to.clone())
                            .unwrap_or_default()
                    } else {
                        to.iter().map(|p| p.to_string()).collect()
                    };
                    match template.render(&render) {
                        Ok(body) if !to.is_empty() => actions.push(RunAction::Notify {
                            to,
                            body,
                            carrier: carrier.to_owned(),
                        }),
                        Ok(_) => actions
                            .push(log(&program.places[pc], "skipped: no team phone to notify")),
                        Err(e) => actions.push(log(&program.places[pc], format!("failed: {e}"))),
                    }
                }
            }
            Effect::Webhook { pc } => {
                if let Some(Instr::Webhook { url }) = program.instrs.get(pc) {
                    let payload = serde_json::json!({
                        "type": "workflow.webhook",
                        "timestamp": now.to_string(),
                        "data": {
                            "account": input.account.slug,
                            "workflow": workflow.name,
                            "run_id": input.run_id,
                            "trigger": input.trigger,
                            "contact": input.contact.as_ref().map(|c| serde_json::json!({
                                "phone": c.phone,
                                "first_name": c.first_name,
                                "last_name": c.last_name,
                                "tags": input.tags,
                            })),
                            "call": input.call.as_ref().map(|c| serde_json::json!({
                                "id": c.id,
                                "caller": c.caller,
                                "started_at": Timestamp::from_millisecond(c.started_at_ms).map(|t| t.to_string()).unwrap_or_default(),
                            })),
                        }
                    });
                    actions.push(RunAction::Webhook {
                        url: url.clone(),
                        payload: payload.to_string(),
                    });
                }
            }
        }
    }
    let next = match next {
        Next::Done => RunNext::Done,
        Next::AwaitEvent {
            pc,
            event,
            deadline,
        } => RunNext::AwaitEvent {
            pc: pc as i64,
            event: event.as_str().to_owned(),
            deadline_ms: deadline.as_millisecond(),
        },
        Next::ResumeAt { pc, at, waited } => RunNext::ResumeAt {
            pc: pc as i64,
            at_ms: at.as_millisecond(),
            waited,
        },
    };
    RunPlan { actions, next }
}
