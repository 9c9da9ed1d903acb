//! What a build tells its user, as [`progress`](crate::progress) events:
//! the printer renders them as Docker's classic lines (`Step N/M : ...`,
//! ` ---> Using cache`, ` ---> <id>`). This type only remembers which step
//! the events belong to.

use std::cell::Cell;

use crate::progress::{self, Event, StepId};

pub(super) struct Printer {
    quiet: bool,
    /// The step under way.
    step: Cell<StepId>,
}

impl Printer {
    pub fn new(quiet: bool) -> Printer {
        Printer {
            quiet,
            step: Cell::new(StepId::default()),
        }
    }

    /// `-q`: RUN output is dropped too.
    pub fn quiet(&self) -> bool {
        self.quiet
    }

    pub fn step_started(&self, step: StepId, total: usize, text: &str) {
        self.step.set(step);
        progress::emit(Event::StepStarted {
            step,
            total,
            text: text.into(),
        });
    }

    /// ` ---> Using cache`, or with where from when not this machine's.
    pub fn cached(&self, origin: Option<String>) {
        let step = self.step.get();
        progress::emit(match origin {
            None => Event::StepCached { step },
            Some(origin) => Event::StepCachedFrom { step, origin },
        });
    }

    pub fn running(&self, container: &str) {
        progress::emit(Event::StepRunning {
            step: self.step.get(),
            container: container.into(),
        });
    }

    /// The image a step or a stage's FROM stands at (` ---> <id>`).
    pub fn image(&self, image: &str) {
        progress::emit(Event::StepImage {
            step: self.step.get(),
            image: image.into(),
        });
    }

    /// Any other line of the build's output.
    pub fn say(&self, line: &str) {
        progress::emit(Event::BuildLine { text: line.into() });
    }

    /// A line on stderr, shown even when quiet (Docker's `[Warning] ...`).
    pub fn notice(&self, line: &str) {
        progress::notice(line);
    }

    /// A warning: shown even when quiet, as Docker does.
    pub fn warn(&self, message: &str) {
        progress::warn(message);
    }
}
