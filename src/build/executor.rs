//! The Dockerfile executor.
//!
//! Every step starts from the previous step's image. A RUN, COPY or ADD
//! step runs in a fresh container and its writable layer becomes the new
//! layer; a metadata step changes only the config (a history entry with
//! `empty_layer`). Every step's image is committed (untagged) so a later
//! build can reuse it through the cache and a failed build can be debugged
//! from the last good step with `strata run -it <id> sh`. Only the stages
//! the target needs are built.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::PathBuf;

use strata_parser::{Instruction, Parsed, StageRef, Step};

mod args;
mod commit;
mod copy_step;
mod run_step;

use super::cache::{self, CacheKey};
use super::config_steps::{self, argv};
use crate::digest::ImageId;
use crate::reference::Reference;
use crate::sandbox::driver::DriverKind;
use crate::sandbox::spec::Network;
use crate::store::config::{History, ManifestFormat};
use crate::store::{now_rfc3339, ImageConfig, Store};
use args::{host_platform, platform_args};

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Bad syntax: `file:line:col: message`, the line and a caret.
    #[error("{0}")]
    Parse(String),
    #[error("target stage \"{0}\" could not be found")]
    NoTarget(String),
    /// A step failed.
    #[error("{step}: {message}")]
    Step { step: String, message: String },
    /// ^C or SIGTERM: stopped between steps, nothing tagged.
    #[error("build interrupted; nothing was tagged")]
    Interrupted,
}

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
    pub labels: BTreeMap<String, String>,
    pub quiet: bool,
    pub network: Network,
    /// Forced with --storage-driver, else chosen by trying.
    pub driver: Option<DriverKind>,
    /// When FROM images are pulled.
    pub pull: PullPolicy,
    /// Recorded with the final image, for `push`.
    pub format: ManifestFormat,
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

/// The result of a stage: its image (None: scratch with no step).
#[derive(Debug, Clone)]
struct StageResult {
    image: Option<ImageId>,
}

/// Prints build progress unless quiet (one printer for the build).
struct Printer {
    quiet: bool,
}

impl Printer {
    fn say(&self, line: &str) {
        if !self.quiet {
            let mut out = std::io::stdout().lock();
            // A closed stdout must not fail the build.
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }
}

/// One stage's running state.
struct StageState {
    parent: Option<ImageId>,
    config: ImageConfig,
    /// Declared ARGs with their values.
    args: BTreeMap<String, String>,
    cmd_set: bool,
}

impl StageState {
    /// The environment for expansion and for RUN: ARGs, then ENV over them.
    fn env(&self) -> HashMap<String, String> {
        let mut env: HashMap<String, String> = self
            .args
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for kv in self
            .config
            .config
            .as_ref()
            .and_then(|c| c.env.as_ref())
            .into_iter()
            .flatten()
        {
            if let Some((k, v)) = kv.split_once('=') {
                env.insert(k.to_string(), v.to_string());
            }
        }
        env
    }
}

pub struct Executor<'a> {
    store: &'a Store,
    opts: BuildOptions,
    parsed: Parsed,
    out: Printer,
    step_no: usize,
    total: usize,
    used_args: BTreeSet<String>,
    driver: DriverKind,
    /// The image of the last step that succeeded, for the failure message.
    last_good: Option<ImageId>,
    /// Set while a step runs: `Step 3/7 : RUN make` and its line.
    current: (String, usize),
    /// The build context, opened on the first COPY/ADD that needs it.
    context: Option<crate::build::context::Context>,
}

/// Err once ^C (or SIGTERM) has asked the build to stop.
fn interrupted() -> Result<(), BuildError> {
    match crate::sandbox::interrupt::requested() {
        true => Err(BuildError::Interrupted),
        false => Ok(()),
    }
}

fn short(id: &ImageId) -> String {
    id.short().to_string()
}

impl<'a> Executor<'a> {
    pub fn new(store: &'a Store, opts: BuildOptions) -> Result<Executor<'a>, BuildError> {
        let file = opts
            .dockerfile_path
            .as_ref()
            .map_or_else(|| "Dockerfile".to_string(), |p| p.display().to_string());
        let parsed = strata_parser::parse(&opts.dockerfile)
            .map_err(|e| BuildError::Parse(format!("{file}:{}", e.render(&opts.dockerfile))))?;
        let quiet = opts.quiet;
        let driver = opts.driver.unwrap_or(DriverKind::Overlay);
        Ok(Executor {
            store,
            opts,
            parsed,
            out: Printer { quiet },
            step_no: 0,
            total: 0,
            used_args: BTreeSet::new(),
            driver,
            last_good: None,
            current: (String::new(), 0),
            context: None,
        })
    }

    fn fail(&self, message: impl std::fmt::Display) -> BuildError {
        let mut message = format!("{message} (Dockerfile line {})", self.current.1);
        if let Some(id) = &self.last_good {
            message.push_str(&format!(
                "; the last good step's image is {0}: open it with 'strata run -it {0} sh'",
                short(id)
            ));
        }
        BuildError::Step {
            step: self.current.0.clone(),
            message,
        }
    }

    /// Runs the build; returns the final image.
    pub fn run(mut self) -> Result<ImageId, BuildError> {
        if let Err(e) = crate::sandbox::interrupt::catch() {
            // Without it ^C still stops the build, only less tidily.
            eprintln!("strata: warning: catching ^C: {e}");
        }
        let target = match &self.opts.target {
            Some(name) => self
                .parsed
                .stage(name)
                .map(|s| s.index)
                .ok_or_else(|| BuildError::NoTarget(name.clone()))?,
            None => self.parsed.stages.len().saturating_sub(1),
        };
        let needed = self.needed_stages(target);
        self.total = needed
            .iter()
            .map(|&i| 1 + self.parsed.stages[i].steps.len())
            .sum();
        let globals = self.global_args()?;
        let mut results: BTreeMap<usize, StageResult> = BTreeMap::new();
        for &index in &needed {
            let result = self.stage(index, &globals, &results)?;
            results.insert(index, result);
        }
        let mut image = results.get(&target).and_then(|r| r.image.clone());
        if !self.opts.labels.is_empty() {
            image = Some(self.final_labels(image)?);
        }
        let image = match image {
            Some(id) => id,
            None => self.commit_config(None, ImageConfig::new(now_rfc3339()))?,
        };
        self.warn_unused_args();
        interrupted()?;
        self.store
            .finish_image(&image, self.opts.format, &self.opts.tags)
            .map_err(|e| BuildError::Step {
                step: "tagging".into(),
                message: e.to_string(),
            })?;
        self.out
            .say(&format!("Successfully built {}", short(&image)));
        for tag in &self.opts.tags {
            self.out
                .say(&format!("Successfully tagged {}", tag.familiar()));
        }
        Ok(image)
    }

    /// The target and every stage it depends on (FROM and COPY --from), in order.
    fn needed_stages(&self, target: usize) -> Vec<usize> {
        let mut needed = BTreeSet::new();
        let mut todo = vec![target];
        while let Some(i) = todo.pop() {
            if !needed.insert(i) {
                continue;
            }
            let stage = &self.parsed.stages[i];
            if let StageRef::Stage(dep) = stage.base {
                todo.push(dep);
            }
            for step in &stage.steps {
                if let Instruction::Copy(c) = &step.instruction {
                    match c.from.as_deref() {
                        // An expanded --from may name any earlier stage.
                        Some(f) if f.contains('$') => todo.extend(0..i),
                        Some(f) => {
                            if let Ok(StageRef::Stage(dep)) = self.parsed.resolve_copy_from(f, i) {
                                todo.push(dep);
                            }
                        }
                        None => {}
                    }
                }
            }
        }
        needed.into_iter().collect()
    }

    fn begin(&mut self, step: &Step) {
        self.step_no += 1;
        let text = step.raw.original.trim().to_string();
        self.current = (
            format!("Step {}/{} : {text}", self.step_no, self.total),
            step.span().start_line,
        );
        self.out.say(&self.current.0);
    }

    fn stage(
        &mut self,
        index: usize,
        globals: &HashMap<String, String>,
        done: &BTreeMap<usize, StageResult>,
    ) -> Result<StageResult, BuildError> {
        let stage = self.parsed.stages[index].clone();
        let escape = self.parsed.escape();
        self.begin(&stage.from);
        let from = stage
            .from
            .expanded(globals, escape)
            .map_err(|e| self.fail(e))?;
        let Instruction::From {
            image, platform, ..
        } = from
        else {
            return Err(self.fail("not a FROM instruction"));
        };
        if let Some(p) = platform.filter(|p| !p.is_empty() && *p != host_platform()) {
            return Err(self.fail(format!(
                "FROM --platform={p}: only the host platform ({}) can be built",
                host_platform()
            )));
        }
        let parent = match self.parsed.resolve_from(&image, index) {
            StageRef::Stage(i) => done.get(&i).and_then(|r| r.image.clone()),
            StageRef::Image(name) if name.eq_ignore_ascii_case("scratch") => None,
            StageRef::Image(name) => Some(self.base_image(&name)?),
        };
        let mut config = match &parent {
            Some(id) => self.store.config(id).map_err(|e| self.fail(e))?,
            None => ImageConfig::new(now_rfc3339()),
        };
        config_steps::ensure_path(&mut config);
        self.out.say(&format!(
            " ---> {}",
            parent.as_ref().map_or_else(|| "scratch".into(), short)
        ));
        self.last_good = parent.clone();
        let mut state = StageState {
            parent,
            config,
            args: BTreeMap::new(),
            cmd_set: false,
        };
        // Globals declared again in the stage get their global value.
        let global_values = globals.clone();
        self.onbuild_triggers(&mut state)?;
        for step in &stage.steps {
            interrupted()?;
            self.begin(step);
            let outcome = self.step(&mut state, step, &global_values, index, done);
            // A RUN stopped by the same ^C fails with 130: an interruption,
            // not a failing command.
            interrupted()?;
            outcome?;
        }
        Ok(StageResult {
            image: state.parent,
        })
    }

    /// A FROM image, from the store or its registry as `--pull` says.
    fn base_image(&self, name: &str) -> Result<ImageId, BuildError> {
        let flags = crate::registry::flags::RegistryFlags::default();
        match self.opts.pull {
            PullPolicy::Never => self
                .store
                .resolve(name)
                .map_err(|e| self.fail(format!("{e} (and --pull=never)"))),
            PullPolicy::Missing => {
                crate::registry::pull::resolve_or_pull(self.store, name, &flags, self.opts.quiet)
                    .map_err(|e| self.fail(e))
            }
            PullPolicy::Always => {
                let reference = Reference::parse(name).map_err(|e| self.fail(e))?;
                let progress = crate::registry::progress::Progress::on_stderr(self.opts.quiet);
                let options = crate::registry::pull::PullOptions::default();
                crate::registry::pull::pull_image(
                    self.store, &reference, &flags, &options, &progress,
                )
                .map(|pulled| pulled.id)
                .map_err(|e| self.fail(e))
            }
        }
    }

    /// ONBUILD triggers of the base image run first, then are dropped.
    fn onbuild_triggers(&mut self, state: &mut StageState) -> Result<(), BuildError> {
        let triggers = state
            .config
            .config
            .as_mut()
            .and_then(|c| c.on_build.take())
            .unwrap_or_default();
        if triggers.is_empty() {
            return Ok(());
        }
        self.out.say(&format!(
            "# Executing {} build trigger{}",
            triggers.len(),
            if triggers.len() == 1 { "" } else { "s" }
        ));
        let text = format!("FROM scratch\n{}\n", triggers.join("\n"));
        let parsed =
            strata_parser::parse(&text).map_err(|e| self.fail(format!("ONBUILD trigger: {e}")))?;
        for step in &parsed.stages[0].steps {
            self.step(state, step, &HashMap::new(), 0, &BTreeMap::new())?;
        }
        Ok(())
    }

    fn step(
        &mut self,
        state: &mut StageState,
        step: &Step,
        globals: &HashMap<String, String>,
        stage: usize,
        done: &BTreeMap<usize, StageResult>,
    ) -> Result<(), BuildError> {
        let escape = self.parsed.escape();
        let env = state.env();
        let instruction = step.expanded(&env, escape).map_err(|e| self.fail(e))?;
        match &instruction {
            Instruction::Arg(decls) => {
                for d in decls {
                    // A platform arg declared without a value gets the host's.
                    let value = self
                        .build_arg(&d.name)
                        .or_else(|| d.default.clone())
                        .or_else(|| globals.get(&d.name).cloned())
                        .or_else(|| {
                            platform_args()
                                .into_iter()
                                .find(|(k, _)| *k == d.name)
                                .map(|(_, v)| v)
                        })
                        .unwrap_or_default();
                    state.args.insert(d.name.clone(), value);
                }
                // No config change, but a history entry, as Docker's classic
                // builder and buildah record ARG.
                let config = state.config.clone();
                self.metadata_step(state, step, config)
            }
            Instruction::Run {
                command,
                mounts,
                network,
                security,
                heredocs,
            } => {
                if !mounts.is_empty() || security.is_some() {
                    return Err(self.fail("RUN --mount and --security are not supported yet"));
                }
                let shell = config_steps::shell_of(&state.config);
                let args = match command {
                    strata_parser::Command::Shell(s)
                        if s.trim_start().starts_with("<<") && !heredocs.is_empty() =>
                    {
                        shell.iter().cloned().chain([heredocs[0].body()]).collect()
                    }
                    c => argv(c, &shell),
                };
                let net = match network {
                    Some(strata_parser::instructions::Network::None) => Network::None,
                    Some(_) => Network::Host,
                    None => self.opts.network,
                };
                self.run_step(state, step, args, net)
            }
            Instruction::Copy(fc) => self.copy_step(state, step, fc, false, stage, done),
            Instruction::Add(fc) => self.copy_step(state, step, fc, true, stage, done),
            Instruction::Onbuild(_) => {
                let trigger = step
                    .raw
                    .onbuild
                    .as_ref()
                    .map(|r| r.original.trim().to_string())
                    .unwrap_or_default();
                let mut config = state.config.clone();
                config
                    .run_config_mut()
                    .on_build
                    .get_or_insert_with(Vec::new)
                    .push(trigger);
                self.metadata_step(state, step, config)
            }
            other => {
                let mut config = state.config.clone();
                let applied = config_steps::apply(&mut config, other, state.cmd_set)
                    .map_err(|e| self.fail(e))?;
                if !applied {
                    return Err(self.fail(format!("{} is not supported here", other.keyword())));
                }
                state.cmd_set |= matches!(other, Instruction::Cmd(_));
                self.metadata_step(state, step, config)
            }
        }
    }

    /// A step that changes only the config.
    fn metadata_step(
        &mut self,
        state: &mut StageState,
        step: &Step,
        mut config: ImageConfig,
    ) -> Result<(), BuildError> {
        let text = step.raw.original.trim().to_string();
        let key = CacheKey::new(
            state.parent.as_ref(),
            &[
                "META",
                &text,
                &serde_json::to_string(&config.config).unwrap_or_default(),
            ],
        );
        if let Some(id) = self.cached(&key) {
            return self.advance(state, id);
        }
        let now = now_rfc3339();
        config.created = Some(now.clone());
        config.history.push(History {
            created: Some(now),
            created_by: Some(format!("/bin/sh -c #(nop) {text}")),
            empty_layer: true,
            ..History::default()
        });
        let id = self.commit_config(state.parent.clone(), config)?;
        self.remember(&key, &id);
        self.advance(state, id)
    }

    /// `--label`s on the final image.
    fn final_labels(&mut self, image: Option<ImageId>) -> Result<ImageId, BuildError> {
        let mut config = match &image {
            Some(id) => self.store.config(id).map_err(|e| self.fail(e))?,
            None => ImageConfig::new(now_rfc3339()),
        };
        let labels = config
            .run_config_mut()
            .labels
            .get_or_insert_with(BTreeMap::new);
        for (k, v) in &self.opts.labels {
            labels.insert(k.clone(), v.clone());
        }
        let key = CacheKey::new(
            image.as_ref(),
            &[
                "LABELS",
                &serde_json::to_string(&self.opts.labels).unwrap_or_default(),
            ],
        );
        if let Some(id) = (!self.opts.no_cache)
            .then(|| cache::lookup(self.store, &key))
            .flatten()
        {
            return Ok(id);
        }
        let id = self.commit_config(image, config)?;
        self.remember(&key, &id);
        Ok(id)
    }
}
