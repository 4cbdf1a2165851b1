//! Workflows: a trigger with filters and steps with branches (SPEC §7).
//!
//! `spec` is the shape people write (account files, later the API); `model` checks a spec
//! and compiles it into a flat program whose branches are forward jumps; `engine` runs a
//! program from a position until it waits or ends, as a pure function of the facts it is
//! given. The worker carries the facts in and the effects out.

pub mod engine;
pub mod messages;
pub mod model;
pub mod quiet;
pub mod spec;

pub use engine::{Effect, Next, RunContext, SendKind, advance};
pub use messages::{StepMessage, messages_of};
pub use model::{
    Condition, Due, Instr, Program, TriggerFacts, TriggerFilter, TriggerKind, Variant, WaitEvent,
    WaitFor, Workflow, WorkflowError, choose_variant,
};
pub use quiet::{QuietHours, QuietHoursError};
pub use spec::{
    BUILTIN_NAME, ConditionSpec, RECOMMENDED_NAME, StepSpec, TriggerSpec, VariantSpec, WorkflowSpec,
};
