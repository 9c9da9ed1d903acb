//! A step's result as an image: a config-only image, or a container's
//! changes as a layer (both through `build/commit.rs`, one path with
//! `strata commit`).

use super::*;

impl Build<'_> {
    pub fn commit_config(
        &self,
        config: &ImageConfig,
        parent: Option<ImageId>,
    ) -> Result<ImageId, StepFailure> {
        Ok(commit::commit_config(self.store, config, parent)?)
    }

    /// The image a step's container stands on: the stage's image, or for
    /// FROM scratch with nothing yet an empty one.
    pub fn stand_on(&self, state: &StageState) -> Result<ImageId, StepFailure> {
        match &state.image {
            Some(id) => Ok(id.clone()),
            None => self.commit_config(state.config(), None),
        }
    }

    /// The container's changes as the stage's next image.
    pub fn commit_layer(
        &self,
        state: &StageState,
        c: &container::WorkingContainer,
        created_by: String,
    ) -> Result<Done, StepFailure> {
        let history = History {
            created_by: Some(created_by),
            ..History::default()
        };
        let config = state.config().clone();
        let (id, config) = commit::commit_container(
            self.store,
            &c.c,
            Take::Move,
            config,
            history,
            state.image.clone(),
        )?;
        Ok(Done::Built {
            id,
            config: Box::new(config),
        })
    }
}
