//! `strata search TERM [--limit N]`: Docker Hub's search, or the filtered
//! catalog of the registry named in TERM (`localhost:5000/app`).

use std::process::ExitCode;

use anyhow::{Context, Result};

use super::settings::Settings;
use crate::registry::flags::RegistryFlags;
use crate::registry::search::{format_table, search};

/// Docker's default number of results.
const DEFAULT_LIMIT: usize = 25;

#[derive(Debug, clap::Args)]
pub struct SearchArgs {
    /// At most this many results
    #[arg(long, default_value_t = DEFAULT_LIMIT)]
    limit: usize,
    /// Do not truncate descriptions
    #[arg(long)]
    no_trunc: bool,
    #[command(flatten)]
    registry: RegistryFlags,
    /// What to look for; `REGISTRY/TERM` searches that registry's catalog
    #[arg(value_name = "TERM")]
    term: String,
}

pub fn run(_settings: &Settings, args: &SearchArgs) -> Result<ExitCode> {
    let results = search(&args.term, args.limit, &args.registry)
        .with_context(|| format!("searching for {:?}", args.term))?;
    print!("{}", format_table(&results, !args.no_trunc));
    Ok(ExitCode::SUCCESS)
}
