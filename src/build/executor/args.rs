//! Build args: the ones Docker predefines, the host's platform args,
//! `--build-arg` values (and which were used), and the global ARGs before
//! the first FROM.

use std::collections::HashMap;

use strata_parser::Instruction;

use super::{BuildError, Executor};

/// Build args Docker predefines: usable with --build-arg without an ARG.
pub(super) const PREDEFINED_ARGS: [&str; 10] = [
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

/// `linux/<arch>` of this machine.
pub(super) fn host_platform() -> String {
    format!("linux/{}", crate::store::config::go_arch())
}

/// TARGETPLATFORM, BUILDOS, ...: the build and target platform are the host.
pub(super) fn platform_args() -> Vec<(String, String)> {
    let arch = crate::store::config::go_arch();
    let mut out = Vec::new();
    for side in ["TARGET", "BUILD"] {
        out.push((format!("{side}PLATFORM"), host_platform()));
        out.push((format!("{side}OS"), "linux".to_string()));
        out.push((format!("{side}ARCH"), arch.to_string()));
        out.push((format!("{side}VARIANT"), String::new()));
    }
    out
}

/// A `--build-arg` value: as given, or with only a name, strata's own
/// environment's (empty if unset).
fn given(name: &str, value: &Option<String>) -> String {
    value
        .clone()
        .or_else(|| std::env::var(name).ok())
        .unwrap_or_default()
}

impl Executor<'_> {
    pub(super) fn build_arg(&mut self, name: &str) -> Option<String> {
        let value = given(name, self.opts.build_args.get(name)?);
        self.used_args.insert(name.to_string());
        Some(value)
    }

    pub(super) fn global_args(&mut self) -> Result<HashMap<String, String>, BuildError> {
        // BuildKit's automatic platform args, usable in FROM without ARG.
        let mut globals: HashMap<String, String> = platform_args().into_iter().collect();
        let escape = self.parsed.escape();
        for step in self.parsed.global_args.clone() {
            let expanded = step
                .expanded(&globals, escape)
                .map_err(|e| BuildError::Parse(e.render(&self.opts.dockerfile)))?;
            if let Instruction::Arg(decls) = expanded {
                for d in decls {
                    let value = self.build_arg(&d.name).or(d.default).unwrap_or_default();
                    globals.insert(d.name, value);
                }
            }
        }
        Ok(globals)
    }

    /// `K=V` for each predefined proxy arg given with `--build-arg` whose
    /// name `env` does not set already.
    pub(super) fn predefined_args_for(&self, env: &[String]) -> Vec<String> {
        PREDEFINED_ARGS
            .iter()
            .filter_map(|&name| {
                let value = self.opts.build_args.get(name)?;
                let set = |kv: &String| kv.split_once('=').map(|(n, _)| n) == Some(name);
                (!env.iter().any(set)).then(|| format!("{name}={}", given(name, value)))
            })
            .collect()
    }

    /// Docker's warning for `--build-arg`s no ARG declared.
    pub(super) fn warn_unused_args(&self) {
        let unused: Vec<&str> = self
            .opts
            .build_args
            .keys()
            .filter(|k| !self.used_args.contains(*k) && !PREDEFINED_ARGS.contains(&k.as_str()))
            .map(String::as_str)
            .collect();
        if !unused.is_empty() {
            eprintln!(
                "[Warning] One or more build-args [{}] were not consumed",
                unused.join(" ")
            );
        }
    }
}
