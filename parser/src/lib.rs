//! Dockerfile parser: text in, typed instructions out. No I/O, no knowledge of
//! images.
//!
//! Two stages, like BuildKit's frontend:
//! 1. [`parse_raw`] builds the raw syntax tree ([`RawTree`]): directives,
//!    comments, blank lines, and instructions with their `--flags`, shaped
//!    arguments, heredocs and line spans. [`dump`] prints it in the
//!    conformance format.
//! 2. [`parse`] types every instruction ([`Instruction`]), validates flags,
//!    and splits the file into [`Stage`]s with global ARGs ([`Parsed`]).
//!
//! Variable expansion ([`expand_word`], [`expand_words`]) runs over an
//! [`Env`] the caller passes in. The executor calls [`Step::expanded`] on
//! each step with the stage's current environment to get final values.
//!
//! ```
//! let parsed = strata_parser::parse("FROM alpine AS base\nRUN echo hi\n").unwrap();
//! assert_eq!(parsed.stages[0].name.as_deref(), Some("base"));
//! assert_eq!(parsed.stages[0].steps[0].instruction.keyword(), "RUN");
//! ```

pub mod directives;
pub mod dump;
pub mod error;
pub mod expand;
pub mod instructions;
pub mod raw;
pub mod stages;

pub use directives::{Directive, Directives};
pub use dump::dump;
pub use error::{ParseError, ParseErrorKind, Span, Warning, WarningKind};
pub use expand::{expand_word, expand_words, EmptyEnv, Env, ExpandError, ExpandErrorKind};
pub use instructions::{Command, Instruction, InstructionError};
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

/// Checks that `bytes` are UTF-8 and returns them as text.
pub fn decode(bytes: &[u8]) -> Result<&str, ParseError> {
    std::str::from_utf8(bytes).map_err(|e| {
        let offset = e.valid_up_to();
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
        ParseError::new(line, col, ParseErrorKind::InvalidUtf8 { offset })
    })
}
