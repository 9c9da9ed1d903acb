//! `build --platform A,B` and `build --manifest NAME`: the Dockerfile built
//! once per platform, then a list of the images under each `-t` name (and
//! NAME), pushed as an image index by `--push` or `strata push`.
//!
//! The platforms build at once, up to `--jobs` (one after the other with
//! `--jobs 1`), through the stage [`scheduler`]; the first failure stops
//! the others. A stage that does not depend on the target platform (`FROM
//! --platform=$BUILDPLATFORM` without TARGET* args) has the same keys for
//! every platform, so it runs once, natively: the platforms share what
//! their steps made ([`crate::build::siblings`]), even under `--no-cache`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};

use super::build_output::Resolved;
use crate::build::output::Built;
use crate::build::remote::export::write_all;
use crate::build::scheduler::{self, Cancel, Node};
use crate::build::siblings::{Sibling, Siblings};
use crate::build::{BuildError, BuildOptions};
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
    let images = build_each(store, options, platforms)?;
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

/// Each platform's image, in `platforms`' order.
fn build_each(
    store: &Store,
    options: &BuildOptions,
    platforms: &[Platform],
) -> Result<Vec<(Platform, ImageId)>> {
    let jobs = options.jobs.max(1);
    let shared = Arc::new(Siblings::new(jobs > 1 && platforms.len() > 1));
    let nodes: Vec<Node> = (0..platforms.len())
        .map(|id| Node {
            id,
            deps: BTreeSet::new(),
        })
        .collect();
    // The failure that stopped the others, not what stopping them caused.
    let first = Mutex::new(None);
    let work = |i: usize, _: &BTreeMap<usize, ImageId>| -> Result<ImageId, ()> {
        let p = &platforms[i];
        crate::progress::notice(format!("building for {}", platform::show(p)));
        let o = BuildOptions {
            platform: p.clone(),
            tags: Vec::new(),
            sibling: Some(Sibling {
                index: i,
                shared: shared.clone(),
            }),
            ..options.clone()
        };
        let build = || crate::build::build(store, &o);
        // The first platform's warnings only, as BuildKit: the others'
        // would repeat them.
        let built = match i {
            0 => super::lint::around(store, &o, build),
            _ => build(),
        };
        match built {
            Ok(built) => Ok(built.id),
            Err(e) => {
                let caused = matches!(e, BuildError::Cancelled);
                let mut first = first.lock().unwrap_or_else(|e| e.into_inner());
                if first.is_none() && !caused {
                    let e = anyhow::Error::new(e);
                    *first = Some(e.context(format!("building for {}", platform::show(p))));
                }
                Err(())
            }
        }
    };
    // Once for all platforms: their steps' lines say which they are of.
    crate::progress::emit(crate::progress::Event::BuildStarted {
        dockerfile: crate::build::engine::dockerfile_name(options),
        total: 0,
        parallel: shared.parallel,
    });
    let stop = || {
        shared.stop();
        crate::sandbox::interrupt::cancel_running();
    };
    let done = scheduler::run(&nodes, jobs, &Cancel::default(), &stop, &work);
    crate::sandbox::interrupt::resume();
    match (done, first.into_inner().unwrap_or_else(|e| e.into_inner())) {
        (Ok(ids), _) => {
            if let Some((journal, stages)) = shared.take_journal() {
                write_all(store, &journal, &stages, &options.cache_to)?;
            }
            Ok(platforms.iter().cloned().zip(ids.into_values()).collect())
        }
        (Err(()), Some(e)) => Err(e),
        (Err(()), None) => Err(BuildError::Cancelled.into()),
    }
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
