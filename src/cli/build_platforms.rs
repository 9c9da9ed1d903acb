//! `build --platform A,B` and `build --manifest NAME`: the Dockerfile built
//! once per platform, then a list of the images under each `-t` name (and
//! NAME), pushed as an image index by `--push` or `strata push`.
//!
//! The platforms build one after the other. A stage that does not depend
//! on the target platform (`FROM --platform=$BUILDPLATFORM` without
//! TARGET* args) has the same keys for every platform, so it runs once,
//! natively, and the later platforms take it from the cache.

use anyhow::{bail, Context, Result};

use super::build_output::Resolved;
use crate::build::output::Built;
use crate::build::BuildOptions;
use crate::digest::ImageId;
use crate::platform::{self, Platform};
use crate::reference::Reference;
use crate::store::Store;

/// Builds `options` for each of `platforms`; the image of the host's
/// platform (else the first) is what the tags name by default.
pub(super) fn build(
    store: &Store,
    options: &BuildOptions,
    platforms: &[Platform],
    manifest: Option<&Reference>,
    out: &Resolved,
) -> Result<Built> {
    if !out.export.outputs.is_empty() || out.verify_repro || out.provenance.is_some() {
        bail!("--output, --verify-repro and --provenance take one platform; --push sends every platform of a multi-platform build");
    }
    let mut images: Vec<(Platform, ImageId)> = Vec::new();
    for p in platforms {
        crate::progress::notice(format!("building for {}", platform::show(p)));
        let o = BuildOptions {
            platform: p.clone(),
            tags: Vec::new(),
            ..options.clone()
        };
        let built = super::lint::around(store, &o, || crate::build::build(store, &o))?;
        images.push((p.clone(), built.id));
    }
    let host = Platform::host();
    let default = images
        .iter()
        .find(|(p, _)| p.satisfies(&host))
        .unwrap_or(&images[0])
        .1
        .clone();
    store.finish_image(&default, options.format, &options.tags)?;
    for name in options.tags.iter().chain(manifest) {
        store.update_list(name, |list, _| {
            // A tag is this build's list; --manifest adds to NAME's.
            if Some(name) != manifest {
                list.manifests.clear();
            }
            list.index = true;
            for (p, id) in &images {
                list.set(p, id);
            }
            Ok(())
        })?;
    }
    if out.export.push {
        push_all(store, &options.tags, out)?;
    }
    Ok(Built {
        id: default,
        bases: Vec::new(),
    })
}

/// `--push`: each tag's index and images.
fn push_all(store: &Store, tags: &[Reference], out: &Resolved) -> Result<()> {
    let opts = crate::registry::push::PushOptions {
        compression: out.export.compression,
        annotations: out.export.annotations.manifest.clone(),
        ..Default::default()
    };
    let index = store.index()?;
    for tag in tags {
        let Some(list) = index.list(tag) else {
            continue;
        };
        crate::registry::push_list::push_list(store, list, tag, &out.export.registry, &opts)
            .with_context(|| format!("pushing {}", tag.familiar()))?;
    }
    Ok(())
}
