//! One function per instruction: raw arguments and flags in, typed
//! [`Instruction`] out. Argument-count and flag rules follow Docker's.

use std::time::Duration;

use super::flags::{Flags, Kind, Spec};
use super::mount::Mount;
use super::values::{parse_duration, parse_mode, Deferred, PortRange, UserGroup};
use super::{
    ArgDecl, Command, FileCopy, Healthcheck, Instruction, InstructionError, KeyValue, Network,
    Security, Source,
};
use crate::raw::{is_heredoc_marker, join_split_markers, RawInstruction};
use crate::suggest::suggest;

const FROM_FLAGS: &[Spec] = &[("platform", Kind::Value)];
const RUN_FLAGS: &[Spec] = &[
    ("mount", Kind::List),
    ("network", Kind::Value),
    ("security", Kind::Value),
];
const COPY_FLAGS: &[Spec] = &[
    ("from", Kind::Value),
    ("chown", Kind::Value),
    ("chmod", Kind::Value),
    ("link", Kind::Bool),
    ("parents", Kind::Bool),
    ("exclude", Kind::List),
];
const ADD_FLAGS: &[Spec] = &[
    ("chown", Kind::Value),
    ("chmod", Kind::Value),
    ("link", Kind::Bool),
    ("exclude", Kind::List),
    ("checksum", Kind::Value),
    ("keep-git-dir", Kind::Bool),
];
const HEALTHCHECK_FLAGS: &[Spec] = &[
    ("interval", Kind::Value),
    ("timeout", Kind::Value),
    ("start-period", Kind::Value),
    ("start-interval", Kind::Value),
    ("retries", Kind::Value),
];

/// Context for one instruction being typed.
struct Req<'r> {
    raw: &'r RawInstruction,
    name: String,
}

impl Req<'_> {
    fn flags(&self, specs: &[Spec]) -> Result<Flags, InstructionError> {
        Flags::parse(&self.name, &self.raw.flags, specs)
    }

    fn count_error(&self, expected: &'static str) -> InstructionError {
        InstructionError::ArgCount {
            instruction: self.name.clone(),
            expected,
        }
    }

    fn at_least_one(&self) -> Result<&[String], InstructionError> {
        if self.raw.args.is_empty() {
            return Err(self.count_error("at least one argument"));
        }
        Ok(&self.raw.args)
    }

    fn exactly_one(&self) -> Result<String, InstructionError> {
        match self.raw.args.as_slice() {
            [one] => Ok(one.clone()),
            _ => Err(self.count_error("exactly one argument")),
        }
    }

    fn bad_arg(&self, message: String) -> InstructionError {
        InstructionError::BadArgument {
            instruction: self.name.clone(),
            message,
            word: None,
        }
    }

    /// A bad argument `word`, which the error will point at.
    fn bad_word(&self, word: &str, message: String) -> InstructionError {
        InstructionError::BadArgument {
            instruction: self.name.clone(),
            message,
            word: Some(word.to_string()),
        }
    }

    fn bad_flag(&self, flag: &str, value: &str, expected: &str) -> InstructionError {
        InstructionError::BadFlagValue {
            instruction: self.name.clone(),
            flag: format!("--{flag}"),
            value: value.to_string(),
            expected: expected.to_string(),
        }
    }

    fn command(&self) -> Command {
        if self.raw.json {
            Command::Exec(self.raw.args.clone())
        } else {
            Command::Shell(self.raw.args.first().cloned().unwrap_or_default())
        }
    }

    fn key_values(&self) -> Result<Vec<KeyValue>, InstructionError> {
        Ok(self
            .at_least_one()?
            .chunks(3)
            .map(|kv| KeyValue {
                key: kv[0].clone(),
                value: kv.get(1).cloned().unwrap_or_default(),
            })
            .collect())
    }
}

/// Types `raw`.
pub(crate) fn from_raw(raw: &RawInstruction) -> Result<Instruction, InstructionError> {
    let req = Req {
        raw,
        name: raw.name(),
    };
    let none: &[Spec] = &[];
    match req.name.as_str() {
        "FROM" => from(&req),
        "RUN" => run(&req),
        "CMD" => req.flags(none).map(|_| Instruction::Cmd(req.command())),
        "ENTRYPOINT" => req
            .flags(none)
            .map(|_| Instruction::Entrypoint(req.command())),
        "SHELL" => {
            req.flags(none)?;
            if !raw.json {
                return Err(InstructionError::ShellNotJson);
            }
            Ok(Instruction::Shell(req.at_least_one()?.to_vec()))
        }
        "LABEL" => req
            .flags(none)
            .and_then(|_| req.key_values())
            .map(Instruction::Label),
        "ENV" => req
            .flags(none)
            .and_then(|_| req.key_values())
            .map(Instruction::Env),
        "MAINTAINER" => req
            .flags(none)
            .and_then(|_| req.exactly_one())
            .map(Instruction::Maintainer),
        "EXPOSE" => expose(&req),
        "ARG" => arg(&req),
        "ADD" => file_copy(&req, ADD_FLAGS).map(Instruction::Add),
        "COPY" => file_copy(&req, COPY_FLAGS).map(Instruction::Copy),
        "VOLUME" => volume(&req),
        "USER" => req
            .flags(none)
            .and_then(|_| req.exactly_one())
            .map(|u| Instruction::User(UserGroup::parse(&u))),
        "WORKDIR" => req
            .flags(none)
            .and_then(|_| req.exactly_one())
            .map(Instruction::Workdir),
        "STOPSIGNAL" => req
            .flags(none)
            .and_then(|_| req.exactly_one())
            .map(Instruction::Stopsignal),
        "ONBUILD" => onbuild(&req),
        "HEALTHCHECK" => healthcheck(&req),
        _ => Err(InstructionError::Unknown {
            found: raw.keyword.clone(),
            suggestion: suggest(&raw.keyword),
        }),
    }
}

/// Stage names: a lower-case letter, then letters, digits, `-`, `_`, `.`.
fn valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

fn from(req: &Req) -> Result<Instruction, InstructionError> {
    let flags = req.flags(FROM_FLAGS)?;
    let (image, name) = match req.raw.args.as_slice() {
        [image] => (image.clone(), None),
        [image, as_kw, written] if as_kw.eq_ignore_ascii_case("as") => {
            let name = written.to_lowercase();
            if !valid_stage_name(&name) {
                return Err(req.bad_word(written, format!(
                    "invalid name for build stage: {name:?}, name can't start with a number or contain symbols"
                )));
            }
            (image.clone(), Some(name))
        }
        _ => return Err(req.count_error("either one or three arguments (image [AS name])")),
    };
    Ok(Instruction::From {
        image,
        platform: flags.value("platform"),
        name,
    })
}

fn run(req: &Req) -> Result<Instruction, InstructionError> {
    let flags = req.flags(RUN_FLAGS)?;
    if req.raw.args.is_empty() && req.raw.heredocs.is_empty() {
        return Err(req.count_error("at least one argument"));
    }
    let mounts = flags
        .list("mount")
        .iter()
        .map(|m| Mount::parse(m))
        .collect::<Result<Vec<_>, _>>()?;
    let network = match flags.value("network").as_deref() {
        None => None,
        Some("default") => Some(Network::Default),
        Some("none") => Some(Network::None),
        Some("host") => Some(Network::Host),
        Some(other) => return Err(req.bad_flag("network", other, "default, none or host")),
    };
    let security = match flags.value("security").as_deref() {
        None => None,
        Some("sandbox") => Some(Security::Sandbox),
        Some("insecure") => Some(Security::Insecure),
        Some(other) => return Err(req.bad_flag("security", other, "sandbox or insecure")),
    };
    Ok(Instruction::Run {
        command: req.command(),
        mounts,
        network,
        security,
        heredocs: req.raw.heredocs.clone(),
    })
}

fn expose(req: &Req) -> Result<Instruction, InstructionError> {
    req.flags(&[])?;
    let ports = req
        .at_least_one()?
        .iter()
        .map(|p| Deferred::parse(p, PortRange::parse).map_err(|e| req.bad_word(p, e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Instruction::Expose(ports))
}

fn arg(req: &Req) -> Result<Instruction, InstructionError> {
    req.flags(&[])?;
    let mut decls = Vec::new();
    for word in req.at_least_one()? {
        let (name, default) = match word.split_once('=') {
            Some((n, d)) => (n, Some(d.to_string())),
            None => (word.as_str(), None),
        };
        if name.is_empty() {
            return Err(req.bad_arg("names can not be blank".to_string()));
        }
        decls.push(ArgDecl {
            name: name.to_string(),
            default,
        });
    }
    Ok(Instruction::Arg(decls))
}

fn file_copy(req: &Req, specs: &[Spec]) -> Result<FileCopy, InstructionError> {
    let flags = req.flags(specs)?;
    let Some((dest, sources)) = req.raw.args.split_last().filter(|(_, s)| !s.is_empty()) else {
        return Err(req.count_error("at least two arguments (sources and a destination)"));
    };
    let mut heredocs = req.raw.heredocs.iter();
    // `<< EOF` arrives as two words; rejoin them as the raw parser did.
    let joined;
    let sources = if req.raw.heredocs.is_empty() || req.raw.json {
        sources
    } else {
        joined = join_split_markers(sources);
        joined.as_slice()
    };
    let sources = sources
        .iter()
        .map(|s| {
            // Markers take the line's heredocs in order, as in Docker.
            let doc = (!req.raw.json && is_heredoc_marker(s))
                .then(|| heredocs.next())
                .flatten();
            match doc {
                Some(doc) => Source::Heredoc(doc.clone()),
                None => Source::Path(s.clone()),
            }
        })
        .collect();
    let chmod = match flags.value("chmod") {
        None => None,
        Some(m) => Some(
            Deferred::parse(&m, parse_mode)
                .map_err(|_| req.bad_flag("chmod", &m, "an octal mode like 0755"))?,
        ),
    };
    if let Some(from) = flags.value("from").filter(|f| f.is_empty()) {
        return Err(req.bad_flag("from", &from, "a stage name, stage index or image"));
    }
    Ok(FileCopy {
        sources,
        dest: dest.clone(),
        from: flags.value("from"),
        chown: flags.value("chown").map(|c| UserGroup::parse(&c)),
        chmod,
        link: flags.bool("link").unwrap_or(false),
        parents: flags.bool("parents").unwrap_or(false),
        exclude: flags.list("exclude"),
        checksum: flags.value("checksum"),
        keep_git_dir: flags.bool("keep-git-dir").unwrap_or(false),
        json: req.raw.json,
    })
}

fn volume(req: &Req) -> Result<Instruction, InstructionError> {
    req.flags(&[])?;
    let paths = req.at_least_one()?;
    if paths.iter().any(|p| p.trim().is_empty()) {
        return Err(req.bad_arg("a path can not be an empty string".to_string()));
    }
    Ok(Instruction::Volume(paths.to_vec()))
}

fn onbuild(req: &Req) -> Result<Instruction, InstructionError> {
    req.flags(&[])?;
    let Some(sub) = req.raw.onbuild.as_deref() else {
        return Err(req.count_error("at least one argument"));
    };
    let trigger = sub.name();
    if matches!(trigger.as_str(), "ONBUILD" | "FROM" | "MAINTAINER") {
        return Err(InstructionError::BadTrigger { trigger });
    }
    Ok(Instruction::Onbuild(Box::new(from_raw(sub)?)))
}

fn healthcheck(req: &Req) -> Result<Instruction, InstructionError> {
    let flags = req.flags(HEALTHCHECK_FLAGS)?;
    let args = req.at_least_one()?;
    match args[0].to_ascii_uppercase().as_str() {
        "NONE" => {
            if args.len() > 1 {
                return Err(req.bad_arg("NONE takes no arguments".to_string()));
            }
            if !req.raw.flags.is_empty() {
                return Err(req.bad_arg("NONE takes no options".to_string()));
            }
            Ok(Instruction::Healthcheck(Healthcheck::None))
        }
        "CMD" => {
            let rest = &args[1..];
            let test = if req.raw.json {
                Command::Exec(rest.to_vec())
            } else {
                Command::Shell(rest.first().cloned().unwrap_or_default())
            };
            if matches!(&test, Command::Shell(s) if s.is_empty())
                || matches!(&test, Command::Exec(v) if v.is_empty())
            {
                return Err(req.bad_arg("missing command after CMD".to_string()));
            }
            let duration = |flag: &str| -> Result<Option<Duration>, InstructionError> {
                let Some(text) = flags.value(flag) else {
                    return Ok(None);
                };
                let d = parse_duration(&text)
                    .map_err(|_| req.bad_flag(flag, &text, "a duration like 30s or 1m30s"))?;
                // Docker refuses positive durations under a millisecond.
                if !d.is_zero() && d < Duration::from_millis(1) {
                    return Err(req.bad_flag(flag, &text, "0 or at least 1ms"));
                }
                Ok(Some(d))
            };
            let retries = match flags.value("retries") {
                None => None,
                Some(r) => Some(
                    r.parse::<u32>()
                        .map_err(|_| req.bad_flag("retries", &r, "a whole number, 0 or more"))?,
                ),
            };
            Ok(Instruction::Healthcheck(Healthcheck::Check {
                test,
                interval: duration("interval")?,
                timeout: duration("timeout")?,
                start_period: duration("start-period")?,
                start_interval: duration("start-interval")?,
                retries,
            }))
        }
        other => Err(req.bad_word(
            &args[0],
            format!("unknown type {other:?} (expected CMD or NONE)"),
        )),
    }
}
