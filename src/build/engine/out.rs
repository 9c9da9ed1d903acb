//! What a build tells its user, as [`progress`](crate::progress) events:
//! the printer renders them (Docker's classic lines `Step N/M : ...`,
//! ` ---> Using cache`, ` ---> <id>`, a live view, JSON). Every step event
//! names its step ([`StepId`]), so stages running at once can share this.

use std::sync::Arc;
use std::time::Duration;

use crate::progress::{self, Event, StepId, StepLayer};
use crate::sandbox::spawn::Output;

pub(super) struct Printer {
    quiet: bool,
    /// One platform of several, or a foreign one: its place in
    /// `--platform` (stamped on every step's id, so the platforms' events
    /// stay apart) and its name (shown in each step's `[...]`).
    platform: Option<(usize, String)>,
}

/// Where a step stands in its stage, for BuildKit's `[name 2/3]`, and
/// in the Dockerfile.
pub(super) struct Place<'a> {
    pub stage_name: &'a str,
    pub stage_step: usize,
    pub stage_steps: usize,
    pub line: usize,
    pub column: usize,
}

/// How a step ended, for [`Event::StepDone`].
pub(super) struct Finished {
    pub cached: bool,
    pub took: Duration,
    pub image: Option<String>,
    pub layer: Option<StepLayer>,
    pub miss: Option<String>,
}

impl Printer {
    pub fn new(quiet: bool, platform: Option<(usize, String)>) -> Printer {
        Printer { quiet, platform }
    }

    /// `step`, as the events of this printer's platform name it.
    fn id(&self, step: StepId) -> StepId {
        StepId {
            platform: self.platform.as_ref().map_or(0, |p| p.0),
            ..step
        }
    }

    /// `-q`: RUN output is dropped too.
    pub fn quiet(&self) -> bool {
        self.quiet
    }

    pub fn build_started(&self, dockerfile: &str, total: usize, parallel: bool) {
        progress::emit(Event::BuildStarted {
            dockerfile: dockerfile.into(),
            total,
            parallel,
        });
    }

    pub fn step_started(&self, step: StepId, total: usize, place: Place<'_>, text: &str) {
        progress::emit(Event::StepStarted {
            step: self.id(step),
            platform: self.platform.as_ref().map(|p| p.1.clone()),
            total,
            stage_name: place.stage_name.into(),
            stage_step: place.stage_step,
            stage_steps: place.stage_steps,
            text: text.into(),
            line: place.line,
            column: place.column,
        });
    }

    /// ` ---> Using cache`, or with where from when not this machine's.
    pub fn cached(&self, step: StepId, origin: Option<String>) {
        let step = self.id(step);
        progress::emit(match origin {
            None => Event::StepCached { step },
            Some(origin) => Event::StepCachedFrom { step, origin },
        });
    }

    /// `--explain-cache`: why the step missed (` ---> Cache miss: …`).
    pub fn missed(&self, step: StepId, reason: &str) {
        progress::emit(Event::StepMissed {
            step: self.id(step),
            reason: reason.into(),
        });
    }

    pub fn running(&self, step: StepId, container: &str) {
        progress::emit(Event::StepRunning {
            step: self.id(step),
            container: container.into(),
        });
    }

    /// Where a RUN's output goes: nowhere under `-q`, through the printer
    /// when it draws its own view or stages run at once, else straight to
    /// the terminal (byte for byte, as Docker's classic builder), all of it
    /// on stderr when stdout carries an output (`-o -`).
    pub fn run_output(&self, step: StepId, to_stderr: bool) -> Output {
        if self.quiet {
            return Output::Null;
        }
        let step = self.id(step);
        if !progress::captures_output() {
            return match to_stderr {
                true => Output::Stderr,
                false => Output::Inherit,
            };
        }
        Output::Lines(Arc::new(move |line: &str| {
            progress::emit(Event::StepOutput {
                step,
                line: line.into(),
            });
        }))
    }

    /// The image a step or a stage's FROM stands at (` ---> <id>`).
    pub fn image(&self, step: StepId, image: &str) {
        progress::emit(Event::StepImage {
            step: self.id(step),
            image: image.into(),
        });
    }

    pub fn step_done(&self, step: StepId, f: Finished) {
        progress::emit(Event::StepDone {
            step: self.id(step),
            cached: f.cached,
            millis: u64::try_from(f.took.as_millis()).unwrap_or(u64::MAX),
            image: f.image,
            layer: f.layer,
            miss: f.miss,
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
