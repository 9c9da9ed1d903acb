//! Stages.

use thiserror::Error;

/// Errors in the stage structure.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StageError {
    /// Placeholder.
    #[error("duplicate stage name {0}")]
    Duplicate(String),
}

/// A build stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {}
