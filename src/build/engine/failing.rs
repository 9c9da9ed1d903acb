//! A step's failure as the build's error: the step, its place in the
//! Dockerfile and the last good image (the stage's metadata steps so far
//! made one, so the hint can name it).

use super::stage::StageState;
use super::*;

impl Build<'_> {
    /// The step error for `planned`, with the last good image: the stage's
    /// metadata steps so far are made an image for it.
    pub(super) fn failed(
        &self,
        plan: &Plan,
        planned: &PlannedStep,
        state: &mut StageState,
        cause: StepFailure,
    ) -> BuildError {
        // Best effort: without it the hint names the image before them.
        let _ = self.settle_pending(state);
        self.step_error(plan, planned, state.image.clone(), cause)
    }

    pub(super) fn step_error(
        &self,
        plan: &Plan,
        planned: &PlannedStep,
        last_good: Option<ImageId>,
        cause: StepFailure,
    ) -> BuildError {
        let step = planned.step;
        BuildError::from(StepError {
            number: planned.number,
            total: plan.total,
            location: Location {
                file: dockerfile_name(self.opts),
                line: step.span().start_line,
                col: step.raw.col,
            },
            instruction: shown(&step.raw.original),
            last_good,
            cause,
        })
    }

    /// A failure after the last step (committing, labels): strata's own.
    pub(super) fn unplaced(&self, cause: StepFailure) -> BuildError {
        BuildError::Finish(Box::new(cause))
    }
}
