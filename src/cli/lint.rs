//! How `strata build` shows the lint (BuildKit's build checks): with
//! `--check` the findings are the result (stdout), and nothing is built;
//! in a build they are warnings on stderr after the build's own output, as
//! BuildKit prints them, through the printer (`progress::notice`). Each finding reads
//! `Dockerfile:2:1: FromAsCasing: message (docs/lint/from-as-casing.md)`.
//! With `# check=error=true` a finding fails the build before it starts.

use std::process::ExitCode;

use anyhow::Result;

use super::github::{self, Level};
use crate::build::error::Location;
use crate::build::lint::{lint, Lint};
use crate::build::{BuildError, BuildOptions};
use crate::progress;
use crate::store::Store;

/// `build --check`: the findings, a summary, exit 1 if `error=true` and
/// something was found.
pub fn check(store: &Store, options: &BuildOptions) -> Result<ExitCode> {
    let lint = lint(store, options)?;
    for line in lines(&lint) {
        println!("{line}");
    }
    annotate(&lint);
    match count(lint.report.findings.len()) {
        None => println!("Check complete, no warnings found."),
        Some(n) => println!("Check complete, {n} found."),
    }
    lint.violation()?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `build`, with the lint's warnings after it (also when it fails). With
/// `error=true` the lint runs first and a finding stops the build.
pub fn around<T>(
    store: &Store,
    options: &BuildOptions,
    build: impl FnOnce() -> Result<T, BuildError>,
) -> Result<T, BuildError> {
    // BuildKit refuses a build whose `# check=` it cannot read.
    let strict = crate::build::lint::file_config(options)?.error;
    if strict {
        // A Dockerfile that does not parse is the build's to report.
        if let Ok(before) = lint(store, options) {
            warn(&before);
            before.violation()?;
        }
    }
    let built = build();
    // After the build its base images are in the store, so the lint can
    // judge their variables. (Strict mode linted already, before.)
    if !strict {
        if let Ok(after) = lint(store, options) {
            warn(&after);
        }
    }
    built
}

/// The warnings of a build, on stderr (also when quiet, as Docker's).
fn warn(lint: &Lint) {
    if let Some(n) = count(lint.report.findings.len()) {
        progress::notice(format!("{n} found:"));
    }
    for line in lines(lint) {
        progress::notice(line);
    }
    annotate(lint);
}

/// `1 warning`, `2 warnings`, or none.
fn count(n: usize) -> Option<String> {
    match n {
        0 => None,
        1 => Some("1 warning".into()),
        n => Some(format!("{n} warnings")),
    }
}

fn lines(lint: &Lint) -> impl Iterator<Item = String> + '_ {
    lint.report
        .findings
        .iter()
        .map(|f| format!("{}:{f} ({})", lint.file, f.rule.docs()))
}

/// GitHub Actions annotations for the findings, when running there.
fn annotate(lint: &Lint) {
    if !github::enabled() {
        return;
    }
    for f in &lint.report.findings {
        let at = Location {
            file: lint.file.clone(),
            line: f.line,
            col: f.col,
        };
        let message = format!("{}: {}", f.rule, f.message);
        progress::notice(github::annotation(Level::Warning, Some(&at), &message));
    }
}
