//! One stage's running state: the image it is at, the config ahead of it
//! by the metadata steps since, and its ARGs.

use std::collections::BTreeMap;

use strata_parser::Env;

use crate::build::config_steps::ConfigEditor;
use crate::build::key::{CacheKey, Parent};
use crate::digest::ImageId;
use crate::progress::StepId;
use crate::store::ImageConfig;

pub(super) struct StageState {
    /// The last image this stage made or reused (`None`: scratch, nothing
    /// made yet).
    pub image: Option<ImageId>,
    /// That image's config with the metadata steps since applied.
    pub editor: ConfigEditor,
    /// The key of the last metadata step not yet in `image`.
    pub pending: Option<CacheKey>,
    /// Declared ARGs with their values.
    pub args: BTreeMap<String, String>,
    /// The step under way, for its events.
    pub step: StepId,
    /// The first step of the stage that missed the cache: every later
    /// one misses because of it.
    pub first_miss: Option<usize>,
}

impl StageState {
    pub fn new(image: Option<ImageId>, editor: ConfigEditor) -> StageState {
        StageState {
            image,
            editor,
            pending: None,
            args: BTreeMap::new(),
            step: StepId::default(),
            first_miss: None,
        }
    }

    /// What the next step starts from, for its key.
    pub fn parent(&self) -> Parent<'_> {
        match (&self.pending, &self.image) {
            (Some(key), _) => Parent::Step(key),
            (None, Some(id)) => Parent::Image(id),
            (None, None) => Parent::Scratch,
        }
    }

    pub fn config(&self) -> &ImageConfig {
        self.editor.config()
    }

    /// Now at `id`, whose config is `config`.
    pub fn at(&mut self, id: ImageId, config: ImageConfig) {
        self.editor.replace(config);
        self.image = Some(id);
        self.pending = None;
    }

    /// The build args RUN sees, `NAME=value`, sorted: in the key.
    pub fn visible_args(&self) -> Vec<String> {
        self.args.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }
}

/// Expansion sees the ARGs, with ENV over them.
impl Env for StageState {
    fn get(&self, name: &str) -> Option<&str> {
        self.editor
            .get(name)
            .or_else(|| self.args.get(name).map(String::as_str))
    }
}
