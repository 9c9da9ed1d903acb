//! `strata diff CONTAINER`: A/C/D lines, as `docker diff`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;

use super::images::open_store;
use super::settings::Settings;
use crate::container::{self, changes};

#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// The container (name, id or id prefix)
    container: String,
}

pub fn run(settings: &Settings, args: &DiffArgs) -> Result<ExitCode> {
    let store = open_store(settings)?;
    let c = container::find(&store, &args.container)?;
    c.sync_upper(&store)?;
    let lowers = store.lowerdirs(&c.state.image)?;
    let mut out = std::io::stdout().lock();
    for change in changes::list(&c.upper(), &lowers)? {
        writeln!(out, "{} {}", change.kind.letter(), change.path)?;
    }
    Ok(ExitCode::SUCCESS)
}
