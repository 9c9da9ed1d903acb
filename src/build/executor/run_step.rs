//! RUN steps: the command in a fresh container on the stage's image, with
//! the build args in its environment; its changes become the layer.

use strata_parser::{Instruction, Step};

use super::{BuildError, Executor, StageState};
use crate::build::cache::CacheKey;
use crate::container::{self, run::RunOptions};
use crate::sandbox::driver::DriverKind;
use crate::sandbox::spawn::{Input, Output};
use crate::sandbox::spec::Network;

impl Executor<'_> {
    pub(super) fn run_step(
        &mut self,
        state: &mut StageState,
        step: &Step,
        args: Vec<String>,
        network: Network,
    ) -> Result<(), BuildError> {
        let mut visible_args: Vec<String> =
            state.args.iter().map(|(k, v)| format!("{k}={v}")).collect();
        visible_args.sort();
        let net = format!("{network:?}");
        let argv_json = serde_json::to_string(&args).unwrap_or_default();
        let key = CacheKey::new(
            state.parent.as_ref(),
            &["RUN", &argv_json, &visible_args.join("\n"), &net],
        );
        if let Some(id) = self.cached(&key) {
            return self.advance(state, id);
        }
        let rc = state.config.config.clone().unwrap_or_default();
        let mut run_env = rc.env.clone().unwrap_or_default();
        // Build args are in RUN's environment unless ENV sets the name.
        for (k, v) in &state.args {
            if !run_env
                .iter()
                .any(|kv| kv.split_once('=').map(|(n, _)| n) == Some(k))
            {
                run_env.push(format!("{k}={v}"));
            }
        }
        // A predefined proxy arg given with --build-arg reaches RUN without
        // an ARG line, as in Docker, but stays out of the cache key (a proxy
        // does not change what a step makes) and out of the history.
        let predefined = self.predefined_args_for(&run_env);
        run_env.extend(predefined);
        let mut c = self.container(state, args.clone())?;
        self.out.say(&format!(" ---> Running in {}", c.short_id()));
        let options = RunOptions {
            args: args.clone(),
            env: run_env,
            user: rc.user.clone().unwrap_or_default(),
            workdir: rc.working_dir.clone().unwrap_or_default(),
            workdir_for_user: true,
            network,
            binds: Vec::new(),
            tty: false,
            input: Input::Null,
            output: if self.opts.quiet {
                Output::Null
            } else {
                Output::Inherit
            },
        };
        let mut outcome = container::run::run(self.store, &mut c, options.clone());
        for fallback in [DriverKind::FuseOverlayfs, DriverKind::Vfs] {
            if self.opts.driver.is_some()
                || !matches!(outcome, Err(container::run::RunError::Mount(_)))
            {
                break;
            }
            crate::log::info(&format!(
                "{} could not mount here; trying {fallback}",
                self.driver
            ));
            self.driver = fallback;
            c.state.driver = fallback;
            c.save().map_err(|e| self.fail(e))?;
            outcome = container::run::run(self.store, &mut c, options.clone());
        }
        let code = match outcome {
            Ok(code) => code,
            Err(e) => {
                self.discard(&c);
                return Err(self.fail(e));
            }
        };
        if code != 0 {
            self.discard(&c);
            let shown = match &step.instruction {
                Instruction::Run {
                    command: strata_parser::Command::Exec(v),
                    ..
                } => format!("{v:?}"),
                _ => args.join(" "),
            };
            return Err(self.fail(format!(
                "The command '{shown}' returned a non-zero code: {code}"
            )));
        }
        let created_by = args.join(" ");
        let id = self.commit_layer(state, &c, created_by);
        self.discard(&c);
        let id = id?;
        self.remember(&key, &id);
        self.advance(state, id)
    }
}
