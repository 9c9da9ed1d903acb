//! `strata unshare`: a command inside strata's user namespace, the way
//! `buildah unshare` gives one, to look at or fix files in the store.

use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};

use anyhow::Result;

use super::settings::Settings;

/// Exit codes a shell uses for a command that is not executable / not found.
const EXIT_NOT_EXECUTABLE: u8 = 126;
const EXIT_NOT_FOUND: u8 = 127;

#[derive(Debug, clap::Args)]
pub struct UnshareArgs {
    /// The command and its arguments [default: $SHELL, or /bin/sh]
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

pub fn run(settings: &Settings, args: &UnshareArgs) -> Result<ExitCode> {
    let shell = std::env::var("SHELL").unwrap_or_else(|_| "/bin/sh".into());
    let (program, rest) = match args.command.split_first() {
        Some((program, rest)) => (program.clone(), rest.to_vec()),
        None => (shell, Vec::new()),
    };
    // A strata started inside sees uid 0 and would pick root's store.
    let err = Command::new(&program)
        .args(rest)
        .env("STRATA_ROOT", &settings.root)
        .exec();
    eprintln!("strata: {program}: {err}");
    Ok(ExitCode::from(match err.kind() {
        std::io::ErrorKind::NotFound => EXIT_NOT_FOUND,
        _ => EXIT_NOT_EXECUTABLE,
    }))
}
