//! Dockerfile parser: text in, typed instructions out. No I/O, no knowledge of
//! images.
//!
//! Two stages, like BuildKit's frontend:
//! 1. [`parse_raw`] builds the raw syntax tree ([`RawTree`]): directives,
//!    comments, blank lines, and instructions with their `--flags`, shaped
//!    arguments, heredocs and line spans. [`dump()`] prints it in the
//!    conformance format.
//! 2. [`parse`] types every instruction ([`Instruction`]), validates flags,
//!    and splits the file into [`Stage`]s with global ARGs ([`Parsed`]).
//!
//! Errors are values ([`ParseError`]: `line:col: message`, and
//! [`ParseError::render`] adds the source line and a caret); warnings come
//! back in [`Parsed::warnings`]. Nothing is printed.
//!
//! [`lint()`] runs BuildKit's build checks (`docker build --check`) over the
//! text, with what it needs from outside (base images, `.dockerignore`)
//! asked through [`Inputs`].
//!
//! Variable expansion ([`expand_word`], [`expand_words`]) runs over an
//! [`Env`] the caller passes in. Typed instructions hold text as written; the
//! executor calls [`Step::expanded`] with the stage's current environment to
//! get final values (it expands exactly what Docker expands and types the
//! result again).
//!
//! ```
//! use std::collections::HashMap;
//! use strata_parser::{parse, Instruction, StageRef};
//!
//! let text = "ARG BASE=alpine\n\
//!             FROM ${BASE}:3 AS build\n\
//!             ENV DIR=/src\n\
//!             WORKDIR $DIR/app\n\
//!             RUN make\n\
//!             FROM scratch\n\
//!             COPY --from=build /src/app/out /\n";
//! let parsed = parse(text).unwrap();
//! let escape = parsed.escape();
//!
//! // Global ARG defaults form the environment of FROM lines.
//! let mut globals: HashMap<String, String> = HashMap::new();
//! for step in &parsed.global_args {
//!     if let Instruction::Arg(decls) = step.expanded(&globals, escape).unwrap() {
//!         for d in decls {
//!             globals.insert(d.name, d.default.unwrap_or_default());
//!         }
//!     }
//! }
//! let Instruction::From { image, .. } = parsed.stages[0].from.expanded(&globals, escape).unwrap() else {
//!     unreachable!()
//! };
//! assert_eq!(image, "alpine:3");
//!
//! // Each stage's ENV/ARG build up the environment for later steps.
//! let mut env: HashMap<String, String> = HashMap::new();
//! let mut workdir = String::new();
//! for step in &parsed.stages[0].steps {
//!     match step.expanded(&env, escape).unwrap() {
//!         Instruction::Env(pairs) => env.extend(pairs.into_iter().map(|kv| (kv.key, kv.value))),
//!         Instruction::Workdir(dir) => workdir = dir,
//!         _ => {}
//!     }
//! }
//! assert_eq!(workdir, "/src/app");
//!
//! // `--from` names an earlier stage (by name or index) or an image.
//! let Instruction::Copy(copy) = &parsed.stages[1].steps[0].instruction else { unreachable!() };
//! let from = copy.from.as_deref().unwrap();
//! assert_eq!(parsed.resolve_copy_from(from, 1), Ok(StageRef::Stage(0)));
//! ```

pub mod directives;
pub mod dump;
pub mod error;
pub mod expand;
pub mod instructions;
pub mod lint;
pub mod path;
pub mod raw;
pub mod stages;
mod suggest;

pub use directives::{Directive, Directives};
pub use dump::dump;
pub use error::{ParseError, ParseErrorKind, Span, Warning, WarningKind};
pub use expand::{expand_word, expand_words, EmptyEnv, Env, ExpandError, ExpandErrorKind};
pub use instructions::{Command, Instruction, InstructionError};
pub use lint::{
    file_config, lint, BaseImage, CheckConfig, CheckError, Finding, Ignore, Inputs, LintError,
    Report, Rule,
};
pub use raw::{parse_raw, Heredoc, RawInstruction, RawNode, RawTree};
pub use stages::{Parsed, Stage, StageError, StageRef, Step};

/// Parses Dockerfile text into typed stages.
pub fn parse(text: &str) -> Result<Parsed, ParseError> {
    stages::build(parse_raw(text)?, text)
}

/// Parses Dockerfile bytes as read from a file: invalid UTF-8 is an error
/// with the byte offset and the line/column where it starts.
pub fn parse_bytes(bytes: &[u8]) -> Result<Parsed, ParseError> {
    parse(decode(bytes)?)
}

/// Checks that `bytes` are UTF-8 without a NUL byte (as BuildKit, which
/// refuses binary input) and returns them as text.
pub fn decode(bytes: &[u8]) -> Result<&str, ParseError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let offset = e.valid_up_to();
        error_at(bytes, offset, ParseErrorKind::InvalidUtf8 { offset })
    })?;
    match bytes.iter().position(|&b| b == 0) {
        Some(offset) => Err(error_at(bytes, offset, ParseErrorKind::NulByte { offset })),
        None => Ok(text),
    }
}

/// An error at byte `offset` of `bytes`, whose prefix up to there is
/// UTF-8, with its 1-based line and column (in characters).
fn error_at(bytes: &[u8], offset: usize, kind: ParseErrorKind) -> ParseError {
    let before = &bytes[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    // The prefix is valid UTF-8 by construction, so counting chars is exact.
    let col = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    ParseError::new(line, col, kind)
}
