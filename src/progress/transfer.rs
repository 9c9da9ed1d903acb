//! How pulls and pushes look, the way Docker shows them: a line per layer
//! (`a1b2c3d4e5f6: Downloading`, `Pull complete`, `Layer already exists`)
//! with an indicatif bar for bytes on a terminal, and plain lines (each
//! status once, no bars) otherwise, so logs stay short.

use std::collections::HashMap;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::events::{LayerStatus, StepId, StepWork, Transfer};
use super::printer::Stream;
use crate::digest::Digest;

/// How transfers are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferMode {
    /// A terminal: one live line per layer, with bars.
    Tty,
    /// Not a terminal: plain status lines.
    Plain,
    /// Nothing.
    Quiet,
}

/// The per-layer display of the pull or push under way.
pub struct TransferView {
    mode: TransferMode,
    stream: Stream,
    multi: MultiProgress,
    /// By layer digest, or by step for a step's own bytes.
    bars: HashMap<String, ProgressBar>,
    /// Bars are frozen: later lines are printed below them, not through
    /// indicatif (which would redraw the frozen bars after each line).
    finished: bool,
    /// Drawn inside a build's live view, which owns the terminal: bars are
    /// added to it and left there.
    shared: bool,
}

impl TransferView {
    pub fn new(mode: TransferMode, stream: Stream) -> TransferView {
        TransferView {
            mode,
            stream,
            multi: MultiProgress::with_draw_target(draw_target(mode, stream)),
            bars: HashMap::new(),
            finished: false,
            shared: false,
        }
    }

    /// A view whose bars go into `multi`, a build's live view.
    pub fn within(multi: MultiProgress, stream: Stream) -> TransferView {
        TransferView {
            mode: TransferMode::Tty,
            stream,
            multi,
            bars: HashMap::new(),
            finished: false,
            shared: true,
        }
    }

    /// A line of its own (`latest: Pulling from library/busybox`).
    pub fn line(&mut self, text: &str) {
        match self.mode {
            TransferMode::Tty if !self.finished || self.shared => {
                // If the terminal went away there is nobody to tell.
                let _ = self.multi.println(text);
            }
            TransferMode::Tty | TransferMode::Plain => self.stream.line(text),
            TransferMode::Quiet => {}
        }
    }

    /// Sets the status of `layer`, shown by its short id.
    pub fn status(&mut self, layer: &Digest, status: &LayerStatus) {
        let text = status_line(layer, status);
        match self.mode {
            TransferMode::Tty => {
                let bar = self.bar(layer.to_string(), ProgressBar::new_spinner);
                bar.set_style(message_style());
                bar.set_message(text);
                bar.tick();
            }
            TransferMode::Plain => self.stream.line(&text),
            TransferMode::Quiet => {}
        }
    }

    /// Shows `done` of `total` bytes of `layer` moved (a bar, or a count
    /// when the total is not known). Plain mode prints nothing here: its
    /// status line was printed when the transfer started.
    pub fn bytes(&mut self, layer: &Digest, action: Transfer, done: u64, total: Option<u64>) {
        if self.mode != TransferMode::Tty {
            return;
        }
        let message = format!("{}: {}", layer.short(), action.verb());
        let bar = self.bar(layer.to_string(), ProgressBar::new_spinner);
        if bar.length() != total || bar.message() != message {
            match total {
                Some(n) => {
                    bar.set_length(n);
                    bar.set_style(bar_style());
                }
                None => {
                    bar.unset_length();
                    bar.set_style(count_style());
                }
            }
            bar.set_message(message);
        }
        bar.set_position(done);
    }

    /// Shows `done` of `total` bytes of a build step's work as a bar on a
    /// terminal, gone once whole (the step's own line says it is done);
    /// nothing elsewhere, as logs need no byte counts.
    pub fn step_bytes(&mut self, step: StepId, work: StepWork, done: u64, total: u64) {
        if self.mode != TransferMode::Tty {
            return;
        }
        let key = format!("step {} {}", step.number, work.verb());
        let message = format!("Step {}: {}", step.number, work.verb());
        let bar = self.bar(key.clone(), || {
            ProgressBar::new(total)
                .with_style(bar_style())
                .with_message(message)
        });
        bar.set_position(done);
        if done >= total {
            bar.finish_and_clear();
            self.bars.remove(&key);
        }
    }

    /// Freezes every line as it is (the transfer is done or failed).
    pub fn finish(&mut self) {
        for bar in self.bars.values() {
            bar.abandon();
        }
        if self.shared {
            // The live view goes on drawing; the next transfer adds bars.
            self.bars.clear();
            return;
        }
        if self.mode == TransferMode::Tty && !self.finished {
            self.finished = true;
            // Stop drawing; what is on the screen stays, and the cursor,
            // left at the end of the last bar, moves to a line of its own.
            self.multi.set_draw_target(ProgressDrawTarget::hidden());
            if !self.bars.is_empty() {
                self.stream.line("");
            }
        }
    }

    /// The bar of `layer`; a transfer after a finished one starts a new
    /// display below the frozen one.
    fn bar(&mut self, key: String, make: impl FnOnce() -> ProgressBar) -> &ProgressBar {
        if self.finished {
            *self = TransferView::new(self.mode, self.stream);
        }
        let multi = &self.multi;
        self.bars.entry(key).or_insert_with(|| multi.add(make()))
    }
}

fn draw_target(mode: TransferMode, stream: Stream) -> ProgressDrawTarget {
    match (mode, stream) {
        (TransferMode::Tty, Stream::Stdout) => ProgressDrawTarget::stdout(),
        (TransferMode::Tty, Stream::Stderr) => ProgressDrawTarget::stderr(),
        (TransferMode::Plain | TransferMode::Quiet, _) => ProgressDrawTarget::hidden(),
    }
}

fn message_style() -> ProgressStyle {
    ProgressStyle::with_template("{msg}").unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes}")
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// Bytes so far of a transfer whose size is known only at its end.
fn count_style() -> ProgressStyle {
    ProgressStyle::with_template("{msg} {spinner} {bytes}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

/// `a1b2c3d4e5f6: Pull complete`.
fn status_line(layer: &Digest, status: &LayerStatus) -> String {
    format!("{}: {status}", layer.short())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_lines_read_as_dockers() {
        let layer = Digest::of(b"");
        let mounted = LayerStatus::MountedFrom {
            repository: "library/base".into(),
        };
        let table = [
            (LayerStatus::AlreadyExists, "Already exists"),
            (LayerStatus::PullingFsLayer, "Pulling fs layer"),
            (LayerStatus::Downloading, "Downloading"),
            (LayerStatus::DownloadComplete, "Download complete"),
            (LayerStatus::Extracting, "Extracting"),
            (LayerStatus::PullComplete, "Pull complete"),
            (LayerStatus::Preparing, "Preparing"),
            (LayerStatus::Compressing, "Compressing"),
            (LayerStatus::LayerAlreadyExists, "Layer already exists"),
            (mounted, "Mounted from library/base"),
            (LayerStatus::Pushing, "Pushing"),
            (LayerStatus::Pushed, "Pushed"),
        ];
        for (status, want) in table {
            assert_eq!(
                status_line(&layer, &status),
                format!("e3b0c44298fc: {want}")
            );
        }
    }
}
