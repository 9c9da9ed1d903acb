//! `strata tag SOURCE TARGET`: another name for an image.

use std::process::ExitCode;

use anyhow::Result;

use super::images::open_store;
use super::settings::Settings;
use crate::reference::Reference;

#[derive(Debug, clap::Args)]
pub struct TagArgs {
    /// Image to tag (name, id or id prefix)
    #[arg(value_name = "SOURCE_IMAGE[:TAG]")]
    source: String,
    /// New name
    #[arg(value_name = "TARGET_IMAGE[:TAG]")]
    target: String,
}

pub fn run(settings: &Settings, args: &TagArgs) -> Result<ExitCode> {
    let target = Reference::parse(&args.target)?;
    if target.digest().is_some() {
        anyhow::bail!(
            "refusing to create a tag with a digest reference: {}",
            args.target
        );
    }
    open_store(settings)?.tag(&args.source, &target)?;
    Ok(ExitCode::SUCCESS)
}
