//! Committing: the one way a container's changes, or a config alone,
//! become an image, for RUN, COPY/ADD and `strata commit` alike.
//!
//! A build step's container is thrown away after the step, so its upper
//! dir is moved into the store as the layer ([`Take::Move`]); a container
//! `strata commit` names lives on, so its upper dir is read through the
//! same deterministic tar a push would make ([`Take::Copy`]).

use crate::container::{Container, ContainerError};
use crate::digest::ImageId;
use crate::store::config::{to_canonical_json, History};
use crate::store::{now_rfc3339, ImageConfig, PreparedLayer, Staging, Store, StoreError};

/// How the container's upper dir becomes the layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// Moved into the store: the container is removed after.
    Move,
    /// Copied: the container lives on.
    Copy,
}

#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("serialising the image config")]
    Json(#[from] serde_json::Error),
    #[error("reading the changes of {container}")]
    Changes {
        container: String,
        #[source]
        source: crate::layer::LayerError,
    },
    #[error("creating a pipe")]
    Pipe(#[source] nix::Error),
    #[error("the layer writer of {0} panicked")]
    WriterPanicked(String),
}

/// The container's changes as one new layer on `config` (its image's
/// config with the step's changes), with `history` appended; returns the
/// new image and its config.
pub fn commit_container(
    store: &Store,
    c: &Container,
    take: Take,
    mut config: ImageConfig,
    history: History,
    parent: Option<ImageId>,
) -> Result<(ImageId, ImageConfig), CommitError> {
    let upper = c.sync_upper(store)?;
    // Holds a copied layer until the commit publishes it.
    let staging;
    let layer = match take {
        Take::Move => store.prepare_layer_dir(&upper)?,
        Take::Copy => {
            staging = store.staging()?;
            copy_layer(store, &staging, &upper, &c.state.name)?
        }
    };
    config.rootfs.diff_ids.push(layer.diff_id().clone());
    push_history(&mut config, history);
    let bytes = to_canonical_json(&config)?;
    let id = store.commit_image(vec![layer], &bytes, &[], parent)?;
    Ok((id, config))
}

/// An image of `config` alone (metadata steps, labels, an empty base).
pub fn commit_config(
    store: &Store,
    config: &ImageConfig,
    parent: Option<ImageId>,
) -> Result<ImageId, CommitError> {
    let bytes = to_canonical_json(config)?;
    Ok(store.commit_image(Vec::new(), &bytes, &[], parent)?)
}

/// Appends `history` (created now unless it says when) and dates the
/// config with it.
pub fn push_history(config: &mut ImageConfig, mut history: History) {
    let created = history.created.get_or_insert_with(now_rfc3339).clone();
    config.created = Some(created);
    config.history.push(history);
}

/// The upper dir through a deterministic tar into a staged layer.
fn copy_layer(
    store: &Store,
    staging: &Staging,
    upper: &std::path::Path,
    name: &str,
) -> Result<PreparedLayer, CommitError> {
    let tar_upper = upper.to_path_buf();
    layer_from_tar(store, staging, name, move |w| {
        crate::layer::diff::write_tar(&tar_upper, w)
    })
}

/// A staged layer from the tar `write` makes (on a thread of its own,
/// through a pipe): unpacked as it comes, identified by the deterministic
/// tar of what was unpacked. `name` says whose changes they are.
pub fn layer_from_tar<F>(
    store: &Store,
    staging: &Staging,
    name: &str,
    write: F,
) -> Result<PreparedLayer, CommitError>
where
    F: FnOnce(std::fs::File) -> Result<crate::layer::diff::DiffStats, crate::layer::LayerError>
        + Send
        + 'static,
{
    let (reader, writer) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(CommitError::Pipe)?;
    let (reader, writer) = (std::fs::File::from(reader), std::fs::File::from(writer));
    let writer_thread = std::thread::spawn(move || write(writer));
    let prepared = store.prepare_layer_tar(staging, reader, None);
    let written = writer_thread
        .join()
        .map_err(|_| CommitError::WriterPanicked(name.to_string()))?;
    let (layer, _) = prepared?;
    written.map_err(|source| CommitError::Changes {
        container: name.to_string(),
        source,
    })?;
    Ok(layer)
}
