//! `--dry-run`: the build as far as it goes without doing anything. Each
//! step is expanded and keyed and its key looked up (in the local cache,
//! without marking the entry used), and the executors stop at a miss before
//! they make a container ([`Build::may_execute`]). The first step of a
//! stage that would run, and every later one, is said `would run`; a stage
//! that needs one that would run (its FROM, `COPY --from`, `RUN --mount
//! from=`) would run from the step that needs it. Nothing is pulled,
//! fetched, committed or recorded: the store is left as it was. The
//! `--cache-from` caches are asked too: their records are read (no layer
//! is fetched) and a step they hold is cached, as in a build.

use std::collections::BTreeSet;

use super::{interrupted, lock, parse, stage_name, step_id, Build, BuildOptions, PullPolicy};
use crate::build::error::{BuildError, StepFailure};
use crate::build::fetch;
use crate::build::plan::{Input, Plan, PlannedStep, StagePlan, StepKind};
use crate::build::remote::LayeredCache;
use crate::progress::{Event, StepId};
use crate::store::Store;
use strata_parser::StageRef;

/// What a dry run found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DryRun {
    /// The steps that would run (their numbers, as in `Step N/M`).
    pub would_run: BTreeSet<usize>,
    /// Steps in all.
    pub total: usize,
}

/// `--dry-run`: which steps of the build of `opts` would run and which
/// the local cache holds; nothing is executed and the store is left as it
/// was (this module).
pub fn dry_run(store: &Store, opts: &BuildOptions) -> Result<DryRun, BuildError> {
    let opts = BuildOptions {
        dry_run: true,
        // Nothing is recorded: the explanations go by the last real build.
        // What is not in the store would be pulled: the dry run says so.
        pull: PullPolicy::Never,
        ..opts.clone()
    };
    let parsed = parse(&opts)?;
    // The remote caches' records are read (no layer): their hits count.
    let imports = crate::build::remote::import::read_all(&opts.cache_from);
    let cache = LayeredCache::peeking(store, imports);
    let b = Build::new(store, &opts, &parsed, &cache);
    let (plan, globals) = b.plan()?;
    b.run_stages(&plan, &globals)?;
    interrupted()?;
    Ok(b.dry_run_result(&plan))
}

impl Build<'_> {
    /// Err in a dry run: a step that missed the cache stops here, before
    /// its executor makes anything.
    pub(super) fn may_execute(&self) -> Result<(), StepFailure> {
        match self.opts.dry_run {
            true => Err(StepFailure::WouldRun),
            false => Ok(()),
        }
    }

    /// Why a stage's FROM would run in a dry run without a look at the
    /// cache: its base stage would run, or its image is not in the store
    /// (it would be pulled).
    pub(super) fn dry_base(&self, sp: &StagePlan) -> Option<String> {
        if !self.opts.dry_run {
            return None;
        }
        match &sp.base.as_ref().ok()?.reference {
            StageRef::Stage(i) => self.stage_would_run(*i),
            StageRef::Image(name) if name.eq_ignore_ascii_case("scratch") => None,
            StageRef::Image(name) => {
                let here = self.opts.bases_from.as_ref().unwrap_or(self.store);
                here.resolve(name)
                    .err()
                    .map(|_| format!("{name} is not in the store: it would be pulled"))
            }
        }
    }

    /// Why a step would run in a dry run whatever the cache holds: it needs
    /// a stage that would run, or downloads what it copies.
    pub(super) fn dry_needs(&self, planned: &PlannedStep) -> Option<String> {
        if !self.opts.dry_run {
            return None;
        }
        planned.inputs.iter().find_map(|input| match input {
            Input::Stage(i) => self.stage_would_run(*i),
            Input::Deferred(_) => {
                let any = lock(&self.would_run).keys().next().copied();
                any.and_then(|i| self.stage_would_run(i))
            }
            // Its key is its content's: a dry run downloads nothing.
            Input::Url(url) => Some(format!("{url}: content unknown until downloaded")),
            Input::Context(p) if planned.kind == StepKind::Add && fetch::is_git(p) => {
                Some(format!("{p}: content unknown until fetched"))
            }
            _ => None,
        })
    }

    fn stage_would_run(&self, stage: usize) -> Option<String> {
        lock(&self.would_run)
            .get(&stage)
            .map(|name| format!("stage {name} would run"))
    }

    /// Whether a step's outcome is a miss of a dry run.
    pub(super) fn dry_miss(&self, finished: &Result<bool, StepFailure>) -> bool {
        self.opts.dry_run && matches!(finished, Ok(false) | Err(StepFailure::WouldRun))
    }

    /// Says step `first` of the stage (`None`: its FROM) would run, for
    /// `reason`, and every later step of the stage after it. The stage
    /// has no image: the stages that need it would run too.
    pub(super) fn would_run_from(
        &self,
        plan: &Plan,
        sp: &StagePlan,
        first: Option<usize>,
        reason: String,
    ) -> Result<Option<crate::digest::ImageId>, BuildError> {
        let (step, rest) = match first {
            None => (step_id(sp, &sp.from), 0),
            Some(i) => (step_id(sp, &sp.steps[i]), i + 1),
        };
        self.would_run_step(step, reason);
        for planned in &sp.steps[rest..] {
            self.stopped()?;
            self.begin(plan, sp, planned);
            let reason = format!("parent step {} would run", step.number);
            self.would_run_step(step_id(sp, planned), reason);
        }
        lock(&self.would_run).insert(sp.stage.index, stage_name(sp));
        Ok(None)
    }

    fn would_run_step(&self, step: StepId, reason: String) {
        lock(&self.dry_steps).insert(step.number);
        let finished = super::out::Finished {
            cached: false,
            took: std::time::Duration::ZERO,
            image: None,
            layer: None,
            miss: Some(reason.clone()),
        };
        self.out.step_done(step, finished);
        crate::progress::emit(Event::StepWouldRun { step, reason });
    }

    /// The dry run's findings, once every stage has ended.
    pub(super) fn dry_run_result(&self, plan: &Plan) -> DryRun {
        let would_run = lock(&self.dry_steps).clone();
        let n = would_run.len();
        self.out.say(&format!(
            "Dry run: {n} of {} steps would run; nothing was built",
            plan.total
        ));
        DryRun {
            would_run,
            total: plan.total,
        }
    }
}
