//! Each stage in order, with its environment as the build would have it:
//! UndefinedVar, WorkdirRelativePath, MultipleInstructionsDisallowed,
//! JSONArgsRecommended, SecretsUsedInArgOrEnv, CopyIgnoredFile and
//! ExposeProtoCasing.
//!
//! A stage starts from its base: an earlier stage's state (its variables,
//! declared args, whether WORKDIR or SHELL were set), `scratch`, or an
//! image's config from [`Inputs::base_image`]. When the image is unknown,
//! any variable could come from it, so UndefinedVar stays silent there.

use std::collections::{BTreeSet, HashMap};

use super::{at, from, Finding, Inputs, Rule, Watch};
use crate::expand::{expand_word, expand_words};
use crate::instructions::{ArgDecl, Command, FileCopy, Instruction, Source};
use crate::path::clean;
use crate::stages::{Parsed, Stage, StageRef, Step};
use crate::suggest::closest;

/// The PATH BuildKit gives a Linux stage whose image sets none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Args BuildKit reads itself and never puts in the environment.
const NON_ENV_ARGS: [&str; 2] = ["BUILDKIT_SBOM_SCAN_CONTEXT", "BUILDKIT_SBOM_SCAN_STAGE"];

/// Name parts that say a variable holds a secret, and parts that say it
/// does not (`PUBLIC_KEY`, `TOKEN_FILE`); BuildKit's lists.
const SECRET_WORDS: [&str; 10] = [
    "apikey",
    "auth",
    "credential",
    "credentials",
    "key",
    "password",
    "pword",
    "passwd",
    "secret",
    "token",
];
const NOT_SECRET_WORDS: [&str; 3] = ["public", "file", "version"];

/// Whether a variable's name says it holds a secret (`API_TOKEN`, not
/// `TOKEN_FILE`): SecretsUsedInArgOrEnv's test, also what keeps a build
/// arg out of provenance.
pub fn looks_secret(name: &str) -> bool {
    let has = |words: &[&str]| {
        name.split('_')
            .any(|part| words.contains(&part.to_lowercase().as_str()))
    };
    has(&SECRET_WORDS) && !has(&NOT_SECRET_WORDS)
}

/// A stage's state as the lint follows it.
#[derive(Debug, Clone, Default)]
struct Flow {
    env: HashMap<String, String>,
    /// Whether every variable in `env` is known (the base image's too).
    known: bool,
    /// ARG names declared (set or not).
    declared: BTreeSet<String>,
    workdir_set: bool,
    shell: bool,
}

impl Flow {
    fn image(env: Vec<(String, String)>, shell: bool) -> Flow {
        let mut env: HashMap<String, String> = env.into_iter().collect();
        env.entry("PATH".into())
            .or_insert_with(|| DEFAULT_PATH.into());
        Flow {
            env,
            known: true,
            shell,
            ..Flow::default()
        }
    }
}

pub(super) fn check(parsed: &Parsed, inputs: &dyn Inputs, out: &mut Vec<Finding>) {
    let globals = from::globals(parsed, inputs, true);
    let mut done: Vec<Flow> = Vec::new();
    for stage in &parsed.stages {
        let mut walk = Walk {
            parsed,
            inputs,
            globals: &globals,
            flow: base(parsed, stage, inputs, &globals, &done),
            once: HashMap::new(),
            out: &mut *out,
        };
        for step in &stage.steps {
            walk.step(step);
        }
        done.push(walk.flow);
    }
}

/// The state a stage starts from.
fn base(
    parsed: &Parsed,
    stage: &Stage,
    inputs: &dyn Inputs,
    globals: &HashMap<String, String>,
    done: &[Flow],
) -> Flow {
    let Instruction::From { image, .. } = &stage.from.instruction else {
        return Flow::default();
    };
    let name = expand_word(image, globals, parsed.escape()).unwrap_or_else(|_| image.clone());
    match parsed.resolve_from(&name, stage.index) {
        StageRef::Stage(i) => done.get(i).cloned().unwrap_or_default(),
        StageRef::Image(n) if n.eq_ignore_ascii_case("scratch") => Flow::image(Vec::new(), false),
        StageRef::Image(n) => match inputs.base_image(&n) {
            Some(b) => Flow::image(b.env, b.shell),
            None => Flow::default(),
        },
    }
}

struct Walk<'a> {
    parsed: &'a Parsed,
    inputs: &'a dyn Inputs,
    globals: &'a HashMap<String, String>,
    flow: Flow,
    /// Where the stage's CMD, ENTRYPOINT and HEALTHCHECK were last set.
    once: HashMap<&'static str, (usize, usize)>,
    out: &'a mut Vec<Finding>,
}

impl Walk<'_> {
    fn step(&mut self, step: &Step) {
        if let Instruction::Arg(decls) = &step.instruction {
            for decl in decls {
                self.arg(step, decl);
            }
            return;
        }
        let (expanded, missed) = {
            let watch = Watch::new(&self.flow.env);
            let expanded = step.expanded(&watch, self.parsed.escape());
            (expanded, watch.missed())
        };
        self.undefined(step, &missed);
        // An instruction that does not expand fails the build; nothing
        // more to say about it here.
        if let Ok(instruction) = expanded {
            self.apply(step, instruction);
        }
    }

    fn here(&mut self, step: &Step, rule: Rule, message: String) {
        let raw = &step.raw;
        self.out
            .push(at(raw.span.start_line, raw.col, rule, message));
    }

    fn apply(&mut self, step: &Step, instruction: Instruction) {
        let keyword = &step.raw.keyword;
        match instruction {
            Instruction::Env(pairs) => {
                for kv in pairs {
                    self.secret(step, "ENV", &kv.key);
                    self.flow.env.insert(kv.key, kv.value);
                }
            }
            Instruction::Workdir(path) => {
                if !self.flow.workdir_set && !path.starts_with('/') {
                    let message = format!(
                        "Relative workdir {path:?} can have unexpected results if the base image changes"
                    );
                    self.here(step, Rule::WorkdirRelativePath, message);
                }
                self.flow.workdir_set = true;
            }
            Instruction::Cmd(command) | Instruction::Entrypoint(command) => {
                self.once(step);
                if matches!(command, Command::Shell(_)) && !self.flow.shell {
                    let message = format!("JSON arguments recommended for {keyword} to prevent unintended behavior related to OS signals");
                    self.here(step, Rule::JsonArgsRecommended, message);
                }
            }
            Instruction::Healthcheck(_) => self.once(step),
            Instruction::Shell(_) => self.flow.shell = true,
            Instruction::Expose(_) => self.protocols(step),
            Instruction::Copy(copy) => self.ignored(step, &copy, "Copy"),
            Instruction::Add(copy) => self.ignored(step, &copy, "Add"),
            _ => {}
        }
    }

    /// `ARG name[=default]`: its value is the `--build-arg`, the default,
    /// or the global arg of that name; declared either way.
    fn arg(&mut self, step: &Step, decl: &ArgDecl) {
        self.secret(step, "ARG", &decl.name);
        let mut value = self.inputs.build_arg(&decl.name);
        if value.is_none() {
            if let Some(default) = &decl.default {
                let (expanded, missed) = {
                    let watch = Watch::new(&self.flow.env);
                    let expanded = expand_word(default, &watch, self.parsed.escape());
                    (expanded, watch.missed())
                };
                self.undefined(step, &missed);
                value = expanded.ok();
            } else {
                value = self.globals.get(&decl.name).cloned();
            }
        }
        self.flow.declared.insert(decl.name.clone());
        if let Some(value) = value {
            if !NON_ENV_ARGS.contains(&decl.name.as_str()) {
                self.flow.env.insert(decl.name.clone(), value);
            }
        }
    }

    fn undefined(&mut self, step: &Step, missed: &BTreeSet<String>) {
        if !self.flow.known {
            return;
        }
        let undefined: Vec<&String> = missed
            .iter()
            .filter(|n| !self.flow.declared.contains(*n) && !NON_ENV_ARGS.contains(&n.as_str()))
            .collect();
        if undefined.is_empty() {
            return;
        }
        // Sorted so the suggestion does not depend on hashing; only built
        // when needed (a stage can hold 100,000 variables).
        let mut names: Vec<&str> = self.flow.env.keys().map(String::as_str).collect();
        names.sort_unstable();
        let raw = &step.raw;
        for name in undefined {
            let hint = closest(name, names.iter().copied())
                .map(|s| format!(" (did you mean ${s}?)"))
                .unwrap_or_default();
            self.out.push(at(
                raw.span.start_line,
                raw.col,
                Rule::UndefinedVar,
                format!("Usage of undefined variable '${name}'{hint}"),
            ));
        }
    }

    /// CMD, ENTRYPOINT and HEALTHCHECK: only the last of a stage counts, so
    /// the one before is reported.
    fn once(&mut self, step: &Step) {
        let raw = &step.raw;
        let kind = step.instruction.keyword();
        let here = (raw.span.start_line, raw.col);
        if let Some((line, col)) = self.once.insert(kind, here) {
            self.out.push(at(
                line,
                col,
                Rule::MultipleInstructionsDisallowed,
                format!(
                    "Multiple {} instructions should not be used in the same stage because only the last one will be used",
                    raw.keyword
                ),
            ));
        }
    }

    fn secret(&mut self, step: &Step, instruction: &str, key: &str) {
        if looks_secret(key) {
            let message = format!(
                "Do not use ARG or ENV instructions for sensitive data ({instruction} {key:?})"
            );
            self.here(step, Rule::SecretsUsedInArgOrEnv, message);
        }
    }

    /// EXPOSE ports (as expanded, before typing lower-cases them) whose
    /// protocol is not written in lower case.
    fn protocols(&mut self, step: &Step) {
        let mut ports = Vec::new();
        for arg in &step.raw.args {
            ports.extend(
                expand_words(arg, &self.flow.env, self.parsed.escape()).unwrap_or_default(),
            );
        }
        for port in ports {
            let proto = port.rsplit_once('/').map_or("", |(_, p)| p);
            if proto != proto.to_lowercase() {
                let message =
                    format!("Defined protocol '{port}' in EXPOSE instruction should be lowercase");
                self.here(step, Rule::ExposeProtoCasing, message);
            }
        }
    }

    /// Context sources of COPY/ADD that `.dockerignore` excludes. With an
    /// exception (`!pattern`) in the rules nothing can be told statically.
    fn ignored(&mut self, step: &Step, copy: &FileCopy, verb: &str) {
        let Some(ignore) = self.inputs.dockerignore() else {
            return;
        };
        if copy.from.is_some() || ignore.has_exceptions() {
            return;
        }
        for source in &copy.sources {
            let Source::Path(path) = source else { continue };
            if verb == "Add" && is_remote(path) {
                continue;
            }
            let path = clean(path);
            let excluded = if path == "." || path == "/" {
                // The context root: only a pattern that excludes every
                // entry of it counts.
                ignore
                    .patterns()
                    .iter()
                    .any(|p| matches!(p.as_str(), "*" | "**" | "**/*"))
            } else {
                ignore.excludes(path.trim_start_matches('/'))
            };
            if excluded {
                let message =
                    format!("Attempting to {verb} file {path:?} that is excluded by .dockerignore");
                self.here(step, Rule::CopyIgnoredFile, message);
            }
        }
    }
}

/// An ADD source fetched from elsewhere (a URL or a git repository).
fn is_remote(path: &str) -> bool {
    path.contains("://") || path.starts_with("git@")
}
