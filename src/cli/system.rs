//! `strata system df | prune [-a] | check`: the store's usage, its cleanup,
//! and its consistency check (exit 1 with the list of damage).

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;

use super::images::{human_size, open_store, write_table};
use super::settings::Settings;

#[derive(Debug, clap::Args)]
pub struct SystemArgs {
    #[command(subcommand)]
    command: SystemCommand,
}

#[derive(Debug, clap::Subcommand)]
enum SystemCommand {
    /// Show disk usage: images, layers, blobs, containers, build cache
    Df,
    /// Remove dangling images, unused layers and blobs, orphaned temp files
    Prune {
        /// Remove all images not used by a container, not just dangling ones
        #[arg(short, long)]
        all: bool,
        /// Do not prompt (strata never prompts; accepted for Docker compatibility)
        #[arg(short, long)]
        force: bool,
    },
    /// Verify every blob, link and layer directory of the store
    Check,
}

pub fn run(settings: &Settings, args: &SystemArgs) -> Result<ExitCode> {
    let store = open_store(settings)?;
    let mut out = std::io::stdout().lock();
    match args.command {
        SystemCommand::Df => {
            let du = store.disk_usage()?;
            let row = |name: &str, r: &crate::store::UsageRow| {
                vec![
                    name.to_string(),
                    r.total.to_string(),
                    r.active.to_string(),
                    human_size(r.size),
                    human_size(r.reclaimable),
                ]
            };
            let rows = vec![
                row("Images", &du.images),
                row("Layers", &du.layers),
                row("Blobs", &du.blobs),
                row("Containers", &du.containers),
                row("Build Cache", &du.cache),
            ];
            write_table(
                &mut out,
                &["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"],
                &rows,
            )?;
        }
        SystemCommand::Prune { all, force: _ } => {
            let rep = store.prune(all)?;
            if !rep.images.is_empty() {
                writeln!(out, "Deleted Images:")?;
                for id in &rep.images {
                    writeln!(out, "deleted: {id}")?;
                }
                writeln!(out)?;
            }
            writeln!(
                out,
                "Deleted {} layer(s), {} blob(s), {} temporary entr{}",
                rep.layers,
                rep.blobs,
                rep.temp_entries,
                if rep.temp_entries == 1 { "y" } else { "ies" }
            )?;
            writeln!(out, "Total reclaimed space: {}", human_size(rep.bytes))?;
        }
        SystemCommand::Check => {
            let rep = store.check()?;
            for g in &rep.garbage {
                writeln!(out, "note: {g} (system prune removes it)")?;
            }
            if rep.problems.is_empty() {
                writeln!(
                    out,
                    "ok: {} image(s), {} layer(s), {} blob(s) checked",
                    rep.images, rep.layers, rep.blobs
                )?;
            } else {
                for p in &rep.problems {
                    writeln!(out, "damaged: {p}")?;
                }
                writeln!(out, "{} problem(s) found", rep.problems.len())?;
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
