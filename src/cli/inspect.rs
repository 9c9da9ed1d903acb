//! `strata inspect IMAGE...`: JSON like `docker image inspect`, plus
//! podman's `ManifestType`: the manifest type a push without `--format`
//! writes (what `build`/`commit --format` recorded, else OCI).

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use serde_json::{json, Value};

use super::images::open_store;
use super::settings::Settings;
use crate::store::{Store, StoreError};

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// Images (name, id or id prefix)
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<String>,
}

pub fn run(settings: &Settings, args: &InspectArgs) -> Result<ExitCode> {
    let store = open_store(settings)?;
    let mut found = Vec::new();
    let mut failed = false;
    for name in &args.images {
        match inspect(&store, name) {
            Ok(v) => found.push(v),
            Err(e) => {
                failed = true;
                eprintln!("Error: {}", crate::store::error_chain(&e));
            }
        }
    }
    let text = serde_json::to_string_pretty(&Value::Array(found))?;
    writeln!(std::io::stdout().lock(), "{text}")?;
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The inspect object of one image.
fn inspect(store: &Store, name: &str) -> Result<Value, StoreError> {
    let id = store.resolve(name)?;
    let config = store.config(&id)?;
    let index = store.index()?;
    let record = index.images.get(&id).cloned().unwrap_or_default();
    let mut size = 0;
    for d in &config.rootfs.diff_ids {
        size += store.layer_record(d)?.map_or(0, |r| r.size);
    }
    let comment = config
        .history
        .last()
        .and_then(|h| h.comment.clone())
        .unwrap_or_default();
    let tags: Vec<String> = index.tags_of(&id).iter().map(|r| r.familiar()).collect();
    let digests: Vec<String> = record
        .repo_digests
        .iter()
        .map(|d| crate::reference::Reference::parse(d).map_or(d.clone(), |r| r.familiar()))
        .collect();
    let manifest_type = record.manifest_format().manifest_type();
    Ok(json!({
        "Id": id.to_string(),
        "RepoTags": tags,
        "RepoDigests": digests,
        "Parent": record.parent.map(|p| p.to_string()).unwrap_or_default(),
        "Comment": comment,
        "Created": config.created.clone().unwrap_or_default(),
        "DockerVersion": config.extra.get("docker_version").cloned().unwrap_or(json!("")),
        "Author": config.author.clone().unwrap_or_default(),
        "Config": config.config.clone(),
        "Architecture": config.architecture,
        "Variant": config.variant,
        "Os": config.os,
        "Size": size,
        "RootFS": {
            "Type": config.rootfs.kind,
            "Layers": config.rootfs.diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        },
        "Metadata": { "LastTagTime": record.added },
        "ManifestType": manifest_type,
    }))
}
