//! The command-line options every registry command shares (`--tls-verify`,
//! `--cert-dir`, `--authfile`), and strata's config file's list of
//! insecure registries, resolved into client [`Options`].
//!
//! A clap `Args` struct so `pull`, `push`, `login` and `search` flatten the
//! same flags. The config file is `$STRATA_CONFIG`, else
//! `$XDG_CONFIG_HOME/strata/config.json` (`~/.config/strata/config.json`),
//! with Docker's key for the list, and how long a registry may stall:
//! `{"insecure-registries": ["reg.lan:5000"], "read-timeout": "30s"}`.

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
pub struct ConfigFile {
    #[serde(default, rename = "insecure-registries")]
    pub insecure_registries: Vec<String>,
    /// The longest wait for more bytes from a registry (`30s`, `2m`).
    #[serde(default, rename = "read-timeout", with = "humantime_serde_opt")]
    pub read_timeout: Option<std::time::Duration>,
}

/// `"30s"` <-> a duration, for the config file.
mod humantime_serde_opt {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<std::time::Duration>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|t| humantime::parse_duration(&t).map_err(serde::de::Error::custom))
            .transpose()
    }
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

/// The config file at `path` (the defaults if it is absent).
pub fn config_file(path: &Path) -> Result<ConfigFile, RegistryError> {
    match fs_err::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| RegistryError::Json {
            reference: path.display().to_string(),
            what: "strata config file",
            source,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ConfigFile::default()),
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
        let file = match config_file_path() {
            Some(p) => config_file(&p)?,
            None => ConfigFile::default(),
        };
        Ok(Options {
            tls_verify: self.tls_verify,
            cert_dir: self.cert_dir.clone(),
            insecure: file.insecure_registries,
            read_timeout: file.read_timeout,
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
    fn config_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.json");
        let absent = config_file(&p).unwrap();
        assert!(absent.insecure_registries.is_empty());
        assert_eq!(absent.read_timeout, None);
        fs_err::write(
            &p,
            r#"{"insecure-registries":["a:5000","b"],"read-timeout":"1m 5s","other":1}"#,
        )
        .unwrap();
        let c = config_file(&p).unwrap();
        assert_eq!(c.insecure_registries, vec!["a:5000", "b"]);
        assert_eq!(c.read_timeout, Some(std::time::Duration::from_secs(65)));
        for bad in ["{", r#"{"read-timeout":"soon"}"#] {
            fs_err::write(&p, bad).unwrap();
            assert!(config_file(&p).is_err(), "{bad}");
        }
    }
}
