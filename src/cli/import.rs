//! `strata import FILE|- [REF]`: a rootfs tarball (plain, gzip or zstd) into
//! a one-layer image, with `--change` instructions applied to its config.
//! Also the progress-bar reader the other long copies (load, save) use.

use std::io::{self, IsTerminal, Read};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use super::images::open_store;
use super::settings::Settings;
use crate::build::config_steps::ConfigEditor;
use crate::layer::apply::ApplyStats;
use crate::reference::Reference;
use crate::store::config::to_canonical_json;
use crate::store::config::History;
use crate::store::{now_rfc3339, ImageConfig};

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// Apply a Dockerfile instruction to the image (CMD, ENTRYPOINT, ENV,
    /// EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR)
    #[arg(short, long = "change", value_name = "INSTRUCTION")]
    changes: Vec<String>,
    /// Commit message
    #[arg(short, long)]
    message: Option<String>,
    /// Tarball to import, or - for standard input
    #[arg(value_name = "FILE|-")]
    file: String,
    /// Name for the image
    #[arg(value_name = "REPOSITORY[:TAG]")]
    reference: Option<String>,
    /// The platform the image's config declares [default: this machine's]
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    platform: Option<crate::platform::Platform>,
}

pub fn run(settings: &Settings, args: &ImportArgs) -> Result<ExitCode> {
    let tags = match &args.reference {
        Some(r) => vec![Reference::parse(r)?],
        None => Vec::new(),
    };
    let now = now_rfc3339();
    let mut base = ImageConfig::new(now.clone());
    if let Some(p) = &args.platform {
        crate::platform::set_config(&mut base, p);
    }
    let mut editor = ConfigEditor::new(base);
    for change in &args.changes {
        editor
            .apply_change(change)
            .with_context(|| format!("--change {change:?}"))?;
    }
    let mut config = editor.into_config();
    let store = open_store(settings)?;
    let staging = store.staging()?;
    let (input, len) = open_input(&args.file)?;
    let bar = progress(len, "Importing");
    let (layer, stats) = store
        .prepare_layer_tar(&staging, bar.wrap_read(input), None)
        .with_context(|| format!("importing {}", args.file))?;
    bar.finish_and_clear();
    warn_skipped(&stats);
    config.rootfs.diff_ids = vec![layer.diff_id().clone()];
    config.history = vec![History {
        created: Some(now),
        comment: Some(
            args.message
                .clone()
                .unwrap_or_else(|| format!("Imported from {}", args.file)),
        ),
        ..History::default()
    }];
    let bytes = to_canonical_json(&config)?;
    let id = store.commit_image(vec![layer], &bytes, &tags, None)?;
    store.record_platform(&tags, &id)?;
    println!("{id}");
    Ok(ExitCode::SUCCESS)
}

/// A file, or standard input for `-`, with its length when known.
pub(super) fn open_input(name: &str) -> Result<(Box<dyn Read + Send>, Option<u64>)> {
    if name == "-" {
        return Ok((Box::new(io::stdin()), None));
    }
    let f = fs_err::File::open(Path::new(name)).with_context(|| format!("opening {name}"))?;
    let len = f.metadata().ok().map(|m| m.len());
    Ok((Box::new(io::BufReader::new(f)), len))
}

/// An indicatif bar on a terminal (stderr); hidden in a pipe.
pub(super) fn progress(len: Option<u64>, what: &str) -> ProgressBar {
    if !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match len {
        Some(n) => ProgressBar::new(n).with_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{msg} {spinner} {bytes} {bytes_per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    bar.set_message(what.to_string());
    bar
}

/// One warning each for what unpacking had to skip.
pub(super) fn warn_skipped(stats: &ApplyStats) {
    if let Some(first) = stats.skipped_devices.first() {
        eprintln!(
            "strata: warning: skipped {} device node(s) that cannot be created here (first: {})",
            stats.skipped_devices.len(),
            first.display()
        );
    }
    if let Some(first) = stats.unmapped_owners.first() {
        eprintln!(
            "strata: warning: {} file(s) owned by ids outside this user namespace's map were left owned by root (first: {})",
            stats.unmapped_owners.len(),
            first.display()
        );
    }
    if let Some((path, name)) = stats.skipped_xattrs.first() {
        eprintln!(
            "strata: warning: {} xattr(s) could not be set (first: {name} on {})",
            stats.skipped_xattrs.len(),
            path.display()
        );
    }
}
