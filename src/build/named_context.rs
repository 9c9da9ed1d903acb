//! `--build-context NAME=VALUE` (docker buildx's named contexts), parsed
//! (pure): what a `FROM NAME` or `--from=NAME` stands for instead of the
//! image or stage of that name.
//! - `NAME=DIR`: a directory read as a second build context by
//!   `COPY --from=NAME` (its own `.dockerignore`, files owned 0:0);
//! - `NAME=docker-image://REF`: the image REF, for FROM and `--from`;
//! - `NAME=oci-layout://DIR[:TAG]`: the image of an OCI layout (brought
//!   into the store as `strata load` would).
//!
//! NAME matches a FROM's image as BuildKit matches it: in the familiar
//! form, `:latest` left out (`alpine`, `alpine:latest` and
//! `docker.io/library/alpine` are one name).

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::reference::Reference;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamedContext {
    Dir(PathBuf),
    Image(String),
    Layout { dir: PathBuf, tag: Option<String> },
}

/// The `--build-context`s of a build, by matching name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamedContexts(BTreeMap<String, NamedContext>);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NamedContextError {
    #[error("--build-context {0:?}: expected NAME=DIR, NAME=docker-image://REF or NAME=oci-layout://DIR[:TAG]")]
    Form(String),
    #[error("--build-context {text:?}: {kind} contexts are not supported yet (a directory, docker-image:// or oci-layout://)")]
    Kind { text: String, kind: String },
    #[error("--build-context {0:?}: oci-layout://DIR@DIGEST is not supported yet: name the image by its ref name (DIR:TAG)")]
    LayoutDigest(String),
    #[error("--build-context {0:?}: {1} is not a directory")]
    NotADirectory(String, String),
    #[error("--build-context {0:?}: the name is given twice")]
    Twice(String),
}

/// The name a FROM or `--build-context` names is looked up by.
fn key(name: &str) -> String {
    match Reference::parse(name) {
        Ok(r) if r.digest().is_none() => {
            let f = r.familiar();
            f.strip_suffix(":latest").map(str::to_string).unwrap_or(f)
        }
        Ok(r) => r.familiar(),
        Err(_) => name.to_string(),
    }
}

impl NamedContexts {
    pub fn parse(values: &[String]) -> Result<NamedContexts, NamedContextError> {
        let mut map = BTreeMap::new();
        for text in values {
            let (name, value) = text
                .split_once('=')
                .filter(|(n, v)| !n.is_empty() && !v.is_empty())
                .ok_or_else(|| NamedContextError::Form(text.clone()))?;
            let ctx = parse_value(text, value)?;
            if map.insert(key(name), ctx).is_some() {
                return Err(NamedContextError::Twice(text.clone()));
            }
        }
        Ok(NamedContexts(map))
    }

    /// What `name` (a FROM image or a `--from`) stands for, if anything.
    pub fn get(&self, name: &str) -> Option<&NamedContext> {
        if self.0.is_empty() {
            return None;
        }
        self.0.get(&key(name))
    }
}

fn parse_value(text: &str, value: &str) -> Result<NamedContext, NamedContextError> {
    if let Some(reference) = value.strip_prefix("docker-image://") {
        return Ok(NamedContext::Image(reference.to_string()));
    }
    if let Some(layout) = value.strip_prefix("oci-layout://") {
        if layout.contains('@') {
            return Err(NamedContextError::LayoutDigest(text.into()));
        }
        let (dir, tag) = match layout.rsplit_once(':') {
            Some((d, t)) if !t.contains('/') => (d, Some(t.to_string())),
            _ => (layout, None),
        };
        return Ok(NamedContext::Layout {
            dir: PathBuf::from(dir),
            tag,
        });
    }
    if let Some((kind, _)) = value.split_once("://") {
        return Err(NamedContextError::Kind {
            text: text.into(),
            kind: format!("{kind}://"),
        });
    }
    if let Some(kind) = ["target:", "input:"]
        .iter()
        .find(|p| value.starts_with(**p))
    {
        return Err(NamedContextError::Kind {
            text: text.into(),
            kind: (*kind).to_string(),
        });
    }
    Ok(NamedContext::Dir(PathBuf::from(value)))
}

impl NamedContexts {
    /// Checks each directory exists (before anything is built).
    pub fn check(&self) -> Result<(), NamedContextError> {
        for (name, ctx) in &self.0 {
            let dir = match ctx {
                NamedContext::Dir(d) | NamedContext::Layout { dir: d, .. } => d,
                NamedContext::Image(_) => continue,
            };
            if !dir.is_dir() {
                return Err(NamedContextError::NotADirectory(
                    name.clone(),
                    dir.display().to_string(),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Result<NamedContexts, NamedContextError> {
        NamedContexts::parse(&[text.to_string()])
    }

    #[test]
    fn forms() {
        let c = one("alpine=docker-image://localhost/base:2").unwrap();
        let want = NamedContext::Image("localhost/base:2".into());
        for name in ["alpine", "alpine:latest", "docker.io/library/alpine"] {
            assert_eq!(c.get(name), Some(&want), "{name}");
        }
        assert_eq!(c.get("alpine:3"), None);
        let c = one("lib=oci-layout:///tmp/lay:v1").unwrap();
        assert_eq!(
            c.get("lib"),
            Some(&NamedContext::Layout {
                dir: "/tmp/lay".into(),
                tag: Some("v1".into())
            })
        );
        let c = one("lib=oci-layout://rel/lay").unwrap();
        assert!(matches!(
            c.get("lib"),
            Some(NamedContext::Layout { tag: None, .. })
        ));
        let c = one("src=../other").unwrap();
        assert_eq!(c.get("src"), Some(&NamedContext::Dir("../other".into())));
    }

    #[test]
    fn refused() {
        for bad in [
            "noequals",
            "=x",
            "a=",
            "a=https://x/y.git",
            "a=target:b",
            "a=oci-layout://d@sha256:00",
        ] {
            assert!(one(bad).is_err(), "{bad}");
        }
        let twice = NamedContexts::parse(&["a=d".into(), "a:latest=e".into()]);
        assert_eq!(twice, Err(NamedContextError::Twice("a:latest=e".into())));
    }
}
