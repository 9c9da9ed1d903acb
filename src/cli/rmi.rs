//! `strata rmi [-f] [--no-prune] IMAGE...`: untag, and delete images no
//! tag or container holds, with the untagged parents they leave behind
//! (as Docker) and the layers and blobs nothing else uses.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;

use super::images::open_store;
use super::settings::Settings;
use crate::store::RemoveEvent;

#[derive(Debug, clap::Args)]
pub struct RmiArgs {
    /// Remove even if several tags or a container use the image
    #[arg(short, long)]
    force: bool,
    /// Do not delete untagged parents
    #[arg(long)]
    no_prune: bool,
    /// Images (name, id or id prefix)
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<String>,
}

pub fn run(settings: &Settings, args: &RmiArgs) -> Result<ExitCode> {
    let store = open_store(settings)?;
    let mut out = std::io::stdout().lock();
    let mut failed = false;
    for name in &args.images {
        match store.remove_image(name, args.force, !args.no_prune) {
            Ok(events) => {
                for e in events {
                    match e {
                        RemoveEvent::Untagged(r) => writeln!(out, "Untagged: {r}")?,
                        RemoveEvent::Deleted(d) => writeln!(out, "Deleted: {d}")?,
                    }
                }
            }
            Err(e) => {
                failed = true;
                eprintln!("Error: {}", crate::store::error_chain(&e));
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
