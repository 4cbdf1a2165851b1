//! Textback's domain: types that can only hold valid values, and the pure decisions
//! (the missed-call rule, the texting rules, template rendering). No I/O lives here, so
//! everything in this crate is tested without a database, a network or a real clock.

pub mod account;
pub mod account_file;
pub mod call;
pub mod carrier_error;
pub mod clock;
pub mod consent;
pub mod duration;
pub mod hours;
pub mod lint;
pub mod phone;
pub mod reports;
pub mod ringing;
pub mod secret;
pub mod segments;
pub mod smart_list;
pub mod template;
pub mod text_back;
pub mod variants;
pub mod workflow;

pub use account::{AccountRecord, AccountSlug, NumberRecord, TimeZoneName};
pub use call::{CallOutcome, DialStatus};
pub use clock::{Clock, ManualClock, SystemClock};
pub use duration::HumanDuration;
pub use hours::BusinessHours;
pub use phone::{CallerId, Phone, PhoneError};
pub use template::{MessageTemplate, RenderContext, TemplateError};
pub use text_back::{SkipReason, TextBackDecision, TextBackFacts};
