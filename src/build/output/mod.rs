//! What a build does with its image once every step is done: the image
//! transforms that decide what is tagged ([`finish`]: `--squash`,
//! `--squash-all`, `--timestamp`/`SOURCE_DATE_EPOCH`, `--unsetlabel`), then
//! the exporters that run once at the end ([`export`]: `-o/--output`,
//! `--push`), each through the store's transports and the registry's push,
//! and what they report ([`metadata`]: `--metadata-file`).
//!
//! [`spec`] parses the `-o` values and `--annotation`s (pure). None of this
//! changes a step's cache key: the steps are built and cached as without
//! these options, and the transforms make one more image from the result
//! (its new layers re-tarred with clamped times, or merged), as BuildKit's
//! exporters rewrite the image they export.

pub mod compare;
pub mod export;
pub mod finish;
pub mod metadata;
pub mod provenance;
pub mod repro;
pub mod spec;

pub use finish::{Finish, Squash};
pub use spec::{AddAnnotation, Annotations, Dest, OutputKind, OutputSpec};

use crate::digest::ImageId;

/// What the build engine hands the exporters.
#[derive(Debug, Clone)]
pub struct Built {
    /// The image tagged: the build's result after [`finish`].
    pub id: ImageId,
    /// The FROM images the build used (name as written, the image), in the
    /// order it met them.
    pub bases: Vec<(String, ImageId)>,
}

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Commit(#[from] crate::build::commit::CommitError),
    #[error(transparent)]
    Layer(#[from] crate::layer::LayerError),
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    #[error(transparent)]
    Context(#[from] crate::build::context::ContextError),
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("serialising {what}")]
    Json {
        what: &'static str,
        source: serde_json::Error,
    },
    #[error("{0}")]
    Invalid(String),
    /// Writing an output file (the caller names it).
    #[error(transparent)]
    Write(#[from] std::io::Error),
}

impl OutputError {
    pub(crate) fn io(
        op: &'static str,
        path: impl std::fmt::Display,
    ) -> impl FnOnce(std::io::Error) -> OutputError {
        let path = path.to_string();
        move |source| OutputError::Io { op, path, source }
    }
}
