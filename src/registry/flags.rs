//! The command-line options every registry command shares (`--tls-verify`,
//! `--cert-dir`, `--authfile`), and strata's config file's list of
//! insecure registries, resolved into client [`Options`].
//!
//! A clap `Args` struct so `pull`, `push`, `login` and `search` flatten the
//! same flags. The config file is `$STRATA_CONFIG`, else
//! `$XDG_CONFIG_HOME/strata/config.json` (`~/.config/strata/config.json`),
//! with Docker's key for the list:
//! `{"insecure-registries": ["reg.lan:5000"]}`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::client::Options;
use super::credentials::{default_auth_file, AuthFile, Credential};
use super::RegistryError;

#[derive(Debug, Clone, Default, clap::Args)]
pub struct RegistryFlags {
    /// Require HTTPS and verify certificates (false: allow unverified
    /// HTTPS and plain HTTP for this registry)
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub tls_verify: Option<bool>,
    /// A directory of CA certificates (*.crt) and client certificates
    /// (*.cert, *.key) for the registry, like Docker's certs.d/HOST
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
    /// The credentials file [default: $REGISTRY_AUTH_FILE, else
    /// ~/.docker/config.json]
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
}

/// strata's config file, as far as registries are concerned.
#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default, rename = "insecure-registries")]
    insecure_registries: Vec<String>,
}

/// Where strata's config file is.
pub fn config_file_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("STRATA_CONFIG").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("strata/config.json"))
}

/// The insecure list of the config file at `path` (none if it is absent).
pub fn insecure_registries(path: &Path) -> Result<Vec<String>, RegistryError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let c: ConfigFile =
                serde_json::from_slice(&bytes).map_err(|source| RegistryError::Json {
                    reference: path.display().to_string(),
                    what: "strata config file",
                    source,
                })?;
            Ok(c.insecure_registries)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(RegistryError::Io {
            op: "read",
            path: path.into(),
            source,
        }),
    }
}

impl RegistryFlags {
    /// Client options from the flags and the config file.
    pub fn options(&self) -> Result<Options, RegistryError> {
        let insecure = match config_file_path() {
            Some(p) => insecure_registries(&p)?,
            None => Vec::new(),
        };
        Ok(Options {
            tls_verify: self.tls_verify,
            cert_dir: self.cert_dir.clone(),
            insecure,
            ..Options::default()
        })
    }

    /// The credentials file to read and write.
    pub fn auth_file_path(&self) -> Result<PathBuf, RegistryError> {
        match &self.authfile {
            Some(p) => Ok(p.clone()),
            None => Ok(default_auth_file()?),
        }
    }

    /// The stored credentials for `registry`, if any.
    pub fn credential(&self, registry: &str) -> Result<Option<Credential>, RegistryError> {
        let file = AuthFile::load(&self.auth_file_path()?)?;
        Ok(file.get(registry)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insecure_list_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.json");
        assert!(insecure_registries(&p).unwrap().is_empty());
        std::fs::write(&p, r#"{"insecure-registries":["a:5000","b"],"other":1}"#).unwrap();
        assert_eq!(insecure_registries(&p).unwrap(), vec!["a:5000", "b"]);
        std::fs::write(&p, "{").unwrap();
        assert!(insecure_registries(&p).is_err());
    }
}
