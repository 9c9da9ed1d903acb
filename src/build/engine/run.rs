//! The RUN executor: the command in a fresh container on the stage's
//! image, with the build args in its environment; its changes become the
//! layer.

use strata_parser::{Command, Env, Instruction};

use super::container::WorkingContainer;
use super::stage::StageState;
use super::{Build, Done};
use crate::build::cache::Entry;
use crate::build::config_steps::{argv, shell_of};
use crate::build::error::StepFailure;
use crate::build::key::{self, Op};
use crate::container::run::{self, RunError, RunOptions};
use crate::sandbox::driver::DriverKind;
use crate::sandbox::spawn::{Input, Output};
use crate::sandbox::spec::Network;

pub(super) fn execute(
    b: &Build,
    state: &StageState,
    instruction: &Instruction,
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
    if !mounts.is_empty() || security.is_some() {
        return Err(StepFailure::Unsupported(
            "RUN --mount and --security are not supported yet",
        ));
    }
    let shell = shell_of(state.config());
    let args = match command {
        Command::Shell(s) if s.trim_start().starts_with("<<") && !heredocs.is_empty() => {
            shell.iter().cloned().chain([heredocs[0].body()]).collect()
        }
        c => argv(c, &shell),
    };
    let network = match network {
        Some(strata_parser::instructions::Network::None) => Network::None,
        Some(_) => Network::Host,
        None => b.opts.network,
    };
    let visible = state.visible_args();
    let key = key::key(
        state.parent(),
        &Op::Run {
            argv: &args,
            args: &visible,
            network: &format!("{network:?}"),
        },
    );
    if let Some(id) = b.lookup_image(&key) {
        return Ok(Done::Cached(id));
    }
    let options = options(b, state, args.clone(), network);
    let mut c = WorkingContainer::create(b.store, b.stand_on(state)?, args.clone(), b.driver())?;
    b.out.running(c.c.short_id());
    let code = run_with_fallback(b, &mut c, options)?;
    if code != 0 {
        return Err(StepFailure::Exit(code));
    }
    let done = b.commit_layer(state, &c, args.join(" "))?;
    if let Done::Built { id, .. } = &done {
        b.record(&key, &Entry::Image(id.clone()));
    }
    Ok(done)
}

/// The process: the image's user, workdir and env, plus the build args.
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
        binds: Vec::new(),
        tty: false,
        input: Input::Null,
        output: if b.out.quiet() {
            Output::Null
        } else if b.opts.log_to_stderr {
            Output::Stderr
        } else {
            Output::Inherit
        },
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
