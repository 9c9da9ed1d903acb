//! `strata commit [-m MSG] [-a AUTHOR] [-c CHANGE]... [-f oci|docker]
//! CONTAINER [REF]`: the container's changes become one new layer on its
//! image.

use std::process::ExitCode;

use anyhow::{bail, Context, Result};

use super::images::open_store;
use super::import::apply_change;
use super::settings::Settings;
use crate::container;
use crate::reference::Reference;
use crate::store::config::{to_canonical_json, History, ManifestFormat};
use crate::store::now_rfc3339;

#[derive(Debug, clap::Args)]
pub struct CommitArgs {
    /// Commit message
    #[arg(short, long)]
    message: Option<String>,
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[arg(short, long)]
    author: Option<String>,
    /// Apply a Dockerfile instruction to the image (CMD, ENV, ...)
    #[arg(short, long = "change", value_name = "INSTRUCTION")]
    change: Vec<String>,
    /// Manifest type the image is pushed as, as podman's and buildah's
    /// commit (recorded with it; `push --format` overrides)
    #[arg(short, long, value_enum, env = "BUILDAH_FORMAT", default_value_t = ManifestFormat::Oci)]
    format: ManifestFormat,
    /// The container (name, id or id prefix)
    container: String,
    /// Name the new image REPOSITORY[:TAG]
    reference: Option<String>,
}

pub fn run(settings: &Settings, args: &CommitArgs) -> Result<ExitCode> {
    let store = open_store(settings)?;
    let tags = match &args.reference {
        Some(r) => vec![Reference::parse(r)?],
        None => Vec::new(),
    };
    let c = container::find(&store, &args.container)?;
    // Docker pauses a running container to commit it; strata has no freezer,
    // and a live process could swap a file for a symlink while the layer is
    // read, so it waits for the container to stop.
    if c.is_running() {
        bail!(
            "container {} is running: wait for it to exit before committing",
            c.state.name
        );
    }
    let upper = c.sync_upper(&store)?;
    let staging = store.staging()?;
    // The container lives on, so its upper dir is copied, through the
    // same deterministic tar a push would make.
    let (reader, writer) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("creating a pipe")?;
    let (reader, writer) = (std::fs::File::from(reader), std::fs::File::from(writer));
    let tar_upper = upper.clone();
    let writer_thread =
        std::thread::spawn(move || crate::layer::diff::write_tar(&tar_upper, writer));
    let prepared = store.prepare_layer_tar(&staging, reader, None);
    let written = writer_thread
        .join()
        .map_err(|_| anyhow::anyhow!("the layer writer panicked"))?;
    let (layer, _) = prepared?;
    written.with_context(|| format!("reading the changes of {}", c.state.name))?;

    let mut config = store.config(&c.state.image)?;
    for change in &args.change {
        apply_change(&mut config, change).with_context(|| format!("--change {change:?}"))?;
    }
    let now = now_rfc3339();
    config.created = Some(now.clone());
    if args.author.is_some() {
        config.author = args.author.clone();
    }
    config.rootfs.diff_ids.push(layer.diff_id().clone());
    config.history.push(History {
        created: Some(now),
        created_by: Some(c.state.command.join(" ")),
        author: args.author.clone(),
        comment: args.message.clone(),
        ..History::default()
    });
    let bytes = to_canonical_json(&config)?;
    let id = store.commit_image(vec![layer], &bytes, &[], Some(c.state.image.clone()))?;
    store.finish_image(&id, args.format, &tags)?;
    println!("{id}");
    Ok(ExitCode::SUCCESS)
}
