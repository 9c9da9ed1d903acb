//! The remote build cache: `--cache-from` and `--cache-to` (see
//! `docs/cache.md` for the format and its guarantees).
//!
//! - [`spec`] (pure): Docker's flag syntax into [`CacheSpec`]s;
//! - [`format`] (pure): the cache record and the OCI manifest carrying it;
//! - [`endpoint`]: a registry repository or an OCI layout directory;
//! - [`import`]: caches read at the start, asked after the local one
//!   ([`LayeredCache`], a [`crate::build::cache::StepCache`]); a hit
//!   takes the image in with its layers known by descriptor only;
//! - [`export`]: the steps of the build written out at its end;
//! - [`inline`]: the record inside the final image's config;
//! - [`mounts`]: `mounts=true`, cache mounts' contents exported and restored;
//! - [`fetch`]: the store's fetcher of remote layers, on first use;
//! - [`stats`]: the bytes moved, for the build's summary and reports.
//!
//! Reading a cache never fails a build: a cache that cannot be read is one
//! warning and a cold build; an entry that does not check out is skipped.

pub mod endpoint;
pub mod export;
pub mod fetch;
pub mod format;
pub mod import;
pub mod inline;
pub mod journal;
pub mod mounts;
pub mod spec;
pub mod stats;

use std::path::PathBuf;

pub use import::LayeredCache;
pub use spec::{CacheSpec, Direction, Location, Mode};

use crate::digest::DigestMismatch;
use crate::registry::RegistryError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Format(#[from] format::FormatError),
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    DigestMismatch(#[from] DigestMismatch),
    #[error("{what}: {reason}")]
    Invalid { what: &'static str, reason: String },
    #[error("no cache at {at}")]
    NoCache { at: String },
    #[error("the layer has no local copy")]
    NotLocal,
    #[error("cache mount {key}: {reason}")]
    Mount { key: String, reason: String },
    #[error("committing the image with its inline cache")]
    Commit(#[source] Box<crate::build::commit::CommitError>),
    #[error("exporting the build cache to {to}")]
    Export {
        to: String,
        #[source]
        source: Box<RemoteError>,
    },
}

/// How a location is named in messages (` ---> Using cache (registry R)`).
pub fn describe(location: &Location) -> String {
    match location {
        Location::Registry(r) => format!("registry {}", r.repository()),
        Location::Local { dir, .. } => format!("local {}", dir.display()),
        Location::Inline => "inline".into(),
    }
}

/// The stages of the final image: the target and the stages it is FROM,
/// down the chain (what mode=min exports).
pub fn final_stages(plan: &crate::build::plan::Plan) -> std::collections::BTreeSet<usize> {
    let mut out = std::collections::BTreeSet::new();
    let mut at = Some(plan.target);
    while let Some(i) = at.filter(|i| out.insert(*i)) {
        let base = plan.stages.iter().find(|s| s.stage.index == i);
        at = base.and_then(|s| match &s.base {
            Ok(b) => match b.reference {
                strata_parser::StageRef::Stage(j) => Some(j),
                _ => None,
            },
            Err(_) => None,
        });
    }
    out
}

/// `image`, or with `--cache-to type=inline` the same image with the
/// record of its steps in its config.
pub fn with_inline(
    store: &crate::store::Store,
    cache: &LayeredCache,
    final_stages: &std::collections::BTreeSet<usize>,
    specs: &[CacheSpec],
    image: crate::digest::ImageId,
) -> Result<crate::digest::ImageId, RemoteError> {
    let Some(spec) = specs.iter().find(|s| s.location == Location::Inline) else {
        return Ok(image);
    };
    let (record, _) = export::record(
        store,
        &cache.journal(),
        Mode::Min,
        final_stages,
        spec.compression,
    )?;
    inline::with_record(store, &image, &record)
}
