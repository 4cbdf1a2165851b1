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
    SendSms {
        message: String,
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ConditionSpec {
    /// The contact texted since the run started.
    ContactReplied,
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
