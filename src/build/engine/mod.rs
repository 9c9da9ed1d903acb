//! The build engine: runs a [`Plan`], stage by stage,
//! step by step. Each step goes
//!
//! ```text
//! expand (over the stage's ARG/ENV) -> key (pure) -> lookup (StepCache)
//!   hit  -> the recorded image: no container, no mount, no walk
//!   miss -> execute (run.rs | copy/ | workdir.rs | meta.rs) -> commit -> record
//! ```
//!
//! A RUN, COPY or ADD makes a layer in a working container owned by a
//! guard (`container::WorkingContainer`); its image is committed
//! untagged, so the cache can point at it and a failed build names the last
//! good one (`strata run -it <id> sh`). Metadata steps (ENV, LABEL, ARG,
//! ...) change the stage's config in memory: a run of them in a row becomes
//! one image where it ends, so each costs O(its own change), not a copy of
//! the whole config. ^C, SIGTERM or SIGHUP stop the build between steps.
//!
//! Stages run through the [`scheduler`](crate::build::scheduler): the ones
//! that do not depend on each other at once, up to `--jobs`. A failed stage
//! stops the others (between steps, and their running containers), and
//! each stage's guards clean up before the error is reported.

pub(crate) mod args;
mod base;
mod committing;
mod container;
mod copy;
mod dry;
mod explained;
mod failing;
mod lookup;
mod meta;
mod out;
mod run;
mod stage;
#[cfg(test)]
mod tests;
mod workdir;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use strata_parser::{Parsed, Step};

use super::cache::{Entry, StepCache};
use super::commit::{self, Take};
use super::context::Context;
use super::error::{shown, BuildError, Location, StepError, StepFailure};
use super::key::{self, Op, Parent};
use super::output::{self, Built, Finish};
use super::plan::{self, Plan, PlannedStep, StagePlan, StepKind};
use super::remote::{self, LayeredCache};
use super::scheduler::{self, Cancel, Node};
use super::siblings::Releasing;
use crate::digest::ImageId;
use crate::progress::{self, StepId};
use crate::reference::Reference;
use crate::sandbox::driver::DriverKind;
use crate::sandbox::spec::Network;
use crate::store::config::{History, ManifestFormat};
use crate::store::{now_rfc3339, ImageConfig, Store};
use crate::sync::lock;
use args::BuildArgs;
use lookup::Uncached;
use out::Printer;
use stage::StageState;

pub use dry::{dry_run, DryRun};

/// What to build and how.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The context directory; `None` for a Dockerfile from stdin.
    pub context: Option<PathBuf>,
    /// The Dockerfile's path, for messages and `<Dockerfile>.dockerignore`.
    pub dockerfile_path: Option<PathBuf>,
    /// Its text.
    pub dockerfile: String,
    pub tags: Vec<Reference>,
    /// `--build-arg K=V`, or `K` (the value from strata's environment).
    pub build_args: BTreeMap<String, Option<String>>,
    pub target: Option<String>,
    pub no_cache: bool,
    /// `--no-cache-filter`: the stages (by name or index) that take
    /// nothing from the cache.
    pub no_cache_filter: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub quiet: bool,
    pub network: Network,
    /// Forced with --storage-driver, else chosen by trying.
    pub driver: Option<DriverKind>,
    /// When FROM images are pulled.
    pub pull: PullPolicy,
    /// Recorded with the final image, for `push`.
    pub format: ManifestFormat,
    /// The build's lines go to stderr (stdout carries an output).
    pub log_to_stderr: bool,
    /// What is done to the image before it is tagged (`--squash`, an
    /// epoch, `--unsetlabel`).
    pub finish: Finish,
    /// `--cache-from`: caches asked after the local one, in order.
    pub cache_from: Vec<remote::CacheSpec>,
    /// `--cache-to`: where the build's cache is written at its end.
    pub cache_to: Vec<remote::CacheSpec>,
    /// Where FROM images come from (found or pulled there, then copied
    /// in): `--verify-repro`'s isolated stores take the caller's.
    pub bases_from: Option<Store>,
    /// How many stages may build at once (`--jobs`; 1 keeps the order).
    pub jobs: usize,
    /// `--secret`s, for `RUN --mount=type=secret`.
    pub secrets: Vec<crate::build::mounts::SecretSource>,
    /// `--allow network.host`: `RUN --network=host` may run (Docker's
    /// entitlement; without it such a step is refused).
    pub allow_network_host: bool,
    /// `--ssh` agents, for `RUN --mount=type=ssh`.
    pub ssh: Vec<crate::build::mounts::SshAgent>,
    /// `--dry-run`: say which steps would run, do nothing (see [`dry_run`]).
    pub dry_run: bool,
    /// `--explain-cache`: a miss says what changed since the last build.
    pub explain_cache: bool,
    /// `--cache-ttl`: cached images made longer ago than this are misses.
    pub cache_ttl: Option<std::time::Duration>,
    /// The platform built for (`--platform`; the host's by default).
    pub platform: crate::platform::Platform,
    /// `--build-context`s: what FROM and `--from` names stand for.
    pub build_contexts: crate::build::named_context::NamedContexts,
    /// `--ignorefile`: the context's ignore rules, from this file.
    pub ignorefile: Option<PathBuf>,
    /// `--add-host`, `--shm-size`, `--ulimit`, for every RUN.
    pub extras: crate::sandbox::extras::Extras,
    /// One platform of a `--platform A,B` build: what it shares with the
    /// others (see [`crate::build::siblings`]).
    pub sibling: Option<crate::build::siblings::Sibling>,
}

/// `--pull`: when a FROM image is fetched from its registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PullPolicy {
    /// Only when the store does not have it
    Missing,
    /// Every time, to get the newest
    Always,
    /// Never: the image must be in the store
    Never,
}

/// The images of the stages built so far (`None`: scratch, no step).
type Stages = BTreeMap<usize, Option<ImageId>>;

/// How a step ended.
enum Done {
    /// Found in the cache.
    Cached(ImageId),
    /// Made now.
    Built {
        id: ImageId,
        config: Box<ImageConfig>,
    },
    /// A metadata step, applied to the stage's config in memory.
    Meta { cached: bool },
}

/// What every executor reads: the build's settings and shared services.
struct Build<'a> {
    store: &'a Store,
    opts: &'a BuildOptions,
    parsed: &'a Parsed,
    cache: &'a dyn StepCache,
    out: Printer,
    args: BuildArgs<'a>,
    /// The storage driver that worked (a failed mount moves it on).
    driver: Mutex<DriverKind>,
    /// The build context, opened on the first COPY/ADD that needs it
    /// (the lock makes stages that need it at once walk it once).
    context: OnceLock<Context>,
    opening: Mutex<()>,
    /// Set when a stage failed: the others stop.
    cancel: Cancel,
    /// FROM images met (name as written, image), for provenance; by
    /// stage, so stages building at once list them in the same order.
    bases: Mutex<BTreeMap<usize, (String, ImageId)>>,
    /// Per stage, the image outside the build its FROM chain starts from
    /// (`None`: scratch): its layers are not this build's.
    roots: Mutex<BTreeMap<usize, Option<ImageId>>>,
    /// A dry run's stages that would run (by index, with their names) and
    /// its steps that would.
    would_run: Mutex<BTreeMap<usize, String>>,
    dry_steps: Mutex<BTreeSet<usize>>,
    /// The inputs of every step, against the last build's.
    explain: crate::build::explain::Explainer,
}

/// Builds the Dockerfile of `opts`, applies `opts.finish`, tags the
/// result, returns it with what the exporters need. A build that failed
/// because a remote cache's layer could not be fetched (unreachable, or
/// bytes that fail their digest) runs once more without the cache entries
/// that need that layer.
pub fn build(store: &Store, opts: &BuildOptions) -> Result<Built, BuildError> {
    use crate::store::remote::take_failed_fetches;
    take_failed_fetches();
    let err = match build_skipping(store, opts, BTreeSet::new()) {
        Err(e) if !matches!(e, BuildError::Interrupted { .. }) => e,
        done => return done,
    };
    let failed = take_failed_fetches();
    if failed.is_empty() {
        return Err(err);
    }
    for f in &failed {
        crate::progress::warn(format!(
            "cache {}: layer {}: {}; not used, building again without it",
            f.source, f.diff_id, f.reason
        ));
    }
    build_skipping(store, opts, failed.into_iter().map(|f| f.diff_id).collect())
}

/// [`build`] with the cache entries that need a layer of `poisoned` taken
/// as misses.
fn build_skipping(
    store: &Store,
    opts: &BuildOptions,
    poisoned: BTreeSet<crate::digest::DiffId>,
) -> Result<Built, BuildError> {
    let parsed = parse(opts)?;
    // The keys looked up outside a stage (`--label`s) are given up at the end.
    let _claims = Releasing(opts.sibling.as_ref().map(|s| &*s.shared));
    let imports = match opts.no_cache {
        true => Vec::new(),
        false => remote::import::read_all(&opts.cache_from),
    };
    remote::mounts::restore(store, &imports);
    let cache = LayeredCache::new(store, imports, poisoned);
    let b = Build::new(store, opts, &parsed, &cache);
    let (plan, globals) = b.plan()?;
    let image = b.run(&plan, &globals)?;
    if let Some(warning) = b.args.unused_warning() {
        b.out.notice(&warning);
    }
    interrupted()?;
    let image = b.finish_image(&plan, image)?;
    let final_stages = remote::final_stages(&plan);
    let image = remote::with_inline(store, &cache, &final_stages, &opts.cache_to, image)
        .map_err(|e| BuildError::CacheExport(Box::new(e)))?;
    store
        .finish_image(&image, opts.format, &opts.tags)
        .and_then(|()| store.record_platform(&opts.tags, &image))
        .map_err(|source| BuildError::Tag {
            id: image.clone(),
            source,
        })?;
    let mut journal = cache.journal();
    journal
        .platforms
        .insert(crate::platform::show(&opts.platform));
    match &opts.sibling {
        // Written once, with every platform's, when all are built.
        Some(s) => s.shared.add_journal(journal, final_stages),
        None => remote::export::write_all(store, &journal, &final_stages, &opts.cache_to)
            .map_err(|e| BuildError::CacheExport(Box::new(e)))?,
    }
    b.save_explained();
    b.out.say(&format!("Successfully built {}", image.short()));
    for tag in &opts.tags {
        b.out
            .say(&format!("Successfully tagged {}", tag.familiar()));
    }
    let bases = std::mem::take(&mut *lock(&b.bases)).into_values().collect();
    Ok(Built { id: image, bases })
}

/// The Dockerfile of `opts`, parsed.
fn parse(opts: &BuildOptions) -> Result<Parsed, BuildError> {
    strata_parser::parse(&opts.dockerfile).map_err(|e| parse_error(opts, e))
}

fn parse_error(opts: &BuildOptions, error: strata_parser::ParseError) -> BuildError {
    BuildError::Parse {
        file: dockerfile_name(opts),
        rendered: error.render(&opts.dockerfile),
        error: Box::new(error),
    }
}

pub(crate) fn dockerfile_name(opts: &BuildOptions) -> String {
    opts.dockerfile_path
        .as_ref()
        .map_or_else(|| "Dockerfile".to_string(), |p| p.display().to_string())
}

/// Err once ^C (or SIGTERM, SIGHUP) has asked the build to stop.
fn interrupted() -> Result<(), BuildError> {
    match crate::sandbox::interrupt::signal() {
        Some(signal) => Err(BuildError::Interrupted { signal }),
        None => Ok(()),
    }
}

/// The id a step's events go by.
fn step_id(sp: &StagePlan, planned: &PlannedStep) -> StepId {
    StepId {
        stage: sp.stage.index,
        number: planned.number,
        // The printer stamps its platform's.
        platform: 0,
    }
}

/// The platform a build's steps show (and its place in `--platform`):
/// when it is one of several, or not the host's.
fn shown_platform(opts: &BuildOptions) -> Option<(usize, String)> {
    let index = opts.sibling.as_ref().map(|s| s.index);
    let foreign = !opts.platform.satisfies(&crate::platform::Platform::host());
    (index.is_some() || foreign)
        .then(|| (index.unwrap_or(0), crate::platform::show(&opts.platform)))
}

/// The name a stage's lines go by: `AS name`, or `stage-N` as BuildKit's.
fn stage_name(sp: &StagePlan) -> String {
    sp.stage
        .name
        .clone()
        .unwrap_or_else(|| format!("stage-{}", sp.stage.index))
}

impl Build<'_> {
    /// The transforms of `--squash`, `--timestamp`, `--unsetlabel` on the
    /// target's image.
    fn finish_image(&self, plan: &Plan, image: ImageId) -> Result<ImageId, BuildError> {
        let root = lock(&self.roots).get(&plan.target).cloned().flatten();
        let finished = || -> Result<ImageId, output::OutputError> {
            let base = match &root {
                Some(id) => self.store.config(id)?.rootfs.diff_ids.len(),
                None => 0,
            };
            output::finish::finish(self.store, &image, base, &self.opts.finish)
        };
        finished().map_err(|e| BuildError::Output(Box::new(e)))
    }

    /// Whether `--no-cache-filter` names the stage (by name or index).
    fn filtered(&self, sp: &StagePlan) -> bool {
        let index = sp.stage.index.to_string();
        self.opts.no_cache_filter.iter().any(|f| {
            *f == index
                || sp
                    .stage
                    .name
                    .as_deref()
                    .is_some_and(|n| n.eq_ignore_ascii_case(f))
        })
    }

    /// Err once the build should stop: a signal, or another stage failed.
    fn stopped(&self) -> Result<(), BuildError> {
        interrupted()?;
        match self.cancel.is_set() || self.siblings().is_some_and(|s| s.stopped()) {
            true => Err(BuildError::Cancelled),
            false => Ok(()),
        }
    }

    /// What this build shares with the other platforms' (if any).
    fn siblings(&self) -> Option<&crate::build::siblings::Siblings> {
        self.opts.sibling.as_ref().map(|s| &*s.shared)
    }

    /// The engine for one build of `opts`, looking steps up in `cache`.
    fn new<'a>(
        store: &'a Store,
        opts: &'a BuildOptions,
        parsed: &'a Parsed,
        cache: &'a dyn StepCache,
    ) -> Build<'a> {
        let out = Printer::new(opts.quiet, shown_platform(opts));
        if let Err(e) = crate::sandbox::interrupt::catch() {
            // Without it ^C still stops the build, only less tidily.
            out.warn(&format!("catching ^C: {e}"));
        }
        Build {
            store,
            opts,
            parsed,
            cache,
            out,
            args: BuildArgs::new(&opts.build_args, &opts.platform),
            driver: Mutex::new(opts.driver.unwrap_or_else(DriverKind::first)),
            context: OnceLock::new(),
            opening: Mutex::new(()),
            cancel: Cancel::default(),
            bases: Mutex::new(BTreeMap::new()),
            roots: Mutex::new(BTreeMap::new()),
            would_run: Mutex::new(BTreeMap::new()),
            dry_steps: Mutex::new(BTreeSet::new()),
            explain: explained::explainer(store, opts),
        }
    }

    /// The plan of the target, and the global args it was made with.
    fn plan(&self) -> Result<(Plan<'_>, HashMap<String, String>), BuildError> {
        let globals = self
            .args
            .globals(self.parsed)
            .map_err(|e| parse_error(self.opts, e))?;
        let target = self.opts.target.as_deref();
        let plan = plan::plan(self.parsed, target, &globals).map_err(|e| match e {
            plan::PlanError::NoTarget(name) => BuildError::NoTarget(name),
        })?;
        Ok((plan, globals))
    }

    /// Every stage of the plan; the target's image (with `--label`s).
    fn run(&self, plan: &Plan, globals: &HashMap<String, String>) -> Result<ImageId, BuildError> {
        let done = self.run_stages(plan, globals)?;
        let image = done.get(&plan.target).cloned().flatten();
        let labelled = match self.opts.labels.is_empty() {
            true => image,
            false => Some(self.final_labels(image)?),
        };
        match labelled {
            Some(id) => Ok(id),
            // FROM scratch and nothing else: an empty image.
            None => self
                .commit_config(&ImageConfig::new(now_rfc3339()), None)
                .map_err(|cause| self.unplaced(cause)),
        }
    }

    /// Every stage of the plan, through the scheduler; their images.
    fn run_stages(
        &self,
        plan: &Plan,
        globals: &HashMap<String, String>,
    ) -> Result<Stages, BuildError> {
        let nodes: Vec<Node> = plan
            .stages
            .iter()
            .map(|sp| Node {
                id: sp.stage.index,
                deps: sp.deps.clone(),
            })
            .collect();
        let jobs = self.opts.jobs.max(1);
        // One platform of several: the whole build said it started (once,
        // so that a --report is not started over by each platform).
        if self.opts.sibling.is_none() {
            let parallel = scheduler::can_overlap(&nodes, jobs);
            self.out
                .build_started(&dockerfile_name(self.opts), plan.total, parallel);
        }
        let by_id: HashMap<usize, &StagePlan> =
            plan.stages.iter().map(|sp| (sp.stage.index, sp)).collect();
        let work = |id: usize, done: &Stages| self.stage(plan, by_id[&id], globals, done);
        let stop = || {
            // A failed stage stops the other platforms' builds too.
            if let Some(s) = self.siblings() {
                s.stop();
            }
            crate::sandbox::interrupt::cancel_running();
        };
        let done = scheduler::run(&nodes, jobs, &self.cancel, &stop, &work);
        // Every stage has ended: nothing of this build is left to stop.
        crate::sandbox::interrupt::resume();
        done
    }

    fn stage(
        &self,
        plan: &Plan,
        sp: &StagePlan,
        globals: &HashMap<String, String>,
        done: &Stages,
    ) -> Result<Option<ImageId>, BuildError> {
        self.stopped()?;
        let _claims = Releasing(self.siblings());
        let _uncached = Uncached::set(self.filtered(sp));
        self.cache.stage_started(sp.stage.index);
        let started = self.begin(plan, sp, &sp.from);
        if let Some(reason) = self.dry_base(sp) {
            return self.would_run_from(plan, sp, None, reason);
        }
        let mut state = self
            .base_step(sp, done)
            .map_err(|cause| self.step_error(plan, &sp.from, None, cause))?;
        state.step = step_id(sp, &sp.from);
        let base = state
            .image
            .as_ref()
            .map_or("scratch".into(), |id| id.short().to_string());
        self.out.image(state.step, &base);
        match self.onbuild_triggers(&mut state) {
            Err(StepFailure::WouldRun) => {
                let reason = "an ONBUILD trigger is not in the cache".to_string();
                return self.would_run_from(plan, sp, None, reason);
            }
            triggered => triggered.map_err(|e| self.failed(plan, &sp.from, &mut state, e))?,
        }
        self.note_base(sp, &state);
        let base = out::Finished {
            cached: false,
            took: started.elapsed(),
            image: state.image.as_ref().map(ToString::to_string),
            layer: None,
            miss: None,
        };
        self.out.step_done(state.step, base);
        for (i, planned) in sp.steps.iter().enumerate() {
            // The keys this step claims are given up when it ends.
            let _claims = Releasing(self.siblings());
            self.stopped()?;
            let started = self.begin(plan, sp, planned);
            if let Some(reason) = self.dry_needs(planned) {
                return self.would_run_from(plan, sp, Some(i), reason);
            }
            state.step = step_id(sp, planned);
            let layers = state.config().rootfs.diff_ids.len();
            let outcome = self.step(
                &mut state,
                planned.step,
                planned.kind,
                sp.stage.index,
                globals,
                done,
            );
            // A RUN stopped by the same ^C (or by another stage's failure)
            // fails: an interruption, not a failing command.
            self.stopped()?;
            let finished = outcome
                .and_then(|d| self.finish(&mut state, d))
                .and_then(|cached| match sp.ends_metadata_run(i) {
                    true => self.materialize(&mut state).map(|()| cached),
                    false => Ok(cached),
                });
            if self.dry_miss(&finished) {
                let why = self.note_step(sp, planned, &state, false);
                let reason = why.unwrap_or_else(|| "not in the cache".to_string());
                return self.would_run_from(plan, sp, Some(i), reason);
            }
            let cached = finished.map_err(|cause| self.failed(plan, planned, &mut state, cause))?;
            let why = self.note_step(sp, planned, &state, cached);
            self.step_over(&mut state, cached, layers, started, why);
        }
        self.materialize(&mut state)
            .map_err(|cause| self.unplaced(cause))?;
        Ok(state.image)
    }

    /// Says the step starts; when it did.
    fn begin(&self, plan: &Plan, sp: &StagePlan, planned: &PlannedStep) -> Instant {
        let text = planned.step.raw.original.trim();
        let name = stage_name(sp);
        let place = out::Place {
            stage_name: &name,
            stage_step: planned.number - sp.from.number + 1,
            stage_steps: sp.steps.len() + 1,
            line: planned.step.span().start_line,
            column: planned.step.raw.col,
        };
        self.out
            .step_started(step_id(sp, planned), plan.total, place, text);
        Instant::now()
    }

    /// Says the step is over: cached or not (and then why: `why`, what
    /// changed, for the first miss of a stage under `--explain-cache`),
    /// the image the stage is at, the layer the step added (the stage had
    /// `layers` before it).
    fn step_over(
        &self,
        state: &mut StageState,
        cached: bool,
        layers: usize,
        started: Instant,
        why: Option<String>,
    ) {
        let miss = (!cached).then(|| match (self.opts.no_cache, state.first_miss) {
            (true, _) => "--no-cache".to_string(),
            _ if Uncached::here() => "--no-cache-filter".to_string(),
            (false, Some(n)) => format!("parent step {n} missed"),
            (false, None) => why.unwrap_or_else(|| "not in the cache".to_string()),
        });
        if let (true, Some(reason)) = (self.opts.explain_cache, &miss) {
            self.out.missed(state.step, reason);
        }
        if !cached && state.first_miss.is_none() {
            state.first_miss = Some(state.step.number);
        }
        let diff_ids = &state.config().rootfs.diff_ids;
        let layer = diff_ids
            .get(layers..)
            .and_then(<[_]>::last)
            .map(|d| progress::StepLayer {
                diff_id: d.to_string(),
                // A layer with no record has no size to tell.
                size: self
                    .store
                    .layer_record(d)
                    .ok()
                    .flatten()
                    .map_or(0, |r| r.size),
            });
        let finished = out::Finished {
            cached,
            took: started.elapsed(),
            image: match state.pending {
                Some(_) => None,
                None => state.image.as_ref().map(ToString::to_string),
            },
            layer,
            miss,
        };
        self.out.step_done(state.step, finished);
    }

    /// One step of a stage (or an ONBUILD trigger): expand, then the
    /// executor of its kind.
    fn step(
        &self,
        state: &mut StageState,
        step: &Step,
        kind: StepKind,
        stage: usize,
        globals: &HashMap<String, String>,
        done: &Stages,
    ) -> Result<Done, StepFailure> {
        if !kind.is_metadata() {
            // A layer goes on an image: the metadata steps before become one.
            self.materialize(state)?;
        }
        let instruction = step.expanded(&*state, self.parsed.escape())?;
        match kind {
            StepKind::Arg => meta::arg(self, state, step, &instruction, globals),
            StepKind::Config => meta::config(self, state, step, &instruction),
            StepKind::Run => run::execute(self, state, &instruction, stage, done),
            StepKind::Workdir => workdir::execute(self, state, step, &instruction),
            StepKind::Copy | StepKind::Add => {
                copy::execute(self, state, step, &instruction, stage, done)
            }
            StepKind::From => Err(StepFailure::NotHere("FROM")),
        }
    }

    /// Takes what a step made into the stage; whether it was cached.
    fn finish(&self, state: &mut StageState, done: Done) -> Result<bool, StepFailure> {
        Ok(match done {
            Done::Cached(id) => {
                self.out.cached(state.step, self.cache.origin());
                self.out.image(state.step, id.short());
                self.adopt(state, id)?;
                true
            }
            Done::Built { id, config } => {
                self.out.image(state.step, id.short());
                state.at(id, *config);
                false
            }
            Done::Meta { cached } => {
                if cached {
                    self.out.cached(state.step, self.cache.origin());
                }
                cached
            }
        })
    }

    /// The stage is now at a cached image.
    fn adopt(&self, state: &mut StageState, id: ImageId) -> Result<(), StepFailure> {
        let config = self.config_of(Some(&id))?;
        state.at(id, config);
        Ok(())
    }

    /// The config of `image`, or a new one where there is none (FROM
    /// scratch).
    fn config_of(&self, image: Option<&ImageId>) -> Result<ImageConfig, StepFailure> {
        Ok(match image {
            // A dry run's remote hit is not in the store: its record has it.
            Some(id) => match self.store.config(id) {
                Err(e) => (self.cache.config(id))
                    .filter(|_| self.opts.dry_run)
                    .ok_or(e)?,
                found => found?,
            },
            None => ImageConfig::new(now_rfc3339()),
        })
    }

    /// `--label`s on the final image.
    fn final_labels(&self, image: Option<ImageId>) -> Result<ImageId, BuildError> {
        let parent = image.as_ref().map_or(Parent::Scratch, Parent::Image);
        let key = key::key(parent, &Op::Labels(&self.opts.labels));
        if let Some(id) = self.lookup_image(&key) {
            return Ok(id);
        }
        let labelled = || -> Result<ImageId, StepFailure> {
            let mut config = self.config_of(image.as_ref())?;
            let labels = config
                .run_config_mut()
                .labels
                .get_or_insert_with(BTreeMap::new);
            labels.extend(self.opts.labels.clone());
            self.commit_config(&config, image.clone())
        };
        let id = labelled().map_err(|cause| self.unplaced(cause))?;
        self.record(&key, &Entry::Image(id.clone()));
        Ok(id)
    }

    pub fn driver(&self) -> DriverKind {
        *lock(&self.driver)
    }

    /// A mount failed with the driver: later containers use `driver`.
    pub fn fall_back(&self, driver: DriverKind) {
        *lock(&self.driver) = driver;
    }

    /// The build context (walked once, on first use).
    pub fn context(&self) -> Result<&Context, StepFailure> {
        if let Some(ctx) = self.context.get() {
            return Ok(ctx);
        }
        // A poisoned lock guards nothing but the walk, which starts over.
        let _opening = lock(&self.opening);
        if let Some(ctx) = self.context.get() {
            return Ok(ctx);
        }
        let ctx = match &self.opts.context {
            Some(dir) => Context::open_ignoring(
                dir,
                self.opts.dockerfile_path.as_deref(),
                self.opts.ignorefile.as_deref(),
            )?,
            None => Context::empty(),
        };
        for w in ctx.warnings() {
            self.out.warn(w);
        }
        Ok(self.context.get_or_init(|| ctx))
    }
}
