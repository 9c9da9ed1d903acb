//! Stage two: typed instructions.

use thiserror::Error;

/// Errors raised while typing an instruction.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InstructionError {
    /// Placeholder.
    #[error("unknown instruction: {0}")]
    Unknown(String),
}

/// A typed instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {}
