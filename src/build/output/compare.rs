//! The first difference between two images of the same build
//! (`--verify-repro`): a file of a layer (its path, which attribute, both
//! values), else a config field. Layers come first: a file that differs is
//! what a reader of the report can act on, and it also makes the layer
//! digests in the config differ.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{BufReader, Read};

use sha2::{Digest as _, Sha256};

use super::repro::ANY_KEPT;
use super::OutputError;
use crate::digest::{DiffId, ImageId};
use crate::layer::compress::with_decompressed;
use crate::store::{ImageConfig, Store};

/// Contents up to this size are shown as text when they are text.
const SHOWN: usize = 256;

/// Where two builds part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// A file (or its absence) in layer `layer` (1-based).
    File {
        layer: usize,
        /// The history entry that made the layer.
        created_by: Option<String>,
        path: String,
        attribute: &'static str,
        first: String,
        second: String,
    },
    /// A config field (`config.Env[1]`, `history[3].created`).
    Config {
        field: String,
        first: String,
        second: String,
    },
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (first, second) = match self {
            Difference::File {
                layer,
                created_by,
                path,
                attribute,
                first,
                second,
            } => {
                write!(f, "/{path}: {attribute} differs (layer {layer}")?;
                if let Some(by) = created_by {
                    write!(f, ": {by}")?;
                }
                write!(f, ")")?;
                (first, second)
            }
            Difference::Config {
                field,
                first,
                second,
            } => {
                write!(f, "config field {field} differs")?;
                (first, second)
            }
        };
        write!(f, "\n  first build:  {first}\n  second build: {second}")
    }
}

/// One member of a layer, as compared.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Entry {
    kind: String,
    /// `sha256:…`, or the text itself when it is short text.
    content: String,
    mode: u32,
    owner: String,
    link: String,
    /// PAX records (xattrs and the like), times left out.
    pax: String,
    mtime: u64,
}

impl Entry {
    /// Attribute name and value, in the order a report prefers.
    fn attributes(&self) -> [(&'static str, String); 7] {
        [
            ("type", self.kind.clone()),
            ("content", self.content.clone()),
            ("mode", format!("{:o}", self.mode)),
            ("owner", self.owner.clone()),
            ("link target", self.link.clone()),
            ("extended attributes", self.pax.clone()),
            ("mtime", self.mtime.to_string()),
        ]
    }
}

/// The first difference between image `a` of store `sa` and `b` of `sb`
/// (`None`: the same layers and config).
pub fn first_difference(
    sa: &Store,
    a: &ImageId,
    sb: &Store,
    b: &ImageId,
) -> Result<Option<Difference>, OutputError> {
    let (ca, cb) = (sa.config(a)?, sb.config(b)?);
    let (la, lb) = (&ca.rootfs.diff_ids, &cb.rootfs.diff_ids);
    for (i, (da, db)) in la.iter().zip(lb).enumerate() {
        if da == db {
            continue;
        }
        let (ea, eb) = (layer_entries(sa, da)?, layer_entries(sb, db)?);
        if let Some((path, attribute, first, second)) = first_entry_difference(&ea, &eb) {
            return Ok(Some(Difference::File {
                layer: i + 1,
                created_by: layer_history(&ca, i),
                path,
                attribute,
                first,
                second,
            }));
        }
    }
    let json = |c: &ImageConfig| serde_json::to_value(c).unwrap_or_default();
    Ok(
        first_json_difference("", &json(&ca), &json(&cb)).map(|(field, first, second)| {
            Difference::Config {
                field,
                first,
                second,
            }
        }),
    )
}

/// `created_by` of the history entry of the `index`th layer.
fn layer_history(config: &ImageConfig, index: usize) -> Option<String> {
    config
        .history
        .iter()
        .filter(|h| !h.empty_layer)
        .nth(index)
        .and_then(|h| h.created_by.clone())
}

type Found = (String, &'static str, String, String);

/// The first path (in the first layer's order, then the second's) whose
/// entries differ, with the attribute and both values.
fn first_entry_difference(a: &[(String, Entry)], b: &[(String, Entry)]) -> Option<Found> {
    let bmap: BTreeMap<&str, &Entry> = b.iter().map(|(p, e)| (p.as_str(), e)).collect();
    let amap: BTreeMap<&str, &Entry> = a.iter().map(|(p, e)| (p.as_str(), e)).collect();
    let absent = "(absent)".to_string();
    for (path, ea) in a {
        let Some(eb) = bmap.get(path.as_str()) else {
            return Some((path.clone(), "presence", "present".into(), absent));
        };
        let pairs = ea.attributes().into_iter().zip(eb.attributes());
        if let Some(((name, x), (_, y))) = pairs.into_iter().find(|((_, x), (_, y))| x != y) {
            return Some((path.clone(), name, x, y));
        }
    }
    b.iter()
        .find(|(p, _)| !amap.contains_key(p.as_str()))
        .map(|(p, _)| (p.clone(), "presence", absent, "present".into()))
}

/// The first field where two JSON values differ (keys in name order), as
/// a path and both values.
fn first_json_difference(
    at: &str,
    a: &serde_json::Value,
    b: &serde_json::Value,
) -> Option<(String, String, String)> {
    use serde_json::Value;
    let missing = Value::Null;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| {
                let field = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                let (va, vb) = (x.get(k).unwrap_or(&missing), y.get(k).unwrap_or(&missing));
                first_json_difference(&field, va, vb)
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (va, vb))| first_json_difference(&format!("{at}[{i}]"), va, vb)),
        _ if a == b => None,
        _ => Some((at.to_string(), a.to_string(), b.to_string())),
    }
}

/// A layer's members in stream order, from the blob the store keeps.
fn layer_entries(store: &Store, diff_id: &DiffId) -> Result<Vec<(String, Entry)>, OutputError> {
    let blob = store.layer_blob(diff_id, ANY_KEPT)?;
    let path = store.blob_path(&blob.digest);
    let file = fs_err::File::open(&path).map_err(OutputError::io("open", path.display()))?;
    with_decompressed(BufReader::new(file), |_, r| read_entries(r))
        .and_then(|r| r)
        .map_err(OutputError::io("read", path.display()))
}

fn read_entries(r: &mut dyn Read) -> std::io::Result<Vec<(String, Entry)>> {
    let mut archive = tar::Archive::new(r);
    let mut out = Vec::new();
    for e in archive.entries()? {
        let mut e = e?;
        let path = e
            .path()?
            .to_string_lossy()
            .trim_end_matches('/')
            .to_string();
        let h = e.header().clone();
        let mut pax = Vec::new();
        if let Some(records) = e.pax_extensions()? {
            for r in records.flatten() {
                let key = r.key().unwrap_or_default();
                if !key.ends_with("time") {
                    pax.push(format!(
                        "{key}={}",
                        String::from_utf8_lossy(r.value_bytes())
                    ));
                }
            }
        }
        let mut data = Vec::new();
        e.read_to_end(&mut data)?;
        let link = h.link_name()?.map(|l| l.display().to_string());
        out.push((
            path,
            Entry {
                kind: format!("{:?}", h.entry_type()),
                content: shown(&data),
                mode: h.mode()?,
                owner: format!("{}:{}", h.uid()?, h.gid()?),
                link: link.unwrap_or_default(),
                pax: pax.join(" "),
                mtime: h.mtime()?,
            },
        ));
    }
    Ok(out)
}

/// Short text as itself (quoted), anything else as its digest and size.
fn shown(data: &[u8]) -> String {
    match std::str::from_utf8(data) {
        Ok(text) if data.len() <= SHOWN => format!("{text:?}"),
        _ => format!(
            "sha256:{} ({} bytes)",
            hex::encode(Sha256::digest(data)),
            data.len()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(content: &str, mtime: u64) -> Entry {
        Entry {
            kind: "Regular".into(),
            content: shown(content.as_bytes()),
            mode: 0o644,
            mtime,
            ..Entry::default()
        }
    }

    #[test]
    fn entries_report_content_before_mtime_and_absences() {
        let a = vec![("t".to_string(), entry("one\n", 5))];
        let b = vec![("t".to_string(), entry("two\n", 6))];
        assert_eq!(
            first_entry_difference(&a, &b),
            Some((
                "t".into(),
                "content",
                "\"one\\n\"".into(),
                "\"two\\n\"".into()
            ))
        );
        let b = vec![("t".to_string(), entry("one\n", 6))];
        assert_eq!(
            first_entry_difference(&a, &b).map(|f| (f.1, f.2, f.3)),
            Some(("mtime", "5".into(), "6".into()))
        );
        let mut c = b.clone();
        c.push(("u".to_string(), entry("", 6)));
        assert_eq!(
            first_entry_difference(&b, &c).map(|f| (f.0, f.1)),
            Some(("u".into(), "presence"))
        );
        assert_eq!(first_entry_difference(&b, &b), None);
    }

    #[test]
    fn json_fields_are_named_by_path() {
        let a = json!({"config": {"Env": ["A=1", "B=1"]}, "os": "linux"});
        let b = json!({"config": {"Env": ["A=1", "B=2"]}, "os": "linux"});
        assert_eq!(
            first_json_difference("", &a, &b),
            Some(("config.Env[1]".into(), "\"B=1\"".into(), "\"B=2\"".into()))
        );
        let c = json!({"config": {"Env": ["A=1"]}, "os": "linux"});
        assert_eq!(
            first_json_difference("", &a, &c).map(|d| d.0),
            Some("config.Env".into())
        );
        assert_eq!(first_json_difference("", &a, &a), None);
    }

    #[test]
    fn long_or_binary_content_is_a_digest() {
        assert_eq!(shown(b"hi\n"), "\"hi\\n\"");
        assert!(shown(&[0xff, 0]).starts_with("sha256:"));
        assert!(shown(&[b'a'; 300]).ends_with("(300 bytes)"));
    }
}
