//! What a build tells its user, as [`progress`](crate::progress) events:
//! the printer renders them as Docker's classic lines (`Step N/M : ...`,
//! ` ---> Using cache`, ` ---> <id>`). This type only remembers which step
//! the events belong to.

use std::cell::Cell;

use crate::progress::{self, Event};

pub(super) struct Printer {
    quiet: bool,
    /// The number of the step under way.
    step: Cell<usize>,
}

impl Printer {
    pub fn new(quiet: bool) -> Printer {
        Printer {
            quiet,
            step: Cell::new(0),
        }
    }

    /// `-q`: RUN output is dropped too.
    pub fn quiet(&self) -> bool {
        self.quiet
    }

    pub fn step_started(&self, number: usize, total: usize, text: &str) {
        self.step.set(number);
        progress::emit(Event::StepStarted {
            number,
            total,
            text: text.into(),
        });
    }

    pub fn cached(&self) {
        progress::emit(Event::StepCached {
            number: self.step.get(),
        });
    }

    pub fn running(&self, container: &str) {
        progress::emit(Event::StepRunning {
            number: self.step.get(),
            container: container.into(),
        });
    }

    /// The image a step or a stage's FROM stands at (` ---> <id>`).
    pub fn image(&self, image: &str) {
        progress::emit(Event::StepImage {
            number: self.step.get(),
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
