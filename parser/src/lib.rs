//! Dockerfile parser: text in, typed instructions out. No I/O, no knowledge of
//! images.
//!
//! Two stages, like BuildKit's frontend:
//! 1. [`parse_raw`] builds the raw syntax tree ([`RawTree`]): directives,
//!    comments, blank lines, and instructions with their `--flags`, shaped
//!    arguments, heredocs and line spans. [`dump`] prints it in the
//!    conformance format.
//! 2. [`parse`] types every instruction ([`Instruction`]), validates flags,
//!    and splits the file into [`Stage`]s with global ARGs.
//!
//! Variable expansion ([`expand_word`], [`expand_words`]) runs over an
//! [`Env`] the caller passes in; the executor applies it to instructions for
//! which [`Instruction::takes_expansion`] is true.

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
pub use instructions::{Instruction, InstructionError};
pub use raw::{parse_raw, Heredoc, RawInstruction, RawNode, RawTree};
pub use stages::{Stage, StageError};

/// Parses a Dockerfile.
pub fn parse(text: &str) -> Result<RawTree, ParseError> {
    parse_raw(text)
}
