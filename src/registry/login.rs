//! `login` and `logout`: credentials are checked against the registry
//! before anything is written, and written in Docker's format (or to the
//! configured credential helper).

use std::path::PathBuf;

use super::client::Registry;
use super::credentials::{AuthFile, Credential};
use super::endpoint::canonical_registry;
use super::flags::RegistryFlags;
use super::RegistryError;
use crate::reference::DEFAULT_DOMAIN;

/// The registry a `login`/`logout` argument names: `docker.io` when none,
/// any URL spelling reduced to `host[:port]`.
pub fn registry_argument(arg: Option<&str>) -> String {
    match arg.map(str::trim).filter(|a| !a.is_empty()) {
        None => DEFAULT_DOMAIN.into(),
        Some(a) => canonical_registry(super::credentials::normalize_key(a)).into(),
    }
}

/// Check `cred` against `registry` and, if it is accepted, store it.
/// Returns the file written.
pub fn login(
    registry: &str,
    cred: &Credential,
    flags: &RegistryFlags,
) -> Result<PathBuf, RegistryError> {
    let options = flags.options()?;
    let client = Registry::connect(registry, Some(cred.clone()), &options)?;
    client.check_login()?;
    let path = flags.auth_file_path()?;
    let mut file = AuthFile::load(&path)?;
    file.set(registry, cred)?;
    file.save()?;
    Ok(path)
}

/// Forget `registry`'s credentials; whether there were any.
pub fn logout(registry: &str, flags: &RegistryFlags) -> Result<bool, RegistryError> {
    let path = flags.auth_file_path()?;
    let mut file = AuthFile::load(&path)?;
    let found = file.remove(registry)?;
    if found {
        file.save()?;
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_argument_table() {
        for (arg, want) in [
            (None, "docker.io"),
            (Some(""), "docker.io"),
            (Some("docker.io"), "docker.io"),
            (Some("https://index.docker.io/v1/"), "docker.io"),
            (Some("localhost:5000"), "localhost:5000"),
            (Some("http://127.0.0.1:5000/v2/"), "127.0.0.1:5000"),
        ] {
            assert_eq!(registry_argument(arg), want, "{arg:?}");
        }
    }
}
