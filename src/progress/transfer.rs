//! How pulls and pushes look, the way Docker shows them: a line per layer
//! (`a1b2c3d4e5f6: Downloading`, `Pull complete`, `Layer already exists`)
//! with an indicatif bar for bytes on a terminal, and plain lines (each
//! status once, no bars) otherwise, so logs stay short.

use std::collections::HashMap;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::printer::Stream;

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
    bars: HashMap<String, ProgressBar>,
    /// Bars are frozen: later lines are printed below them, not through
    /// indicatif (which would redraw the frozen bars after each line).
    finished: bool,
}

impl TransferView {
    pub fn new(mode: TransferMode, stream: Stream) -> TransferView {
        TransferView {
            mode,
            stream,
            multi: MultiProgress::with_draw_target(draw_target(mode, stream)),
            bars: HashMap::new(),
            finished: false,
        }
    }

    /// A line of its own (`latest: Pulling from library/busybox`).
    pub fn line(&mut self, text: &str) {
        match self.mode {
            TransferMode::Tty if !self.finished => {
                // If the terminal went away there is nobody to tell.
                let _ = self.multi.println(text);
            }
            TransferMode::Tty | TransferMode::Plain => self.stream.line(text),
            TransferMode::Quiet => {}
        }
    }

    /// Sets the status of `layer` (a short digest).
    pub fn status(&mut self, layer: &str, status: &str) {
        match self.mode {
            TransferMode::Tty => {
                let bar = self.bar(layer, ProgressBar::new_spinner);
                bar.set_style(message_style());
                bar.set_message(format!("{layer}: {status}"));
                bar.tick();
            }
            TransferMode::Plain => self.stream.line(&format!("{layer}: {status}")),
            TransferMode::Quiet => {}
        }
    }

    /// Shows `done` of `total` bytes of `layer` moved. Plain mode prints
    /// nothing here: its status line was printed when the transfer started.
    pub fn bytes(&mut self, layer: &str, verb: &str, done: u64, total: u64) {
        if self.mode != TransferMode::Tty {
            return;
        }
        let bar = self.bar(layer, || ProgressBar::new(total));
        if bar.length() != Some(total) {
            bar.set_length(total);
            bar.set_style(bar_style());
            bar.set_message(format!("{layer}: {verb}"));
        }
        bar.set_position(done);
    }

    /// Freezes every line as it is (the transfer is done or failed).
    pub fn finish(&mut self) {
        for bar in self.bars.values() {
            bar.abandon();
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
    fn bar(&mut self, layer: &str, make: impl FnOnce() -> ProgressBar) -> &ProgressBar {
        if self.finished {
            *self = TransferView::new(self.mode, self.stream);
        }
        let multi = &self.multi;
        self.bars
            .entry(layer.to_string())
            .or_insert_with(|| multi.add(make()))
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
