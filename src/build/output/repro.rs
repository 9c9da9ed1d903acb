//! `--verify-repro`: the build run twice, each in an isolated temporary
//! store (inside the caller's store's `tmp/`, removed after), the second
//! without any cache (local or `--cache-from`); the FROM images come from
//! the caller's store (found or pulled there, as `--pull` says, and copied
//! in). The same image both times is copied into the caller's store and
//! tagged; otherwise the first difference is the answer.

use std::path::Path;

use super::compare::{first_difference, Difference};
use super::{Built, OutputError};
use crate::build::{BuildError, BuildOptions};
use crate::digest::ImageId;
use crate::layer::compress::Compression;
use crate::progress;
use crate::store::config::Annotations;
use crate::store::transport::{export_oci_dir, import};
use crate::store::{BlobCompression, Store, StoreError};

/// A layer's kept blob, whatever its compression (gzip made when it has
/// none): what a copy or a comparison reads.
pub(super) const ANY_KEPT: BlobCompression = BlobCompression {
    format: Compression::Gzip,
    level: None,
    force: false,
};

/// What `--verify-repro` found.
#[derive(Debug)]
pub enum Verdict {
    /// Both builds made this image; it is in the caller's store, tagged.
    Same(Built),
    Differs(Difference),
}

/// Runs the two builds of `opts` and compares them.
pub fn verify(store: &Store, opts: &BuildOptions) -> Result<Verdict, BuildError> {
    let out = |e: OutputError| BuildError::Output(Box::new(e));
    let store_err = |e: StoreError| out(e.into());
    let staging = store.staging().map_err(store_err)?;
    let mut built = Vec::new();
    let mut stores = Vec::new();
    for n in 1..=2 {
        let cache = if n == 2 { ", without cache" } else { "" };
        progress::notice(format!(
            "--verify-repro: build {n} of 2, in an isolated store{cache}"
        ));
        let dir = staging.path().join(n.to_string());
        let isolated = Store::open(&dir).map_err(store_err)?;
        let o = BuildOptions {
            tags: Vec::new(),
            no_cache: opts.no_cache || n == 2,
            // `--cache-from` for the first only; neither writes a cache.
            cache_from: if n == 2 {
                Vec::new()
            } else {
                opts.cache_from.clone()
            },
            cache_to: Vec::new(),
            bases_from: Some(store.clone()),
            ..opts.clone()
        };
        built.push(crate::build::build(&isolated, &o)?);
        stores.push(isolated);
    }
    let (a, b) = (&built[0], &built[1]);
    if a.id != b.id {
        let found = first_difference(&stores[0], &a.id, &stores[1], &b.id).map_err(out)?;
        // Same layers and config under different ids cannot happen; say
        // the ids rather than nothing.
        let d = found.unwrap_or_else(|| Difference::Config {
            field: "(image id)".into(),
            first: a.id.to_string(),
            second: b.id.to_string(),
        });
        return Ok(Verdict::Differs(d));
    }
    copy_image(&stores[0], store, &a.id).map_err(store_err)?;
    store
        .finish_image(&a.id, opts.format, &opts.tags)
        .map_err(|source| BuildError::Tag {
            id: a.id.clone(),
            source,
        })?;
    Ok(Verdict::Same(a.clone()))
}

/// Copies image `id` from one store to another (nothing when it is there)
/// through an OCI layout in `to`'s staging: the transports' own checks on
/// the way in, and a layer's kept blob (gzip made once when it has none).
pub fn copy_image(from: &Store, to: &Store, id: &ImageId) -> Result<(), StoreError> {
    if to.index()?.images.contains_key(id) {
        return Ok(());
    }
    let staging = to.staging()?;
    let layout: &Path = &staging.path().join("layout");
    export_oci_dir(from, id, None, layout, ANY_KEPT, &Annotations::default())?;
    import(to, layout, None, None)?;
    Ok(())
}
