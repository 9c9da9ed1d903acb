//! `strata pull SOURCE`: an image from `oci:DIR[:TAG]`,
//! `oci-archive:FILE[:TAG]` or `docker-archive:FILE[:REF]`.

use std::process::ExitCode;

use anyhow::{Context, Result};

use super::images::open_store;
use super::load::report;
use super::settings::Settings;
use crate::reference::Reference;
use crate::store::transport::{import, Transport};

#[derive(Debug, clap::Args)]
pub struct PullArgs {
    /// Tag the pulled image with this name
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Suppress the output but the image id
    #[arg(short, long)]
    quiet: bool,
    /// oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker-archive:FILE[:REF]
    #[arg(value_name = "SOURCE")]
    source: String,
    #[command(flatten)]
    registry: crate::registry::transport::PullFlags,
}

pub fn run(settings: &Settings, args: &PullArgs) -> Result<ExitCode> {
    let store = open_store(settings)?;
    if let Some(reference) = crate::registry::transport::registry_reference(&args.source) {
        let reference = reference?;
        crate::progress::configure(crate::progress::Config {
            quiet: args.quiet,
            transfers: crate::progress::Stream::Stdout,
            stdout_to_stderr: false,
            ..Default::default()
        });
        crate::registry::transport::run_pull(&store, &reference, &args.registry)
            .with_context(|| format!("pulling {}", args.source))?;
        // As `docker pull` ends: the full reference (also when quiet).
        if !args.registry.all_tags {
            println!("{reference}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let name = args.name.as_deref().map(Reference::parse).transpose()?;
    let (path, select) = match Transport::parse(&args.source)? {
        Transport::Oci { dir, tag } => (dir, tag),
        Transport::OciArchive { file, tag } => (file, tag),
        Transport::DockerArchive { file, reference } => (file, reference),
    };
    let pulled = import(&store, &path, select.as_deref(), name.as_ref())
        .with_context(|| format!("pulling {}", args.source))?;
    if !args.quiet {
        report(&pulled);
    }
    for img in &pulled {
        println!("{}", img.id);
    }
    Ok(ExitCode::SUCCESS)
}
