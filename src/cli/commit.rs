//! `strata commit [-m MSG] [-a AUTHOR] [-c CHANGE]... [-f oci|docker]
//! CONTAINER [REF]`: the container's changes become one new layer on its
//! image.

use std::process::ExitCode;

use anyhow::{bail, Context, Result};

use super::images::open_store;
use super::settings::Settings;
use crate::build::commit::{commit_container, Take};
use crate::build::config_steps::ConfigEditor;
use crate::container;
use crate::reference::Reference;
use crate::store::config::{History, ManifestFormat};

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
    let mut editor = ConfigEditor::new(store.config(&c.state.image)?);
    for change in &args.change {
        editor
            .apply_change(change)
            .with_context(|| format!("--change {change:?}"))?;
    }
    let mut config = editor.into_config();
    if args.author.is_some() {
        config.author = args.author.clone();
    }
    let history = History {
        created_by: Some(c.state.command.join(" ")),
        author: args.author.clone(),
        comment: args.message.clone(),
        ..History::default()
    };
    // The container lives on: its changes are copied, not moved.
    let (id, _) = commit_container(
        &store,
        &c,
        Take::Copy,
        config,
        history,
        Some(c.state.image.clone()),
    )
    .with_context(|| format!("committing {}", c.state.name))?;
    store.finish_image(&id, args.format, &tags)?;
    println!("{id}");
    Ok(ExitCode::SUCCESS)
}
