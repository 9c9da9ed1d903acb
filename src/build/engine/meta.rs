//! The config-only executor: ENV, LABEL, CMD, ... and ARG change the
//! stage's config (or its args) in memory and add a history entry with
//! `empty_layer`. Their key chains from the step before (see
//! [`crate::build::key::Parent::Step`]); the image is made where a run of
//! them ends, so each costs O(its own change).

use std::collections::HashMap;

use strata_parser::{Instruction, Step};

use super::stage::StageState;
use super::{Build, Done};
use crate::build::cache::Entry;
use crate::build::commit::push_history;
use crate::build::config_steps::normalised;
use crate::build::error::StepFailure;
use crate::build::key::{self, Op};
use crate::digest::ImageId;
use crate::store::config::History;

/// A metadata instruction (already expanded).
pub(super) fn config(
    b: &Build,
    state: &mut StageState,
    step: &Step,
    instruction: &Instruction,
) -> Result<Done, StepFailure> {
    let text = normalised(step, instruction, &state.editor);
    let key = key::key(state.parent(), &Op::Config { instruction: &text });
    state.editor.apply(step, instruction)?;
    Ok(settle(b, state, step, key))
}

/// ARG: the values of later steps' `$NAME` and RUN's environment. No
/// config change, but a history entry, as Docker's classic builder and
/// buildah record ARG. The key holds the declaration, not the value: RUN
/// keys hold the values they see.
pub(super) fn arg(
    b: &Build,
    state: &mut StageState,
    step: &Step,
    instruction: &Instruction,
    globals: &HashMap<String, String>,
) -> Result<Done, StepFailure> {
    let Instruction::Arg(decls) = instruction else {
        return Err(StepFailure::NotHere(instruction.keyword()));
    };
    for d in decls {
        let value = b.args.declared(&d.name, d.default.as_ref(), globals);
        state.args.insert(d.name.clone(), value);
    }
    let text = normalised(step, instruction, &state.editor);
    let key = key::key(state.parent(), &Op::Config { instruction: &text });
    Ok(settle(b, state, step, key))
}

/// The history entry, and the step's key recorded as seen.
fn settle(b: &Build, state: &mut StageState, step: &Step, key: key::CacheKey) -> Done {
    let text = step.raw.original.trim();
    push_history(
        state.editor.config_mut(),
        History {
            created_by: Some(format!("/bin/sh -c #(nop) {text}")),
            empty_layer: true,
            ..History::default()
        },
    );
    let cached = b.lookup(&key).is_some();
    if !cached {
        b.record(&key, &Entry::Step);
    }
    state.pending = Some(key);
    Done::Meta { cached }
}

impl Build<'_> {
    /// Makes the metadata steps since the stage's image one image, and
    /// says which.
    pub(super) fn materialize(&self, state: &mut StageState) -> Result<(), StepFailure> {
        if let Some(id) = self.settle_pending(state)? {
            self.out.image(state.step, id.short());
        }
        Ok(())
    }

    /// The image of the metadata steps since the stage's image (the one a
    /// previous build made for the same steps, if any); `None` if there
    /// were none.
    pub(super) fn settle_pending(
        &self,
        state: &mut StageState,
    ) -> Result<Option<ImageId>, StepFailure> {
        let Some(key) = state.pending.clone() else {
            return Ok(None);
        };
        if let Some(id) = self.lookup_image(&key) {
            self.adopt(state, id.clone())?;
            return Ok(Some(id));
        }
        self.may_execute()?;
        let id = self.commit_config(state.config(), state.image.clone())?;
        self.record(&key, &Entry::Image(id.clone()));
        state.image = Some(id.clone());
        state.pending = None;
        Ok(Some(id))
    }
}
