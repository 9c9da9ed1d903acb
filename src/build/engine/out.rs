//! What a build tells its user: Docker's classic lines (`Step N/M : ...`,
//! ` ---> Using cache`, ` ---> <id>`) on stdout unless quiet, warnings on
//! stderr. The one place the engine writes to the terminal.

use std::io::Write;

pub(super) struct Printer {
    quiet: bool,
}

impl Printer {
    pub fn new(quiet: bool) -> Printer {
        Printer { quiet }
    }

    pub fn quiet(&self) -> bool {
        self.quiet
    }

    pub fn say(&self, line: &str) {
        if !self.quiet {
            let mut out = std::io::stdout().lock();
            // A closed stdout must not fail the build.
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }

    /// A line on stderr, shown even when quiet (Docker's `[Warning] ...`).
    pub fn notice(&self, line: &str) {
        eprintln!("{line}");
    }

    /// A warning: shown even when quiet, as Docker does.
    pub fn warn(&self, message: &str) {
        warn(message);
    }
}

/// A warning from a place that has no printer (a guard's drop).
pub(super) fn warn(message: &str) {
    eprintln!("strata: warning: {message}");
}
