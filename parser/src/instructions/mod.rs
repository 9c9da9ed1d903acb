//! Stage two: typed instructions.
//!
//! [`Instruction::from_raw`] turns one [`RawInstruction`] into a typed value,
//! validating its flags and arguments. Values that Docker expands are kept as
//! written (possibly with `$VAR`s); [`expand_raw`] expands them in a raw
//! instruction so it can be typed again with final values.

mod expand;
mod flags;
mod mount;
mod parse;
mod values;

use thiserror::Error;

use crate::raw::{Heredoc, RawInstruction};

pub use expand::expand_raw;
pub use mount::{parse_size, Mount, MountError, Ownership, Sharing};
pub use values::{Deferred, PortRange, Protocol, UserGroup, ValueError};

/// Every instruction keyword, upper case.
pub const KEYWORDS: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// Errors raised while typing an instruction.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InstructionError {
    /// Not a Dockerfile instruction.
    #[error("unknown instruction: {found}{}", suggestion.as_ref().map(|s| format!(" (did you mean {s}?)")).unwrap_or_default())]
    Unknown {
        /// The keyword as written.
        found: String,
        /// The closest keyword, if one is close.
        suggestion: Option<String>,
    },
    /// A flag the instruction does not take.
    #[error("{instruction}: unknown flag {flag} (allowed: {allowed})")]
    UnknownFlag {
        /// The instruction.
        instruction: String,
        /// The flag as written.
        flag: String,
        /// The flags it allows, comma separated, or `none`.
        allowed: String,
    },
    /// A single-valued flag given twice.
    #[error("{instruction}: flag {flag} given more than once")]
    DuplicateFlag {
        /// The instruction.
        instruction: String,
        /// The flag.
        flag: String,
    },
    /// `--from` with no `=value`.
    #[error("{instruction}: flag {flag} needs a value ({flag}=...)")]
    FlagNeedsValue {
        /// The instruction.
        instruction: String,
        /// The flag.
        flag: String,
    },
    /// A flag value of the wrong shape.
    #[error("{instruction}: invalid value {value:?} for {flag}: expected {expected}")]
    BadFlagValue {
        /// The instruction.
        instruction: String,
        /// The flag.
        flag: String,
        /// The value given.
        value: String,
        /// What would be accepted.
        expected: String,
    },
    /// Wrong number of arguments.
    #[error("{instruction} requires {expected}")]
    ArgCount {
        /// The instruction.
        instruction: String,
        /// e.g. `exactly one argument`.
        expected: &'static str,
    },
    /// An argument of the wrong shape.
    #[error("{instruction}: {message}")]
    BadArgument {
        /// The instruction.
        instruction: String,
        /// What is wrong.
        message: String,
        /// The argument at fault, when one is, so the error can point at it.
        word: Option<String>,
    },
    /// A malformed `--mount`.
    #[error("invalid --mount: {0}")]
    BadMount(#[source] mount::MountError),
    /// SHELL not in JSON form.
    #[error("SHELL requires the arguments to be in JSON form")]
    ShellNotJson,
    /// ONBUILD of ONBUILD, FROM or MAINTAINER.
    #[error("{trigger} isn't allowed as an ONBUILD trigger")]
    BadTrigger {
        /// The refused instruction.
        trigger: String,
    },
}

impl InstructionError {
    /// The text the error is about as written in the source (a flag such as
    /// `--from`, or an argument), so the error can point at it; and whether
    /// its last occurrence on the line is meant.
    pub(crate) fn culprit(&self) -> Option<(&str, bool)> {
        match self {
            InstructionError::BadArgument {
                word: Some(word), ..
            } => Some((word, false)),
            InstructionError::UnknownFlag { flag, .. }
            | InstructionError::FlagNeedsValue { flag, .. }
            | InstructionError::BadFlagValue { flag, .. } => Some((flag, false)),
            InstructionError::DuplicateFlag { flag, .. } => Some((flag, true)),
            InstructionError::BadMount(_) => Some(("--mount", false)),
            _ => None,
        }
    }
}

/// A command in exec (JSON) or shell form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `["executable", "arg"]`: run directly.
    Exec(Vec<String>),
    /// `executable arg`: run through the stage's SHELL.
    Shell(String),
}

/// `key=value` in ENV and LABEL. Both parts are unexpanded: quotes and
/// escapes are removed by [`crate::expand_word`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
}

/// `name[=default]` in ARG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDecl {
    /// The name.
    pub name: String,
    /// The default, unexpanded.
    pub default: Option<String>,
}

/// RUN `--network`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// The default network.
    Default,
    /// No network.
    None,
    /// The host's network.
    Host,
}

/// RUN `--security`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Default sandbox.
    Sandbox,
    /// Privileged (needs an entitlement).
    Insecure,
}

/// A COPY or ADD source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A path, URL or git reference, unexpanded.
    Path(String),
    /// An inline file from a heredoc (`COPY <<EOF /dst`).
    Heredoc(Heredoc),
}

/// COPY and ADD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileCopy {
    /// Sources, in order.
    pub sources: Vec<Source>,
    /// Destination.
    pub dest: String,
    /// COPY `--from`: stage name, stage index or image.
    pub from: Option<String>,
    /// `--chown=user[:group]`.
    pub chown: Option<UserGroup>,
    /// `--chmod=0755` (or a variable).
    pub chmod: Option<Deferred<u32>>,
    /// `--link`.
    pub link: bool,
    /// COPY `--parents`.
    pub parents: bool,
    /// `--exclude` patterns.
    pub exclude: Vec<String>,
    /// ADD `--checksum` of a remote source.
    pub checksum: Option<String>,
    /// ADD `--keep-git-dir` for git sources.
    pub keep_git_dir: bool,
    /// Whether the sources were written in JSON form.
    pub json: bool,
}

/// HEALTHCHECK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Healthcheck {
    /// `HEALTHCHECK NONE`: disable the inherited check.
    None,
    /// `HEALTHCHECK [options] CMD ...`.
    Check {
        /// The test command.
        test: Command,
        /// `--interval`.
        interval: Option<std::time::Duration>,
        /// `--timeout`.
        timeout: Option<std::time::Duration>,
        /// `--start-period`.
        start_period: Option<std::time::Duration>,
        /// `--start-interval`.
        start_interval: Option<std::time::Duration>,
        /// `--retries`.
        retries: Option<u32>,
    },
}

/// A typed Dockerfile instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    /// `FROM [--platform=p] image [AS name]`.
    From {
        /// Base image or earlier stage name, unexpanded.
        image: String,
        /// `--platform`, unexpanded.
        platform: Option<String>,
        /// Stage name, lower case.
        name: Option<String>,
    },
    /// `RUN [--mount ...] [--network] [--security] command`.
    Run {
        /// The command.
        command: Command,
        /// `--mount`s.
        mounts: Vec<Mount>,
        /// `--network`.
        network: Option<Network>,
        /// `--security`.
        security: Option<Security>,
        /// Heredocs on the line; with a command of just `<<EOF` the first
        /// is the script.
        heredocs: Vec<Heredoc>,
    },
    /// `CMD`.
    Cmd(Command),
    /// `ENTRYPOINT`.
    Entrypoint(Command),
    /// `SHELL ["exe", "arg"]`.
    Shell(Vec<String>),
    /// `LABEL k=v ...`.
    Label(Vec<KeyValue>),
    /// `MAINTAINER name` (deprecated).
    Maintainer(String),
    /// `EXPOSE port[/proto] ...`.
    Expose(Vec<Deferred<PortRange>>),
    /// `ENV k=v ...` or `ENV k v`.
    Env(Vec<KeyValue>),
    /// `ARG name[=default] ...`.
    Arg(Vec<ArgDecl>),
    /// `ADD`.
    Add(FileCopy),
    /// `COPY`.
    Copy(FileCopy),
    /// `VOLUME` paths.
    Volume(Vec<String>),
    /// `USER user[:group]`.
    User(UserGroup),
    /// `WORKDIR path`.
    Workdir(String),
    /// `ONBUILD instruction`.
    Onbuild(Box<Instruction>),
    /// `STOPSIGNAL signal`.
    Stopsignal(String),
    /// `HEALTHCHECK`.
    Healthcheck(Healthcheck),
}

impl Instruction {
    /// Types one raw instruction.
    pub fn from_raw(raw: &RawInstruction) -> Result<Self, InstructionError> {
        parse::from_raw(raw)
    }

    /// The keyword, upper case.
    pub fn keyword(&self) -> &'static str {
        match self {
            Instruction::From { .. } => "FROM",
            Instruction::Run { .. } => "RUN",
            Instruction::Cmd(_) => "CMD",
            Instruction::Entrypoint(_) => "ENTRYPOINT",
            Instruction::Shell(_) => "SHELL",
            Instruction::Label(_) => "LABEL",
            Instruction::Maintainer(_) => "MAINTAINER",
            Instruction::Expose(_) => "EXPOSE",
            Instruction::Env(_) => "ENV",
            Instruction::Arg(_) => "ARG",
            Instruction::Add(_) => "ADD",
            Instruction::Copy(_) => "COPY",
            Instruction::Volume(_) => "VOLUME",
            Instruction::User(_) => "USER",
            Instruction::Workdir(_) => "WORKDIR",
            Instruction::Onbuild(_) => "ONBUILD",
            Instruction::Stopsignal(_) => "STOPSIGNAL",
            Instruction::Healthcheck(_) => "HEALTHCHECK",
        }
    }

    /// Whether Docker expands variables in this instruction's arguments:
    /// ADD COPY ENV EXPOSE FROM LABEL STOPSIGNAL USER VOLUME WORKDIR ARG, and
    /// ONBUILD when its trigger is one of those (the trigger is expanded when
    /// it fires in a child build, not here). RUN, CMD and ENTRYPOINT are left
    /// to the shell. Some flags (`--chown`, `--chmod`, `--from`, `--platform`,
    /// `--mount`, ...) are expanded too; [`expand_raw`] knows which.
    pub fn takes_expansion(&self) -> bool {
        match self {
            Instruction::Add(_)
            | Instruction::Copy(_)
            | Instruction::Env(_)
            | Instruction::Expose(_)
            | Instruction::From { .. }
            | Instruction::Label(_)
            | Instruction::Stopsignal(_)
            | Instruction::User(_)
            | Instruction::Volume(_)
            | Instruction::Workdir(_)
            | Instruction::Arg(_) => true,
            Instruction::Onbuild(inner) => inner.takes_expansion(),
            Instruction::Run { .. }
            | Instruction::Cmd(_)
            | Instruction::Entrypoint(_)
            | Instruction::Shell(_)
            | Instruction::Maintainer(_)
            | Instruction::Healthcheck(_) => false,
        }
    }
}

#[cfg(test)]
mod tests;
