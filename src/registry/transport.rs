//! The registry transport of `strata pull` and `strata push`, beside the
//! store's local ones (`oci:`, `oci-archive:`, `docker-archive:`): a plain
//! reference (`busybox`, `localhost:5000/app:1`) or `docker://REF`.
//!
//! The command handlers flatten [`PullFlags`] / [`PushFlags`] into their
//! arguments and call [`registry_reference`] to tell the transports apart,
//! then [`run_pull`] / [`run_push`].

use super::flags::RegistryFlags;
use super::manifest::Platform;
use super::pull::{pull_all_tags, pull_image, PullOptions, Pulled, DEFAULT_JOBS};
use super::push::{push_image, ManifestFormat, PushOptions, Pushed};
use super::RegistryError;
use crate::reference::Reference;
use crate::store::{BlobCompression, Store};

/// The prefixes of the store's local transports.
const LOCAL_TRANSPORTS: [&str; 3] = ["oci:", "oci-archive:", "docker-archive:"];
/// The registry transport's explicit prefix.
const DOCKER_TRANSPORT: &str = "docker://";

/// Options of `pull` for the registry transport.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PullFlags {
    /// Pull the image for this platform from a multi-platform index
    /// [default: this machine's]
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<Platform>,
    /// Pull every tag of the repository
    #[arg(short = 'a', long)]
    pub all_tags: bool,
    #[command(flatten)]
    pub registry: RegistryFlags,
}

/// Options of `push` for the registry transport.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PushFlags {
    /// Manifest type to push [default: the image's, as `build` or `commit`
    /// --format recorded it; else oci]
    #[arg(long, value_enum)]
    pub format: Option<ManifestFormat>,
    #[command(flatten)]
    pub registry: RegistryFlags,
}

/// `Some(reference)` when `s` names a registry image (`docker://REF` or a
/// plain reference), `None` for a local transport.
pub fn registry_reference(s: &str) -> Option<Result<Reference, RegistryError>> {
    if LOCAL_TRANSPORTS.iter().any(|p| s.starts_with(p)) {
        return None;
    }
    let name = s.strip_prefix(DOCKER_TRANSPORT).unwrap_or(s);
    Some(Reference::parse(name).map_err(|e| RegistryError::Invalid {
        reference: crate::reference::shown(s),
        reason: e.to_string(),
    }))
}

/// `strata pull REF` (or every tag with `--all-tags`), with Docker's output.
pub fn run_pull(
    store: &Store,
    reference: &Reference,
    flags: &PullFlags,
) -> Result<Vec<Pulled>, RegistryError> {
    let opts = PullOptions {
        platform: flags.platform.clone(),
        jobs: DEFAULT_JOBS,
    };
    let pulled = if flags.all_tags {
        pull_all_tags(store, reference, &flags.registry, &opts)?
    } else {
        vec![pull_image(store, reference, &flags.registry, &opts)?]
    };
    Ok(pulled)
}

/// `strata push IMAGE [REF]`: push the store's `image` as `dest` (or as
/// itself when `dest` is `None`), making layer blobs that do not exist yet
/// with `compression` (the command's `--compression-format`).
pub fn run_push(
    store: &Store,
    image: &str,
    dest: Option<&Reference>,
    flags: &PushFlags,
    compression: BlobCompression,
) -> Result<Pushed, RegistryError> {
    let dest = match dest {
        Some(d) => d.clone(),
        None => Reference::parse(image).map_err(|e| RegistryError::Invalid {
            reference: crate::reference::shown(image),
            reason: format!("{e}: name a destination"),
        })?,
    };
    let opts = PushOptions {
        format: flags.format,
        compression,
        ..PushOptions::default()
    };
    // A multi-platform name goes out as its index and all its images.
    let list = Reference::parse(image)
        .ok()
        .and_then(|r| store.index().ok()?.list(&r).filter(|l| l.index).cloned());
    if let Some(list) = list {
        return super::push_list::push_list(store, &list, &dest, &flags.registry, &opts);
    }
    push_image(store, image, &dest, &flags.registry, &opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_table() {
        for (input, want) in [
            ("busybox", Some("docker.io/library/busybox:latest")),
            ("docker://busybox:1", Some("docker.io/library/busybox:1")),
            (
                "docker://localhost:5000/a/b",
                Some("localhost:5000/a/b:latest"),
            ),
            ("127.0.0.1:5000/app:v1", Some("127.0.0.1:5000/app:v1")),
            ("oci:/tmp/x", None),
            ("oci-archive:/tmp/x.tar:tag", None),
            ("docker-archive:/tmp/x.tar", None),
        ] {
            let got = registry_reference(input).map(|r| r.unwrap().to_string());
            assert_eq!(got.as_deref(), want, "{input}");
        }
        assert!(registry_reference("docker://Bad").unwrap().is_err());
    }
}
