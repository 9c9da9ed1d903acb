//! `strata manifest create|add|annotate|inspect|push|rm`: manifest lists
//! built by hand, as buildah and podman have them. A list lives in the
//! store beside the tags (`store::lists`): by platform, the store's image
//! for it; `push` sends it as an image index with every image.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use serde_json::json;

use super::images::open_store;
use super::settings::Settings;
use crate::platform::{self, Platform};
use crate::reference::Reference;
use crate::store::{ImageList, Store};

#[derive(Debug, clap::Args)]
pub struct ManifestArgs {
    #[command(subcommand)]
    command: ManifestCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ManifestCommand {
    /// Create a manifest list, with the images given
    Create {
        /// Add to the list if it exists already
        #[arg(long)]
        amend: bool,
        #[arg(value_name = "LIST")]
        list: String,
        #[arg(value_name = "IMAGE")]
        images: Vec<String>,
    },
    /// Add an image (name or id; pulled if missing) to a manifest list
    Add {
        #[command(flatten)]
        entry: EntryFlags,
        #[arg(value_name = "LIST")]
        list: String,
        #[arg(value_name = "IMAGE")]
        image: String,
    },
    /// Set the platform or annotations of an image in a manifest list
    Annotate {
        #[command(flatten)]
        entry: EntryFlags,
        /// Put the --annotation values on the index itself
        #[arg(long)]
        index: bool,
        #[arg(value_name = "LIST")]
        list: String,
        /// The image in the list (name or id); not needed with --index
        #[arg(value_name = "IMAGE")]
        image: Option<String>,
    },
    /// Show a manifest list (the store's, else the registry's)
    Inspect {
        #[arg(value_name = "LIST")]
        list: String,
    },
    /// Push a manifest list and its images to a registry
    Push {
        #[arg(value_name = "LIST")]
        list: String,
        /// Where to [default: LIST]
        #[arg(value_name = "DESTINATION")]
        destination: Option<String>,
        #[command(flatten)]
        registry: crate::registry::transport::PushFlags,
    },
    /// Remove manifest lists (their images stay)
    Rm {
        #[arg(value_name = "LIST", required = true)]
        lists: Vec<String>,
    },
}

/// The platform and annotations of an entry (`add`, `annotate`).
#[derive(Debug, clap::Args)]
struct EntryFlags {
    /// The entry's OS [default: the image's]
    #[arg(long)]
    os: Option<String>,
    /// The entry's architecture [default: the image's]
    #[arg(long)]
    arch: Option<String>,
    /// The entry's variant [default: the image's]
    #[arg(long)]
    variant: Option<String>,
    /// KEY=VALUE on the entry's descriptor
    #[arg(long, value_name = "KEY=VALUE")]
    annotation: Vec<String>,
}

impl EntryFlags {
    /// `base` with --os, --arch, --variant over it.
    fn platform(&self, base: &Platform) -> Platform {
        let variant = self.variant.as_deref().or(base.variant.as_deref());
        Platform::new(
            self.os.as_deref().unwrap_or(&base.os),
            self.arch.as_deref().unwrap_or(&base.architecture),
            variant.filter(|v| !v.is_empty()),
        )
    }

    fn annotations(&self) -> Result<BTreeMap<String, String>> {
        self.annotation
            .iter()
            .map(|a| match a.split_once('=') {
                Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
                _ => bail!("--annotation {a:?}: expected KEY=VALUE"),
            })
            .collect()
    }
}

pub fn run(settings: &Settings, args: &ManifestArgs) -> Result<ExitCode> {
    let store = open_store(settings)?;
    match &args.command {
        ManifestCommand::Create {
            amend,
            list,
            images,
        } => create(&store, list, images, *amend),
        ManifestCommand::Add { entry, list, image } => add(&store, list, image, entry),
        ManifestCommand::Annotate {
            entry,
            index,
            list,
            image,
        } => annotate(&store, list, image.as_deref(), entry, *index),
        ManifestCommand::Inspect { list } => inspect(&store, list),
        ManifestCommand::Push {
            list,
            destination,
            registry,
        } => push(&store, list, destination.as_deref(), registry),
        ManifestCommand::Rm { lists } => {
            for name in lists {
                if !store.remove_list(&Reference::parse(name)?)? {
                    bail!("{name}: no such manifest list");
                }
                println!("{name}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn create(store: &Store, name: &str, images: &[String], amend: bool) -> Result<ExitCode> {
    let list = Reference::parse(name)?;
    store.update_list(&list, |l, _| {
        if l.index && !amend {
            return Err(crate::store::StoreError::Invalid {
                what: format!("manifest list {name}"),
                reason: "it exists already (--amend adds to it)".into(),
            });
        }
        l.index = true;
        Ok(())
    })?;
    let none = EntryFlags {
        os: None,
        arch: None,
        variant: None,
        annotation: Vec::new(),
    };
    for image in images {
        add(store, name, image, &none)?;
    }
    println!("{}", list.familiar());
    Ok(ExitCode::SUCCESS)
}

fn add(store: &Store, name: &str, image: &str, flags: &EntryFlags) -> Result<ExitCode> {
    let list = existing(store, name)?;
    let registry = crate::registry::flags::RegistryFlags::default();
    let id = crate::registry::pull::resolve_or_pull(store, image, &registry, true)
        .with_context(|| format!("adding {image}"))?;
    let p = flags.platform(&platform::of_config(&store.config(&id)?));
    let annotations = flags.annotations()?;
    store.update_list(&list, |l, _| {
        l.set(&p, &id);
        if let Some(e) = l.manifests.last_mut() {
            e.annotations = annotations;
        }
        Ok(())
    })?;
    println!("{id}");
    Ok(ExitCode::SUCCESS)
}

fn annotate(
    store: &Store,
    name: &str,
    image: Option<&str>,
    flags: &EntryFlags,
    index: bool,
) -> Result<ExitCode> {
    let list = existing(store, name)?;
    let annotations = flags.annotations()?;
    if index {
        store.update_list(&list, |l, _| {
            l.annotations.extend(annotations);
            Ok(())
        })?;
        return Ok(ExitCode::SUCCESS);
    }
    let Some(image) = image else {
        bail!("manifest annotate: name the IMAGE in {name} (or give --index)");
    };
    let id = store.resolve(image)?;
    store.update_list(&list, |l, _| {
        let Some(e) = l.manifests.iter_mut().find(|e| e.image == id) else {
            return Err(crate::store::StoreError::ImageNotFound {
                name: format!("{image} in manifest list {name}"),
            });
        };
        let current = e.platform().unwrap_or_else(Platform::host);
        e.platform = platform::show(&flags.platform(&current));
        e.annotations.extend(annotations);
        Ok(())
    })?;
    println!("{id}");
    Ok(ExitCode::SUCCESS)
}

/// The list `name` names, which must exist.
fn existing(store: &Store, name: &str) -> Result<Reference> {
    let list = Reference::parse(name)?;
    match store.index()?.list(&list) {
        Some(l) if l.index => Ok(list),
        _ => bail!("{name}: no such manifest list (strata manifest create {name})"),
    }
}

fn inspect(store: &Store, name: &str) -> Result<ExitCode> {
    let reference = Reference::parse(name)?;
    let index = store.index()?;
    let Some(list) = index.list(&reference).filter(|l| l.index) else {
        return inspect_remote(&reference);
    };
    let json = serde_json::to_string_pretty(&local_json(store, list)?)?;
    println!("{json}");
    Ok(ExitCode::SUCCESS)
}

/// A store list as an index: each entry's platform, annotations, image
/// (config digest) and the digest of its manifest once one was pushed.
fn local_json(store: &Store, list: &ImageList) -> Result<serde_json::Value> {
    let index = store.index()?;
    let mut manifests = Vec::new();
    for e in &list.manifests {
        let mut p = e.platform.splitn(3, '/');
        let mut platform = json!({"os": p.next(), "architecture": p.next()});
        if let Some(v) = p.next() {
            platform["variant"] = json!(v);
        }
        let record = index.images.get(&e.image);
        let mut entry = json!({
            "mediaType": record.map(|r| r.manifest_format().manifest_type()),
            "platform": platform,
            "image": e.image.to_string(),
        });
        if let Some(d) = record.and_then(|r| r.manifests.iter().next()) {
            entry["digest"] = json!(d.to_string());
        }
        if !e.annotations.is_empty() {
            entry["annotations"] = json!(e.annotations);
        }
        manifests.push(entry);
    }
    let mut out = json!({
        "schemaVersion": 2,
        "mediaType": crate::registry::manifest::OCI_INDEX,
        "manifests": manifests,
    });
    if !list.annotations.is_empty() {
        out["annotations"] = json!(list.annotations);
    }
    Ok(out)
}

/// A list the store lacks: the registry's, as served.
fn inspect_remote(reference: &Reference) -> Result<ExitCode> {
    let flags = crate::registry::flags::RegistryFlags::default();
    let client = crate::registry::pull::connect(reference, &flags)?;
    let tag = reference
        .digest()
        .map(ToString::to_string)
        .or_else(|| reference.tag().map(str::to_string))
        .unwrap_or_else(|| crate::reference::DEFAULT_TAG.to_string());
    let got = client.get_manifest(reference.path(), &tag)?;
    let v: serde_json::Value = serde_json::from_slice(&got.bytes)?;
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(ExitCode::SUCCESS)
}

fn push(
    store: &Store,
    name: &str,
    destination: Option<&str>,
    flags: &crate::registry::transport::PushFlags,
) -> Result<ExitCode> {
    existing(store, name)?;
    let dest = destination
        .map(|d| d.strip_prefix("docker://").unwrap_or(d))
        .map(Reference::parse)
        .transpose()?;
    let compression = crate::layer::compress::Compression::Gzip.into();
    crate::registry::transport::run_push(store, name, dest.as_ref(), flags, compression)
        .with_context(|| format!("pushing {name}"))?;
    Ok(ExitCode::SUCCESS)
}
