//! `strata ps`: CONTAINER ID IMAGE COMMAND CREATED STATUS NAMES.

use std::io::Write;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Result;

use super::format::{write_table, Format};
use super::images::{ago, open_store};
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
    /// Output: table, json, or a Go template (`table ` first for a header)
    #[arg(long, value_name = "FORMAT")]
    format: Option<String>,
}

/// Column titles of `--format 'table ...'`, by field.
const HEADERS: &[(&str, &str)] = &[
    ("Command", "COMMAND"),
    ("CreatedAt", "CREATED AT"),
    ("ID", "CONTAINER ID"),
    ("Image", "IMAGE"),
    ("Labels", "LABELS"),
    ("LocalVolumes", "LOCAL VOLUMES"),
    ("Mounts", "MOUNTS"),
    ("Names", "NAMES"),
    ("Networks", "NETWORKS"),
    ("Ports", "PORTS"),
    ("RunningFor", "CREATED"),
    ("Size", "SIZE"),
    ("State", "STATE"),
    ("Status", "STATUS"),
];

pub fn run(settings: &Settings, args: &PsArgs) -> Result<ExitCode> {
    let format = Format::parse(args.format.as_deref())?;
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
    if let Format::Template { .. } = format {
        let fields: Vec<serde_json::Value> =
            containers.iter().map(|c| fields(c, args, now)).collect();
        format.write_rows(&mut out, &fields, HEADERS)?;
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

/// A container as `--format` sees it: Docker's field names.
fn fields(c: &Container, args: &PsArgs, now: SystemTime) -> serde_json::Value {
    let state = match (&c.state.status, c.is_running()) {
        (Status::Created, _) => "created",
        (Status::Running { .. }, true) => "running",
        _ => "exited",
    };
    serde_json::json!({
        "Command": command(&c.state.command, args.no_trunc),
        "CreatedAt": super::images::docker_time(&c.state.created),
        "ID": id(c, args.no_trunc),
        "Image": c.state.image_name,
        "Labels": "",
        "LocalVolumes": "0",
        "Mounts": "",
        "Names": c.state.name,
        "Networks": "",
        "Ports": "",
        "RunningFor": ago(&c.state.created, now),
        "Size": "",
        "State": state,
        "Status": status(c, now),
    })
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
