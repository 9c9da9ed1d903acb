//! Images out of the store: docker-archive and OCI (archive or directory).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};
use std::path::Path;

use serde_json::json;

use super::super::config::{
    some_map, Annotations, Descriptor, Index, Manifest, ManifestFormat, MEDIA_OCI_INDEX,
    MEDIA_OCI_MANIFEST,
};
use super::super::fsutil::io_err;
use super::super::layers::BlobCompression;
use super::super::{Store, StoreError};
use super::{IMAGE_NAME_ANNOTATION, REF_NAME_ANNOTATION};
use crate::digest::{Digest, DigestMismatch, HashingWriter, ImageId};
use crate::layer::compress::Compression;
use crate::reference::Reference;

/// Which archive to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// Uncompressed layer tars, as `docker save` writes them.
    DockerArchive,
    /// An OCI layout in a tar, layers compressed so (gzip unless asked).
    OciArchive(BlobCompression),
}

/// One image to export and the names it goes out under.
#[derive(Debug, Clone)]
pub struct Named {
    pub id: ImageId,
    pub names: Vec<Reference>,
    /// `--annotation`s of a build output (OCI only: a docker-archive has
    /// no place for them).
    pub annotations: Annotations,
}

/// What an image needs in an export: its blobs and its manifest.
struct Plan {
    config: Descriptor,
    layers: Vec<Descriptor>,
    manifest: Vec<u8>,
    manifest_digest: Digest,
}

fn plan(
    store: &Store,
    id: &ImageId,
    format: ManifestFormat,
    compression: BlobCompression,
    annotations: &BTreeMap<String, String>,
) -> Result<Plan, StoreError> {
    let config_bytes = store.config_bytes(id)?;
    let config = store.config(id)?;
    let mut layers = Vec::new();
    let mut made = false;
    for diff_id in &config.rootfs.diff_ids {
        // Compressing takes a while: shown as a push shows it.
        let mut show = crate::progress::compressing_pieces(diff_id.digest());
        let blob = store.layer_blob_with(diff_id, compression, &mut |piece| {
            if compression.format != Compression::None {
                made = true;
                show(piece);
            }
        })?;
        layers.push(Descriptor::new(
            format.layer_type(blob.compression),
            blob.digest,
            blob.size,
        ));
    }
    if made {
        crate::progress::transfers_done();
    }
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(format.manifest_type().into()),
        config: Descriptor::new(
            format.config_type(),
            id.0.clone(),
            config_bytes.len() as u64,
        ),
        layers: layers.clone(),
        annotations: some_map(annotations),
        extra: BTreeMap::new(),
    };
    let bytes = serde_json::to_vec(&manifest).map_err(|e| StoreError::Invalid {
        what: format!("manifest of {id}"),
        reason: e.to_string(),
    })?;
    Ok(Plan {
        config: manifest.config,
        layers,
        manifest_digest: Digest::of(&bytes),
        manifest: bytes,
    })
}

/// Deterministic tar writing: mode 0644 (0755 for directories), owner 0,
/// mtime 0, no user names.
struct ArchiveWriter<W: Write> {
    tar: tar::Builder<W>,
    written: BTreeSet<String>,
}

impl<W: Write> ArchiveWriter<W> {
    fn new(out: W) -> ArchiveWriter<W> {
        ArchiveWriter {
            tar: tar::Builder::new(out),
            written: BTreeSet::new(),
        }
    }

    fn header(kind: tar::EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(size);
        h
    }

    fn dir(&mut self, name: &str) -> io::Result<()> {
        if self.written.insert(name.to_string()) {
            let mut h = Self::header(tar::EntryType::Directory, 0);
            self.tar.append_data(&mut h, name, io::empty())?;
        }
        Ok(())
    }

    fn bytes(&mut self, name: &str, data: &[u8]) -> io::Result<()> {
        if self.written.insert(name.to_string()) {
            let mut h = Self::header(tar::EntryType::Regular, data.len() as u64);
            self.tar.append_data(&mut h, name, data)?;
        }
        Ok(())
    }

    fn blob(
        &mut self,
        store: &Store,
        name: &str,
        digest: &Digest,
        size: u64,
    ) -> Result<(), StoreError> {
        if !self.written.insert(name.to_string()) {
            return Ok(());
        }
        let path = store.blob_path(digest);
        let f = fs_err::File::open(&path).map_err(io_err("open", &path))?;
        let mut h = Self::header(tar::EntryType::Regular, size);
        self.tar
            .append_data(&mut h, name, io::Read::take(f, size))
            .map_err(io_err("write archive from", &path))
    }

    fn finish(self) -> io::Result<W> {
        self.tar.into_inner()
    }
}

/// Write `images` as a docker-archive or an OCI archive to `out`; returns
/// each image's manifest digest.
pub fn export<W: Write>(
    store: &Store,
    images: &[Named],
    format: ExportFormat,
    out: W,
) -> Result<(Vec<Digest>, W), StoreError> {
    let mut w = ArchiveWriter::new(out);
    let digests = match format {
        ExportFormat::DockerArchive => docker_archive(store, images, &mut w)?,
        ExportFormat::OciArchive(compression) => oci_archive(store, images, compression, &mut w)?,
    };
    let out = w.finish().map_err(write_err)?;
    Ok((digests, out))
}

fn write_err(e: io::Error) -> StoreError {
    io_err("write archive", "-")(e)
}

/// `docker save`'s layout: uncompressed layer tars, manifest.json and
/// repositories. A pulled layer goes out as the bytes it came in (its diff
/// id names them), overlay xattr records included: rewriting them would
/// change the diff id and so the image id; strata drops such records when
/// it unpacks a layer, as Docker keeps them through tar-split.
fn docker_archive<W: Write>(
    store: &Store,
    images: &[Named],
    w: &mut ArchiveWriter<W>,
) -> Result<Vec<Digest>, StoreError> {
    let mut digests = Vec::new();
    let mut manifest = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for img in images {
        let no = BTreeMap::new();
        let p = plan(
            store,
            &img.id,
            ManifestFormat::Docker,
            Compression::None.into(),
            &no,
        )?;
        let config_name = format!("{}.json", img.id.hex());
        w.blob(store, &config_name, &p.config.digest, p.config.size)?;
        let mut layer_names = Vec::new();
        for l in &p.layers {
            let name = format!("{}.tar", l.digest.hex());
            w.blob(store, &name, &l.digest, l.size)?;
            layer_names.push(name);
        }
        let tags: Vec<String> = img
            .names
            .iter()
            .filter(|r| r.tag().is_some())
            .map(Reference::familiar)
            .collect();
        for r in img.names.iter() {
            if let (Some(tag), Some(top)) = (r.tag(), p.layers.last()) {
                repositories
                    .entry(r.familiar_repository())
                    .or_default()
                    .insert(tag.to_string(), top.digest.hex().to_string());
            }
        }
        manifest.push(json!({"Config": config_name, "RepoTags": tags, "Layers": layer_names}));
        digests.push(p.manifest_digest);
    }
    w.bytes("manifest.json", &json_bytes(&manifest)?)
        .map_err(write_err)?;
    w.bytes("repositories", &json_bytes(&repositories)?)
        .map_err(write_err)?;
    Ok(digests)
}

/// An OCI layout in a tar: oci-layout, blobs and index.json.
fn oci_archive<W: Write>(
    store: &Store,
    images: &[Named],
    compression: BlobCompression,
    w: &mut ArchiveWriter<W>,
) -> Result<Vec<Digest>, StoreError> {
    w.bytes("oci-layout", OCI_LAYOUT).map_err(write_err)?;
    w.dir("blobs/").map_err(write_err)?;
    w.dir("blobs/sha256/").map_err(write_err)?;
    let mut digests = Vec::new();
    let mut index = Vec::new();
    for img in images {
        let a = &img.annotations;
        let p = plan(
            store,
            &img.id,
            ManifestFormat::Oci,
            compression,
            &a.manifest,
        )?;
        w.blob(
            store,
            &blob_name(&p.config.digest),
            &p.config.digest,
            p.config.size,
        )?;
        for l in &p.layers {
            w.blob(store, &blob_name(&l.digest), &l.digest, l.size)?;
        }
        w.bytes(&blob_name(&p.manifest_digest), &p.manifest)
            .map_err(write_err)?;
        let names: Vec<Option<&Reference>> = if img.names.is_empty() {
            vec![None]
        } else {
            img.names.iter().map(Some).collect()
        };
        for name in names {
            let mut d = Descriptor::new(
                MEDIA_OCI_MANIFEST,
                p.manifest_digest.clone(),
                p.manifest.len() as u64,
            );
            let mut annotations = a.descriptor.clone();
            if let Some(r) = name {
                annotations.extend(save_annotations(r));
            }
            d.annotations = some_map(&annotations);
            index.push(d);
        }
        digests.push(p.manifest_digest);
    }
    let index_annotations = images.iter().flat_map(|i| i.annotations.index.clone());
    w.bytes(
        "index.json",
        &index_bytes(index, index_annotations.collect())?,
    )
    .map_err(write_err)?;
    Ok(digests)
}

/// Push one image into an OCI layout directory, merging with its
/// index.json (an entry with the same ref name is replaced); layers
/// compressed with `compression` (made once and kept).
pub fn export_oci_dir(
    store: &Store,
    id: &ImageId,
    tag: Option<&str>,
    dir: &Path,
    compression: impl Into<BlobCompression>,
    annotations: &Annotations,
) -> Result<Digest, StoreError> {
    let compression = compression.into();
    let blobs = dir.join("blobs/sha256");
    fs_err::create_dir_all(&blobs).map_err(io_err("create directory", &blobs))?;
    let layout = dir.join("oci-layout");
    if !layout.exists() {
        write_replace(&layout, OCI_LAYOUT)?;
    }
    let p = plan(
        store,
        id,
        ManifestFormat::Oci,
        compression,
        &annotations.manifest,
    )?;
    let copy = |digest: &Digest| -> Result<(), StoreError> {
        let dest = blobs.join(digest.hex());
        if !dest.exists() {
            copy_blob(store, digest, &dest)?;
        }
        Ok(())
    };
    copy(&p.config.digest)?;
    for l in &p.layers {
        copy(&l.digest)?;
    }
    let mdest = blobs.join(p.manifest_digest.hex());
    if !mdest.exists() {
        write_replace(&mdest, &p.manifest)?;
    }
    let index_path = dir.join("index.json");
    let (mut manifests, mut index_annotations) = match fs_err::read(&index_path) {
        Ok(b) => {
            let index = serde_json::from_slice::<Index>(&b).map_err(|source| StoreError::Json {
                path: index_path.clone(),
                source,
            })?;
            (index.manifests, index.annotations.unwrap_or_default())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => (Vec::new(), BTreeMap::new()),
        Err(e) => return Err(io_err("read", &index_path)(e)),
    };
    index_annotations.extend(annotations.index.clone());
    let mut d = Descriptor::new(
        MEDIA_OCI_MANIFEST,
        p.manifest_digest.clone(),
        p.manifest.len() as u64,
    );
    let mut descriptor = annotations.descriptor.clone();
    if let Some(tag) = tag {
        manifests.retain(|m| {
            m.annotations
                .as_ref()
                .and_then(|a| a.get(REF_NAME_ANNOTATION))
                .is_none_or(|t| t != tag)
        });
        descriptor.insert(REF_NAME_ANNOTATION.to_string(), tag.to_string());
    }
    d.annotations = some_map(&descriptor);
    manifests.push(d);
    write_replace(&index_path, &index_bytes(manifests, index_annotations)?)?;
    Ok(p.manifest_digest)
}

const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

fn blob_name(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

/// Annotations `docker save` writes for a named image in an OCI index.
fn save_annotations(r: &Reference) -> BTreeMap<String, String> {
    let mut a = BTreeMap::from([(IMAGE_NAME_ANNOTATION.to_string(), r.to_string())]);
    if let Some(tag) = r.tag() {
        a.insert(REF_NAME_ANNOTATION.to_string(), tag.to_string());
    }
    a
}

fn index_bytes(
    manifests: Vec<Descriptor>,
    annotations: BTreeMap<String, String>,
) -> Result<Vec<u8>, StoreError> {
    json_bytes(&Index {
        schema_version: 2,
        media_type: Some(MEDIA_OCI_INDEX.into()),
        manifests,
        annotations: some_map(&annotations),
        extra: BTreeMap::new(),
    })
}

fn json_bytes<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::Invalid {
        what: "archive metadata".into(),
        reason: e.to_string(),
    })
}

/// Stream a store blob to `dest` (via a temporary file beside it), checking
/// its digest on the way: constant memory whatever the layer size.
fn copy_blob(store: &Store, digest: &Digest, dest: &Path) -> Result<(), StoreError> {
    let src = store.blob_path(digest);
    let parent = dest.parent().unwrap_or(Path::new("."));
    let tmp = tempfile::NamedTempFile::new_in(parent)
        .map_err(io_err("create temporary file in", parent))?;
    let mut reader = fs_err::File::open(&src).map_err(io_err("open", &src))?;
    let mut w = HashingWriter::new(io::BufWriter::new(tmp));
    io::copy(&mut reader, &mut w).map_err(io_err("copy", &src))?;
    let (found, _, buf) = w.finish();
    if &found != digest {
        return Err(StoreError::DigestMismatch(DigestMismatch {
            what: src.display().to_string(),
            expected: digest.clone(),
            found,
        }));
    }
    let tmp = buf
        .into_inner()
        .map_err(|e| io_err("write", dest)(e.into_error()))?;
    tmp.as_file().sync_all().map_err(io_err("fsync", dest))?;
    tmp.persist(dest)
        .map_err(|e| io_err("rename into place", dest)(e.error))?;
    Ok(())
}

/// Write a file next to `dest`, fsync, rename over it.
fn write_replace(dest: &Path, data: &[u8]) -> Result<(), StoreError> {
    let parent = dest.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(parent)
        .map_err(io_err("create temporary file in", parent))?;
    tmp.write_all(data).map_err(io_err("write", dest))?;
    tmp.as_file().sync_all().map_err(io_err("fsync", dest))?;
    tmp.persist(dest)
        .map_err(|e| io_err("rename into place", dest)(e.error))?;
    Ok(())
}
