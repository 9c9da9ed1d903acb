//! The exporters: each `-o` and `--push`, once, after the image is tagged.
//! They write through the store's transports (OCI layout and archive,
//! docker-archive) and the registry's push, so a build output is the same
//! bytes `strata push`/`save` would write; the root file system outputs
//! (`type=local`, `type=tar`) are the union of the image's layers as one
//! deterministic tar ([`write_merged_tar`]), unpacked for `local` by the
//! one safe extractor, owned by the calling user.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use super::provenance::{Provenance, PREDICATE_TYPE};
use super::spec::{Dest, OutputKind, OutputSpec};
use super::{Built, OutputError};
use crate::digest::{Digest, ImageId};
use crate::layer::diff::{write_merged_tar, TarOptions};
use crate::reference::Reference;
use crate::registry::attest::push_attested;
use crate::registry::flags::RegistryFlags;
use crate::registry::push::{push_image, PushOptions};
use crate::store::config::Annotations;
use crate::store::fsutil::write_whole_file;
use crate::store::transport::{export as export_archive, export_oci_dir, ExportFormat, Named};
use crate::store::{BlobCompression, Store};

/// The command's settings every output shares.
#[derive(Debug, Clone)]
pub struct ExportSettings {
    pub outputs: Vec<OutputSpec>,
    /// `--push`: every tag, after the outputs.
    pub push: bool,
    /// `-t`: the names of outputs that give none.
    pub tags: Vec<Reference>,
    /// `--compression-format`, `--compression-level`, `--force-compression`.
    pub compression: BlobCompression,
    pub annotations: Annotations,
    pub registry: RegistryFlags,
    /// The source date epoch: root file system outputs are clamped to it.
    pub epoch: Option<u64>,
    /// Step lines go to stderr (stdout carries an output).
    pub log_to_stderr: bool,
    /// `--provenance`: made after the build, attached by pushes and
    /// written beside `type=oci` files.
    pub provenance: Option<Provenance>,
}

/// What the outputs made, for `--metadata-file`.
#[derive(Debug, Clone, Default)]
pub struct Exported {
    /// The image manifest's digest, from the first output that made one.
    pub manifest: Option<Digest>,
    /// Names the image went out under.
    pub names: Vec<String>,
}

/// Whether any output (or `--push`) writes to stdout.
pub fn uses_stdout(outputs: &[OutputSpec]) -> bool {
    outputs.iter().any(|o| {
        matches!(
            &o.kind,
            OutputKind::Tar(Dest::Stdout)
                | OutputKind::Oci {
                    dest: Dest::Stdout,
                    ..
                }
                | OutputKind::Docker(Dest::Stdout)
        )
    })
}

/// Refuses what cannot work before anything is built: two outputs on
/// stdout, or one on a terminal.
pub fn check(outputs: &[OutputSpec]) -> Result<(), OutputError> {
    let on_stdout = outputs
        .iter()
        .filter(|o| uses_stdout(std::slice::from_ref(o)));
    if on_stdout.count() > 1 {
        return Err(OutputError::Invalid(
            "only one output can go to stdout (dest=-)".into(),
        ));
    }
    if uses_stdout(outputs) && std::io::stdout().is_terminal() {
        return Err(OutputError::Invalid(
            "refusing to write an archive to a terminal: redirect stdout or give dest=FILE".into(),
        ));
    }
    Ok(())
}

/// Runs every output, then `--push`.
pub fn export(store: &Store, built: &Built, s: &ExportSettings) -> Result<Exported, OutputError> {
    let mut done = Exported::default();
    for o in &s.outputs {
        let names = names_of(o, &s.tags)?;
        let made = one(store, &built.id, o, &names, s)?;
        done.manifest = done.manifest.or(made);
        done.names.extend(names.iter().map(|n| n.to_string()));
    }
    if s.push {
        for tag in &s.tags {
            let d = push(store, &built.id, tag, s, &s.compression, &s.annotations)?;
            done.manifest = done.manifest.or(Some(d));
        }
    }
    for t in &s.tags {
        if !done.names.contains(&t.to_string()) {
            done.names.push(t.to_string());
        }
    }
    Ok(done)
}

/// An output's `name=`s, else the `-t` tags.
fn names_of(o: &OutputSpec, tags: &[Reference]) -> Result<Vec<Reference>, OutputError> {
    if o.names.is_empty() {
        return Ok(tags.to_vec());
    }
    o.names
        .iter()
        .map(|n| Reference::parse(n).map_err(|e| OutputError::Invalid(format!("name={n}: {e}"))))
        .collect()
}

/// One output; the manifest digest it made, if any.
fn one(
    store: &Store,
    id: &ImageId,
    o: &OutputSpec,
    names: &[Reference],
    s: &ExportSettings,
) -> Result<Option<Digest>, OutputError> {
    let compression = BlobCompression {
        format: o.compression.unwrap_or(s.compression.format),
        level: o.compression_level.or(s.compression.level),
        force: o.force_compression.unwrap_or(s.compression.force),
    };
    let annotations = o.annotations.over(&s.annotations);
    let named = || Named {
        id: id.clone(),
        names: names.to_vec(),
        annotations: annotations.clone(),
    };
    match &o.kind {
        OutputKind::Local(dir) => local(store, id, dir, s.epoch).map(|()| None),
        OutputKind::Tar(dest) => {
            let layers = store.lowerdirs(id)?;
            let opts = TarOptions {
                clamp_mtime: s.epoch,
                reset_owners: false,
            };
            write_dest(dest, |w| {
                write_merged_tar(&bottom_first(layers), &[], &opts, w)?;
                Ok(())
            })?;
            Ok(None)
        }
        OutputKind::Oci { dest, tar: true } => {
            let d = archive(store, named(), ExportFormat::OciArchive(compression), dest)?;
            if let (Dest::File(path), Some(d)) = (dest, &d) {
                beside(path, names, d, s)?;
            }
            Ok(d)
        }
        OutputKind::Oci {
            dest: Dest::File(dir),
            tar: false,
        } => {
            let tag = names.first().and_then(|n| n.tag().map(str::to_string));
            let d = export_oci_dir(store, id, tag.as_deref(), dir, compression, &annotations)?;
            beside(dir, names, &d, s)?;
            Ok(Some(d))
        }
        OutputKind::Oci { .. } => Err(OutputError::Invalid(
            "tar=false writes a directory: dest=DIR".into(),
        )),
        OutputKind::Docker(dest) => archive(store, named(), ExportFormat::DockerArchive, dest),
        OutputKind::Image { push: p } => {
            let mut digest = None;
            for name in names {
                store.tag(&id.to_string(), name)?;
                if *p {
                    digest = digest.or(Some(push(store, id, name, s, &compression, &annotations)?));
                }
            }
            Ok(digest)
        }
    }
}

/// The store lists lower dirs top first; the merged tar wants bottom first.
fn bottom_first(mut top_first: Vec<PathBuf>) -> Vec<PathBuf> {
    top_first.reverse();
    top_first
}

fn archive(
    store: &Store,
    named: Named,
    format: ExportFormat,
    dest: &Dest,
) -> Result<Option<Digest>, OutputError> {
    let mut digest = None;
    write_dest(dest, |w| {
        let (d, _) = export_archive(store, &[named], format, w)?;
        digest = d.into_iter().next();
        Ok(())
    })?;
    Ok(digest)
}

/// Writes to stdout, or whole to a file (a failed output leaves none).
fn write_dest<F>(dest: &Dest, write: F) -> Result<(), OutputError>
where
    F: FnOnce(&mut dyn Write) -> Result<(), OutputError>,
{
    match dest {
        Dest::Stdout => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            write(&mut out)?;
            out.flush().map_err(OutputError::io("write", "stdout"))
        }
        Dest::File(path) => write_whole_file(path, |mut w| {
            write(&mut w)?;
            Ok::<_, OutputError>(w)
        })
        .map_err(|e| match e {
            OutputError::Write(source) => OutputError::Io {
                op: "write",
                path: path.display().to_string(),
                source,
            },
            other => other,
        }),
    }
}

/// `type=local`: the root file system unpacked into `dir` (made if
/// missing), owned by the calling user, device nodes skipped.
fn local(store: &Store, id: &ImageId, dir: &Path, epoch: Option<u64>) -> Result<(), OutputError> {
    fs_err::create_dir_all(dir).map_err(OutputError::io("create", dir.display()))?;
    let layers = bottom_first(store.lowerdirs(id)?);
    let opts = TarOptions {
        clamp_mtime: epoch,
        reset_owners: true,
    };
    let (reader, writer) =
        std::io::pipe().map_err(OutputError::io("create a pipe for", dir.display()))?;
    std::thread::scope(|scope| {
        let writer_thread = scope.spawn(move || write_merged_tar(&layers, &[], &opts, writer));
        let applied = crate::layer::apply::apply(reader, dir);
        let written = writer_thread
            .join()
            .map_err(|_| OutputError::Invalid("the root file system writer panicked".into()))?;
        // The writer's error explains a broken pipe on the reading side.
        written?;
        applied?;
        Ok(())
    })
}

fn push(
    store: &Store,
    id: &ImageId,
    dest: &Reference,
    s: &ExportSettings,
    compression: &BlobCompression,
    annotations: &Annotations,
) -> Result<Digest, OutputError> {
    let opts = PushOptions {
        compression: *compression,
        annotations: annotations.manifest.clone(),
        ..PushOptions::default()
    };
    let pushed = match &s.provenance {
        None => push_image(store, &id.to_string(), dest, &s.registry, &opts)?,
        Some(p) => {
            let statement = |d: &Digest| (p.statement(&dest.to_string(), d), PREDICATE_TYPE.into());
            push_attested(store, id, dest, &s.registry, &opts, &statement)?
        }
    };
    Ok(pushed.digest)
}

/// `--provenance` beside a `type=oci` file or directory: the statement
/// about its manifest `digest` as `PATH.provenance.json`.
fn beside(
    path: &Path,
    names: &[Reference],
    digest: &Digest,
    s: &ExportSettings,
) -> Result<(), OutputError> {
    let Some(p) = &s.provenance else {
        return Ok(());
    };
    let name = names
        .first()
        .map_or_else(|| "image".into(), |n| n.to_string());
    let mut file = path.as_os_str().to_owned();
    file.push(".provenance.json");
    let file = PathBuf::from(file);
    fs_err::write(&file, p.statement(&name, digest))
        .map_err(OutputError::io("write", file.display()))
}
