//! `strata completion bash|zsh|fish` (a script the shell sources) and the
//! hidden `strata man-pages DIR` (one roff page per command, for
//! scripts/man-pages.sh): both generated from the clap definition itself, so
//! they never drift from the real flags.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::CommandFactory;

use super::Cli;

#[derive(Debug, clap::Args)]
pub struct CompletionArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    shell: Shell,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, clap::Args)]
pub struct ManPagesArgs {
    /// Directory to write strata.1, strata-build.1, ... into (created)
    dir: PathBuf,
}

pub fn completion(args: &CompletionArgs) -> Result<ExitCode> {
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut out = std::io::stdout().lock();
    clap_complete::generate(shell, &mut visible(Cli::command()), "strata", &mut out);
    Ok(ExitCode::SUCCESS)
}

/// Commands a user is shown: not the hidden ones (the generators would
/// offer `container-init`), nor clap's `help` (added back by clap).
fn documented(cmd: &&clap::Command) -> bool {
    !cmd.is_hide_set() && cmd.get_name() != "help"
}

/// `cmd` without its hidden subcommands.
fn visible(mut cmd: clap::Command) -> clap::Command {
    cmd.build();
    let subcommands: Vec<clap::Command> =
        cmd.get_subcommands().filter(documented).cloned().collect();
    // Built, `cmd` already holds --help and --version among its arguments.
    clap::Command::new(cmd.get_name().to_string())
        .version(cmd.get_version().unwrap_or_default().to_string())
        .disable_help_flag(true)
        .disable_version_flag(true)
        .args(cmd.get_arguments().cloned())
        .subcommands(subcommands)
}

pub fn man_pages(args: &ManPagesArgs) -> Result<ExitCode> {
    fs_err::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let mut cmd = Cli::command();
    // Subcommand pages are named from the full path (strata-system-df).
    cmd.build();
    write_pages(&cmd, "strata", &args.dir)?;
    Ok(ExitCode::SUCCESS)
}

/// The page of `cmd` as `name.1`, then one per visible subcommand.
fn write_pages(cmd: &clap::Command, name: &str, dir: &Path) -> Result<()> {
    let page = cmd.clone().name(name.to_string());
    let mut roff = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut roff)
        .with_context(|| format!("rendering the {name} page"))?;
    let path = dir.join(format!("{name}.1"));
    fs_err::write(&path, roff).with_context(|| format!("writing {}", path.display()))?;
    for sub in cmd.get_subcommands().filter(documented) {
        write_pages(sub, &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(())
}
