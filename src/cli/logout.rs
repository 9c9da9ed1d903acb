//! `strata logout [REGISTRY]`: forget the credentials of a registry.

use std::process::ExitCode;

use anyhow::{Context, Result};

use super::settings::Settings;
use crate::registry::flags::RegistryFlags;
use crate::registry::login::{logout, registry_argument};

#[derive(Debug, clap::Args)]
pub struct LogoutArgs {
    /// The credentials file [default: $REGISTRY_AUTH_FILE, else ~/.docker/config.json]
    #[arg(long, value_name = "FILE")]
    authfile: Option<std::path::PathBuf>,
    /// The registry [default: docker.io]
    #[arg(value_name = "REGISTRY")]
    server: Option<String>,
}

pub fn run(_settings: &Settings, args: &LogoutArgs) -> Result<ExitCode> {
    let registry = registry_argument(args.server.as_deref());
    let flags = RegistryFlags {
        authfile: args.authfile.clone(),
        ..RegistryFlags::default()
    };
    if logout(&registry, &flags).with_context(|| format!("logout from {registry}"))? {
        println!("Removing login credentials for {registry}");
    } else {
        println!("Not logged in to {registry}");
    }
    Ok(ExitCode::SUCCESS)
}
