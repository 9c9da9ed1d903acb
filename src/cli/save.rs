//! `strata save [-o FILE] [--format docker-archive|oci-archive] IMAGE...`:
//! images to a tar that `docker load` (or skopeo, for OCI) reads.

use std::collections::BTreeMap;
use std::io::{self, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::ValueEnum;

use super::compression::CompressionFlags;
use super::images::open_store;
use super::import::progress;
use super::settings::Settings;
use crate::digest::ImageId;
use crate::reference::Reference;
use crate::store::transport::{export, ExportFormat, Named};
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct SaveArgs {
    /// Write to a file instead of standard output
    #[arg(short, long, value_name = "FILE")]
    output: Option<String>,
    /// Archive format
    #[arg(long, value_enum, default_value_t = Format::DockerArchive)]
    format: Format,
    /// Layer compression of an oci-archive (docker-archive layers are
    /// uncompressed)
    #[command(flatten)]
    compression: CompressionFlags,
    /// Images (name, id or id prefix)
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    DockerArchive,
    OciArchive,
}

pub fn run(settings: &Settings, args: &SaveArgs) -> Result<ExitCode> {
    // Compressing lines on stderr: stdout may carry the archive.
    crate::progress::configure(crate::progress::Config {
        transfers: crate::progress::Stream::Stderr,
        ..Default::default()
    });
    let store = open_store(settings)?;
    let named = name_images(&store, &args.images)?;
    let format = match args.format {
        Format::DockerArchive => ExportFormat::DockerArchive,
        Format::OciArchive => ExportFormat::OciArchive(args.compression.choice(true)?),
    };
    match &args.output {
        Some(file) => write_file(Path::new(file), |out| {
            let bar = progress(None, "Saving");
            let (_, out) = export(
                &store,
                &named,
                format,
                BarWriter {
                    inner: out,
                    bar: &bar,
                },
            )?;
            bar.finish_and_clear();
            Ok(out.inner)
        })?,
        None => {
            if io::stdout().is_terminal() {
                bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
            }
            let (_, mut out) = export(
                &store,
                &named,
                format,
                io::BufWriter::new(io::stdout().lock()),
            )?;
            out.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A writer that advances a progress bar (indicatif's wrapper cannot give
/// the inner writer back).
struct BarWriter<'a, W> {
    inner: W,
    bar: &'a indicatif::ProgressBar,
}

impl<W: Write> Write for BarWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Resolve the arguments to images, each with the names it was asked by
/// (`busybox` saves with RepoTags busybox:latest; an id saves without).
pub(super) fn name_images(store: &Store, args: &[String]) -> Result<Vec<Named>> {
    let index = store.index()?;
    let mut by_id: BTreeMap<ImageId, Vec<Reference>> = BTreeMap::new();
    let mut order = Vec::new();
    for arg in args {
        let id = store.resolve(arg)?;
        if !by_id.contains_key(&id) {
            order.push(id.clone());
        }
        let names = by_id.entry(id.clone()).or_default();
        if let Ok(r) = Reference::parse(arg) {
            if index.lookup(&r) == Some(&id) && r.digest().is_none() && !names.contains(&r) {
                names.push(r);
            }
        }
    }
    Ok(order
        .into_iter()
        .map(|id| Named {
            names: by_id.remove(&id).unwrap_or_default(),
            id,
            annotations: Default::default(),
        })
        .collect())
}

/// Write through a temporary file next to `path`, renamed into place only
/// when complete: a failed save leaves no partial archive.
pub(super) fn write_file(
    path: &Path,
    write: impl FnOnce(io::BufWriter<std::fs::File>) -> Result<io::BufWriter<std::fs::File>>,
) -> Result<()> {
    crate::store::fsutil::write_whole_file(path, write)
        .with_context(|| format!("writing {}", path.display()))
}
