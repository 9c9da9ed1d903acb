//! The FROM lines against the global ARGs: UndefinedArgInFrom,
//! InvalidDefaultArgInFrom, RedundantTargetPlatform and
//! FromPlatformFlagConstDisallowed.

use std::collections::{BTreeSet, HashMap};

use super::{at, Finding, Inputs, Rule, Watch};
use crate::expand::expand_word;
use crate::instructions::Instruction;
use crate::stages::{Parsed, Stage};
use crate::suggest::closest;

/// The arg BuildKit sets to the platform being built for.
const TARGET_PLATFORM: &str = "TARGETPLATFORM";

/// The environment FROM lines see: the platform args, then each global
/// ARG with its `--build-arg` value (when `with_build_args`) or its default.
/// A global ARG without either stays unset, as in BuildKit.
pub(super) fn globals(
    parsed: &Parsed,
    inputs: &dyn Inputs,
    with_build_args: bool,
) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = inputs.platform_args().into_iter().collect();
    for step in &parsed.global_args {
        let Instruction::Arg(decls) = &step.instruction else {
            continue;
        };
        for d in decls {
            let given = with_build_args.then(|| inputs.build_arg(&d.name)).flatten();
            let value = given.or_else(|| {
                let default = d.default.as_ref()?;
                // A default that does not expand fails the build later.
                expand_word(default, &env, parsed.escape()).ok()
            });
            if let Some(value) = value {
                env.insert(d.name.clone(), value);
            }
        }
    }
    env
}

/// The names of the global ARGs, set or not.
fn declared(parsed: &Parsed) -> BTreeSet<String> {
    parsed
        .global_args
        .iter()
        .filter_map(|step| match &step.instruction {
            Instruction::Arg(decls) => Some(decls.iter().map(|d| d.name.clone())),
            _ => None,
        })
        .flatten()
        .collect()
}

pub(super) fn check(parsed: &Parsed, inputs: &dyn Inputs, out: &mut Vec<Finding>) {
    let env = globals(parsed, inputs, true);
    let mut known: BTreeSet<String> = declared(parsed);
    known.extend(env.keys().cloned());
    for stage in &parsed.stages {
        let Instruction::From {
            image, platform, ..
        } = &stage.from.instruction
        else {
            continue;
        };
        let watch = Watch::new(&env);
        // An expansion error fails the build with its own message.
        let _ = expand_word(image, &watch, parsed.escape());
        undeclared(stage, &watch.missed(), &known, out);
        if let Some(platform) = platform {
            platform_rules(parsed, stage, platform, &env, &known, out);
        }
    }
    invalid_defaults(parsed, inputs, out);
}

fn undeclared(
    stage: &Stage,
    missed: &BTreeSet<String>,
    known: &BTreeSet<String>,
    out: &mut Vec<Finding>,
) {
    let raw = &stage.from.raw;
    for name in missed.iter().filter(|n| !known.contains(*n)) {
        let hint = closest(name, known.iter().map(String::as_str))
            .map(|s| format!(" (did you mean {s}?)"))
            .unwrap_or_default();
        out.push(at(
            raw.span.start_line,
            raw.col,
            Rule::UndefinedArgInFrom,
            format!("FROM argument '{name}' is not declared{hint}"),
        ));
    }
}

fn platform_rules(
    parsed: &Parsed,
    stage: &Stage,
    platform: &str,
    env: &HashMap<String, String>,
    known: &BTreeSet<String>,
    out: &mut Vec<Finding>,
) {
    let raw = &stage.from.raw;
    let watch = Watch::new(env);
    let Ok(value) = expand_word(platform, &watch, parsed.escape()) else {
        return;
    };
    let (found, missed) = (watch.found(), watch.missed());
    undeclared(stage, &missed, known, out);
    let here = |rule, message| at(raw.span.start_line, raw.col, rule, message);
    if missed.is_empty()
        && found.len() == 1
        && found.contains(TARGET_PLATFORM)
        && env.get(TARGET_PLATFORM) == Some(&value)
    {
        out.push(here(
            Rule::RedundantTargetPlatform,
            format!("Setting platform to predefined {platform} in FROM is redundant as this is the default behavior"),
        ));
    }
    if !(found.is_empty() && missed.is_empty()) {
        return;
    }
    let Some((os, arch)) = os_arch(&value) else {
        return;
    };
    // A stage named for its platform (`AS build_amd64`) is meant to be
    // platform-specific.
    let name = stage.name.as_deref().unwrap_or_default();
    if !(name.contains(&os) || arch.is_some_and(|a| name.contains(&a))) {
        out.push(here(
            Rule::FromPlatformFlagConstDisallowed,
            format!("FROM --platform flag should not use constant value {value:?}"),
        ));
    }
}

/// Operating systems and architectures containerd knows by name.
const KNOWN_OS: [&str; 5] = ["linux", "windows", "darwin", "freebsd", "openbsd"];
const KNOWN_ARCH: [&str; 10] = [
    "386", "amd64", "arm", "arm64", "loong64", "mips64", "mips64le", "ppc64le", "riscv64", "s390x",
];

/// The OS and architecture (when given) of a platform string, normalised
/// as containerd's `platforms.Parse` does for the common names; `None` when
/// it is not one (the build reports that).
fn os_arch(platform: &str) -> Option<(String, Option<String>)> {
    let parts: Vec<String> = platform.split('/').map(str::to_lowercase).collect();
    let valid = |p: &String| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    };
    if parts.len() > 3 || !parts.iter().all(valid) {
        return None;
    }
    let arch = |a: &str| {
        match a {
            "x86_64" | "x86-64" => "amd64",
            "aarch64" => "arm64",
            "i386" | "i686" => "386",
            "armhf" | "armel" => "arm",
            other => other,
        }
        .to_string()
    };
    match parts.as_slice() {
        [os] if KNOWN_OS.contains(&os.as_str()) => Some((os.clone(), None)),
        [a] if KNOWN_ARCH.contains(&arch(a).as_str()) => Some(("linux".to_string(), Some(arch(a)))),
        [os, a, ..] => Some((os.clone(), Some(arch(a)))),
        _ => None,
    }
}

/// Every FROM image must be a valid name with the global ARGs' defaults
/// alone: a build should not need `--build-arg` to work.
fn invalid_defaults(parsed: &Parsed, inputs: &dyn Inputs, out: &mut Vec<Finding>) {
    let env = globals(parsed, inputs, false);
    for stage in &parsed.stages {
        let Instruction::From { image, .. } = &stage.from.instruction else {
            continue;
        };
        // BuildKit gives up on this rule at the first FROM that does not
        // expand; the build then fails with that error.
        let Ok(name) = expand_word(image, &env, parsed.escape()) else {
            return;
        };
        if name.is_empty() || !inputs.valid_reference(&name) {
            let raw = &stage.from.raw;
            out.push(at(
                raw.span.start_line,
                raw.col,
                Rule::InvalidDefaultArgInFrom,
                format!(
                    "Default value for ARG {image} results in empty or invalid base image name"
                ),
            ));
        }
    }
}
