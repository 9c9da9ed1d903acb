//! `strata ps`: CONTAINER ID IMAGE COMMAND CREATED STATUS NAMES.

use std::io::Write;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Result;

use super::images::{ago, open_store, write_table};
use super::settings::Settings;
use crate::container::{self, Container, Status};

/// Docker cuts COMMAND to this many characters (with an ellipsis).
const COMMAND_WIDTH: usize = 20;

#[derive(Debug, clap::Args)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    all: bool,
    /// Only display container IDs
    #[arg(short, long)]
    quiet: bool,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
}

pub fn run(settings: &Settings, args: &PsArgs) -> Result<ExitCode> {
    let store = open_store(settings)?;
    let now = SystemTime::now();
    let mut containers: Vec<Container> = container::list(&store)?
        .into_iter()
        .filter(|c| args.all || c.is_running())
        .collect();
    // Newest first, as Docker lists them.
    containers.reverse();
    let mut out = std::io::stdout().lock();
    if args.quiet {
        for c in &containers {
            writeln!(out, "{}", id(c, args.no_trunc))?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = containers
        .iter()
        .map(|c| {
            vec![
                id(c, args.no_trunc),
                c.state.image_name.clone(),
                command(&c.state.command, args.no_trunc),
                ago(&c.state.created, now),
                status(c, now),
                c.state.name.clone(),
            ]
        })
        .collect();
    write_table(
        &mut out,
        &[
            "CONTAINER ID",
            "IMAGE",
            "COMMAND",
            "CREATED",
            "STATUS",
            "NAMES",
        ],
        &rows,
    )?;
    Ok(ExitCode::SUCCESS)
}

fn id(c: &Container, no_trunc: bool) -> String {
    if no_trunc {
        c.state.id.clone()
    } else {
        c.short_id().to_string()
    }
}

fn command(argv: &[String], no_trunc: bool) -> String {
    let joined = argv.join(" ");
    let shown = if no_trunc || joined.chars().count() <= COMMAND_WIDTH {
        joined
    } else {
        let mut t: String = joined.chars().take(COMMAND_WIDTH - 1).collect();
        t.push('…');
        t
    };
    format!("\"{shown}\"")
}

/// `Up 3 seconds`, `Exited (0) 11 seconds ago`, `Created`.
fn status(c: &Container, now: SystemTime) -> String {
    let running = c.is_running();
    match &c.state.status {
        Status::Running { started } if running => {
            let since = ago(started, now);
            format!("Up {}", since.trim_end_matches(" ago"))
        }
        // Marked running, but nobody holds its lock: strata died under it.
        Status::Running { started } => format!("Exited (137) {}", ago(started, now)),
        Status::Exited { code, finished } => format!("Exited ({code}) {}", ago(finished, now)),
        Status::Created => "Created".into(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn commands_are_quoted_and_cut() {
        let argv = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        assert_eq!(super::command(&argv("sh -c true"), false), "\"sh -c true\"");
        assert_eq!(
            super::command(&argv("sh -c adduser -D admin && echo hi"), false),
            "\"sh -c adduser -D ad…\""
        );
    }
}
