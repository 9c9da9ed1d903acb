//! What every step shares: the cache lookup and record, the containers a
//! step runs in, and committing a step's image (a new layer, or the config
//! alone).

use super::{short, BuildError, Executor, StageState};
use crate::build::cache::{self, CacheKey};
use crate::container::{self, Container, NewContainer};
use crate::digest::ImageId;
use crate::store::config::{to_canonical_json, History};
use crate::store::{now_rfc3339, ImageConfig};

impl Executor<'_> {
    pub(super) fn cached(&self, key: &CacheKey) -> Option<ImageId> {
        if self.opts.no_cache {
            return None;
        }
        let id = cache::lookup(self.store, key);
        crate::log::debug(&format!(
            "cache key {}: {}",
            key.hex(),
            id.as_ref().map_or("miss".into(), |i| i.to_string())
        ));
        let id = id?;
        self.out.say(" ---> Using cache");
        Some(id)
    }

    pub(super) fn remember(&self, key: &CacheKey, id: &ImageId) {
        if let Err(e) = cache::record(self.store, key, id) {
            // A cache that cannot be written only costs the next build time.
            eprintln!("strata: warning: recording the build cache: {e}");
        }
    }

    pub(super) fn advance(
        &mut self,
        state: &mut StageState,
        id: ImageId,
    ) -> Result<(), BuildError> {
        self.out.say(&format!(" ---> {}", short(&id)));
        state.config = self.store.config(&id).map_err(|e| self.fail(e))?;
        state.parent = Some(id.clone());
        self.last_good = Some(id);
        Ok(())
    }

    pub(super) fn commit_config(
        &self,
        parent: Option<ImageId>,
        config: ImageConfig,
    ) -> Result<ImageId, BuildError> {
        let bytes = to_canonical_json(&config).map_err(|e| self.fail(e))?;
        self.store
            .commit_image(Vec::new(), &bytes, &[], parent)
            .map_err(|e| self.fail(e))
    }

    /// A fresh container on the stage's current image.
    pub(super) fn container(
        &self,
        state: &StageState,
        command: Vec<String>,
    ) -> Result<Container, BuildError> {
        let image = match &state.parent {
            Some(id) => id.clone(),
            // FROM scratch with nothing yet: an empty image to stand on.
            None => self.commit_config(None, state.config.clone())?,
        };
        container::create(
            self.store,
            NewContainer {
                image,
                image_name: "strata-build",
                name: None,
                command,
                driver: self.driver,
            },
        )
        .map_err(|e| self.fail(e))
    }

    /// The container's changes as a new layer on the stage's image.
    pub(super) fn commit_layer(
        &self,
        state: &StageState,
        c: &Container,
        created_by: String,
    ) -> Result<ImageId, BuildError> {
        let upper = c.sync_upper(self.store).map_err(|e| self.fail(e))?;
        let layer = self
            .store
            .prepare_layer_dir(&upper)
            .map_err(|e| self.fail(e))?;
        let mut config = state.config.clone();
        let now = now_rfc3339();
        config.created = Some(now.clone());
        config.rootfs.diff_ids.push(layer.diff_id().clone());
        config.history.push(History {
            created: Some(now),
            created_by: Some(created_by),
            ..History::default()
        });
        let bytes = to_canonical_json(&config).map_err(|e| self.fail(e))?;
        self.store
            .commit_image(vec![layer], &bytes, &[], state.parent.clone())
            .map_err(|e| self.fail(e))
    }

    /// Removes a step's container; a leftover would only cost disk space.
    pub(super) fn discard(&self, c: &Container) {
        if let Err(e) = container::remove(self.store, &c.state.id, true) {
            eprintln!(
                "strata: warning: removing build container {}: {e}",
                c.short_id()
            );
        }
    }
}
