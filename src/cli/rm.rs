//! `strata rm [-f] CONTAINER...`

use std::process::ExitCode;

use anyhow::Result;

use super::images::open_store;
use super::settings::Settings;
use crate::container;

#[derive(Debug, clap::Args)]
pub struct RmArgs {
    /// Remove even a running container
    #[arg(short, long)]
    force: bool,
    /// Containers (name, id or id prefix)
    #[arg(required = true, value_name = "CONTAINER")]
    containers: Vec<String>,
}

pub fn run(settings: &Settings, args: &RmArgs) -> Result<ExitCode> {
    let store = open_store(settings)?;
    let mut failed = false;
    // As Docker: each one is tried, and the command fails if any did.
    for key in &args.containers {
        match container::remove(&store, key, args.force) {
            Ok(_) => println!("{key}"),
            Err(e) => {
                eprintln!("strata: {e}");
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
