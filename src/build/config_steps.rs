//! What the metadata instructions (ENV, LABEL, CMD, ...) do to an image
//! config: pure functions, no layer involved.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use strata_parser::instructions::{Healthcheck, Protocol};
use strata_parser::{Command, Instruction};

use crate::store::config::Empty;
use crate::store::ImageConfig;

/// Docker's default SHELL.
pub const DEFAULT_SHELL: [&str; 2] = ["/bin/sh", "-c"];

/// The shell a stage runs shell-form commands through.
pub fn shell_of(config: &ImageConfig) -> Vec<String> {
    config
        .config
        .as_ref()
        .and_then(|c| c.shell.clone())
        .unwrap_or_else(|| DEFAULT_SHELL.iter().map(|s| s.to_string()).collect())
}

/// argv for a command: exec form as is, shell form through `shell`.
pub fn argv(command: &Command, shell: &[String]) -> Vec<String> {
    match command {
        Command::Exec(v) => v.clone(),
        Command::Shell(s) => shell.iter().cloned().chain([s.clone()]).collect(),
    }
}

/// Sets `key=value` in an env list; an existing key keeps its place, as
/// Docker replaces it in place.
pub fn set_env(env: &mut Vec<String>, key: &str, value: &str) {
    let prefix = format!("{key}=");
    match env.iter_mut().find(|kv| kv.starts_with(&prefix)) {
        Some(kv) => *kv = format!("{key}={value}"),
        None => env.push(format!("{key}={value}")),
    }
}

/// Docker and buildah give a stage whose base sets no PATH the default one.
pub fn ensure_path(config: &mut ImageConfig) {
    let env = config.run_config_mut().env.get_or_insert_with(Vec::new);
    if !env.iter().any(|kv| kv.starts_with("PATH=")) {
        env.push(format!("PATH={}", crate::sandbox::spec::DEFAULT_PATH));
    }
}

fn port_key(start: u16, protocol: Protocol) -> String {
    let proto = match protocol {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Sctp => "sctp",
    };
    format!("{start}/{proto}")
}

fn nanos(d: Option<std::time::Duration>) -> Option<Value> {
    d.map(|d| json!(d.as_nanos() as u64))
}

/// Applies a metadata instruction (already expanded) to `config`. Returns
/// false for instructions that are not metadata-only. `cmd_set` says
/// whether this stage has set CMD itself (then ENTRYPOINT keeps it).
pub fn apply(
    config: &mut ImageConfig,
    instruction: &Instruction,
    cmd_set: bool,
) -> Result<bool, String> {
    let shell = shell_of(config);
    if let Instruction::Maintainer(name) = instruction {
        config.author = Some(name.clone());
        return Ok(true);
    }
    let rc = config.run_config_mut();
    match instruction {
        Instruction::Env(pairs) => {
            let env = rc.env.get_or_insert_with(Vec::new);
            for kv in pairs {
                set_env(env, &kv.key, &kv.value);
            }
        }
        Instruction::Label(pairs) => {
            let labels = rc.labels.get_or_insert_with(BTreeMap::new);
            for kv in pairs {
                labels.insert(kv.key.clone(), kv.value.clone());
            }
        }
        Instruction::Cmd(cmd) => rc.cmd = Some(argv(cmd, &shell)),
        Instruction::Entrypoint(cmd) => {
            rc.entrypoint = Some(argv(cmd, &shell));
            // A new ENTRYPOINT drops the CMD inherited from the base image.
            if !cmd_set {
                rc.cmd = None;
            }
        }
        Instruction::Shell(v) => rc.shell = Some(v.clone()),
        Instruction::Expose(ports) => {
            let exposed = rc.exposed_ports.get_or_insert_with(BTreeMap::new);
            for p in ports {
                let range = p.value().ok_or("EXPOSE: port not expanded")?;
                for port in range.start..=range.end {
                    exposed.insert(port_key(port, range.protocol), Empty {});
                }
            }
        }
        Instruction::Volume(paths) => {
            let volumes = rc.volumes.get_or_insert_with(BTreeMap::new);
            for p in paths {
                volumes.insert(p.clone(), Empty {});
            }
        }
        Instruction::User(ug) => rc.user = Some(ug.to_string()),
        Instruction::Workdir(dir) => {
            let base = rc.working_dir.clone().unwrap_or_else(|| "/".into());
            rc.working_dir = Some(join_workdir(&base, dir));
        }
        Instruction::Stopsignal(sig) => rc.stop_signal = Some(sig.clone()),
        Instruction::Healthcheck(Healthcheck::None) => {
            rc.healthcheck = Some(json!({"Test": ["NONE"]}))
        }
        Instruction::Healthcheck(Healthcheck::Check {
            test,
            interval,
            timeout,
            start_period,
            start_interval,
            retries,
        }) => {
            let test: Vec<String> = match test {
                Command::Exec(v) => std::iter::once("CMD".to_string())
                    .chain(v.iter().cloned())
                    .collect(),
                Command::Shell(s) => vec!["CMD-SHELL".into(), s.clone()],
            };
            let mut hc = serde_json::Map::new();
            hc.insert("Test".into(), json!(test));
            for (key, value) in [
                ("Interval", nanos(*interval)),
                ("Timeout", nanos(*timeout)),
                ("StartPeriod", nanos(*start_period)),
                ("StartInterval", nanos(*start_interval)),
                ("Retries", retries.map(|r| json!(r))),
            ] {
                if let Some(v) = value {
                    hc.insert(key.into(), v);
                }
            }
            rc.healthcheck = Some(Value::Object(hc));
        }
        Instruction::Onbuild(_) => {
            // The trigger text is recorded by the executor, which has the raw
            // form; nothing to type here.
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// WORKDIR `dir` relative to the current one, cleaned like Go's path.Clean.
pub fn join_workdir(current: &str, dir: &str) -> String {
    let joined = if dir.starts_with('/') {
        dir.to_string()
    } else {
        format!("{current}/{dir}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_after(lines: &str) -> ImageConfig {
        let parsed = strata_parser::parse(&format!("FROM scratch\n{lines}\n")).unwrap();
        let mut config = ImageConfig::new("2024-01-01T00:00:00Z".into());
        let env: std::collections::HashMap<String, String> = Default::default();
        let mut cmd_set = false;
        for step in &parsed.stages[0].steps {
            let i = step.expanded(&env, '\\').unwrap();
            assert!(apply(&mut config, &i, cmd_set).unwrap(), "{i:?}");
            cmd_set |= matches!(i, Instruction::Cmd(_));
        }
        config
    }

    #[test]
    fn metadata_instructions_set_the_config() {
        let c = config_after(
            "ENV A=1 B=2\nENV A=3\nLABEL x=y\nEXPOSE 80 53/udp 8000-8001\nVOLUME /data\nUSER app:staff\n\
             WORKDIR /a\nWORKDIR b/../c\nSTOPSIGNAL SIGTERM\nSHELL [\"/bin/bash\", \"-c\"]\nCMD echo hi\n\
             HEALTHCHECK --interval=5s --retries=3 CMD curl -f http://localhost/\nMAINTAINER me",
        );
        let rc = c.config.clone().unwrap();
        assert_eq!(
            rc.env.unwrap(),
            vec!["A=3", "B=2"],
            "a replaced key keeps its place"
        );
        assert_eq!(rc.labels.unwrap()["x"], "y");
        let ports: Vec<String> = rc.exposed_ports.unwrap().keys().cloned().collect();
        assert_eq!(ports, vec!["53/udp", "80/tcp", "8000/tcp", "8001/tcp"]);
        assert!(rc.volumes.unwrap().contains_key("/data"));
        assert_eq!(rc.user.as_deref(), Some("app:staff"));
        assert_eq!(rc.working_dir.as_deref(), Some("/a/c"));
        assert_eq!(rc.stop_signal.as_deref(), Some("SIGTERM"));
        assert_eq!(rc.cmd.unwrap(), vec!["/bin/bash", "-c", "echo hi"]);
        let hc = rc.healthcheck.unwrap();
        assert_eq!(
            hc["Test"],
            json!(["CMD-SHELL", "curl -f http://localhost/"])
        );
        assert_eq!(hc["Interval"], json!(5_000_000_000u64));
        assert_eq!(hc["Retries"], json!(3));
        assert_eq!(c.author.as_deref(), Some("me"));
    }

    #[test]
    fn entrypoint_resets_only_an_inherited_cmd() {
        let c = config_after("CMD [\"a\"]\nENTRYPOINT [\"/e\"]");
        let rc = c.config.unwrap();
        assert_eq!(rc.cmd.unwrap(), vec!["a"]);
        assert_eq!(rc.entrypoint.unwrap(), vec!["/e"]);
        let mut inherited = config_after("CMD [\"a\"]");
        apply(
            &mut inherited,
            &Instruction::Entrypoint(Command::Exec(vec!["/e".into()])),
            false,
        )
        .unwrap();
        assert_eq!(inherited.config.unwrap().cmd, None);
    }

    #[test]
    fn workdirs_join_and_clean() {
        for (cur, dir, want) in [
            ("/", "a", "/a"),
            ("/a", "/b", "/b"),
            ("/a/b", "../c", "/a/c"),
            ("/", "..", "/"),
        ] {
            assert_eq!(join_workdir(cur, dir), want);
        }
    }
}
