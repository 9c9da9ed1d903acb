//! `strata push IMAGE DEST`: an image to `oci:DIR[:TAG]`,
//! `oci-archive:FILE[:TAG]` or `docker-archive:FILE[:REF]`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

use super::compression::CompressionFlags;
use super::images::open_store;
use super::save::{name_images, write_file};
use super::settings::Settings;
use crate::reference::Reference;
use crate::store::config::ManifestFormat;
use crate::store::transport::{export, export_oci_dir, ExportFormat, Named, Transport};

#[derive(Debug, clap::Args)]
pub struct PushArgs {
    /// Image (name, id or id prefix)
    #[arg(value_name = "IMAGE")]
    image: String,
    /// oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker-archive:FILE[:REF]
    #[arg(value_name = "DESTINATION")]
    destination: Option<String>,
    #[command(flatten)]
    registry: crate::registry::transport::PushFlags,
    /// Layer compression for a registry, oci: and oci-archive:
    /// (docker-archive layers are uncompressed)
    #[command(flatten)]
    compression: CompressionFlags,
}

pub fn run(settings: &Settings, args: &PushArgs) -> Result<ExitCode> {
    let store = open_store(settings)?;
    let dest = args.destination.as_deref();
    if let Some(reference) = dest.map_or(Some(None), |d| {
        crate::registry::transport::registry_reference(d).map(Some)
    }) {
        let reference = reference.transpose()?;
        crate::registry::transport::run_push(
            &store,
            &args.image,
            reference.as_ref(),
            &args.registry,
            args.compression.choice(true)?,
        )
        .with_context(|| format!("pushing {}", args.image))?;
        return Ok(ExitCode::SUCCESS);
    }
    // The digest alone on stdout; compressing lines on stderr.
    crate::progress::configure(crate::progress::Config {
        transfers: crate::progress::Stream::Stderr,
        ..Default::default()
    });
    let transport = Transport::parse(dest.unwrap_or_default())?;
    check_format(&transport, args.registry.format)?;
    let mut named = name_images(&store, std::slice::from_ref(&args.image))?;
    let Some(mut image) = named.pop() else {
        anyhow::bail!("no such image: {}", args.image);
    };
    let digest = match transport {
        Transport::Oci { dir, tag } => export_oci_dir(
            &store,
            &image.id,
            tag.as_deref(),
            &dir,
            args.compression.choice(true)?,
            &Default::default(),
        )?,
        Transport::OciArchive { file, tag } => {
            image.names = match (tag, image.names.first()) {
                (Some(t), Some(r)) => vec![r.with_tag(&t)?],
                (Some(t), None) => vec![Reference::parse(&format!("localhost/image:{t}"))?],
                (None, _) => Vec::new(),
            };
            let format = ExportFormat::OciArchive(args.compression.choice(true)?);
            write_archive(&store, &file, image, format)?
        }
        Transport::DockerArchive { file, reference } => {
            if let Some(r) = reference {
                image.names = vec![Reference::parse(&r)?];
            }
            write_archive(&store, &file, image, ExportFormat::DockerArchive)?
        }
    };
    println!("{digest}");
    Ok(ExitCode::SUCCESS)
}

/// A local transport has one manifest format (see `store::transport`), so
/// an explicit `--format` naming the other is refused rather than ignored.
fn check_format(transport: &Transport, format: Option<ManifestFormat>) -> Result<()> {
    let (native, names) = match transport {
        Transport::Oci { .. } | Transport::OciArchive { .. } => {
            (ManifestFormat::Oci, "oci: and oci-archive:")
        }
        Transport::DockerArchive { .. } => (ManifestFormat::Docker, "docker-archive:"),
    };
    match format {
        Some(f) if f != native => {
            bail!("--format {f}: {names} images are always in {native} format; push to a registry for {f} manifests")
        }
        _ => Ok(()),
    }
}

fn write_archive(
    store: &crate::store::Store,
    file: &Path,
    image: Named,
    format: ExportFormat,
) -> Result<crate::digest::Digest> {
    let mut digest = None;
    write_file(file, |out| {
        let (d, out) = export(store, &[image], format, out)?;
        digest = d.into_iter().next();
        Ok(out)
    })?;
    digest.ok_or_else(|| anyhow::anyhow!("nothing was exported"))
}
