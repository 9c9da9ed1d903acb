//! What a failed build says: the step (number, instruction, Dockerfile
//! location), the cause with its chain, and the exit code. Rendered once by
//! the CLI as `strata: step 3/7 (Dockerfile:5:1) RUN make: exit status 2`.

use std::fmt;

use strata_parser::{ParseError, ParseErrorKind, StageError};

use super::commit::CommitError;
use super::config_steps::ConfigError;
use super::context::ContextError;
use super::copy::CopyError;
use super::fetch::FetchError;
use crate::container::run::RunError;
use crate::container::ContainerError;
use crate::digest::{DigestError, ImageId};
use crate::reference::ReferenceError;
use crate::registry::RegistryError;
use crate::sandbox::user::UserError;
use crate::store::StoreError;

/// Docker's exit code for a failed build.
pub const EXIT_BUILD_FAILED: u8 = 1;
/// strata's own failure (Docker's code for an error of the tool).
pub const EXIT_STRATA_ERROR: u8 = 125;

/// Where an instruction is: `Dockerfile:5:1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: String,
    pub line: usize,
    pub col: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Bad syntax: `file:line:col: message`, the line and a caret (the
    /// rendering already holds the parser's message).
    #[error("{file}:{rendered}")]
    Parse {
        file: String,
        rendered: String,
        error: Box<ParseError>,
    },
    /// The `# check=` directive cannot be read.
    #[error("{file}:{line}:1: {problem}")]
    CheckDirective {
        file: String,
        line: usize,
        problem: strata_parser::CheckError,
    },
    /// `# check=error=true` and the lint found something.
    #[error("{file}: {message}")]
    LintViolation { file: String, message: String },
    #[error("target stage \"{0}\" could not be found")]
    NoTarget(String),
    #[error(transparent)]
    Step(Box<StepError>),
    /// Another stage failed and this one stopped (never the error a build
    /// reports: the failure that cancelled it is).
    #[error("cancelled: another stage failed")]
    Cancelled,
    /// ^C, SIGTERM or SIGHUP: stopped between steps, nothing tagged.
    #[error("build interrupted by {}; nothing was tagged", signal_name(*.signal))]
    Interrupted { signal: i32 },
    /// Committing or labelling after the last step.
    #[error(transparent)]
    Finish(Box<StepFailure>),
    #[error("tagging {id}")]
    Tag {
        id: ImageId,
        #[source]
        source: StoreError,
    },
    /// Squashing or dating the image, or an output (`-o`, `--push`).
    #[error(transparent)]
    Output(Box<crate::build::output::OutputError>),
    /// A `--cache-to` that could not be written (BuildKit fails the build
    /// too, unless `ignore-error=true`).
    #[error(transparent)]
    CacheExport(Box<super::remote::RemoteError>),
}

impl From<StepError> for BuildError {
    fn from(e: StepError) -> BuildError {
        BuildError::Step(Box::new(e))
    }
}

fn signal_name(signal: i32) -> String {
    nix::sys::signal::Signal::try_from(signal)
        .map_or_else(|_| format!("signal {signal}"), |s| s.to_string())
}

impl BuildError {
    /// Docker's codes: 1 for a failed build, 128 + N for a build stopped by
    /// signal N (130 for ^C, 143 for SIGTERM), 125 for strata's own failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            BuildError::Parse { .. }
            | BuildError::CheckDirective { .. }
            | BuildError::LintViolation { .. }
            | BuildError::NoTarget(_)
            | BuildError::Step(_)
            | BuildError::Cancelled => EXIT_BUILD_FAILED,
            BuildError::Interrupted { signal } => {
                u8::try_from(128 + signal).unwrap_or(EXIT_STRATA_ERROR)
            }
            BuildError::Tag { .. }
            | BuildError::Finish(_)
            | BuildError::Output(_)
            | BuildError::CacheExport(_) => EXIT_STRATA_ERROR,
        }
    }

    /// Where in the Dockerfile the error is, when it is about one place.
    pub fn location(&self) -> Option<Location> {
        match self {
            BuildError::Parse { file, error, .. } => Some(Location {
                file: file.clone(),
                line: error.line,
                col: error.col,
            }),
            BuildError::CheckDirective { file, line, .. } => Some(Location {
                file: file.clone(),
                line: *line,
                col: 1,
            }),
            BuildError::Step(step) => Some(step.location.clone()),
            _ => None,
        }
    }

    /// What to try next: open the last good step's image.
    pub fn hint(&self) -> Option<String> {
        let BuildError::Step(step) = self else {
            return None;
        };
        let id = step.last_good.as_ref()?.short();
        Some(format!(
            "the last good step's image is {id}: open it with 'strata run -it {id} sh'"
        ))
    }
}

/// Longest instruction text a step error quotes (a line can be 1 MiB).
const MAX_SHOWN: usize = 200;

/// A step that failed.
#[derive(Debug, thiserror::Error)]
#[error("step {number}/{total} ({location}) {instruction}")]
pub struct StepError {
    pub number: usize,
    pub total: usize,
    pub location: Location,
    /// The instruction as written, on one line.
    pub instruction: String,
    /// The image of the last step that succeeded.
    pub last_good: Option<ImageId>,
    #[source]
    pub cause: StepFailure,
}

/// The instruction text a step error shows: continuation lines joined,
/// clipped at `MAX_SHOWN` characters.
pub fn shown(original: &str) -> String {
    let one_line = original
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    match one_line.char_indices().nth(MAX_SHOWN) {
        Some((at, _)) => format!("{}…", &one_line[..at]),
        None => one_line,
    }
}

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
pub enum StepFailure {
    #[error("{0}")]
    Expand(ParseErrorKind),
    #[error(transparent)]
    Heredoc(#[from] strata_parser::ExpandError),
    /// A feature strata lacks, as a sentence (`... is not supported yet`).
    #[error("{0}")]
    Unsupported(&'static str),
    #[error("{0} is not supported here")]
    NotHere(&'static str),
    /// The command of a RUN failed.
    #[error("exit status {0}")]
    Exit(i32),
    #[error("FROM --platform={given}")]
    Platform {
        given: String,
        #[source]
        source: crate::platform::ManifestError,
    },
    /// A RUN for a platform this machine cannot run.
    #[error("cannot run {platform} binaries here: {reason}; to emulate it, {fix}")]
    Emulation {
        platform: String,
        reason: String,
        fix: String,
    },
    #[error("ONBUILD trigger")]
    Trigger(#[source] ParseError),
    #[error("--build-context {0}: a directory is read by COPY --from only (FROM and RUN --mount need an image: docker-image:// or oci-layout://)")]
    NamedDir(String),
    #[error("--from {0:?} names a stage with no image (FROM scratch and nothing else)")]
    EmptyStage(String),
    #[error(transparent)]
    Stage(#[from] StageError),
    #[error("--chown {spec}")]
    Chown {
        spec: String,
        #[source]
        source: UserError,
    },
    /// The USER a WORKDIR is made for names what the image lacks.
    #[error("USER {spec}")]
    User {
        spec: String,
        #[source]
        source: UserError,
    },
    #[error("--chmod {0}: not an octal mode")]
    Chmod(String),
    #[error("checksum can't be specified for {0}")]
    ChecksumPlace(&'static str),
    #[error("--checksum")]
    Checksum(#[source] DigestError),
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Commit(#[from] CommitError),
    #[error(transparent)]
    Context(#[from] ContextError),
    #[error(transparent)]
    Copy(#[from] CopyError),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Git(#[from] super::git::GitError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Mount(#[from] super::mounts::MountError),
    /// A dry run's step that missed the cache: not executed.
    #[error("not executed in a dry run")]
    WouldRun,
    #[error("writing {path}")]
    Write {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl From<ParseError> for StepFailure {
    fn from(e: ParseError) -> StepFailure {
        // The step error says where; the line and column are the step's.
        StepFailure::Expand(e.kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(e: &dyn std::error::Error) -> String {
        let mut out = e.to_string();
        let mut cur = e.source();
        while let Some(c) = cur {
            out.push_str(": ");
            out.push_str(&c.to_string());
            cur = c.source();
        }
        out
    }

    #[test]
    fn a_step_error_says_step_place_instruction_and_cause() {
        let id: ImageId = format!("sha256:{}", "c".repeat(64)).parse().unwrap();
        let e = BuildError::from(StepError {
            number: 3,
            total: 7,
            location: Location {
                file: "Dockerfile".into(),
                line: 5,
                col: 1,
            },
            instruction: shown("RUN make \\\n    all"),
            last_good: Some(id),
            cause: StepFailure::Exit(2),
        });
        assert_eq!(
            chain(&e),
            "step 3/7 (Dockerfile:5:1) RUN make \\ all: exit status 2"
        );
        assert_eq!(e.exit_code(), 1);
        assert!(e.hint().unwrap().contains("strata run -it cccccccccccc sh"));
    }

    #[test]
    fn exit_codes_follow_docker() {
        for (signal, code) in [(2, 130), (15, 143), (1, 129)] {
            assert_eq!(BuildError::Interrupted { signal }.exit_code(), code);
        }
        assert_eq!(BuildError::NoTarget("x".into()).exit_code(), 1);
        assert!(BuildError::Interrupted { signal: 15 }
            .to_string()
            .contains("SIGTERM"));
    }

    #[test]
    fn long_instructions_are_clipped() {
        let long = format!("RUN {}", "x".repeat(1000));
        assert_eq!(shown(&long).chars().count(), MAX_SHOWN + 1);
    }
}
