//! The command line: argument parsing (clap) and dispatch to one handler per
//! command. Handlers are thin: they turn arguments into library calls and
//! print results. `main` prints the whole error chain and picks the exit code.
//! With the printer (`src/progress`), the only code allowed to print.

#![allow(clippy::disallowed_macros)]

mod aliases;
mod build;
mod build_output;
mod build_platforms;
mod commit;
mod compat;
mod completion;
mod compression;
mod diff;
mod export;
mod extras_flags;
mod format;
mod github;
mod history;
mod images;
mod import;
mod info;
mod inspect;
mod lint;
mod load;
mod login;
mod logout;
mod manifest;
mod ps;
mod pull;
mod push;
mod rm;
mod rmi;
mod run;
mod save;
mod search;
pub mod settings;
mod system;
mod tag;
mod unshare;
mod version;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::sandbox::userns;
use settings::Settings;

/// Docker's exit code for an error of the tool itself (not of a container).
pub const EXIT_STRATA_ERROR: u8 = 125;

#[derive(Debug, Parser)]
#[command(
    name = "strata",
    version,
    about = "Daemonless, rootless builder of OCI / Docker images",
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOptions,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command accepts, resolved before the command runs.
#[derive(Debug, Clone, clap::Args)]
pub struct GlobalOptions {
    /// Store root [default: $XDG_DATA_HOME/strata, or /var/lib/strata for root]
    #[arg(long, global = true, env = "STRATA_ROOT", value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Storage driver [default: the first that works of overlay, fuse-overlayfs, vfs]
    #[arg(
        long,
        global = true,
        env = "STRATA_STORAGE_DRIVER",
        value_name = "DRIVER"
    )]
    pub storage_driver: Option<crate::sandbox::driver::DriverKind>,
    /// How much to log to stderr
    #[arg(long, global = true, env = "STRATA_LOG_LEVEL", value_enum, default_value_t = LogLevel::Warn)]
    pub log_level: LogLevel,
    /// Largest size a compressed layer or ADDed archive may expand to (bytes; k, m, g, t suffixes)
    #[arg(long, global = true, env = "STRATA_MAX_LAYER_SIZE", value_name = "SIZE", value_parser = crate::layer::limits::parse_size)]
    pub max_layer_size: Option<u64>,
    /// Largest expansion ratio of a compressed layer or archive, checked past 256 MiB
    #[arg(long, global = true, env = "STRATA_MAX_LAYER_RATIO", value_name = "N")]
    pub max_layer_ratio: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List images
    Images(images::ImagesArgs),
    /// Import a rootfs tarball as a one-layer image
    Import(import::ImportArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(tag::TagArgs),
    /// Remove one or more images
    Rmi(rmi::RmiArgs),
    /// Display detailed information on one or more images
    Inspect(inspect::InspectArgs),
    /// Show the history of an image
    History(history::HistoryArgs),
    /// Manage the store: df, prune, check
    System(system::SystemArgs),
    /// Save images to a tar archive (docker-archive or oci-archive)
    Save(save::SaveArgs),
    /// Load images from a tar archive or standard input
    Load(load::LoadArgs),
    /// Push an image to a registry, or copy it to oci:DIR, oci-archive:FILE, docker-archive:FILE
    Push(push::PushArgs),
    /// Manage manifest lists: create, add, annotate, inspect, push, rm
    Manifest(manifest::ManifestArgs),
    /// Pull an image from a registry, or copy it from oci:DIR, oci-archive:FILE, docker-archive:FILE
    Pull(pull::PullArgs),
    /// Log in to a registry (checks the credentials, then stores them)
    Login(login::LoginArgs),
    /// Log out from a registry
    Logout(logout::LogoutArgs),
    /// Search Docker Hub, or a registry's catalog, for images
    Search(search::SearchArgs),
    /// Show how strata sees this machine, with a fix for every failed probe
    Info(info::InfoArgs),
    /// Run a command inside strata's user namespace (as `buildah unshare`)
    Unshare(unshare::UnshareArgs),
    /// Build an image from a Dockerfile
    Build(Box<build::BuildArgs>),
    /// Create and run a new container from an image
    Run(run::RunArgs),
    /// List containers
    Ps(ps::PsArgs),
    /// Create a new image from a container's changes
    Commit(commit::CommitArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(diff::DiffArgs),
    /// Export a container's filesystem as a tar archive
    Export(export::ExportArgs),
    /// Remove one or more containers
    Rm(rm::RmArgs),
    /// Print a shell completion script (bash, zsh or fish)
    Completion(completion::CompletionArgs),
    /// Write the man pages into a directory (scripts/man-pages.sh)
    #[command(hide = true)]
    ManPages(completion::ManPagesArgs),
    /// Manage images: Docker's `image ls`, `image rm`, `image inspect`, ...
    Image(aliases::ImageArgs),
    /// Manage containers: Docker's `container ls`, `container rm`, ...
    Container(aliases::ContainerArgs),
    /// Show the version of strata and how it runs here
    Version,
    /// The process strata re-executes to become a container (internal)
    #[command(hide = true)]
    ContainerInit,
}

impl Command {
    /// Whether the command must run inside the user + mount namespace that
    /// owns the store (everything that reads or writes layers does).
    fn needs_userns(&self) -> bool {
        match self {
            Command::Images(_)
            | Command::Import(_)
            | Command::Tag(_)
            | Command::Rmi(_)
            | Command::Inspect(_)
            | Command::History(_)
            | Command::System(_)
            | Command::Save(_)
            | Command::Load(_)
            | Command::Push(_)
            | Command::Manifest(_)
            | Command::Pull(_) => true,
            Command::Build(_)
            | Command::Run(_)
            | Command::Ps(_)
            | Command::Commit(_)
            | Command::Diff(_)
            | Command::Export(_)
            | Command::Rm(_)
            | Command::Image(_)
            | Command::Container(_) => true,
            // Already inside: strata started it there.
            // Credentials and registries only; no store.
            Command::Login(_) | Command::Logout(_) | Command::Search(_) => false,
            Command::Info(_) | Command::Version | Command::ContainerInit => false,
            Command::Completion(_) | Command::ManPages(_) => false,
            Command::Unshare(_) => true,
        }
    }
}

impl Command {
    /// The rung of the isolation ladder asked for with `--isolation`.
    fn isolation(&self) -> Option<crate::sandbox::ladder::Isolation> {
        match self {
            Command::Build(args) => args.isolation.and_then(|f| f.forced()),
            Command::Run(args) => args.isolation.and_then(|f| f.forced()),
            _ => None,
        }
    }
}

/// The entry point of the `strata` binary.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) if !err.use_stderr() => {
            // Help and --version are not errors. If stdout is gone there is
            // nobody left to tell.
            let _ = err.print();
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            // One line, and Docker's exit code for a usage error.
            let args: Vec<String> = std::env::args_os()
                .skip(1)
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            eprintln!("strata: {}", compat::usage_error(&err, &args));
            return ExitCode::from(EXIT_STRATA_ERROR);
        }
    };
    crate::log::set_level(match cli.global.log_level {
        LogLevel::Error => crate::log::Level::Error,
        LogLevel::Warn => crate::log::Level::Warn,
        LogLevel::Info => crate::log::Level::Info,
        LogLevel::Debug => crate::log::Level::Debug,
    });
    let defaults = crate::layer::limits::Limits::default();
    crate::layer::limits::set(crate::layer::limits::Limits {
        max_size: cli.global.max_layer_size.unwrap_or(defaults.max_size),
        max_ratio: cli.global.max_layer_ratio.unwrap_or(defaults.max_ratio),
    });
    // Resolved before entering the namespace, where the uid reads 0.
    let settings = match Settings::resolve(&cli.global) {
        Ok(settings) => settings,
        Err(err) => return report(&err),
    };
    if cli.command.needs_userns() {
        // Must happen before any thread starts: unshare(CLONE_NEWUSER)
        // refuses a multi-threaded process.
        let warn = |line: &str| eprintln!("strata: warning: {line}");
        match userns::ensure(cli.command.isolation(), &warn) {
            Ok(userns::Entered::Waited(code)) => return ExitCode::from(code),
            Ok(userns::Entered::Inside) => {}
            Err(err) => {
                return report(&anyhow::Error::from(err).context("entering the user namespace"))
            }
        }
    }
    // A layer known only remotely (a remote cache hit) is fetched the first
    // time any command needs its content.
    crate::build::remote::fetch::install();
    let result = dispatch(cli, &settings);
    // What the command held against GC goes with it (store/hold.rs).
    crate::store::release_holds();
    match result {
        Ok(code) => code,
        Err(err) => report(&err),
    }
}

fn dispatch(cli: Cli, settings: &Settings) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Images(args) => images::run(settings, &args),
        Command::Import(args) => import::run(settings, &args),
        Command::Tag(args) => tag::run(settings, &args),
        Command::Rmi(args) => rmi::run(settings, &args),
        Command::Inspect(args) => inspect::run(settings, &args),
        Command::History(args) => history::run(settings, &args),
        Command::System(args) => system::run(settings, &args),
        Command::Save(args) => save::run(settings, &args),
        Command::Load(args) => load::run(settings, &args),
        Command::Manifest(args) => manifest::run(settings, &args),
        Command::Push(args) => push::run(settings, &args),
        Command::Pull(args) => pull::run(settings, &args),
        Command::Login(args) => login::run(settings, &args),
        Command::Logout(args) => logout::run(settings, &args),
        Command::Search(args) => search::run(settings, &args),
        Command::Info(args) => info::run(settings, &args),
        Command::Unshare(args) => unshare::run(settings, &args),
        Command::Build(args) => build::run(settings, &args),
        Command::Run(args) => run::run(settings, &args),
        Command::Ps(args) => ps::run(settings, &args),
        Command::Commit(args) => commit::run(settings, &args),
        Command::Diff(args) => diff::run(settings, &args),
        Command::Export(args) => export::run(settings, &args),
        Command::Rm(args) => rm::run(settings, &args),
        Command::Completion(args) => completion::completion(&args),
        Command::ManPages(args) => completion::man_pages(&args),
        Command::Image(args) => aliases::image(settings, &args),
        Command::Container(args) => aliases::container(settings, &args),
        Command::Version => version::run(settings),
        Command::ContainerInit => Ok(ExitCode::from(
            u8::try_from(crate::sandbox::init::main()).unwrap_or(u8::MAX),
        )),
    }
}

/// 128 + SIGPIPE.
const EXIT_BROKEN_PIPE: u8 = 141;

/// Print the error with its whole chain of causes, as `strata: a: b: c`.
fn report(err: &anyhow::Error) -> ExitCode {
    let broken_pipe = err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    });
    if broken_pipe {
        // `strata inspect x | head -1`: the reader left. Go's Docker CLI
        // dies of SIGPIPE here, which a shell reports as 141.
        return ExitCode::from(EXIT_BROKEN_PIPE);
    }
    let text = chain_text(err.chain().map(|c| c.to_string()));
    eprintln!("strata: {text}");
    // A failed build has its own exit codes and a next step to suggest.
    let build = err.downcast_ref::<crate::build::BuildError>();
    if github::enabled() {
        let at = build.and_then(|e| e.location());
        eprintln!(
            "{}",
            github::annotation(github::Level::Error, at.as_ref(), &text)
        );
    }
    if let Some(hint) = build.and_then(|e| e.hint()) {
        eprintln!("strata: {hint}");
    }
    ExitCode::from(build.map_or(EXIT_STRATA_ERROR, |e| e.exit_code()))
}

/// Joins an error chain with ": ", leaving out a cause whose text the
/// message before it already ends with (errors that print their source).
fn chain_text(chain: impl Iterator<Item = String>) -> String {
    let mut out = String::new();
    for text in chain {
        if out.is_empty() {
            out = text;
        } else if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    drop_repeated_fs_context(out)
}

/// fs-err prefixes an I/O error with "failed to open file `/p`"; where our
/// own message already named `/p` just before it ("open /p: failed to open
/// file `/p`: denied"), that prefix only repeats it, and a deep path would
/// print twice. A prefix naming a path the message has not shown is kept.
fn drop_repeated_fs_context(text: String) -> String {
    const MARK: &str = ": failed to ";
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(at) = rest.find(MARK) {
        let (before, tail) = rest.split_at(at);
        out.push_str(before);
        let body = &tail[MARK.len()..];
        match repeated_prefix_len(&out, body) {
            Some(len) => {
                out.push_str(": ");
                rest = &body[len..];
            }
            None => {
                out.push_str(MARK);
                rest = body;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The length of `body`'s "verb `path`[ to `path`]: " prefix when every
/// path in it is already in `shown`.
fn repeated_prefix_len(shown: &str, body: &str) -> Option<usize> {
    let end = body.find("`: ")?;
    let prefix = &body[..end + 1];
    let paths: Vec<&str> = prefix.split('`').skip(1).step_by(2).collect();
    let all_shown = !paths.is_empty() && paths.iter().all(|p| shown.contains(p));
    all_shown.then_some(end + 3)
}

#[cfg(test)]
mod tests {
    #[test]
    fn chain_text_skips_repeated_causes() {
        let chain = |v: &[&str]| super::chain_text(v.iter().map(|s| s.to_string()));
        assert_eq!(chain(&["a", "b: c", "c"]), "a: b: c");
        assert_eq!(chain(&["open /x: denied", "denied"]), "open /x: denied");
        assert_eq!(chain(&["one"]), "one");
    }

    #[test]
    fn chain_text_drops_an_fs_err_prefix_that_repeats_the_path() {
        let chain = |v: &[&str]| super::chain_text(v.iter().map(|s| s.to_string()));
        let denied = "Permission denied (os error 13)";
        assert_eq!(
            chain(&[&format!("open /x: failed to open file `/x`: {denied}")]),
            format!("open /x: {denied}")
        );
        assert_eq!(
            chain(&["loading", &format!("failed to open file `/y`: {denied}")]),
            format!("loading: failed to open file `/y`: {denied}"),
            "a path not shown before stays"
        );
        assert_eq!(
            chain(&[&format!(
                "rename /a: failed to rename `/a` to `/b`: {denied}"
            )]),
            format!("rename /a: failed to rename `/a` to `/b`: {denied}"),
            "the second path is news"
        );
        assert_eq!(
            chain(&[&format!(
                "stat /p: failed to query raw metadata `/p`: {denied}"
            )]),
            format!("stat /p: {denied}")
        );
    }
}
