//! What `pull` and `push` show while they work, the way Docker shows it: a
//! line per layer (`a1b2c3d4e5f6: Downloading`, `Pull complete`, `Layer
//! already exists`) with an indicatif bar for transfers on a terminal, and
//! plain lines (each status once, no bars) otherwise, so logs stay short.
//! The one printer for these commands; safe to use from worker threads.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How output is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A terminal: one live line per layer, with bars.
    Tty,
    /// Not a terminal: plain status lines.
    Plain,
    /// Nothing but what the caller prints itself.
    Quiet,
}

/// The per-layer display of one pull or push.
pub struct Progress {
    mode: Mode,
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
    /// Output goes to stderr (automatic pulls of `run` and `build`, whose
    /// stdout belongs to the container or the build).
    stderr: bool,
    /// Bars are frozen: later lines are printed below them, not through
    /// indicatif (which would redraw the frozen bars after each line).
    finished: AtomicBool,
}

impl Progress {
    /// Bars if stdout is a terminal, plain lines otherwise, nothing if quiet.
    pub fn new(quiet: bool) -> Progress {
        let tty = std::io::stdout().is_terminal();
        Progress::with_mode(mode_for(quiet, tty), false)
    }

    /// The same on stderr.
    pub fn on_stderr(quiet: bool) -> Progress {
        let tty = std::io::stderr().is_terminal();
        Progress::with_mode(mode_for(quiet, tty), true)
    }

    pub fn with_mode(mode: Mode, stderr: bool) -> Progress {
        let target = match (mode, stderr) {
            (Mode::Tty, false) => ProgressDrawTarget::stdout(),
            (Mode::Tty, true) => ProgressDrawTarget::stderr(),
            (Mode::Plain | Mode::Quiet, _) => ProgressDrawTarget::hidden(),
        };
        Progress {
            mode,
            multi: MultiProgress::with_draw_target(target),
            bars: Mutex::new(HashMap::new()),
            stderr,
            finished: AtomicBool::new(false),
        }
    }

    /// A whole line on this printer's stream.
    fn print(&self, text: &str) {
        if self.stderr {
            eprintln!("{text}");
        } else {
            println!("{text}");
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ProgressBar>> {
        // The map only holds bars; a panic elsewhere leaves it usable.
        self.bars.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A line of its own (`latest: Pulling from library/busybox`).
    pub fn line(&self, text: &str) {
        match self.mode {
            Mode::Tty if !self.finished.load(Ordering::Relaxed) => {
                // If the terminal went away there is nobody to tell.
                let _ = self.multi.println(text);
            }
            Mode::Tty | Mode::Plain => self.print(text),
            Mode::Quiet => {}
        }
    }

    /// Set the status of layer `id` (a short digest).
    pub fn status(&self, id: &str, status: &str) {
        match self.mode {
            Mode::Tty => {
                let mut bars = self.lock();
                let bar = bars
                    .entry(id.to_string())
                    .or_insert_with(|| self.multi.add(ProgressBar::new_spinner()));
                bar.set_style(message_style());
                bar.set_message(format!("{id}: {status}"));
                bar.tick();
            }
            Mode::Plain => self.print(&format!("{id}: {status}")),
            Mode::Quiet => {}
        }
    }

    /// Show `done` of `total` bytes of layer `id` being moved (`verb` is
    /// `Downloading` or `Pushing`). Plain mode prints nothing here: its
    /// status line was printed when the transfer started.
    pub fn bytes(&self, id: &str, verb: &str, done: u64, total: u64) {
        if self.mode != Mode::Tty {
            return;
        }
        let mut bars = self.lock();
        let bar = bars
            .entry(id.to_string())
            .or_insert_with(|| self.multi.add(ProgressBar::new(total)));
        if bar.length() != Some(total) {
            bar.set_length(total);
            bar.set_style(bar_style());
            bar.set_message(format!("{id}: {verb}"));
        }
        bar.set_position(done);
    }

    /// Freeze every line as it is (the command is done or failed).
    pub fn finish(&self) {
        for bar in self.lock().values() {
            bar.abandon();
        }
        if self.mode == Mode::Tty && !self.finished.swap(true, Ordering::Relaxed) {
            // Stop drawing; what is on the screen stays, and the cursor,
            // left at the end of the last bar, moves to a line of its own.
            self.multi.set_draw_target(ProgressDrawTarget::hidden());
            if !self.lock().is_empty() {
                self.print("");
            }
        }
    }
}

fn mode_for(quiet: bool, tty: bool) -> Mode {
    match (quiet, tty) {
        (true, _) => Mode::Quiet,
        (false, true) => Mode::Tty,
        (false, false) => Mode::Plain,
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
