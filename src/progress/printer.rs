//! The terminal renderer of [`Event`]s: Docker's lines, in the stream
//! Docker uses for each.

#![allow(clippy::disallowed_macros)]

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use super::events::{Event, LogLevel};
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
}

/// Docker's output on the terminal.
pub struct Printer {
    config: Config,
    transfers: Mutex<TransferView>,
}

impl Printer {
    pub fn new(config: Config) -> Printer {
        let transfers = match config.stdout_to_stderr {
            true => Stream::Stderr,
            false => config.transfers,
        };
        let mode = match (config.quiet, transfers.is_terminal()) {
            (true, _) => TransferMode::Quiet,
            (false, true) => TransferMode::Tty,
            (false, false) => TransferMode::Plain,
        };
        Printer {
            config,
            transfers: Mutex::new(TransferView::new(mode, transfers)),
        }
    }

    fn transfers(&self) -> std::sync::MutexGuard<'_, TransferView> {
        // The view only holds bars; a panic elsewhere leaves it usable.
        self.transfers.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Sink for Printer {
    fn emit(&self, event: &Event) {
        match event {
            Event::TransferLine { text } => self.transfers().line(text),
            Event::LayerStatus { layer, status } => self.transfers().status(layer, status),
            Event::LayerBytes {
                layer,
                action,
                done,
                total,
            } => self.transfers().bytes(layer, *action, *done, *total),
            Event::TransfersDone => self.transfers().finish(),
            other => {
                if let Some((stream, text)) = plain_line(other, self.config.quiet) {
                    match self.config.stdout_to_stderr {
                        true => Stream::Stderr.line(&text),
                        false => stream.line(&text),
                    }
                }
            }
        }
    }
}

/// The line an event other than a transfer prints, and where; `None` when
/// it prints nothing (quiet, or a transfer event handled by the view).
pub fn plain_line(event: &Event, quiet: bool) -> Option<(Stream, String)> {
    let out = |text: String| (!quiet).then_some((Stream::Stdout, text));
    match event {
        Event::StepStarted { step, total, text } => {
            out(format!("Step {}/{total} : {text}", step.number))
        }
        Event::StepCached { .. } => out(" ---> Using cache".into()),
        Event::StepCachedFrom { origin, .. } => out(format!(" ---> Using cache ({origin})")),
        Event::StepRunning { container, .. } => out(format!(" ---> Running in {container}")),
        Event::StepImage { image, .. } => out(format!(" ---> {image}")),
        Event::BuildLine { text } => out(text.clone()),
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
        | Event::TransfersDone => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::StepId;

    fn step(number: usize) -> StepId {
        StepId { stage: 1, number }
    }

    #[test]
    fn docker_lines_in_dockers_streams() {
        let table = [
            (
                Event::StepStarted {
                    step: step(2),
                    total: 7,
                    text: "RUN make".into(),
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
            total: 1,
            text: "FROM x".into(),
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
