//! Docker habits strata does not have yet: the `docker` / `docker buildx`
//! flags and commands it lacks, and the one-line usage error clap's
//! multi-line report becomes (Docker's CLI exits 125 on a usage error, and
//! a CI log should say in one line what is wrong).
//!
//! The tables here are the source of truth for docs/compat.md; a test
//! keeps the two in step, and another checks that every flag listed as
//! missing really is unknown to the parser (so whoever adds one removes it
//! here and marks it supported in the doc).

use clap::error::{ContextKind, ContextValue, ErrorKind};

/// A Docker flag strata does not take yet, with what to do instead where
/// there is something.
struct MissingFlag {
    /// The command as typed after `strata` (`build`, `system df`).
    command: &'static str,
    /// Long spelling, then the short one if Docker has it.
    long: &'static str,
    short: Option<char>,
    note: &'static str,
}

const fn flag(command: &'static str, long: &'static str, short: Option<char>) -> MissingFlag {
    MissingFlag {
        command,
        long,
        short,
        note: "",
    }
}

const fn flag_note(
    command: &'static str,
    long: &'static str,
    short: Option<char>,
    note: &'static str,
) -> MissingFlag {
    MissingFlag {
        command,
        long,
        short,
        note,
    }
}

const FOREGROUND: &str = "strata runs containers in the foreground only";

/// `docker build` (legacy and BuildKit) and `docker buildx build` flags,
/// then `run`, `images`, `inspect`, `ps`, `rmi`, `history`, `system df`.
#[rustfmt::skip]
const MISSING_FLAGS: &[MissingFlag] = &[
    flag("build", "attest", None),
    flag("build", "builder", None),
    flag("build", "call", None),
    flag("build", "cgroup-parent", None),
    flag_note("build", "compress", None, "strata reads the context in place; there is nothing to send"),
    flag("build", "cpu-period", None),
    flag("build", "cpu-quota", None),
    flag("build", "cpu-shares", Some('c')),
    flag("build", "cpuset-cpus", None),
    flag("build", "cpuset-mems", None),
    flag("build", "debug", Some('D')),
    flag("build", "detach", None),
    flag("build", "disable-content-trust", None),
    flag_note("build", "force-rm", None, "strata always removes a step's container"),
    flag_note("build", "load", None, "a built image is already in strata's store; `strata push IMAGE docker-archive:FILE` and `docker load` move it to Docker"),
    flag("build", "memory", Some('m')),
    flag("build", "memory-swap", None),
    flag_note("build", "rm", None, "strata always removes a step's container"),
    flag("build", "sbom", None),
    flag("build", "security-opt", None),
    flag("run", "attach", Some('a')),
    flag("run", "blkio-weight", None),
    flag("run", "blkio-weight-device", None),
    flag("run", "cap-add", None),
    flag("run", "cap-drop", None),
    flag("run", "cgroup-parent", None),
    flag("run", "cgroupns", None),
    flag("run", "cidfile", None),
    flag("run", "cpu-period", None),
    flag("run", "cpu-quota", None),
    flag("run", "cpu-rt-period", None),
    flag("run", "cpu-rt-runtime", None),
    flag("run", "cpu-shares", Some('c')),
    flag("run", "cpus", None),
    flag("run", "cpuset-cpus", None),
    flag("run", "cpuset-mems", None),
    flag_note("run", "detach", Some('d'), FOREGROUND),
    flag_note("run", "detach-keys", None, FOREGROUND),
    flag("run", "device", None),
    flag("run", "device-cgroup-rule", None),
    flag("run", "device-read-bps", None),
    flag("run", "device-read-iops", None),
    flag("run", "device-write-bps", None),
    flag("run", "device-write-iops", None),
    flag("run", "disable-content-trust", None),
    flag("run", "dns", None),
    flag("run", "dns-option", None),
    flag("run", "dns-search", None),
    flag("run", "domainname", None),
    flag("run", "env-file", None),
    flag("run", "expose", None),
    flag("run", "gpus", None),
    flag("run", "group-add", None),
    flag("run", "health-cmd", None),
    flag("run", "health-interval", None),
    flag("run", "health-retries", None),
    flag("run", "health-start-period", None),
    flag("run", "health-timeout", None),
    flag("run", "hostname", None),
    flag("run", "init", None),
    flag("run", "ip", None),
    flag("run", "ip6", None),
    flag("run", "ipc", None),
    flag("run", "kernel-memory", None),
    flag("run", "label", Some('l')),
    flag("run", "label-file", None),
    flag("run", "link", None),
    flag("run", "link-local-ip", None),
    flag("run", "log-driver", None),
    flag("run", "log-opt", None),
    flag("run", "mac-address", None),
    flag("run", "memory", Some('m')),
    flag("run", "memory-reservation", None),
    flag("run", "memory-swap", None),
    flag("run", "memory-swappiness", None),
    flag("run", "mount", None),
    flag("run", "network-alias", None),
    flag("run", "no-healthcheck", None),
    flag("run", "oom-kill-disable", None),
    flag("run", "oom-score-adj", None),
    flag("run", "pid", None),
    flag("run", "pids-limit", None),
    flag("run", "privileged", None),
    flag("run", "publish", Some('p')),
    flag("run", "publish-all", Some('P')),
    flag("run", "pull", None),
    flag("run", "read-only", None),
    flag_note("run", "restart", None, FOREGROUND),
    flag("run", "runtime", None),
    flag("run", "security-opt", None),
    flag("run", "sig-proxy", None),
    flag("run", "stop-signal", None),
    flag("run", "stop-timeout", None),
    flag("run", "storage-opt", None),
    flag("run", "sysctl", None),
    flag("run", "tmpfs", None),
    flag("run", "userns", None),
    flag("run", "uts", None),
    flag("run", "volume-driver", None),
    flag("run", "volumes-from", None),
    flag("images", "filter", Some('f')),
    flag("inspect", "size", Some('s')),
    flag("inspect", "type", None),
    flag("ps", "filter", Some('f')),
    flag("ps", "last", Some('n')),
    flag("ps", "latest", Some('l')),
    flag("ps", "size", Some('s')),
    flag("history", "human", Some('H')),
    flag("system df", "verbose", Some('v')),
];

/// Docker commands strata does not have, with the reason or the way.
#[rustfmt::skip]
const MISSING_COMMANDS: &[(&str, &str)] = &[
    ("attach", FOREGROUND),
    ("builder", "`strata system prune` removes the build cache"),
    ("buildx", "`strata build` takes buildx's flags where it has them"),
    ("config", "a swarm command"),
    ("context", "strata has no daemon to choose"),
    ("cp", "not yet"),
    ("create", "not yet"),
    ("events", "strata has no daemon"),
    ("exec", FOREGROUND),
    ("kill", FOREGROUND),
    ("logs", FOREGROUND),
    ("network", "strata has the host's network and none"),
    ("node", "a swarm command"),
    ("pause", FOREGROUND),
    ("plugin", "strata has no plugins"),
    ("port", FOREGROUND),
    ("rename", "not yet"),
    ("restart", FOREGROUND),
    ("secret", "a swarm command"),
    ("service", "a swarm command"),
    ("stack", "a swarm command"),
    ("start", FOREGROUND),
    ("stats", FOREGROUND),
    ("stop", FOREGROUND),
    ("swarm", "a swarm command"),
    ("top", FOREGROUND),
    ("trust", "not yet"),
    ("unpause", FOREGROUND),
    ("update", FOREGROUND),
    ("volume", "strata binds host directories with `run -v`"),
    ("wait", FOREGROUND),
];

/// The one line (without the `strata: ` prefix) a usage error prints.
/// `args` are the arguments after the program name.
pub(super) fn usage_error(err: &clap::Error, args: &[String]) -> String {
    let command = command_path(args);
    let shown = |cmd: &str| {
        if cmd.is_empty() {
            "strata".to_string()
        } else {
            format!("strata {cmd}")
        }
    };
    let context = |kind| match err.get(kind) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        _ => None,
    };
    match err.kind() {
        ErrorKind::InvalidSubcommand => {
            let name = context(ContextKind::InvalidSubcommand).unwrap_or_default();
            let top = command.is_empty();
            match MISSING_COMMANDS.iter().find(|(c, _)| top && *c == name) {
                Some((c, why)) => format!("'{c}' is not supported: {why}"),
                None => format!(
                    "'{name}' is not a {} command (see '{} --help')",
                    shown(&command),
                    shown(&command)
                ),
            }
        }
        ErrorKind::UnknownArgument => {
            let arg = context(ContextKind::InvalidArg).unwrap_or_default();
            let name = arg.split('=').next().unwrap_or(&arg).to_string();
            match missing_flag(&command, &name) {
                Some(m) if !m.note.is_empty() => {
                    format!("{command} {name} is not supported: {}", m.note)
                }
                Some(_) => format!("{command} {name} is not supported yet"),
                None => format!("unknown flag: {name} (see '{} --help')", shown(&command)),
            }
        }
        _ => format!(
            "{} (see '{} --help')",
            first_paragraph(err),
            shown(&command)
        ),
    }
}

/// A Docker flag `name` (`--squash`, `-d`) of `command` that strata lacks.
fn missing_flag(command: &str, name: &str) -> Option<&'static MissingFlag> {
    MISSING_FLAGS.iter().find(|m| {
        m.command == command
            && (name.strip_prefix("--") == Some(m.long)
                || m.short.is_some_and(|s| name == format!("-{s}")))
    })
}

/// The subcommands named in `args` (`build`, `system df`), found by walking
/// clap's own tree, so global options and their values are skipped.
fn command_path(args: &[String]) -> String {
    use clap::CommandFactory;
    let mut cmd = super::Cli::command();
    let mut path: Vec<String> = Vec::new();
    let mut words = args.iter();
    while let Some(word) = words.next() {
        if let Some(opt) = word.strip_prefix("--") {
            let takes_value = !opt.contains('=')
                && cmd
                    .get_arguments()
                    .any(|a| a.get_long() == Some(opt) && a.get_action().takes_values());
            if takes_value {
                words.next();
            }
            continue;
        }
        if word.starts_with('-') {
            continue;
        }
        let Some(sub) = cmd.find_subcommand(word).cloned() else {
            break;
        };
        path.push(sub.get_name().to_string());
        cmd = sub;
    }
    path.join(" ")
}

/// clap's error text up to the usage line, as one line.
fn first_paragraph(err: &clap::Error) -> String {
    let text = err.render().to_string();
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("Usage:") || line.starts_with("tip:") || line.starts_with("For more") {
            break;
        }
        if !line.is_empty() {
            out.push(line.strip_prefix("error: ").unwrap_or(line));
        }
    }
    out.join(" ")
}

/// The status table docs/compat.md holds for one command: every flag
/// strata's parser knows is `yes`, every missing Docker flag `no`.
#[cfg(test)]
pub(super) fn flag_rows(command: &str) -> Vec<(String, bool)> {
    use clap::CommandFactory;
    let mut cmd = super::Cli::command();
    for word in command.split(' ') {
        cmd = cmd.find_subcommand(word).cloned().unwrap_or_default();
    }
    let mut rows: Vec<(String, bool)> = cmd
        .get_arguments()
        .filter(|a| !a.is_global_set() && !a.is_hide_set())
        .filter_map(|a| a.get_long().map(|l| (format!("--{l}"), true)))
        .collect();
    rows.extend(
        MISSING_FLAGS
            .iter()
            .filter(|m| m.command == command)
            .map(|m| (format!("--{}", m.long), false)),
    );
    rows.sort();
    rows
}

#[cfg(test)]
mod tests;
