//! `strata load [-i FILE]`: a docker-archive or OCI archive from a file or
//! standard input into the store.

use std::io;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

use super::images::open_store;
use super::import::{open_input, progress, warn_skipped};
use super::settings::Settings;
use crate::store::transport::{import, Imported};

#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// Read from a file instead of standard input
    #[arg(short, long, value_name = "FILE")]
    input: Option<PathBuf>,
    /// Suppress the load output
    #[arg(short, long)]
    quiet: bool,
}

pub fn run(settings: &Settings, args: &LoadArgs) -> Result<ExitCode> {
    let store = open_store(settings)?;
    let staging = store.staging()?;
    let path = match &args.input {
        Some(p) => p.clone(),
        None => {
            // manifest.json may come last: spool the stream first.
            let spool = staging.file("load");
            let (input, len) = open_input("-")?;
            let bar = progress(len, "Reading");
            let mut f = fs_err::File::create(&spool)
                .with_context(|| format!("creating {}", spool.display()))?;
            io::copy(&mut bar.wrap_read(input), &mut f).context("reading standard input")?;
            bar.finish_and_clear();
            spool
        }
    };
    let loaded =
        import(&store, &path, None, None).with_context(|| format!("loading {}", path.display()))?;
    if !args.quiet {
        report(&loaded);
    }
    Ok(ExitCode::SUCCESS)
}

/// `Loaded image: NAME` per tag, `Loaded image ID: ID` for untagged images.
pub(super) fn report(loaded: &[Imported]) {
    for img in loaded {
        for stats in &img.applied {
            warn_skipped(stats);
        }
        if img.tags.is_empty() {
            println!("Loaded image ID: {}", img.id);
        }
        for t in &img.tags {
            println!("Loaded image: {}", t.familiar());
        }
    }
}
