//! `--progress=tty`: a build as a live view on the terminal, the way
//! BuildKit draws it. One line per running step with its elapsed time and
//! the last lines of its output; a finished step collapses to one line,
//! `CACHED` or its time; pulls during the build draw their bars in the same
//! view.

use std::collections::HashMap;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::events::StepId;

/// How many lines of a running step's output stay in view.
const TAIL: usize = 3;
/// How often a running step's elapsed time is redrawn.
const TICK: Duration = Duration::from_millis(100);

struct Running {
    bar: ProgressBar,
    /// `[stage 2/3] RUN make`.
    title: String,
    tail: Vec<String>,
}

/// The steps in view.
pub struct LiveView {
    multi: MultiProgress,
    steps: HashMap<StepId, Running>,
}

impl LiveView {
    /// A view drawn on stderr (BuildKit's stream for its progress).
    pub fn new() -> LiveView {
        LiveView {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            steps: HashMap::new(),
        }
    }

    /// The view's bars, for transfers drawn in the same view.
    pub fn multi(&self) -> MultiProgress {
        self.multi.clone()
    }

    pub fn started(&mut self, step: StepId, title: String) {
        let bar = self.multi.add(ProgressBar::new_spinner());
        bar.set_style(style("{spinner} {prefix} {elapsed:>4}{msg}"));
        bar.set_prefix(title.clone());
        bar.enable_steady_tick(TICK);
        self.steps.insert(
            step,
            Running {
                bar,
                title,
                tail: Vec::new(),
            },
        );
    }

    /// A line of the step's output: the last [`TAIL`] stay under its title.
    pub fn output(&mut self, step: StepId, line: &str) {
        let Some(step) = self.steps.get_mut(&step) else {
            return;
        };
        if step.tail.len() == TAIL {
            step.tail.remove(0);
        }
        // A control character would move the cursor under indicatif.
        step.tail
            .push(line.chars().filter(|c| !c.is_control()).collect());
        let text: String = step.tail.iter().map(|l| format!("\n    {l}")).collect();
        step.bar.set_message(text);
    }

    /// The step is over: one line, `CACHED` or how long it took.
    pub fn done(&mut self, step: StepId, cached: bool, took: Duration) {
        let Some(step) = self.steps.remove(&step) else {
            return;
        };
        let line = match cached {
            true => format!("=> CACHED {}", step.title),
            false => format!("=> {} {:.1}s", step.title, took.as_secs_f64()),
        };
        step.bar.set_style(style("{msg}"));
        step.bar.finish_with_message(line);
    }

    /// A line of its own above the steps (`Successfully built …`).
    pub fn line(&self, text: &str) {
        // A terminal that went away has nobody left to tell.
        let _ = self.multi.println(text);
    }

    /// The build is over: steps still in view (a failed one, and those it
    /// stopped) stay as they are, with their output.
    pub fn finish(&mut self) {
        for (_, step) in self.steps.drain() {
            step.bar.abandon();
        }
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_spinner())
}
