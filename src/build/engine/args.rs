//! Build args: the ones Docker predefines, the host's platform args,
//! `--build-arg` values (and which were used), and the global ARGs before
//! the first FROM.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use strata_parser::{Instruction, ParseError, Parsed};

use crate::platform::Platform;

/// Build args Docker predefines: usable with --build-arg without an ARG.
const PREDEFINED_ARGS: [&str; 10] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// TARGETPLATFORM, BUILDOS, ...: for a build whose target is the host.
pub(crate) fn platform_args() -> Vec<(String, String)> {
    let host = Platform::host();
    crate::platform::build_args(&host, &host)
}

/// A `--build-arg` value: as given, or with only a name, strata's own
/// environment's (empty if unset).
pub(crate) fn given(name: &str, value: &Option<String>) -> String {
    value
        .clone()
        .or_else(|| std::env::var(name).ok())
        .unwrap_or_default()
}

/// The `--build-arg`s of a build, and which of them an ARG took.
pub(super) struct BuildArgs<'a> {
    given: &'a BTreeMap<String, Option<String>>,
    used: Mutex<BTreeSet<String>>,
    /// TARGETPLATFORM, BUILDARCH, ... of this build.
    platform: Vec<(String, String)>,
}

impl<'a> BuildArgs<'a> {
    /// The args of a build for `target` on this machine.
    pub fn new(given: &'a BTreeMap<String, Option<String>>, target: &Platform) -> BuildArgs<'a> {
        BuildArgs {
            given,
            used: Mutex::new(BTreeSet::new()),
            platform: crate::platform::build_args(target, &Platform::host()),
        }
    }

    /// The `--build-arg` value of `name`, if given (it is then used).
    pub fn value(&self, name: &str) -> Option<String> {
        let value = given(name, self.given.get(name)?);
        super::lock(&self.used).insert(name.to_string());
        Some(value)
    }

    /// The value an `ARG name[=default]` in a stage gets: the build arg, the
    /// default, the global value, or for a platform arg the host's.
    pub fn declared(
        &self,
        name: &str,
        default: Option<&String>,
        globals: &HashMap<String, String>,
    ) -> String {
        self.value(name)
            .or_else(|| default.cloned())
            .or_else(|| globals.get(name).cloned())
            .or_else(|| {
                self.platform
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
            })
            .unwrap_or_default()
    }

    /// The global args (before the first FROM), which FROM lines see, over
    /// BuildKit's automatic platform args.
    pub fn globals(&self, parsed: &Parsed) -> Result<HashMap<String, String>, ParseError> {
        let mut globals: HashMap<String, String> = self.platform.iter().cloned().collect();
        for step in &parsed.global_args {
            if let Instruction::Arg(decls) = step.expanded(&globals, parsed.escape())? {
                for d in decls {
                    let value = self.value(&d.name).or(d.default).unwrap_or_default();
                    globals.insert(d.name, value);
                }
            }
        }
        Ok(globals)
    }

    /// `K=V` for each predefined proxy arg given with `--build-arg` whose
    /// name `env` does not set already.
    pub fn predefined_for(&self, env: &[String]) -> Vec<String> {
        PREDEFINED_ARGS
            .iter()
            .filter_map(|&name| {
                let value = self.given.get(name)?;
                let set = |kv: &String| kv.split_once('=').map(|(n, _)| n) == Some(name);
                (!env.iter().any(set)).then(|| format!("{name}={}", given(name, value)))
            })
            .collect()
    }

    /// Docker's warning for `--build-arg`s no ARG declared.
    pub fn unused_warning(&self) -> Option<String> {
        let used = super::lock(&self.used);
        let unused: Vec<&str> = self
            .given
            .keys()
            .filter(|k| !used.contains(*k) && !PREDEFINED_ARGS.contains(&k.as_str()))
            .map(String::as_str)
            .collect();
        (!unused.is_empty()).then(|| {
            format!(
                "[Warning] One or more build-args [{}] were not consumed",
                unused.join(" ")
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_values_and_what_was_used() {
        let given = BTreeMap::from([
            ("A".to_string(), Some("given".to_string())),
            ("UNUSED".to_string(), Some("x".to_string())),
            ("HTTP_PROXY".to_string(), Some("http://p".to_string())),
        ]);
        let args = BuildArgs::new(&given, &Platform::host());
        let globals = HashMap::from([("G".to_string(), "global".to_string())]);
        let default = "d".to_string();
        // (name, default, value)
        for (name, default, want) in [
            ("A", Some(&default), "given"),
            ("B", Some(&default), "d"),
            ("G", None, "global"),
            ("TARGETOS", None, "linux"),
            ("NONE", None, ""),
        ] {
            assert_eq!(args.declared(name, default, &globals), want, "{name}");
        }
        assert_eq!(
            args.unused_warning().unwrap(),
            "[Warning] One or more build-args [UNUSED] were not consumed"
        );
        assert_eq!(args.predefined_for(&[]), ["HTTP_PROXY=http://p"]);
        assert!(args
            .predefined_for(&["HTTP_PROXY=set".to_string()])
            .is_empty());
    }
}
