//! Global options resolved into the settings a command runs with.

use std::path::PathBuf;

use anyhow::{bail, Result};
use nix::unistd::Uid;

use super::GlobalOptions;

/// Where strata keeps its store when nothing else is said.
pub const ROOT_STORE: &str = "/var/lib/strata";

#[derive(Debug, Clone)]
pub struct Settings {
    pub root: PathBuf,
    pub storage_driver: Option<crate::sandbox::driver::DriverKind>,
    pub log_level: super::LogLevel,
}

impl Settings {
    /// Resolves the store root the way DESIGN.md says: `--root`/`STRATA_ROOT`,
    /// else /var/lib/strata for real root, else `$XDG_DATA_HOME/strata`
    /// (`~/.local/share/strata`).
    pub fn resolve(global: &GlobalOptions) -> Result<Settings> {
        let root = match &global.root {
            Some(root) => root.clone(),
            None => default_root(
                Uid::effective().is_root(),
                std::env::var_os("XDG_DATA_HOME").map(PathBuf::from),
                std::env::var_os("HOME").map(PathBuf::from),
            )?,
        };
        let root = if root.is_relative() {
            std::env::current_dir()?.join(root)
        } else {
            root
        };
        Ok(Settings {
            root,
            storage_driver: global.storage_driver,
            log_level: global.log_level,
        })
    }
}

fn default_root(
    is_root: bool,
    xdg_data_home: Option<PathBuf>,
    home: Option<PathBuf>,
) -> Result<PathBuf> {
    if is_root {
        return Ok(PathBuf::from(ROOT_STORE));
    }
    // The XDG spec says a relative XDG_DATA_HOME is invalid and to be ignored.
    if let Some(xdg) = xdg_data_home.filter(|p| p.is_absolute()) {
        return Ok(xdg.join("strata"));
    }
    match home.filter(|p| p.is_absolute()) {
        Some(home) => Ok(home.join(".local/share/strata")),
        None => bail!("cannot choose a store: HOME is not set; pass --root or set STRATA_ROOT"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_root_follows_xdg() {
        let p = |s: &str| Some(PathBuf::from(s));
        let cases = [
            (true, p("/x"), p("/h"), Some("/var/lib/strata")),
            (false, p("/x"), p("/h"), Some("/x/strata")),
            (false, p("rel"), p("/h"), Some("/h/.local/share/strata")),
            (false, None, p("/h"), Some("/h/.local/share/strata")),
            (false, None, None, None),
        ];
        for (root, xdg, home, want) in cases {
            let got = default_root(root, xdg, home).ok();
            assert_eq!(got, want.map(PathBuf::from));
        }
    }
}
