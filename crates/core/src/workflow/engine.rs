//! Runs a program from a position until it waits or ends. Pure: the facts come in, the
//! effects and where to resume go out, so every path is tested with a manual clock.

use std::collections::BTreeMap;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::hours::BusinessHours;

use super::model::{Condition, Due, FieldOp, Instr, Program, TriggerKind, WaitEvent, WaitFor};
use super::quiet::QuietHours;

/// What kind of text a `send_sms` step sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendKind {
    /// The first text after a missed call, before any wait: one per call, across all
    /// automations; never deferred.
    TextBack,
    /// Before any wait, for other triggers: sent at once.
    Immediate,
    /// After a wait: deferred out of quiet hours.
    FollowUp,
}

impl SendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SendKind::TextBack => "text_back",
            SendKind::Immediate => "workflow",
            SendKind::FollowUp => "follow_up",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    SendSms { pc: usize, kind: SendKind },
    CreateTask { pc: usize, due_at: Timestamp },
    AddTag(String),
    RemoveTag(String),
    NotifyTeam { pc: usize },
    Webhook { pc: usize },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Done,
    /// Run again from `pc` at `at`; `waited` says a wait has passed (sends become follow-ups).
    ResumeAt {
        pc: usize,
        at: Timestamp,
        waited: bool,
    },
    /// Waiting at the wait step `pc` for `event`, at most until `deadline`; the run is
    /// resumed at once when the event happens.
    AwaitEvent {
        pc: usize,
        event: WaitEvent,
        deadline: Timestamp,
    },
}

pub struct RunContext<'a> {
    pub now: Timestamp,
    pub tz: &'a TimeZone,
    pub hours: &'a BusinessHours,
    pub quiet: QuietHours,
    pub trigger: TriggerKind,
    /// The run has passed a wait before this resumption.
    pub waited: bool,
    /// The contact texted since the run started.
    pub contact_replied: bool,
    pub tags: Vec<String>,
    pub fields: BTreeMap<&'static str, Option<String>>,
    /// A task this run created is done.
    pub task_done: bool,
    /// When resuming at an event wait: the deadline set when the wait began.
    pub wait_deadline: Option<Timestamp>,
}

fn holds(c: &Condition, ctx: &RunContext<'_>, tags: &[String]) -> bool {
    match c {
        Condition::ContactReplied => ctx.contact_replied,
        Condition::TaskDone => ctx.task_done,
        Condition::HasTag(t) => tags.iter().any(|x| x.eq_ignore_ascii_case(t)),
        Condition::BusinessHours => ctx.hours.is_empty() || ctx.hours.is_open(ctx.now, ctx.tz),
        Condition::ContactField { field, op } => {
            let v = ctx
                .fields
                .get(field.as_str())
                .cloned()
                .flatten()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty());
            match op {
                FieldOp::Empty => v.is_none(),
                FieldOp::NotEmpty => v.is_some(),
                FieldOp::Equals(x) => v.as_deref().is_some_and(|v| v.eq_ignore_ascii_case(x)),
                FieldOp::NotEquals(x) => !v.as_deref().is_some_and(|v| v.eq_ignore_ascii_case(x)),
            }
        }
    }
}

/// Executes from `pc` until a wait (or quiet hours) or the end.
pub fn advance(program: &Program, mut pc: usize, ctx: &RunContext<'_>) -> (Vec<Effect>, Next) {
    let mut effects = Vec::new();
    let mut tags = ctx.tags.clone();
    // Programs only jump forward, so this ends; the bound is a second line of defence.
    for _ in 0..=program.instrs.len() {
        let Some(instr) = program.instrs.get(pc) else {
            return (effects, Next::Done);
        };
        match instr {
            Instr::SendSms { .. } => {
                let kind = match (ctx.waited, ctx.trigger) {
                    (false, TriggerKind::MissedCall) => SendKind::TextBack,
                    (false, _) => SendKind::Immediate,
                    (true, _) => SendKind::FollowUp,
                };
                if kind == SendKind::FollowUp {
                    let allowed = ctx.quiet.next_allowed(ctx.now, ctx.tz);
                    if allowed > ctx.now {
                        return (
                            effects,
                            Next::ResumeAt {
                                pc,
                                at: allowed,
                                waited: true,
                            },
                        );
                    }
                }
                effects.push(Effect::SendSms { pc, kind });
            }
            Instr::CreateTask { due, .. } => {
                let due_at = match due {
                    Due::After(d) => ctx
                        .now
                        .checked_add(jiff::SignedDuration::from_secs(d.as_secs() as i64))
                        .unwrap_or(ctx.now),
                    Due::EndOfDay => ctx.hours.end_of_day(ctx.now, ctx.tz),
                    Due::NextBusinessOpen => {
                        ctx.hours.next_open(ctx.now, ctx.tz).unwrap_or(ctx.now)
                    }
                };
                effects.push(Effect::CreateTask { pc, due_at });
            }
            Instr::AddTag(t) => {
                if !tags.iter().any(|x| x.eq_ignore_ascii_case(t)) {
                    tags.push(t.clone());
                }
                effects.push(Effect::AddTag(t.clone()));
            }
            Instr::RemoveTag(t) => {
                tags.retain(|x| !x.eq_ignore_ascii_case(t));
                effects.push(Effect::RemoveTag(t.clone()));
            }
            Instr::Wait(WaitFor::Event { event, at_most }) => {
                let happened = match event {
                    WaitEvent::Reply => ctx.contact_replied,
                    WaitEvent::TaskDone => ctx.task_done,
                };
                let timed_out = ctx.wait_deadline.is_some_and(|d| ctx.now >= d);
                if !happened && !timed_out {
                    let deadline = ctx.wait_deadline.unwrap_or_else(|| {
                        ctx.now
                            .checked_add(jiff::SignedDuration::from_secs(at_most.as_secs() as i64))
                            .unwrap_or(ctx.now)
                    });
                    return (
                        effects,
                        Next::AwaitEvent {
                            pc,
                            event: *event,
                            deadline,
                        },
                    );
                }
            }
            Instr::Wait(w) => {
                let at = match w {
                    WaitFor::Duration(d) => ctx
                        .now
                        .checked_add(jiff::SignedDuration::from_secs(d.as_secs() as i64))
                        .unwrap_or(ctx.now),
                    // No hours configured: treated as always open, so the wait ends at once.
                    WaitFor::BusinessHoursOpen => {
                        ctx.hours.next_open(ctx.now, ctx.tz).unwrap_or(ctx.now)
                    }
                    WaitFor::Event { .. } => ctx.now,
                };
                if at > ctx.now {
                    return (
                        effects,
                        Next::ResumeAt {
                            pc: pc + 1,
                            at,
                            waited: true,
                        },
                    );
                }
            }
            Instr::Branch {
                condition,
                otherwise,
            } => {
                if !holds(condition, ctx, &tags) {
                    pc = *otherwise;
                    continue;
                }
            }
            Instr::Jump(to) => {
                pc = *to;
                continue;
            }
            Instr::NotifyTeam { .. } => effects.push(Effect::NotifyTeam { pc }),
            Instr::Webhook { .. } => effects.push(Effect::Webhook { pc }),
            Instr::End => return (effects, Next::Done),
        }
        pc += 1;
    }
    (effects, Next::Done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::model::Workflow;
    use crate::workflow::spec::WorkflowSpec;

    fn program() -> crate::workflow::model::Program {
        Workflow::from_spec(&recommended()).unwrap().program
    }

    /// The workflow HighLevel's guidance recommends (SPEC §7).
    fn recommended() -> WorkflowSpec {
        use crate::workflow::spec::*;
        WorkflowSpec {
            name: "Missed call".into(),
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
            steps: vec![
                StepSpec::sms(
                    "Hi {{contact.first_name | default('there')}}, it's {{business.name}}. Sorry we missed your call!",
                ),
                StepSpec::CreateTask {
                    title: "Call back {{contact.name | default(contact.phone)}}".into(),
                    due: Some("end_of_day".into()),
                    assignee: None,
                },
                StepSpec::AddTag {
                    tag: "Missed Call".into(),
                },
                StepSpec::Wait {
                    duration: Some("30m".into()),
                    until: None,
                },
                StepSpec::If {
                    condition: ConditionSpec::ContactReplied,
                    then: vec![StepSpec::End],
                    otherwise: vec![StepSpec::sms(
                        "{{business.name}} again: still need a hand? Reply here.",
                    )],
                },
            ],
        }
    }

    fn ctx<'a>(
        now: &str,
        tz: &'a TimeZone,
        hours: &'a BusinessHours,
        waited: bool,
        replied: bool,
    ) -> RunContext<'a> {
        RunContext {
            now: now.parse().unwrap(),
            tz,
            hours,
            quiet: QuietHours::default(),
            trigger: TriggerKind::MissedCall,
            waited,
            contact_replied: replied,
            tags: vec![],
            fields: BTreeMap::new(),
            task_done: false,
            wait_deadline: None,
        }
    }

    #[test]
    fn recommended_workflow_texts_tasks_tags_then_waits() {
        let p = program();
        let tz = TimeZone::get("America/Chicago").unwrap();
        let hours = BusinessHours::weekdays_nine_to_five();
        // Monday 2026-11-30 10:00 Chicago = 16:00 UTC.
        let (effects, next) = advance(
            &p,
            0,
            &ctx("2026-11-30T16:00:00Z", &tz, &hours, false, false),
        );
        assert_eq!(
            effects[0],
            Effect::SendSms {
                pc: 0,
                kind: SendKind::TextBack
            }
        );
        assert_eq!(
            effects[1],
            Effect::CreateTask {
                pc: 1,
                due_at: "2026-11-30T23:00:00Z".parse().unwrap()
            }
        );
        assert_eq!(effects[2], Effect::AddTag("Missed Call".into()));
        assert_eq!(
            next,
            Next::ResumeAt {
                pc: 4,
                at: "2026-11-30T16:30:00Z".parse().unwrap(),
                waited: true
            }
        );

        // 30 minutes later, no reply: the follow-up.
        let (effects, next) = advance(
            &p,
            4,
            &ctx("2026-11-30T16:30:00Z", &tz, &hours, true, false),
        );
        assert_eq!(
            effects,
            vec![Effect::SendSms {
                pc: 7,
                kind: SendKind::FollowUp
            }]
        );
        assert_eq!(next, Next::Done);

        // With a reply: nothing more.
        let (effects, next) = advance(&p, 4, &ctx("2026-11-30T16:30:00Z", &tz, &hours, true, true));
        assert!(effects.is_empty());
        assert_eq!(next, Next::Done);
    }

    #[test]
    fn a_follow_up_due_at_23_goes_out_at_8() {
        let p = program();
        let tz = TimeZone::get("America/Chicago").unwrap();
        let hours = BusinessHours::weekdays_nine_to_five();
        // 23:00 Chicago on 2026-12-01 = 05:00 UTC 12-02.
        let (effects, next) = advance(
            &p,
            4,
            &ctx("2026-12-02T05:00:00Z", &tz, &hours, true, false),
        );
        assert!(effects.is_empty());
        assert_eq!(
            next,
            Next::ResumeAt {
                pc: 7,
                at: "2026-12-02T14:00:00Z".parse().unwrap(),
                waited: true
            }
        );
        let (effects, _) = advance(
            &p,
            7,
            &ctx("2026-12-02T14:00:00Z", &tz, &hours, true, false),
        );
        assert_eq!(
            effects,
            vec![Effect::SendSms {
                pc: 7,
                kind: SendKind::FollowUp
            }]
        );
    }

    #[test]
    fn the_immediate_text_back_ignores_quiet_hours() {
        let p = program();
        let tz = TimeZone::get("America/Chicago").unwrap();
        let hours = BusinessHours::weekdays_nine_to_five();
        let (effects, _) = advance(
            &p,
            0,
            &ctx("2026-12-02T05:00:00Z", &tz, &hours, false, false),
        );
        assert_eq!(
            effects[0],
            Effect::SendSms {
                pc: 0,
                kind: SendKind::TextBack
            }
        );
    }

    #[test]
    fn waits_for_a_reply_or_the_deadline() {
        use crate::duration::HumanDuration;
        use crate::workflow::model::{Instr, Program, WaitEvent, WaitFor};
        let p = Program {
            instrs: vec![
                Instr::Wait(WaitFor::Event {
                    event: WaitEvent::Reply,
                    at_most: HumanDuration::parse("1h").unwrap(),
                }),
                Instr::AddTag("Replied or timed out".into()),
            ],
            places: vec!["1".into(), "2".into()],
        };
        let tz = TimeZone::UTC;
        let hours = BusinessHours::default();
        let mut c = ctx("2026-11-30T16:00:00Z", &tz, &hours, false, false);
        let (e, next) = advance(&p, 0, &c);
        assert!(e.is_empty());
        let deadline: Timestamp = "2026-11-30T17:00:00Z".parse().unwrap();
        assert_eq!(
            next,
            Next::AwaitEvent {
                pc: 0,
                event: WaitEvent::Reply,
                deadline
            }
        );
        // Woken early by a reply.
        c.contact_replied = true;
        c.wait_deadline = Some(deadline);
        assert_eq!(advance(&p, 0, &c).0.len(), 1);
        // Or at the deadline without one.
        let mut late = ctx("2026-11-30T17:00:00Z", &tz, &hours, true, false);
        late.wait_deadline = Some(deadline);
        assert_eq!(advance(&p, 0, &late).0.len(), 1);
        // Woken by something else before the deadline: keeps waiting, same deadline.
        let mut early = ctx("2026-11-30T16:10:00Z", &tz, &hours, true, false);
        early.wait_deadline = Some(deadline);
        assert_eq!(
            advance(&p, 0, &early).1,
            Next::AwaitEvent {
                pc: 0,
                event: WaitEvent::Reply,
                deadline
            }
        );
    }

    #[test]
    fn tags_added_in_the_run_are_seen_by_later_conditions() {
        use crate::workflow::model::{Instr, Program};
        let p = Program {
            instrs: vec![
                Instr::AddTag("VIP".into()),
                Instr::Branch {
                    condition: Condition::HasTag("vip".into()),
                    otherwise: 3,
                },
                Instr::Webhook {
                    url: "https://x".into(),
                },
            ],
            places: vec!["1".into(), "2".into(), "2.then.1".into()],
        };
        let tz = TimeZone::UTC;
        let hours = BusinessHours::default();
        let (effects, _) = advance(
            &p,
            0,
            &ctx("2026-11-30T16:00:00Z", &tz, &hours, false, false),
        );
        assert_eq!(effects.last(), Some(&Effect::Webhook { pc: 2 }));
    }
}
