//! The terminal renderer of [`Event`]s, in the mode `--progress` chose:
//! Docker's lines in the stream Docker uses for each (`plain`; stages
//! building at once prefix theirs `[stage N/M]`), a live view (`tty`), one
//! JSON object per line (`rawjson`), or only what `-q` keeps (`quiet`).

#![allow(clippy::disallowed_macros)]

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use super::events::{Event, LogLevel, StepId};
use super::live::LiveView;
use super::transfer::{TransferMode, TransferView};
use super::Sink;

/// Standard output or standard error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stream {
    #[default]
    Stdout,
    Stderr,
}

impl Stream {
    fn is_terminal(self) -> bool {
        match self {
            Stream::Stdout => std::io::stdout().is_terminal(),
            Stream::Stderr => std::io::stderr().is_terminal(),
        }
    }

    /// Writes one line; a closed stream is nobody left to tell, so errors
    /// are dropped (a pipe closed by `| head` must not fail the command).
    pub(super) fn line(self, text: &str) {
        let _ = match self {
            Stream::Stdout => {
                let mut out = std::io::stdout().lock();
                writeln!(out, "{text}").and_then(|()| out.flush())
            }
            Stream::Stderr => writeln!(std::io::stderr().lock(), "{text}"),
        };
    }
}

/// `--progress`: how a build shows its steps (also `BUILDKIT_PROGRESS`,
/// `STRATA_PROGRESS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Progress {
    /// tty on a terminal, plain otherwise and under CI=true
    #[default]
    Auto,
    /// A live view: running steps with their time and last output lines
    Tty,
    /// Docker's Step N/M lines; [stage N/M] prefixes when stages run at once
    Plain,
    /// Nothing but the image id (as -q)
    Quiet,
    /// One JSON event per line on stderr (schema: docs/progress-rawjson.md)
    #[value(name = "rawjson")]
    RawJson,
}

/// What the printer does, `auto` settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum View {
    Live,
    Plain,
    Json,
}

impl Progress {
    /// `tty` where there is no terminal is `plain`: nothing for a terminal
    /// reaches a file or a pipe.
    fn view(self, terminal: bool, ci: bool) -> View {
        match self {
            Progress::Auto if terminal && !ci => View::Live,
            Progress::Tty if terminal => View::Live,
            Progress::RawJson => View::Json,
            _ => View::Plain,
        }
    }
}

/// What a command wants shown.
#[derive(Debug, Clone, Copy, Default)]
pub struct Config {
    /// `-q`: no step or transfer lines (warnings and errors still show).
    pub quiet: bool,
    /// Where pull/push lines go: stdout for `pull`/`push` themselves,
    /// stderr for the automatic pulls of `build` and `run`, whose stdout
    /// belongs to the build or the container.
    pub transfers: Stream,
    /// Every stdout line goes to stderr instead: stdout carries an output
    /// (`build -o -`).
    pub stdout_to_stderr: bool,
    /// How a build's steps show (other commands have none).
    pub progress: Progress,
}

/// The build lines' state: stage prefixes, the live view.
#[derive(Default)]
struct Steps {
    /// Stages may build at once: plain lines say whose they are.
    parallel: bool,
    /// Each step's `[stage N/M]`.
    places: HashMap<StepId, String>,
    /// The live view, from the build's first event on.
    live: Option<LiveView>,
}

/// Docker's output on the terminal.
pub struct Printer {
    config: Config,
    view: View,
    transfers: Mutex<TransferView>,
    steps: Mutex<Steps>,
}

impl Printer {
    pub fn new(mut config: Config) -> Printer {
        config.quiet |= config.progress == Progress::Quiet;
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        let view = config.progress.view(Stream::Stderr.is_terminal(), ci);
        let transfers = match config.stdout_to_stderr {
            true => Stream::Stderr,
            false => config.transfers,
        };
        let mode = match (config.quiet, transfers.is_terminal()) {
            (true, _) => TransferMode::Quiet,
            _ if view == View::Json => TransferMode::Quiet,
            (false, true) => TransferMode::Tty,
            (false, false) => TransferMode::Plain,
        };
        Printer {
            config,
            view,
            transfers: Mutex::new(TransferView::new(mode, transfers)),
            steps: Mutex::new(Steps::default()),
        }
    }

    fn transfers(&self) -> std::sync::MutexGuard<'_, TransferView> {
        // The view only holds bars; a panic elsewhere leaves it usable.
        self.transfers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn steps(&self) -> std::sync::MutexGuard<'_, Steps> {
        self.steps.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A build begins: the live view takes the terminal (pulls draw in it).
    fn build_started(&self, parallel: bool) {
        let mut steps = self.steps();
        steps.parallel = parallel;
        if self.view == View::Live && !self.config.quiet && steps.live.is_none() {
            let live = LiveView::new();
            *self.transfers() = TransferView::within(live.multi(), Stream::Stderr);
            steps.live = Some(live);
        }
    }

    /// A build event in the live view; false if there is none.
    fn live(&self, event: &Event) -> bool {
        let mut steps = self.steps();
        let Some(live) = steps.live.as_mut() else {
            return false;
        };
        match event {
            Event::StepStarted { step, text, .. } => {
                let title = format!("{} {text}", place_of(event));
                live.started(*step, title);
            }
            Event::StepOutput { step, line } => live.output(*step, line),
            Event::StepDone {
                step,
                cached,
                millis,
                ..
            } => live.done(*step, *cached, Duration::from_millis(*millis)),
            Event::BuildDone => live.finish(),
            Event::StepCached { .. }
            | Event::StepCachedFrom { .. }
            | Event::StepRunning { .. }
            | Event::StepImage { .. } => {}
            other => {
                if let Some((_, text)) = plain_line(other, self.config.quiet) {
                    live.line(&text);
                }
            }
        }
        true
    }

    /// A build event as plain lines, `[stage N/M]` first when stages build
    /// at once.
    fn plain(&self, event: &Event) {
        let prefix = {
            let mut steps = self.steps();
            if let Event::StepStarted { step, .. } = event {
                steps.places.insert(*step, place_of(event));
            }
            match (steps.parallel, step_of(event)) {
                (true, Some(n)) => steps.places.get(&n).cloned(),
                _ => None,
            }
        };
        let line = match (event, &prefix) {
            (Event::StepStarted { text, .. }, Some(p)) => {
                (!self.config.quiet).then(|| (Stream::Stdout, format!("{p} {text}")))
            }
            (Event::StepOutput { line, .. }, p) => (!self.config.quiet).then(|| {
                let text = p.as_ref().map_or(line.clone(), |p| format!("{p} {line}"));
                (Stream::Stdout, text)
            }),
            (_, Some(p)) => plain_line(event, self.config.quiet)
                .map(|(s, t)| (s, format!("{p} {}", t.trim_start()))),
            (_, None) => plain_line(event, self.config.quiet),
        };
        if let Some((stream, text)) = line {
            self.put(stream, &text);
        }
    }

    /// A line on its stream, or on stderr when stdout carries an output.
    fn put(&self, stream: Stream, text: &str) {
        match self.config.stdout_to_stderr {
            true => Stream::Stderr.line(text),
            false => stream.line(text),
        }
    }
}

/// `[stage N/M]` of a [`Event::StepStarted`].
fn place_of(event: &Event) -> String {
    match event {
        Event::StepStarted {
            stage_name,
            stage_step,
            stage_steps,
            platform,
            ..
        } => match platform {
            Some(p) => format!("[{p} {stage_name} {stage_step}/{stage_steps}]"),
            None => format!("[{stage_name} {stage_step}/{stage_steps}]"),
        },
        _ => String::new(),
    }
}

/// The step a build event is about.
fn step_of(event: &Event) -> Option<StepId> {
    match event {
        Event::StepStarted { step, .. }
        | Event::StepCached { step }
        | Event::StepCachedFrom { step, .. }
        | Event::StepRunning { step, .. }
        | Event::StepImage { step, .. }
        | Event::StepOutput { step, .. }
        | Event::StepWouldRun { step, .. }
        | Event::StepMissed { step, .. } => Some(*step),
        _ => None,
    }
}

impl Sink for Printer {
    fn emit(&self, event: &Event) {
        if self.view == View::Json {
            if let Ok(json) = serde_json::to_string(event) {
                Stream::Stderr.line(&json);
            }
            return;
        }
        match event {
            Event::TransferLine { text } => self.transfers().line(text),
            Event::LayerStatus { layer, status } => self.transfers().status(layer, status),
            Event::LayerBytes {
                layer,
                action,
                done,
                total,
            } => self.transfers().bytes(layer, *action, *done, *total),
            Event::StepBytes {
                step,
                work,
                done,
                total,
            } => self.transfers().step_bytes(*step, *work, *done, *total),
            Event::TransfersDone => self.transfers().finish(),
            Event::BuildStarted { parallel, .. } => self.build_started(*parallel),
            other => {
                if !self.live(other) {
                    self.plain(other);
                }
            }
        }
    }

    fn captures_output(&self) -> bool {
        self.view != View::Plain || self.steps().parallel
    }
}

/// The line an event other than a transfer prints, and where; `None` when
/// it prints nothing (quiet, or a transfer event handled by the view).
pub fn plain_line(event: &Event, quiet: bool) -> Option<(Stream, String)> {
    let out = |text: String| (!quiet).then_some((Stream::Stdout, text));
    match event {
        Event::StepStarted {
            step, total, text, ..
        } => out(format!("Step {}/{total} : {text}", step.number)),
        Event::StepCached { .. } => out(" ---> Using cache".into()),
        Event::StepWouldRun { reason, .. } => out(format!(" ---> Would run: {reason}")),
        Event::StepMissed { reason, .. } => out(format!(" ---> Cache miss: {reason}")),
        Event::StepCachedFrom { origin, .. } => out(format!(" ---> Using cache ({origin})")),
        Event::StepRunning { container, .. } => out(format!(" ---> Running in {container}")),
        Event::StepImage { image, .. } => out(format!(" ---> {image}")),
        Event::StepOutput { line, .. } => out(line.clone()),
        Event::BuildLine { text } => out(text.clone()),
        Event::BuildStarted { .. } | Event::StepDone { .. } | Event::BuildDone => None,
        Event::Notice { text } => Some((Stream::Stderr, text.clone())),
        Event::Warning { message } => Some((Stream::Stderr, format!("strata: warning: {message}"))),
        Event::Log { level, message } => {
            let level = match level {
                LogLevel::Info => "info",
                LogLevel::Debug => "debug",
            };
            Some((Stream::Stderr, format!("strata: {level}: {message}")))
        }
        Event::Error { message } => Some((Stream::Stderr, format!("strata: {message}"))),
        Event::TransferLine { .. }
        | Event::LayerStatus { .. }
        | Event::LayerBytes { .. }
        | Event::StepBytes { .. }
        | Event::TransfersDone => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::StepId;

    fn step(number: usize) -> StepId {
        StepId {
            stage: 1,
            number,
            platform: 0,
        }
    }

    #[test]
    fn docker_lines_in_dockers_streams() {
        let table = [
            (
                Event::StepStarted {
                    step: step(2),
                    platform: None,
                    total: 7,
                    stage_name: "stage-0".into(),
                    stage_step: 2,
                    stage_steps: 7,
                    text: "RUN make".into(),
                    line: 1,
                    column: 1,
                },
                Some((Stream::Stdout, "Step 2/7 : RUN make")),
            ),
            (
                Event::StepCached { step: step(2) },
                Some((Stream::Stdout, " ---> Using cache")),
            ),
            (
                Event::StepCachedFrom {
                    step: step(2),
                    origin: "registry localhost:5000/app/cache".into(),
                },
                Some((
                    Stream::Stdout,
                    " ---> Using cache (registry localhost:5000/app/cache)",
                )),
            ),
            (
                Event::StepRunning {
                    step: step(2),
                    container: "3f2a9c1d2e4b".into(),
                },
                Some((Stream::Stdout, " ---> Running in 3f2a9c1d2e4b")),
            ),
            (
                Event::StepImage {
                    step: step(2),
                    image: "5f9d147ddfee".into(),
                },
                Some((Stream::Stdout, " ---> 5f9d147ddfee")),
            ),
            (
                Event::Warning {
                    message: "x".into(),
                },
                Some((Stream::Stderr, "strata: warning: x")),
            ),
            (
                Event::Log {
                    level: LogLevel::Debug,
                    message: "k".into(),
                },
                Some((Stream::Stderr, "strata: debug: k")),
            ),
            (
                Event::Notice {
                    text: "Unable to find image 'a:b' locally".into(),
                },
                Some((Stream::Stderr, "Unable to find image 'a:b' locally")),
            ),
            (Event::TransfersDone, None),
        ];
        for (event, want) in table {
            let want = want.map(|(s, t)| (s, t.to_string()));
            assert_eq!(plain_line(&event, false), want, "{event:?}");
        }
    }

    #[test]
    fn quiet_keeps_only_what_docker_shows_when_quiet() {
        let step = Event::StepStarted {
            step: step(1),
            platform: None,
            total: 1,
            stage_name: "stage-0".into(),
            stage_step: 1,
            stage_steps: 1,
            text: "FROM x".into(),
            line: 1,
            column: 1,
        };
        assert_eq!(plain_line(&step, true), None);
        let warning = Event::Warning {
            message: "w".into(),
        };
        assert!(plain_line(&warning, true).is_some());
    }

    #[test]
    fn events_serialise_with_their_ids() {
        let json = serde_json::to_string(&Event::StepCached { step: step(3) }).unwrap();
        assert_eq!(
            json,
            r#"{"event":"step_cached","step":{"stage":1,"number":3}}"#
        );
        let layer = crate::digest::Digest::of(b"");
        let bytes = Event::LayerBytes {
            layer: layer.clone(),
            action: super::super::Transfer::Compress,
            done: 5,
            total: None,
        };
        assert_eq!(
            serde_json::to_value(&bytes).unwrap(),
            serde_json::json!({"event": "layer_bytes", "layer": layer.to_string(),
                "action": "compress", "done": 5, "total": null})
        );
        let status = Event::LayerStatus {
            layer: layer.clone(),
            status: super::super::LayerStatus::MountedFrom {
                repository: "lib/base".into(),
            },
        };
        assert_eq!(
            serde_json::to_value(&status).unwrap(),
            serde_json::json!({"event": "layer_status", "layer": layer.to_string(),
                "status": {"mounted_from": {"repository": "lib/base"}}})
        );
    }
}
