//! Expands the variables Docker expands in one raw instruction, so it can be
//! typed again with final values. Which words and flags are expanded follows
//! Docker: the arguments of ADD COPY ENV EXPOSE FROM LABEL STOPSIGNAL USER
//! VOLUME WORKDIR (EXPOSE split into words afterwards), ARG defaults, and the `--platform`, `--from`, `--chown`,
//! `--chmod`, `--checksum`, `--exclude` and `--mount` flag values. RUN, CMD,
//! ENTRYPOINT and SHELL arguments are left to the shell, and ONBUILD triggers
//! are left for the child build they fire in.

use crate::expand::{expand_word, expand_words, Env, ExpandError};
use crate::raw::{is_heredoc_marker, RawInstruction};

/// The flags whose values are expanded, per instruction (lower case).
fn expanded_flags(keyword: &str) -> &'static [&'static str] {
    match keyword {
        "from" => &["platform"],
        "copy" => &["from", "chown", "chmod", "exclude"],
        "add" => &["chown", "chmod", "checksum", "exclude"],
        "run" => &["mount"],
        _ => &[],
    }
}

/// A copy of `raw` with Docker's expansions applied over `env`.
pub fn expand_raw(
    raw: &RawInstruction,
    env: &dyn Env,
    escape: char,
) -> Result<RawInstruction, ExpandError> {
    let keyword = raw.keyword.to_ascii_lowercase();
    let word = |w: &str| expand_word(w, env, escape);
    let mut out = raw.clone();
    let flag_names = expanded_flags(&keyword);
    for flag in &mut out.flags {
        let Some((name, value)) = flag.strip_prefix("--").and_then(|f| f.split_once('=')) else {
            continue;
        };
        if flag_names.contains(&name) {
            *flag = format!("--{name}={}", word(value)?);
        }
    }
    match keyword.as_str() {
        "from" => {
            if let Some(image) = out.args.first_mut() {
                *image = word(image)?;
            }
        }
        "add" | "copy" => {
            for arg in &mut out.args {
                // Heredoc markers name inline files; they are not paths.
                if raw.json || !is_heredoc_marker(arg) {
                    *arg = word(arg)?;
                }
            }
        }
        "env" | "label" => {
            // Triples of key, value, separator: the separator stays.
            for pair in out.args.chunks_mut(3) {
                for part in pair.iter_mut().take(2) {
                    *part = word(part)?;
                }
            }
        }
        "arg" => {
            for decl in &mut out.args {
                if let Some((name, default)) = decl.split_once('=') {
                    *decl = format!("{name}={}", word(default)?);
                }
            }
        }
        "expose" => {
            // Ports split into words after expansion, so one variable can
            // hold several (`EXPOSE $PORTS`), as in Docker.
            let mut ports = Vec::new();
            for arg in &out.args {
                ports.extend(expand_words(arg, env, escape)?);
            }
            out.args = ports;
        }
        "volume" | "user" | "workdir" | "stopsignal" => {
            for arg in &mut out.args {
                *arg = word(arg)?;
            }
        }
        _ => {}
    }
    Ok(out)
}
