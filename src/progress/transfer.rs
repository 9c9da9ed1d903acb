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
        TransferView::drawn_on(mode, stream, draw_target(mode, stream))
    }

    fn drawn_on(mode: TransferMode, stream: Stream, target: ProgressDrawTarget) -> TransferView {
        TransferView {
            mode,
            stream,
            multi: MultiProgress::with_draw_target(target),
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
                let (bar, new) = self.bar(layer.to_string(), ProgressBar::new_spinner);
                bar.set_style(message_style());
                bar.set_message(text);
                bar.tick();
                show(&bar, new);
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
        let (bar, new) = self.bar(layer.to_string(), ProgressBar::new_spinner);
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
        show(&bar, new);
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
        let (bar, new) = self.bar(key.clone(), || {
            ProgressBar::new(total)
                .with_style(bar_style())
                .with_message(message)
        });
        bar.set_position(done);
        show(&bar, new);
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

    /// The bar of `layer`, and whether it was made just now; a transfer
    /// after a finished one starts a new display below the frozen one.
    fn bar(&mut self, key: String, make: impl FnOnce() -> ProgressBar) -> (ProgressBar, bool) {
        if self.finished {
            *self = TransferView::new(self.mode, self.stream);
        }
        let mut new = false;
        let multi = &self.multi;
        let bar = self.bars.entry(key).or_insert_with(|| {
            new = true;
            multi.add(make())
        });
        (bar.clone(), new)
    }
}

/// Draws a bar just made, set up: indicatif draws at most 20 times a
/// second, so a bar made and finished within that time (a fast copy right
/// after a context read) would otherwise never be seen at all.
fn show(bar: &ProgressBar, new: bool) {
    if new {
        bar.force_draw();
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
    use indicatif::TermLike;
    use std::sync::{Arc, Mutex};

    /// A terminal that keeps what is written to it.
    #[derive(Debug, Default, Clone)]
    struct Screen(Arc<Mutex<String>>);

    impl TermLike for Screen {
        fn width(&self) -> u16 {
            120
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.write_str(&format!("{s}\n"))
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            self.0.lock().unwrap().push_str(s);
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_bar_over_within_one_refresh_is_still_seen() {
        // 20 Hz, as a real terminal: a read updating every 2 ms uses up
        // the terminal's burst allowance (each bar has its own, of 10, and
        // regains one a millisecond), and the copy starts and ends well
        // within 50 ms of the read's last draw.
        let screen = Screen::default();
        let target = ProgressDrawTarget::term_like_with_hz(Box::new(screen.clone()), 20);
        let mut view = TransferView::drawn_on(TransferMode::Tty, Stream::Stderr, target);
        let step = StepId {
            stage: 0,
            number: 2,
            platform: 0,
        };
        let total = 64 << 20;
        for done in (0..total).step_by(1 << 20) {
            view.step_bytes(step, StepWork::Read, done, total);
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        view.step_bytes(step, StepWork::Read, total, total);
        view.step_bytes(step, StepWork::Copy, 0, total);
        view.step_bytes(step, StepWork::Copy, total, total);
        let seen = screen.0.lock().unwrap().clone();
        assert!(seen.contains("Step 2: Reading context"), "{seen}");
        assert!(seen.contains("Step 2: Copying"), "{seen}");
    }

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
