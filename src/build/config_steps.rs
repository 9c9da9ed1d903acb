//! The one config applier: what the metadata instructions (ENV, LABEL,
//! CMD, ...) do to an image config, for Dockerfile steps and for
//! `commit --change` / `import --change` alike, with Docker's semantics (a
//! redefined ENV key keeps its place, EXPOSE keys are `80/tcp`, ENTRYPOINT
//! drops a CMD the stage did not set itself, WORKDIR is relative to the
//! current one). No layer and no I/O involved.
//!
//! [`ConfigEditor`] keeps an index of the env so one ENV costs O(its own
//! change), whatever the number of variables before it.

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};
use strata_parser::instructions::{Deferred, Healthcheck, PortRange, Protocol};
use strata_parser::{Command, Env, Instruction, ParseError, Step};

use crate::store::config::Empty;
use crate::store::ImageConfig;

/// Docker's default SHELL.
pub const DEFAULT_SHELL: [&str; 2] = ["/bin/sh", "-c"];

/// The instructions `commit --change` and `import --change` take (Docker's
/// list).
const CHANGE_KEYWORDS: [&str; 11] = [
    "CMD",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "HEALTHCHECK",
    "LABEL",
    "ONBUILD",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("EXPOSE {0}: the port still has a variable after expansion")]
    UnexpandedPort(String),
    #[error("{0} is not a metadata instruction")]
    NotMetadata(&'static str),
    #[error("{0} is not a valid change instruction (allowed: {list})", list = CHANGE_KEYWORDS.join(", "))]
    NotAChange(String),
    #[error("expected exactly one instruction")]
    NotOne,
    #[error("{}", .0)]
    Parse(ParseError),
}

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

/// An image config being changed one instruction at a time.
#[derive(Debug, Clone)]
pub struct ConfigEditor {
    config: ImageConfig,
    /// Env name -> its position in the config's env list.
    env_at: HashMap<String, usize>,
    /// Whether CMD was set through this editor (then ENTRYPOINT keeps it).
    cmd_set: bool,
}

impl ConfigEditor {
    pub fn new(config: ImageConfig) -> ConfigEditor {
        let mut editor = ConfigEditor {
            config,
            env_at: HashMap::new(),
            cmd_set: false,
        };
        editor.reindex();
        editor
    }

    pub fn config(&self) -> &ImageConfig {
        &self.config
    }

    /// The config, for changes outside the instructions (history, layers).
    pub fn config_mut(&mut self) -> &mut ImageConfig {
        &mut self.config
    }

    pub fn into_config(self) -> ImageConfig {
        self.config
    }

    /// Takes another config (a cached step's image); what this editor has
    /// set (CMD) stays known.
    pub fn replace(&mut self, config: ImageConfig) {
        self.config = config;
        self.reindex();
    }

    fn reindex(&mut self) {
        self.env_at.clear();
        let env = self.config.config.as_ref().and_then(|c| c.env.as_ref());
        for (i, kv) in env.into_iter().flatten().enumerate() {
            let name = kv.split_once('=').map_or(kv.as_str(), |(k, _)| k);
            // The first wins, as Docker's lookup does.
            self.env_at.entry(name.to_string()).or_insert(i);
        }
    }

    /// The env list, `NAME=value`.
    pub fn env(&self) -> &[String] {
        self.config
            .config
            .as_ref()
            .and_then(|c| c.env.as_deref())
            .unwrap_or_default()
    }

    /// Sets `key=value`; an existing key keeps its place, as Docker does.
    pub fn set_env(&mut self, key: &str, value: &str) {
        let entry = format!("{key}={value}");
        let env = self
            .config
            .run_config_mut()
            .env
            .get_or_insert_with(Vec::new);
        match self.env_at.get(key) {
            Some(&i) if i < env.len() => env[i] = entry,
            _ => {
                self.env_at.insert(key.to_string(), env.len());
                env.push(entry);
            }
        }
    }

    /// Docker and buildah give a stage whose base sets no PATH the default.
    pub fn ensure_path(&mut self) {
        if !self.env_at.contains_key("PATH") {
            self.set_env("PATH", crate::sandbox::spec::DEFAULT_PATH);
        }
    }

    /// Applies one metadata instruction, already expanded. `step` is where
    /// it came from (ONBUILD records its trigger as written).
    pub fn apply(&mut self, step: &Step, instruction: &Instruction) -> Result<(), ConfigError> {
        let shell = shell_of(&self.config);
        let rc = self.config.run_config_mut();
        match instruction {
            Instruction::Env(pairs) => {
                for kv in pairs {
                    self.set_env(&kv.key, &kv.value);
                }
            }
            Instruction::Label(pairs) => {
                let labels = rc.labels.get_or_insert_with(BTreeMap::new);
                for kv in pairs {
                    labels.insert(kv.key.clone(), kv.value.clone());
                }
            }
            Instruction::Cmd(cmd) => {
                rc.cmd = Some(argv(cmd, &shell));
                self.cmd_set = true;
            }
            Instruction::Entrypoint(cmd) => {
                rc.entrypoint = Some(argv(cmd, &shell));
                // A new ENTRYPOINT drops the CMD inherited from the base.
                if !self.cmd_set {
                    rc.cmd = None;
                }
            }
            Instruction::Expose(ports) => {
                let exposed = rc.exposed_ports.get_or_insert_with(BTreeMap::new);
                for p in ports {
                    let range = port_range(p)?;
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
            Instruction::Workdir(dir) => {
                let base = rc.working_dir.as_deref().unwrap_or("/");
                rc.working_dir = Some(workdir(base, dir));
            }
            Instruction::Healthcheck(hc) => rc.healthcheck = Some(healthcheck(hc)),
            Instruction::Onbuild(_) => rc
                .on_build
                .get_or_insert_with(Vec::new)
                .push(trigger_text(step)),
            Instruction::User(ug) => rc.user = Some(ug.to_string()),
            Instruction::Stopsignal(sig) => rc.stop_signal = Some(sig.clone()),
            Instruction::Shell(v) => rc.shell = Some(v.clone()),
            Instruction::Maintainer(name) => self.config.author = Some(name.clone()),
            other => return Err(ConfigError::NotMetadata(other.keyword())),
        }
        Ok(())
    }

    /// Applies one `--change` of `commit` or `import`: a Dockerfile
    /// instruction expanded over the config's env.
    pub fn apply_change(&mut self, change: &str) -> Result<(), ConfigError> {
        let parsed = strata_parser::parse(&format!("FROM scratch\n{change}\n"))
            .map_err(ConfigError::Parse)?;
        let step = match parsed.stages.first().map(|s| s.steps.as_slice()) {
            Some([step]) => step,
            _ => return Err(ConfigError::NotOne),
        };
        let keyword = step.instruction.keyword();
        if !CHANGE_KEYWORDS.contains(&keyword) {
            return Err(ConfigError::NotAChange(keyword.to_string()));
        }
        let instruction = step
            .expanded(self, parsed.escape())
            .map_err(ConfigError::Parse)?;
        self.apply(step, &instruction)
    }
}

impl Env for ConfigEditor {
    fn get(&self, name: &str) -> Option<&str> {
        let kv = self.env().get(*self.env_at.get(name)?)?;
        kv.split_once('=').map(|(_, v)| v)
    }
}

/// What a metadata instruction is, for its step's cache key: the expanded
/// instruction, the trigger text of an ONBUILD, and whether the stage set
/// CMD before (it decides what ENTRYPOINT does).
pub fn normalised(step: &Step, instruction: &Instruction, editor: &ConfigEditor) -> String {
    let trigger = match instruction {
        Instruction::Onbuild(_) => trigger_text(step),
        _ => String::new(),
    };
    format!("{instruction:?}\n{trigger}\n{}", editor.cmd_set)
}

/// The trigger of an ONBUILD as written, which is what Docker records.
fn trigger_text(step: &Step) -> String {
    step.raw
        .onbuild
        .as_ref()
        .map(|r| r.original.trim().to_string())
        .unwrap_or_default()
}

fn port_range(p: &Deferred<PortRange>) -> Result<&PortRange, ConfigError> {
    match p {
        Deferred::Value(range) => Ok(range),
        Deferred::Unexpanded(text) => Err(ConfigError::UnexpandedPort(text.clone())),
    }
}

fn port_key(port: u16, protocol: Protocol) -> String {
    let proto = match protocol {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Sctp => "sctp",
    };
    format!("{port}/{proto}")
}

/// HEALTHCHECK as the config's Healthcheck object (durations in ns).
fn healthcheck(hc: &Healthcheck) -> Value {
    let Healthcheck::Check {
        test,
        interval,
        timeout,
        start_period,
        start_interval,
        retries,
    } = hc
    else {
        return json!({"Test": ["NONE"]});
    };
    let test: Vec<String> = match test {
        Command::Exec(v) => std::iter::once("CMD".to_string())
            .chain(v.iter().cloned())
            .collect(),
        Command::Shell(s) => vec!["CMD-SHELL".into(), s.clone()],
    };
    let nanos = |d: &Option<std::time::Duration>| d.map(|d| json!(d.as_nanos() as u64));
    let mut out = serde_json::Map::new();
    out.insert("Test".into(), json!(test));
    for (key, value) in [
        ("Interval", nanos(interval)),
        ("Timeout", nanos(timeout)),
        ("StartPeriod", nanos(start_period)),
        ("StartInterval", nanos(start_interval)),
        ("Retries", retries.map(|r| json!(r))),
    ] {
        if let Some(v) = value {
            out.insert(key.into(), v);
        }
    }
    Value::Object(out)
}

/// The config's WorkingDir after `WORKDIR dir`, as Docker (BuildKit and the
/// classic builder) records it: an absolute path as written (`/tmp/` stays
/// `/tmp/`), a relative one joined to the current one and cleaned.
pub fn workdir(current: &str, dir: &str) -> String {
    match dir.starts_with('/') {
        true => dir.to_string(),
        false => join_workdir(current, dir),
    }
}

/// `dir` relative to `current`, cleaned like Go's path.Clean.
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

    fn empty() -> ConfigEditor {
        ConfigEditor::new(ImageConfig::new("2024-01-01T00:00:00Z".into()))
    }

    /// The config after `lines` as Dockerfile steps.
    fn after_steps(mut editor: ConfigEditor, lines: &str) -> ImageConfig {
        let parsed = strata_parser::parse(&format!("FROM scratch\n{lines}\n")).unwrap();
        for step in &parsed.stages[0].steps {
            let i = step.expanded(&editor, '\\').unwrap();
            editor.apply(step, &i).unwrap();
        }
        editor.into_config()
    }

    /// The config after `lines` as `--change`s.
    fn after_changes(mut editor: ConfigEditor, lines: &str) -> ImageConfig {
        for change in lines.lines() {
            editor.apply_change(change).unwrap();
        }
        editor.into_config()
    }

    #[test]
    fn metadata_instructions_set_the_config() {
        let c = after_steps(
            empty(),
            "ENV A=1 B=2\nENV A=3\nLABEL x=y\nEXPOSE 80 53/udp 8000-8001\nVOLUME /data\nUSER app:staff\n\
             WORKDIR /a\nWORKDIR b/../c\nSTOPSIGNAL SIGTERM\nSHELL [\"/bin/bash\", \"-c\"]\nCMD echo hi\n\
             HEALTHCHECK --interval=5s --retries=3 CMD curl -f http://localhost/\nMAINTAINER me",
        );
        let rc = c.config.clone().unwrap();
        assert_eq!(rc.env.unwrap(), vec!["A=3", "B=2"]);
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

    /// Dockerfile steps and `--change`s give the same config, table-driven.
    #[test]
    fn changes_and_steps_agree() {
        let cases = [
            // A redefined key keeps its first place (Docker).
            ("ENV A=1 Z=0\nENV B=2\nENV A=3", "env"),
            ("ENV P=/x\nENV Q=$P/y", "env"),
            ("EXPOSE 80\nEXPOSE 53/udp 8000-8001", "ports"),
            ("CMD [\"a\"]\nENTRYPOINT [\"/e\"]", "cmd kept"),
            ("ENTRYPOINT /e", "cmd dropped"),
            ("WORKDIR /a\nWORKDIR b", "workdir"),
            (
                "LABEL k=\"v w\"\nUSER app:app\nVOLUME /d\nSTOPSIGNAL 9",
                "misc",
            ),
            ("ONBUILD RUN  echo hi", "trigger"),
            ("HEALTHCHECK --retries=2 CMD true", "healthcheck"),
        ];
        let mut base = ImageConfig::new("2024-01-01T00:00:00Z".into());
        base.run_config_mut().env = Some(vec!["PATH=/bin".into(), "A=0".into()]);
        base.run_config_mut().cmd = Some(vec!["inherited".into()]);
        for (lines, name) in cases {
            let steps = after_steps(ConfigEditor::new(base.clone()), lines);
            let changes = after_changes(ConfigEditor::new(base.clone()), lines);
            assert_eq!(steps, changes, "{name}");
        }
        let env = after_changes(ConfigEditor::new(base.clone()), cases[0].0);
        assert_eq!(
            env.config.unwrap().env.unwrap(),
            ["PATH=/bin", "A=3", "Z=0", "B=2"]
        );
        let cmd = after_changes(ConfigEditor::new(base), "ENTRYPOINT /e");
        assert_eq!(
            cmd.config.unwrap().cmd,
            None,
            "ENTRYPOINT drops an inherited CMD"
        );
    }

    #[test]
    fn bad_changes_are_errors() {
        for change in [
            "RUN true",
            "BOGUS x",
            "CMD a\nCMD b",
            "SHELL [\"/bin/sh\"]",
            "MAINTAINER me",
        ] {
            assert!(empty().apply_change(change).is_err(), "{change}");
        }
    }

    #[test]
    fn env_lookups_and_path() {
        let mut e = empty();
        e.ensure_path();
        e.set_env("A", "1");
        e.set_env("PATH", "/p");
        assert_eq!(e.get("A"), Some("1"));
        assert_eq!(e.env(), ["PATH=/p", "A=1"]);
        e.ensure_path();
        assert_eq!(e.env().len(), 2);
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

    #[test]
    fn workdir_keeps_absolute_paths_as_written() {
        // From Docker BuildKit (docker.io 20.10): `WORKDIR /tmp/` gives
        // "/tmp/", `WORKDIR /a//b/../c/.` "/a//b/../c/.", and a relative
        // `rel/x` after it "/a/c/rel/x".
        for (cur, dir, want) in [
            ("/", "/tmp/", "/tmp/"),
            ("/tmp/", "/a//b/../c/.", "/a//b/../c/."),
            ("/a//b/../c/.", "rel/x", "/a/c/rel/x"),
            ("/owned", "sub", "/owned/sub"),
        ] {
            assert_eq!(workdir(cur, dir), want);
        }
    }
}
