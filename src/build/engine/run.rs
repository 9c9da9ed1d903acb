//! The RUN executor: the command in a fresh container on the stage's
//! image, with the build args in its environment and its `--mount`s
//! (`build::mounts`) made for it; its changes become the layer.

use strata_parser::instructions::{Network as StepNetwork, Security};
use strata_parser::{Command, Env, Instruction};

use super::container::WorkingContainer;
use super::stage::StageState;
use super::{Build, Done, Stages};
use crate::build::cache::Entry;
use crate::build::config_steps::{argv, shell_of};
use crate::build::context::Context;
use crate::build::error::StepFailure;
use crate::build::key::{self, Op};
use crate::build::mounts::{self, Host, MountedImage, SecretSource, SshAgent};
use crate::container::run::{self, MountedRoot, RunError, RunOptions};
use crate::digest::ImageId;
use crate::sandbox::driver::DriverKind;
use crate::sandbox::spawn::Input;
use crate::sandbox::spec::Network;
use crate::store::Store;

pub(super) fn execute(
    b: &Build,
    state: &StageState,
    instruction: &Instruction,
    stage: usize,
    done: &Stages,
) -> Result<Done, StepFailure> {
    let Instruction::Run {
        command,
        mounts,
        network,
        security,
        heredocs,
    } = instruction
    else {
        return Err(StepFailure::NotHere(instruction.keyword()));
    };
    if *security == Some(Security::Insecure) {
        return Err(StepFailure::Unsupported(
            "RUN --security=insecure is refused: strata cannot grant a step more privilege than its caller has",
        ));
    }
    let shell = shell_of(state.config());
    let args = match command {
        Command::Shell(s) if s.trim_start().starts_with("<<") && !heredocs.is_empty() => {
            shell.iter().cloned().chain([heredocs[0].body()]).collect()
        }
        c => argv(c, &shell),
    };
    let network = step_network(b, *network)?;
    let host = StepHost { b, stage, done };
    let workdir = state
        .config()
        .config
        .as_ref()
        .and_then(|c| c.working_dir.clone())
        .unwrap_or_default();
    let step_mounts = mounts::plan(&host, mounts, &workdir)?;
    for cache in step_mounts.cache_keys() {
        b.cache.note_cache_mount(cache);
    }
    let visible = state.visible_args();
    let extras = b.opts.extras.key_lines();
    let key = key::key(
        state.parent(),
        &Op::Run {
            argv: &args,
            args: &visible,
            network: &format!("{network:?}"),
            mounts: step_mounts.key(),
            extras: &extras,
        },
    );
    if let Some(id) = b.lookup_image(&key) {
        return Ok(Done::Cached(id));
    }
    b.may_execute()?;
    runnable(state)?;
    let mut c = WorkingContainer::create(b.store, b.stand_on(state)?, args.clone(), b.driver())?;
    let active = step_mounts.activate(&host)?;
    let mut options = options(b, state, args.clone(), network);
    options.mounts.clone_from(&active.mounts);
    options.env.extend(active.env.iter().cloned());
    b.out.running(state.step, c.c.short_id());
    let code = run_with_fallback(b, &mut c, options);
    drop(active);
    let code = code?;
    if code != 0 {
        return Err(StepFailure::Exit(code));
    }
    let done = b.commit_layer(state, &c, args.join(" "))?;
    if let Done::Built { id, .. } = &done {
        b.record(&key, &Entry::Image(id.clone()));
    }
    Ok(done)
}

/// What the mounts of one step get from the build.
struct StepHost<'a, 'b> {
    b: &'a Build<'b>,
    stage: usize,
    done: &'a Stages,
}

/// A stage's root file system, mounted in a container of its own (whose
/// throwaway upper layer takes an `rw` bind's writes).
struct MountedStage<'s> {
    root: MountedRoot,
    _container: WorkingContainer<'s>,
}

impl MountedImage for MountedStage<'_> {
    fn path(&self) -> &std::path::Path {
        self.root.path()
    }
}

impl Host for StepHost<'_, '_> {
    fn store(&self) -> &Store {
        self.b.store
    }

    fn image(&self, from: &str) -> Result<ImageId, StepFailure> {
        let image = super::copy::image_of_from(self.b, from, self.stage, self.done)?;
        crate::build::explain::note_mount(from, &image.to_string());
        Ok(image)
    }

    fn context(&self) -> Result<&Context, StepFailure> {
        self.b.context()
    }

    fn mount_image(&self, image: &ImageId) -> Result<Box<dyn MountedImage + '_>, StepFailure> {
        let container =
            WorkingContainer::create(self.b.store, image.clone(), Vec::new(), self.b.driver())?;
        let root = container.mount()?;
        Ok(Box::new(MountedStage {
            root,
            _container: container,
        }))
    }

    fn secrets(&self) -> &[SecretSource] {
        &self.b.opts.secrets
    }

    fn agents(&self) -> &[SshAgent] {
        &self.b.opts.ssh
    }

    fn waiting(&self, message: &str) {
        self.b.out.notice(message);
    }
}

/// `RUN --network`: `default` is the build's (`--network`). `host` needs
/// Docker's entitlement even where (rootless) it grants nothing the caller
/// lacks: a Dockerfile that asks for it asks the one who runs the build.
fn step_network(b: &Build, network: Option<StepNetwork>) -> Result<Network, StepFailure> {
    match network {
        Some(StepNetwork::None) => Ok(Network::None),
        Some(StepNetwork::Host) if !b.opts.allow_network_host => Err(StepFailure::Unsupported(
            "RUN --network=host is not allowed: pass --allow network.host (Docker's entitlement)",
        )),
        Some(StepNetwork::Host) => Ok(Network::Host),
        Some(StepNetwork::Default) | None => Ok(b.opts.network),
    }
}

/// The process: the image's user, workdir and env, plus the build args.
/// A RUN on another platform's image needs the kernel to emulate it.
fn runnable(state: &StageState) -> Result<(), StepFailure> {
    use crate::platform::{self, Runnable};
    let p = platform::of_config(state.config());
    match platform::runnable(&p) {
        Runnable::No { reason } => Err(StepFailure::Emulation {
            platform: platform::show(&p),
            reason,
            fix: platform::fix(&p),
        }),
        _ => Ok(()),
    }
}

pub(super) fn options(
    b: &Build,
    state: &StageState,
    args: Vec<String>,
    network: Network,
) -> RunOptions {
    let rc = state.config().config.clone().unwrap_or_default();
    let mut env = state.editor.env().to_vec();
    // Build args are in RUN's environment unless ENV sets the name.
    for (k, v) in &state.args {
        if state.editor.get(k).is_none() {
            env.push(format!("{k}={v}"));
        }
    }
    // A predefined proxy arg given with --build-arg reaches RUN without an
    // ARG line, as in Docker, but stays out of the cache key (a proxy does
    // not change what a step makes) and out of the history.
    let predefined = b.args.predefined_for(&env);
    env.extend(predefined);
    RunOptions {
        args,
        env,
        user: rc.user.unwrap_or_default(),
        workdir: rc.working_dir.unwrap_or_default(),
        workdir_for_user: true,
        network,
        mounts: Vec::new(),
        tty: false,
        extras: b.opts.extras.clone(),
        input: Input::Null,
        output: b.out.run_output(state.step, b.opts.log_to_stderr),
    }
}

/// Runs the container; when its driver cannot mount here (and none was
/// forced), tries the next one, which later steps keep.
fn run_with_fallback(
    b: &Build,
    c: &mut WorkingContainer,
    options: RunOptions,
) -> Result<i32, StepFailure> {
    let mut outcome = run::run(b.store, &mut c.c, options.clone());
    for fallback in [DriverKind::FuseOverlayfs, DriverKind::Vfs] {
        if b.opts.driver.is_some() || !matches!(outcome, Err(RunError::Mount(_))) {
            break;
        }
        crate::log::info(&format!(
            "{} could not mount here; trying {fallback}",
            b.driver()
        ));
        b.fall_back(fallback);
        c.c.state.driver = fallback;
        c.c.save()?;
        outcome = run::run(b.store, &mut c.c, options.clone());
    }
    Ok(outcome?)
}
