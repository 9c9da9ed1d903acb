//! `strata system df | prune [-a] | check`: the store's usage, its cleanup,
//! and its consistency check (exit 1 with the list of damage).

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;

use super::format::{write_table, Format};
use super::images::{human_size, open_store};
use super::settings::Settings;
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct SystemArgs {
    #[command(subcommand)]
    command: SystemCommand,
}

#[derive(Debug, clap::Subcommand)]
enum SystemCommand {
    /// Show disk usage: images, layers, blobs, containers, build cache
    Df {
        /// Output: table, json, or a Go template (`table ` first for a header)
        #[arg(long, value_name = "FORMAT")]
        format: Option<String>,
    },
    /// Remove dangling images, unused layers and blobs, orphaned temp files
    Prune {
        /// Remove all images not used by a container, not just dangling ones
        #[arg(short, long)]
        all: bool,
        /// Do not prompt (strata never prompts; accepted for Docker compatibility)
        #[arg(short, long)]
        force: bool,
        /// Prune the build cache only (its entries and the images only it keeps)
        #[arg(long)]
        build_cache: bool,
        /// Remove the RUN --mount=type=cache directories not in use (also with -a)
        #[arg(long, conflicts_with = "build_cache")]
        cache_mounts: bool,
        /// With --build-cache: until=DURATION (entries not used for that long, e.g. 24h)
        #[arg(long, value_name = "FILTER", requires = "build_cache")]
        filter: Vec<String>,
        /// With --build-cache: keep the most recently used entries up to SIZE
        #[arg(long, value_name = "SIZE", requires = "build_cache", value_parser = crate::layer::limits::parse_size)]
        keep_storage: Option<u64>,
    },
    /// Verify every blob, link and layer directory of the store
    Check,
}

pub fn run(settings: &Settings, args: &SystemArgs) -> Result<ExitCode> {
    let store = open_store(settings)?;
    let mut out = std::io::stdout().lock();
    match &args.command {
        SystemCommand::Df { ref format } => df(&store, format.as_deref(), &mut out)?,
        SystemCommand::Prune {
            build_cache: true,
            filter,
            keep_storage,
            ..
        } => prune_build_cache(&store, filter, *keep_storage, &mut out)?,
        SystemCommand::Prune {
            cache_mounts: true, ..
        } => prune_cache_mounts(&store, &mut out)?,
        SystemCommand::Prune { all, .. } => {
            let mut rep = store.prune(*all)?;
            if *all {
                // The build's records of what each step saw go with -a.
                rep.bytes += crate::build::explain::forget(&store, None)?;
            }
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
            if *all {
                prune_cache_mounts(&store, &mut out)?;
            }
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

/// `system prune --build-cache`: what `docker builder prune` prints.
fn prune_build_cache(
    store: &Store,
    filter: &[String],
    keep_storage: Option<u64>,
    out: &mut impl Write,
) -> Result<()> {
    let mut filters = crate::build::cache_gc::Filters {
        until: None,
        keep_storage,
    };
    for f in filter {
        match f.split_once('=') {
            Some(("until", d)) => {
                filters.until = Some(
                    humantime::parse_duration(d)
                        .map_err(|e| anyhow::anyhow!("--filter {f:?}: {e}"))?,
                )
            }
            _ => anyhow::bail!("--filter {f:?}: the build cache is filtered by until=DURATION"),
        }
    }
    let pruned = crate::build::cache_gc::prune(store, filters)?;
    if !pruned.entries.is_empty() {
        writeln!(out, "Deleted build cache objects:")?;
        for e in &pruned.entries {
            writeln!(out, "{}", &e.key.hex()[..25])?;
        }
    }
    writeln!(out, "Total reclaimed space: {}", human_size(pruned.bytes))?;
    Ok(())
}

/// `system prune --cache-mounts` (and `-a`): every cache mount no build
/// is using.
fn prune_cache_mounts(store: &Store, out: &mut impl Write) -> Result<()> {
    let (count, bytes) = store.prune_cache_mounts()?;
    writeln!(out, "Deleted {count} cache mount(s)")?;
    writeln!(out, "Total reclaimed space: {}", human_size(bytes))?;
    Ok(())
}

/// Column titles of `--format 'table ...'`, by field.
const DF_HEADERS: &[(&str, &str)] = &[
    ("Active", "ACTIVE"),
    ("Reclaimable", "RECLAIMABLE"),
    ("Size", "SIZE"),
    ("TotalCount", "TOTAL"),
    ("Type", "TYPE"),
];

/// `system df`: Docker's rows (images, containers, build cache) and
/// strata's own (layers, blobs, RUN cache mounts). Containers are active while running.
fn df(store: &Store, format: Option<&str>, out: &mut impl Write) -> Result<()> {
    let format = Format::parse(format)?;
    let mut du = store.disk_usage()?;
    du.cache = crate::build::cache_gc::usage(store)?;
    let (total, active, size, free) = store.cache_mounts_usage()?;
    let mounts = crate::store::UsageRow {
        total,
        active,
        size,
        reclaimable: free,
    };
    let rows = [
        ("Images", &du.images, true),
        ("Layers", &du.layers, true),
        ("Blobs", &du.blobs, false),
        ("Containers", &du.containers, true),
        ("Build Cache", &du.cache, false),
        ("Cache Mounts", &mounts, false),
    ];
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|(name, r, percent)| {
            [
                name.to_string(),
                r.total.to_string(),
                r.active.to_string(),
                human_size(r.size),
                reclaimable(r, *percent),
            ]
        })
        .collect();
    if let Format::Template { .. } = format {
        let fields: Vec<serde_json::Value> = cells
            .iter()
            .map(|[t, total, active, size, rec]| {
                serde_json::json!({
                    "Active": active, "Reclaimable": rec, "Size": size,
                    "TotalCount": total, "Type": t,
                })
            })
            .collect();
        return format.write_rows(out, &fields, DF_HEADERS);
    }
    let table: Vec<Vec<String>> = cells.into_iter().map(Vec::from).collect();
    write_table(
        out,
        &["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"],
        &table,
    )?;
    Ok(())
}

/// `1.987MB (100%)`, Docker's RECLAIMABLE for images and containers.
fn reclaimable(r: &crate::store::UsageRow, percent: bool) -> String {
    let size = human_size(r.reclaimable);
    match (percent, r.size) {
        (true, total) if total > 0 => {
            format!("{size} ({}%)", r.reclaimable.saturating_mul(100) / total)
        }
        _ => size,
    }
}
