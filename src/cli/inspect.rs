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
    /// Print each image through a Go template (`{{.Id}}`, `{{json .Config}}`)
    #[arg(short, long, value_name = "TEMPLATE")]
    format: Option<String>,
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
    let mut out = std::io::stdout().lock();
    match &args.format {
        Some(template) => {
            for v in &mut found {
                with_omitted_fields(v);
                match super::format::render_one(template, v) {
                    Ok(text) => writeln!(out, "{text}")?,
                    // Docker prints the template's error and exits 1.
                    Err(e) => {
                        eprintln!("{e}");
                        return Ok(ExitCode::from(1));
                    }
                }
            }
        }
        None => writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&Value::Array(found))?
        )?,
    }
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
        "Container": "",
        "Config": docker_config(config.config.as_ref()),
        "Architecture": config.architecture,
        "Variant": config.variant,
        "Os": config.os,
        "Size": size,
        "VirtualSize": size,
        "RootFS": {
            "Type": config.rootfs.kind,
            "Layers": config.rootfs.diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        },
        "Metadata": { "LastTagTime": record.added },
        "ManifestType": manifest_type,
    }))
}

/// Fields of Docker's image config JSON that are always written, with the
/// value of an unset one (`docker inspect` shows them all).
const CONFIG_FIELDS: [(&str, Value); 17] = [
    ("Hostname", Value::String(String::new())),
    ("Domainname", Value::String(String::new())),
    ("User", Value::String(String::new())),
    ("AttachStdin", Value::Bool(false)),
    ("AttachStdout", Value::Bool(false)),
    ("AttachStderr", Value::Bool(false)),
    ("Tty", Value::Bool(false)),
    ("OpenStdin", Value::Bool(false)),
    ("StdinOnce", Value::Bool(false)),
    ("Env", Value::Null),
    ("Cmd", Value::Null),
    ("Image", Value::String(String::new())),
    ("Volumes", Value::Null),
    ("WorkingDir", Value::String(String::new())),
    ("Entrypoint", Value::Null),
    ("OnBuild", Value::Null),
    ("Labels", Value::Null),
];

/// Fields Docker leaves out of the JSON when unset (`omitempty`) but a
/// template still reads from its Go struct (`{{.Config.Shell}}` is `[]`).
const OMITTED_CONFIG_FIELDS: [(&str, Value); 8] = [
    ("ExposedPorts", Value::Null),
    ("Healthcheck", Value::Null),
    ("ArgsEscaped", Value::Bool(false)),
    ("NetworkDisabled", Value::Bool(false)),
    ("MacAddress", Value::String(String::new())),
    ("StopSignal", Value::String(String::new())),
    ("StopTimeout", Value::Null),
    ("Shell", Value::Null),
];

/// The image's config as Docker's inspect writes it.
fn docker_config<T: serde::Serialize>(config: Option<&T>) -> Value {
    let mut v = config
        .and_then(|c| serde_json::to_value(c).ok())
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    fill(&mut v, &CONFIG_FIELDS);
    v
}

/// Adds to an inspect object what only Docker's Go types have.
fn with_omitted_fields(v: &mut Value) {
    if let Some(config) = v.get_mut("Config") {
        fill(config, &OMITTED_CONFIG_FIELDS);
    }
}

fn fill(v: &mut Value, fields: &[(&str, Value)]) {
    if let Some(map) = v.as_object_mut() {
        for (k, default) in fields {
            map.entry(*k).or_insert_with(|| default.clone());
        }
    }
}
