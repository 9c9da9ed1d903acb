//! Image transports to and from local files, as skopeo names them:
//! `oci:DIR[:TAG]` (an OCI image layout), `oci-archive:FILE[:TAG]` (the same
//! as a tar), `docker-archive:FILE[:REF]` (what `docker save` writes and
//! `docker load` reads: manifest.json, repositories, config and layer.tar
//! files).
//!
//! Export is deterministic: layer blobs are the kept blobs of
//! [`Store::layer_blob`](super::Store::layer_blob) (made once, then reused), configs are the stored
//! bytes, manifests and archive headers are derived from those alone
//! (sorted, mtime 0, owner 0), so exporting twice gives the same bytes and
//! the same manifest digest. Import reads either format from a directory or
//! a tar (spooled to staging first when it is a pipe, since manifest.json
//! may come last), verifies every digest on the way and publishes through
//! [`Store::commit_image`](super::Store::commit_image).
//!
//! Each transport has one manifest format whatever an image's recorded
//! `--format`: an OCI layout holds OCI manifests and a docker-archive is
//! Docker's, as buildah writes them (it converts a Docker-format image to
//! OCI for `oci:`, and skopeo's and umoci's layout readers look for OCI
//! manifests only).

mod export;
mod import;
mod source;

use std::path::PathBuf;

pub use export::{export, export_oci_dir, ExportFormat, Named};
pub use import::{import, Imported};

use super::StoreError;

/// The OCI annotation naming a manifest in an index.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
/// containerd's annotation with the full image name (docker load reads it).
pub const IMAGE_NAME_ANNOTATION: &str = "io.containerd.image.name";

/// A parsed transport address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// `oci:DIR[:TAG]`.
    Oci { dir: PathBuf, tag: Option<String> },
    /// `oci-archive:FILE[:TAG]`.
    OciArchive { file: PathBuf, tag: Option<String> },
    /// `docker-archive:FILE[:REF]`.
    DockerArchive {
        file: PathBuf,
        reference: Option<String>,
    },
}

impl Transport {
    /// Parse `NAME:PATH[:EXTRA]`; the path ends at the first `:` after the
    /// transport name, as skopeo splits it.
    pub fn parse(s: &str) -> Result<Transport, StoreError> {
        let invalid = |reason: &str| StoreError::Invalid {
            what: format!("transport {s:?}"),
            reason: reason.into(),
        };
        let (name, rest) = s.split_once(':').ok_or_else(|| {
            invalid("expected oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker-archive:FILE[:REF]")
        })?;
        let (path, extra) = match rest.split_once(':') {
            Some((p, e)) => (p, Some(e.to_string()).filter(|e| !e.is_empty())),
            None => (rest, None),
        };
        if path.is_empty() {
            return Err(invalid("the path is empty"));
        }
        let path = PathBuf::from(path);
        match name {
            "oci" => Ok(Transport::Oci {
                dir: path,
                tag: extra,
            }),
            "oci-archive" => Ok(Transport::OciArchive {
                file: path,
                tag: extra,
            }),
            "docker-archive" => Ok(Transport::DockerArchive {
                file: path,
                reference: extra,
            }),
            "docker" => Err(invalid("the registry transport is not supported yet")),
            _ => Err(invalid(
                "unknown transport (oci, oci-archive, docker-archive)",
            )),
        }
    }
}

#[cfg(test)]
mod tests;
