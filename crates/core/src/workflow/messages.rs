//! Which messages a workflow sends and what kind each is, so every editor (account files,
//! the API, the web builder) lints them by the same rule: a `send_sms` before any wait of a
//! missed-call workflow is the text back, later ones are follow-ups, team texts are replies.

use crate::lint::MessageKind;

use super::spec::StepSpec;

/// One message of a workflow, with where it sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepMessage<'a> {
    /// As a field path of the spec: `steps[4].else.steps[0].variants[1]`.
    pub field: String,
    /// The step as people count it, 1-based, the way checking reports it: `5.else.1`.
    pub step: String,
    /// The variant's position, for a `send_sms` step with variants.
    pub variant: Option<usize>,
    pub kind: MessageKind,
    pub text: &'a str,
}

/// Every message of `steps`, in order.
pub fn messages_of(steps: &[StepSpec], missed_call: bool) -> Vec<StepMessage<'_>> {
    let mut out = Vec::new();
    walk(steps, "", "", false, missed_call, &mut out);
    out
}

fn walk<'a>(
    steps: &'a [StepSpec],
    field_prefix: &str,
    step_prefix: &str,
    mut waited: bool,
    missed_call: bool,
    out: &mut Vec<StepMessage<'a>>,
) -> bool {
    for (i, s) in steps.iter().enumerate() {
        let field = format!("{field_prefix}steps[{i}]");
        let step = format!("{step_prefix}{}", i + 1);
        match s {
            StepSpec::SendSms { message, variants } => {
                let kind = if missed_call && !waited {
                    MessageKind::TextBack
                } else {
                    MessageKind::FollowUp
                };
                if !message.is_empty() {
                    out.push(StepMessage {
                        field: field.clone(),
                        step: step.clone(),
                        variant: None,
                        kind,
                        text: message,
                    });
                }
                for (k, v) in variants.iter().enumerate() {
                    out.push(StepMessage {
                        field: format!("{field}.variants[{k}]"),
                        step: step.clone(),
                        variant: Some(k),
                        kind,
                        text: &v.message,
                    });
                }
            }
            StepSpec::NotifyTeam { message, .. } => out.push(StepMessage {
                field,
                step,
                variant: None,
                kind: MessageKind::Reply,
                text: message,
            }),
            StepSpec::Wait { .. } => waited = true,
            StepSpec::If {
                then, otherwise, ..
            } => {
                let a = walk(
                    then,
                    &format!("{field}.then."),
                    &format!("{step}.then."),
                    waited,
                    missed_call,
                    out,
                );
                let b = walk(
                    otherwise,
                    &format!("{field}.else."),
                    &format!("{step}.else."),
                    waited,
                    missed_call,
                    out,
                );
                waited = a || b;
            }
            _ => {}
        }
    }
    waited
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::spec::WorkflowSpec;

    #[test]
    fn the_first_text_is_the_text_back_and_texts_after_a_wait_are_follow_ups() {
        let spec = WorkflowSpec::recommended("Hi from {{business.name}}");
        let found = messages_of(&spec.steps, true);
        let kinds: Vec<_> = found
            .iter()
            .map(|m| (m.field.as_str(), m.step.as_str(), m.kind))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("steps[0]", "1", MessageKind::TextBack),
                ("steps[4].else.steps[0]", "5.else.1", MessageKind::FollowUp),
            ]
        );
        // Outside a missed-call workflow no text is a text back.
        assert!(
            messages_of(&spec.steps, false)
                .iter()
                .all(|m| m.kind == MessageKind::FollowUp)
        );
    }
}
