//! `strata import FILE|- [REF]`: a rootfs tarball (plain, gzip or zstd) into
//! a one-layer image, with `--change` instructions applied to its config.
//! Also the progress-bar reader the other long copies (load, save) use.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, IsTerminal, Read};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use strata_parser::{Command as Form, Instruction};

use super::images::open_store;
use super::settings::Settings;
use crate::layer::apply::ApplyStats;
use crate::reference::Reference;
use crate::store::config::{to_canonical_json, Empty, History};
use crate::store::{now_rfc3339, ImageConfig};

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// Apply a Dockerfile instruction to the image (CMD, ENTRYPOINT, ENV,
    /// EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR)
    #[arg(short, long = "change", value_name = "INSTRUCTION")]
    changes: Vec<String>,
    /// Commit message
    #[arg(short, long)]
    message: Option<String>,
    /// Tarball to import, or - for standard input
    #[arg(value_name = "FILE|-")]
    file: String,
    /// Name for the image
    #[arg(value_name = "REPOSITORY[:TAG]")]
    reference: Option<String>,
}

pub fn run(settings: &Settings, args: &ImportArgs) -> Result<ExitCode> {
    let tags = match &args.reference {
        Some(r) => vec![Reference::parse(r)?],
        None => Vec::new(),
    };
    let now = now_rfc3339();
    let mut config = ImageConfig::new(now.clone());
    for change in &args.changes {
        apply_change(&mut config, change).with_context(|| format!("--change {change:?}"))?;
    }
    let store = open_store(settings)?;
    let staging = store.staging()?;
    let (input, len) = open_input(&args.file)?;
    let bar = progress(len, "Importing");
    let (layer, stats) = store
        .prepare_layer_tar(&staging, bar.wrap_read(input), None)
        .with_context(|| format!("importing {}", args.file))?;
    bar.finish_and_clear();
    warn_skipped(&stats);
    config.rootfs.diff_ids = vec![layer.diff_id().clone()];
    config.history = vec![History {
        created: Some(now),
        comment: Some(
            args.message
                .clone()
                .unwrap_or_else(|| format!("Imported from {}", args.file)),
        ),
        ..History::default()
    }];
    let bytes = to_canonical_json(&config)?;
    let id = store.commit_image(vec![layer], &bytes, &tags, None)?;
    println!("{id}");
    Ok(ExitCode::SUCCESS)
}

/// A file, or standard input for `-`, with its length when known.
pub(super) fn open_input(name: &str) -> Result<(Box<dyn Read>, Option<u64>)> {
    if name == "-" {
        return Ok((Box::new(io::stdin().lock()), None));
    }
    let f = File::open(Path::new(name)).with_context(|| format!("opening {name}"))?;
    let len = f.metadata().ok().map(|m| m.len());
    Ok((Box::new(io::BufReader::new(f)), len))
}

/// An indicatif bar on a terminal (stderr); hidden in a pipe.
pub(super) fn progress(len: Option<u64>, what: &str) -> ProgressBar {
    if !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match len {
        Some(n) => ProgressBar::new(n).with_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{msg} {spinner} {bytes} {bytes_per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    bar.set_message(what.to_string());
    bar
}

/// One warning each for what unpacking had to skip.
pub(super) fn warn_skipped(stats: &ApplyStats) {
    if let Some(first) = stats.skipped_devices.first() {
        eprintln!(
            "strata: warning: skipped {} device node(s) that cannot be created here (first: {})",
            stats.skipped_devices.len(),
            first.display()
        );
    }
    if let Some(first) = stats.unmapped_owners.first() {
        eprintln!(
            "strata: warning: {} file(s) owned by ids outside this user namespace's map were left owned by root (first: {})",
            stats.unmapped_owners.len(),
            first.display()
        );
    }
    if let Some((path, name)) = stats.skipped_xattrs.first() {
        eprintln!(
            "strata: warning: {} xattr(s) could not be set (first: {name} on {})",
            stats.skipped_xattrs.len(),
            path.display()
        );
    }
}

/// Apply one `--change` instruction to a config, as `docker import -c`.
pub(super) fn apply_change(config: &mut ImageConfig, change: &str) -> Result<()> {
    let parsed = strata_parser::parse(&format!("FROM scratch\n{change}\n"))?;
    let step = match parsed.stages.first().map(|s| s.steps.as_slice()) {
        Some([step]) => step,
        _ => bail!("expected exactly one instruction"),
    };
    let env: HashMap<String, String> = config
        .config
        .as_ref()
        .and_then(|c| c.env.as_ref())
        .map(|env| {
            env.iter()
                .filter_map(|kv| {
                    kv.split_once('=')
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                })
                .collect()
        })
        .unwrap_or_default();
    let instruction = step.expanded(&env, parsed.escape())?;
    let rc = config.run_config_mut();
    let shell_form = |s: String| vec!["/bin/sh".to_string(), "-c".to_string(), s];
    let command = |c: Form| match c {
        Form::Exec(v) => v,
        Form::Shell(s) => shell_form(s),
    };
    match instruction {
        Instruction::Cmd(c) => rc.cmd = Some(command(c)),
        Instruction::Entrypoint(c) => rc.entrypoint = Some(command(c)),
        Instruction::Env(kvs) => {
            let env = rc.env.get_or_insert_with(Vec::new);
            for kv in kvs {
                let prefix = format!("{}=", kv.key);
                env.retain(|e| !e.starts_with(&prefix));
                env.push(format!("{}={}", kv.key, kv.value));
            }
        }
        Instruction::Label(kvs) => {
            let labels = rc.labels.get_or_insert_with(Default::default);
            for kv in kvs {
                labels.insert(kv.key, kv.value);
            }
        }
        Instruction::Expose(ports) => {
            let exposed = rc.exposed_ports.get_or_insert_with(Default::default);
            for p in ports {
                let strata_parser::instructions::Deferred::Value(p) = p else {
                    bail!("EXPOSE: port still has a variable after expansion");
                };
                let proto = format!("{:?}", p.protocol).to_lowercase();
                for port in p.start..=p.end {
                    exposed.insert(format!("{port}/{proto}"), Empty {});
                }
            }
        }
        Instruction::User(u) => {
            rc.user = Some(match u.group {
                Some(g) => format!("{}:{g}", u.user),
                None => u.user,
            })
        }
        Instruction::Workdir(w) => rc.working_dir = Some(w),
        Instruction::Volume(vs) => {
            let vols = rc.volumes.get_or_insert_with(Default::default);
            for v in vs {
                vols.insert(v, Empty {});
            }
        }
        Instruction::Stopsignal(s) => rc.stop_signal = Some(s),
        Instruction::Onbuild(_) => {
            let text = change
                .trim_start()
                .get("ONBUILD".len()..)
                .unwrap_or_default()
                .trim()
                .to_string();
            rc.on_build.get_or_insert_with(Vec::new).push(text);
        }
        other => bail!("{} is not supported by import --change", other.keyword()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_table() {
        let mut c = ImageConfig::new("2024-01-01T00:00:00Z".into());
        for change in [
            r#"CMD ["/bin/sh"]"#,
            "ENTRYPOINT echo hi",
            "ENV A=1 B=2",
            "ENV A=3",
            "ENV P=$A/x",
            r#"LABEL k="v w""#,
            "EXPOSE 80 53/udp",
            "USER app:app",
            "WORKDIR /srv",
            "VOLUME /data",
            "STOPSIGNAL SIGTERM",
        ] {
            apply_change(&mut c, change).unwrap_or_else(|e| panic!("{change}: {e}"));
        }
        let rc = c.config.unwrap();
        assert_eq!(rc.cmd.unwrap(), ["/bin/sh"]);
        assert_eq!(rc.entrypoint.unwrap(), ["/bin/sh", "-c", "echo hi"]);
        assert_eq!(rc.env.unwrap(), ["B=2", "A=3", "P=3/x"]);
        assert_eq!(rc.labels.unwrap()["k"], "v w");
        let ports: Vec<_> = rc.exposed_ports.unwrap().into_keys().collect();
        assert_eq!(ports, ["53/udp", "80/tcp"]);
        assert_eq!(rc.user.unwrap(), "app:app");
        assert_eq!(rc.working_dir.unwrap(), "/srv");
        assert!(rc.volumes.unwrap().contains_key("/data"));
        assert_eq!(rc.stop_signal.unwrap(), "SIGTERM");
    }

    #[test]
    fn bad_changes_are_errors() {
        let mut c = ImageConfig::new("2024-01-01T00:00:00Z".into());
        assert!(apply_change(&mut c, "RUN true").is_err());
        assert!(apply_change(&mut c, "BOGUS x").is_err());
        assert!(apply_change(&mut c, "CMD a\nCMD b").is_err());
    }
}
