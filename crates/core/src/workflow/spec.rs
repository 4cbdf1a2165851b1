//! Workflows as written in account files (TOML) and, later, API bodies (JSON).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowSpec {
    pub name: String,
    #[serde(default = "yes")]
    pub active: bool,
    /// A reply from the contact ends the run and cancels its pending steps.
    #[serde(default = "yes")]
    pub stop_on_reply: bool,
    /// Whether a contact may enter this workflow again after an earlier run.
    #[serde(default = "yes")]
    pub allow_reentry: bool,
    /// IANA zone for business hours, quiet hours and due times; the account's by default.
    pub time_zone: Option<String>,
    pub trigger: TriggerSpec,
    pub steps: Vec<StepSpec>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum TriggerSpec {
    MissedCall {
        /// Only calls to these numbers; all of the account's numbers when empty.
        #[serde(default)]
        numbers: Vec<String>,
        /// `any` (default), `open` (during business hours) or `closed`.
        #[serde(default)]
        business_hours: Option<String>,
        /// `any` (default), `new` (first contact with the business) or `known`.
        #[serde(default)]
        contact: Option<String>,
        #[serde(default)]
        tag_present: Vec<String>,
        #[serde(default)]
        tag_absent: Vec<String>,
    },
    VoicemailLeft {
        #[serde(default)]
        numbers: Vec<String>,
    },
    MessageReceived {
        #[serde(default)]
        numbers: Vec<String>,
    },
    TaskOverdue,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum StepSpec {
    /// One `message`, or `variants` to compare (each contact gets one, at random by weight).
    SendSms {
        #[serde(default, skip_serializing_if = "String::is_empty")]
        message: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        variants: Vec<VariantSpec>,
    },
    CreateTask {
        title: String,
        /// A duration (`2h`), `end_of_day` or `next_business_open`; default `end_of_day`.
        #[serde(default)]
        due: Option<String>,
        #[serde(default)]
        assignee: Option<String>,
    },
    AddTag {
        tag: String,
    },
    RemoveTag {
        tag: String,
    },
    Wait {
        /// A duration such as `30m`.
        #[serde(default, rename = "for")]
        duration: Option<String>,
        /// `business_hours`: until the business next opens.
        #[serde(default)]
        until: Option<String>,
    },
    If {
        condition: ConditionSpec,
        #[serde(default)]
        then: Vec<StepSpec>,
        #[serde(default, rename = "else")]
        otherwise: Vec<StepSpec>,
    },
    NotifyTeam {
        message: String,
        /// Team phones to text; all the number's team phones when empty.
        #[serde(default)]
        to: Vec<String>,
    },
    Webhook {
        url: String,
    },
    End,
}

/// One message variant of a `send_sms` step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariantSpec {
    /// Shown in reports; `A`, `B`, … by position when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub message: String,
    /// Relative share of contacts (default 1).
    #[serde(default = "one")]
    pub weight: u32,
}

fn one() -> u32 {
    1
}

impl StepSpec {
    /// The step's `type`, as written in specs and reported in errors.
    pub fn kind(&self) -> &'static str {
        match self {
            StepSpec::SendSms { .. } => "send_sms",
            StepSpec::CreateTask { .. } => "create_task",
            StepSpec::AddTag { .. } => "add_tag",
            StepSpec::RemoveTag { .. } => "remove_tag",
            StepSpec::Wait { .. } => "wait",
            StepSpec::If { .. } => "if",
            StepSpec::NotifyTeam { .. } => "notify_team",
            StepSpec::Webhook { .. } => "webhook",
            StepSpec::End => "end",
        }
    }

    /// A `send_sms` step with one message.
    pub fn sms(message: &str) -> StepSpec {
        StepSpec::SendSms {
            message: message.to_owned(),
            variants: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ConditionSpec {
    /// The contact texted since the run started.
    ContactReplied,
    /// A task this run created is done.
    TaskDone,
    HasTag {
        tag: String,
    },
    /// The business is open now.
    BusinessHours,
    /// Compares a contact field: `op` is `empty`, `not_empty`, `equals` or `not_equals`.
    ContactField {
        field: String,
        op: String,
        #[serde(default)]
        value: Option<String>,
    },
}

/// The follow-up of the recommended workflow.
pub const RECOMMENDED_FOLLOW_UP: &str = "Hi {{contact.first_name | default(\"there\")}}, just checking in from {{business.name}}: do you still need a hand? Reply here or call us back anytime.";

impl WorkflowSpec {
    /// The JSON a version stores. Active or not is the workflow's state, not part of a
    /// version: switching it on and off adds no versions.
    pub fn versioned_json(&self) -> String {
        let versioned = WorkflowSpec {
            active: true,
            ..self.clone()
        };
        serde_json::to_string(&versioned).unwrap_or_default()
    }

    /// The built-in text back setting as a workflow: on a missed call, text `message`.
    pub fn builtin_text_back(message: &str) -> WorkflowSpec {
        WorkflowSpec {
            name: BUILTIN_NAME.to_owned(),
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
            steps: vec![StepSpec::sms(message)],
        }
    }

    /// The workflow HighLevel's own guidance recommends (SPEC §7): text back now, a
    /// callback task due today, tag "Missed Call", wait 30 minutes, follow up if no reply.
    pub fn recommended(message: &str) -> WorkflowSpec {
        WorkflowSpec {
            name: RECOMMENDED_NAME.to_owned(),
            steps: vec![
                StepSpec::sms(message),
                StepSpec::CreateTask {
                    title: "Call back {{contact.name | default(contact.phone)}}".to_owned(),
                    due: Some("end_of_day".to_owned()),
                    assignee: None,
                },
                StepSpec::AddTag {
                    tag: "Missed Call".to_owned(),
                },
                StepSpec::Wait {
                    duration: Some("30m".to_owned()),
                    until: None,
                },
                StepSpec::If {
                    condition: ConditionSpec::ContactReplied,
                    then: vec![StepSpec::End],
                    otherwise: vec![StepSpec::sms(RECOMMENDED_FOLLOW_UP)],
                },
            ],
            ..WorkflowSpec::builtin_text_back(message)
        }
    }
}

pub const BUILTIN_NAME: &str = "Text back (built-in)";
pub const RECOMMENDED_NAME: &str = "Missed call";
