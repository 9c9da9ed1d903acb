//! The engine's side of `--explain-cache` ([`crate::build::explain`]):
//! every step's inputs go into the target's record, and with the flag the
//! first miss of a stage says what changed since the last build.

use super::lookup::Uncached;
use super::stage::StageState;
use super::{dockerfile_name, Build};
use crate::build::explain::{self, At, Explainer};
use crate::build::plan::{PlannedStep, StagePlan, StepKind};
use crate::store::Store;

/// The record of the target `opts` builds: its context, Dockerfile and
/// `--target` name it.
pub(super) fn explainer(store: &Store, opts: &super::BuildOptions) -> Explainer {
    let context = opts
        .context
        .as_ref()
        .map(|c| fs_err::canonicalize(c).unwrap_or_else(|_| c.clone()));
    let identity = format!(
        "{:?}\0{}\0{}",
        context,
        dockerfile_name(opts),
        opts.target.as_deref().unwrap_or("")
    );
    Explainer::load(store, &identity)
}

impl Build<'_> {
    /// A stage's FROM: the image it starts from.
    pub(super) fn note_base(&self, sp: &StagePlan, state: &StageState) {
        let base = state
            .image
            .as_ref()
            .map_or_else(|| "scratch".to_string(), ToString::to_string);
        let inputs = explain::take_notes(&sp.from.step.raw.original, Some(base), None);
        self.explain.step((sp.stage.index, 0), inputs);
    }

    /// Records a step's inputs; with `--explain-cache`, what changed for
    /// the first step of its stage that missed.
    pub(super) fn note_step(
        &self,
        sp: &StagePlan,
        planned: &PlannedStep,
        state: &StageState,
        cached: bool,
    ) -> Option<String> {
        let args = (planned.kind == StepKind::Run).then_some(&state.args);
        let inputs = explain::take_notes(&planned.step.raw.original, None, args);
        let at: At = (sp.stage.index, planned.number - sp.from.number);
        self.explain.step(at, inputs);
        let first = !cached && state.first_miss.is_none();
        let asked = self.opts.explain_cache && !self.opts.no_cache && !Uncached::here();
        (asked && first).then(|| self.explain.why(at)).flatten()
    }

    /// Keeps this build's record for the next one's explanations.
    pub(super) fn save_explained(&self) {
        if let Err(e) = self.explain.save() {
            // Only the next --explain-cache goes without a comparison.
            self.out.warn(&format!("recording the build's inputs: {e}"));
        }
    }
}
