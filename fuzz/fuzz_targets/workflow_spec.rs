//! Workflows as account files and API bodies carry them (JSON here): reading and checking
//! never panic, and a workflow that checks compiles to a program whose jumps stay inside it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use textback_core::workflow::{Instr, Workflow, WorkflowSpec};

fuzz_target!(|data: &[u8]| {
    let Ok(spec) = serde_json::from_slice::<WorkflowSpec>(data) else {
        return;
    };
    if let Ok(w) = Workflow::from_spec(&spec) {
        let n = w.program.instrs.len();
        for i in &w.program.instrs {
            match i {
                Instr::Branch { otherwise, .. } => assert!(*otherwise <= n),
                Instr::Jump(to) => assert!(*to <= n),
                _ => {}
            }
        }
    }
});
