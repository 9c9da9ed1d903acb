//! FROM: a stage's base image (from the store, `bases_from` or its
//! registry as `--pull` says) and the ONBUILD triggers it carries.

use std::collections::HashMap;

use strata_parser::StageRef;

use super::stage::StageState;
use super::{lock, output, Build, PullPolicy, Stages};
use crate::build::config_steps::ConfigEditor;
use crate::build::error::StepFailure;
use crate::build::key::{self, Op, Parent};
use crate::build::named_context::NamedContext;
use crate::build::plan::{StagePlan, StepKind};
use crate::digest::ImageId;
use crate::platform::Platform;
use crate::reference::Reference;
use crate::store::Store;

impl Build<'_> {
    /// FROM: the stage's base image (pulled as `--pull` says), its config.
    pub(super) fn base_step(
        &self,
        sp: &StagePlan,
        done: &Stages,
    ) -> Result<StageState, StepFailure> {
        let base = sp.base.clone()?;
        let platform = match base.platform.filter(|p| !p.is_empty()) {
            Some(p) => p.parse().map_err(|source| StepFailure::Platform {
                given: p.clone(),
                source,
            })?,
            None => self.opts.platform.clone(),
        };
        let (image, root) = match base.reference {
            StageRef::Stage(i) => {
                let root = lock(&self.roots).get(&i).cloned().flatten();
                (done.get(&i).cloned().flatten(), root)
            }
            StageRef::Image(name) if name.eq_ignore_ascii_case("scratch") => (None, None),
            StageRef::Image(name) => {
                let id = self.base_image(&name, &platform)?;
                lock(&self.bases).insert(sp.stage.index, (name, id.clone()));
                (Some(id.clone()), Some(id))
            }
        };
        lock(&self.roots).insert(sp.stage.index, root);
        let mut editor = ConfigEditor::new(self.config_of(image.as_ref())?);
        editor.ensure_path();
        if image.is_some() || platform == Platform::host() {
            return Ok(StageState::new(image, editor));
        }
        // FROM scratch for another platform: its config says so, and the
        // platform is the first input of the stage's keys (a host scratch
        // stage keeps the keys it always had).
        crate::platform::set_config(editor.config_mut(), &platform);
        let mut state = StageState::new(None, editor);
        let from = format!(
            "FROM --platform={} scratch",
            crate::platform::show(&platform)
        );
        state.pending = Some(key::key(
            Parent::Scratch,
            &Op::Config { instruction: &from },
        ));
        Ok(state)
    }

    /// A FROM image: the `--build-context` of its name, else from the
    /// store (or `bases_from`) or its registry as `--pull` says.
    fn base_image(&self, name: &str, platform: &Platform) -> Result<ImageId, StepFailure> {
        match self.opts.build_contexts.get(name) {
            Some(named) => self.named_image(name, named, platform),
            None => self.pulled_image(name, platform),
        }
    }

    /// The image a `--build-context` stands for: `docker-image://` as a
    /// FROM image, `oci-layout://` brought into the store.
    pub(super) fn named_image(
        &self,
        name: &str,
        named: &NamedContext,
        platform: &Platform,
    ) -> Result<ImageId, StepFailure> {
        match named {
            NamedContext::Image(reference) => self.pulled_image(reference, platform),
            NamedContext::Layout { dir, tag } => {
                let imported =
                    crate::store::transport::import(self.store, dir, tag.as_deref(), None)?;
                imported
                    .into_iter()
                    .next()
                    .map(|i| i.id)
                    .ok_or_else(|| StepFailure::NamedDir(name.to_string()))
            }
            NamedContext::Dir(_) => Err(StepFailure::NamedDir(name.to_string())),
        }
    }

    fn pulled_image(&self, name: &str, platform: &Platform) -> Result<ImageId, StepFailure> {
        let Some(from) = &self.opts.bases_from else {
            return self.base_image_in(self.store, name, platform);
        };
        let id = self.base_image_in(from, name, platform)?;
        output::repro::copy_image(from, self.store, &id)?;
        Ok(id)
    }

    fn base_image_in(
        &self,
        store: &Store,
        name: &str,
        platform: &Platform,
    ) -> Result<ImageId, StepFailure> {
        use crate::registry::pull;
        let flags = crate::registry::flags::RegistryFlags::default();
        let quiet = self.out.quiet();
        if *platform != Platform::host() {
            return self.foreign_base(store, name, platform);
        }
        Ok(match self.opts.pull {
            // A dry run holds nothing: it writes nothing to the store.
            PullPolicy::Never if self.opts.dry_run => store.resolve(name)?,
            PullPolicy::Never => store.resolve_held(name)?,
            PullPolicy::Missing => pull::resolve_or_pull(store, name, &flags, quiet)?,
            PullPolicy::Always => pull_for(store, name, platform)?,
        })
    }

    /// A FROM image for another platform than the host's: the store's
    /// image of that name for the platform, else pulled for it.
    fn foreign_base(
        &self,
        store: &Store,
        name: &str,
        platform: &Platform,
    ) -> Result<ImageId, StepFailure> {
        let found = match self.opts.pull {
            PullPolicy::Always => None,
            _ => store.resolve_platform(name, platform)?,
        };
        Ok(match (found, self.opts.pull) {
            (Some(id), _) => id,
            (None, PullPolicy::Never) => {
                return Err(crate::store::StoreError::ImageNotFound {
                    name: format!(
                        "{} for {}",
                        crate::reference::shown(name),
                        crate::platform::show(platform)
                    ),
                }
                .into())
            }
            (None, _) => pull_for(store, name, platform)?,
        })
    }

    /// ONBUILD triggers of the base image run first, then are dropped.
    pub(super) fn onbuild_triggers(&self, state: &mut StageState) -> Result<(), StepFailure> {
        let triggers = state
            .editor
            .config_mut()
            .config
            .as_mut()
            .and_then(|c| c.on_build.take())
            .unwrap_or_default();
        if triggers.is_empty() {
            return Ok(());
        }
        let s = if triggers.len() == 1 { "" } else { "s" };
        self.out
            .say(&format!("# Executing {} build trigger{s}", triggers.len()));
        let text = format!("FROM scratch\n{}\n", triggers.join("\n"));
        let parsed = strata_parser::parse(&text).map_err(StepFailure::Trigger)?;
        for step in &parsed.stages[0].steps {
            let kind = StepKind::of(&step.instruction);
            let done = self.step(state, step, kind, 0, &HashMap::new(), &Stages::new())?;
            self.finish(state, done).map(drop)?;
        }
        self.materialize(state)
    }
}

/// `name` pulled from its registry for `platform` (`--pull=always`, or a
/// foreign platform the store lacks).
fn pull_for(store: &Store, name: &str, platform: &Platform) -> Result<ImageId, StepFailure> {
    use crate::registry::pull;
    let flags = crate::registry::flags::RegistryFlags::default();
    let reference = Reference::parse(name)?;
    let options = pull::PullOptions {
        platform: Some(platform.clone()),
        ..Default::default()
    };
    Ok(pull::pull_image(store, &reference, &flags, &options)?.id)
}
