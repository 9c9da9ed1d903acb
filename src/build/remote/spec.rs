//! `--cache-to` and `--cache-from` values, in Docker's (buildx's) syntax:
//! comma-separated `key=value` attributes with a `type`, or a bare
//! reference meaning `type=registry,ref=REF`. Pure: text in, [`CacheSpec`]
//! out.

use std::path::PathBuf;

use crate::layer::compress::Compression;
use crate::reference::Reference;

/// Which steps an export keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The steps of the final image (its stage and the stages it is FROM).
    #[default]
    Min,
    /// Every step of every stage built.
    Max,
}

/// Where a cache lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A repository (and tag) of a registry.
    Registry(Reference),
    /// An OCI image layout directory; `tag` names its manifest in index.json.
    Local { dir: PathBuf, tag: String },
    /// The metadata rides in the built image's own config.
    Inline,
}

/// One `--cache-to` or `--cache-from`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSpec {
    pub location: Location,
    pub mode: Mode,
    pub compression: Compression,
    /// Export (and restore) the contents of `RUN --mount=type=cache`.
    pub mounts: bool,
    /// An export that fails is a warning, not a failed build (BuildKit's
    /// `ignore-error`).
    pub ignore_error: bool,
}

/// Whether the spec is read from (`--cache-from`) or written to (`--cache-to`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    From,
    To,
}

impl Direction {
    fn flag(self) -> &'static str {
        match self {
            Direction::From => "--cache-from",
            Direction::To => "--cache-to",
        }
    }
}

/// A value that is not a cache spec strata can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{flag} {value:?}: {reason}")]
pub struct SpecError {
    pub flag: &'static str,
    pub value: String,
    pub reason: String,
}

/// The tag of a local cache without `tag=` (BuildKit's default).
pub const DEFAULT_LOCAL_TAG: &str = "latest";

/// Attributes BuildKit accepts that change nothing here: strata's cache is
/// always an OCI image manifest with OCI media types.
const ACCEPTED_NO_OPS: [&str; 3] = ["oci-mediatypes", "image-manifest", "compression-level"];

/// Parses one flag value.
pub fn parse(value: &str, direction: Direction) -> Result<CacheSpec, SpecError> {
    let err = |reason: String| SpecError {
        flag: direction.flag(),
        value: value.to_string(),
        reason,
    };
    let mut kind = None;
    let mut reference = None;
    let mut dir = None;
    let mut tag = None;
    let mut spec = CacheSpec {
        location: Location::Inline,
        mode: Mode::Min,
        compression: Compression::Gzip,
        mounts: false,
        ignore_error: false,
    };
    if !value.contains('=') {
        // buildx: a bare value is a registry reference.
        kind = Some("registry");
        reference = Some(value.to_string());
    }
    for attr in value.split(',').filter(|_| value.contains('=')) {
        let (k, v) = attr
            .split_once('=')
            .ok_or_else(|| err(format!("{attr:?} is not key=value")))?;
        match (k.trim(), direction) {
            ("type", _) => kind = Some(v),
            ("ref", _) => reference = Some(v.to_string()),
            ("dest", Direction::To) | ("src", Direction::From) => dir = Some(PathBuf::from(v)),
            ("tag", _) => tag = Some(v.to_string()),
            ("mode", Direction::To) => spec.mode = mode(v).map_err(|e| err(e.to_string()))?,
            ("compression", Direction::To) => {
                spec.compression = compression(v).map_err(|e| err(e.to_string()))?
            }
            ("mounts", _) => spec.mounts = boolean(k, v).map_err(|e| err(e.to_string()))?,
            ("ignore-error", Direction::To) => {
                spec.ignore_error = boolean(k, v).map_err(|e| err(e.to_string()))?
            }
            (k, _) if ACCEPTED_NO_OPS.contains(&k) => {}
            (k, _) => return Err(err(format!("unknown attribute {k:?}"))),
        }
    }
    spec.location = match kind {
        Some("registry") => {
            let r = reference.ok_or_else(|| err("type=registry needs ref=REGISTRY/REPO".into()))?;
            Location::Registry(Reference::parse(&r).map_err(|e| err(e.to_string()))?)
        }
        Some("local") => {
            let what = match direction {
                Direction::From => "src",
                Direction::To => "dest",
            };
            let dir = dir.ok_or_else(|| err(format!("type=local needs {what}=DIR")))?;
            let tag = tag.unwrap_or_else(|| DEFAULT_LOCAL_TAG.to_string());
            Location::Local { dir, tag }
        }
        Some("inline") => Location::Inline,
        Some(other) => {
            return Err(err(format!(
                "cache type {other:?} is not supported (registry, local, inline)"
            )))
        }
        None => return Err(err("no type= (registry, local, inline)".into())),
    };
    if matches!(spec.location, Location::Inline) && direction == Direction::From {
        return Err(err(
            "type=inline is for --cache-to; read it with --cache-from type=registry,ref=IMAGE"
                .into(),
        ));
    }
    Ok(spec)
}

/// An attribute's value that is not one of its choices.
#[derive(Debug, thiserror::Error)]
enum BadValue {
    #[error("mode {0:?}: expected min or max")]
    Mode(String),
    #[error("compression {0:?}: expected gzip, zstd or uncompressed")]
    Compression(String),
    #[error("{0} {1:?}: expected true or false")]
    Boolean(String, String),
}

fn mode(v: &str) -> Result<Mode, BadValue> {
    match v {
        "min" => Ok(Mode::Min),
        "max" => Ok(Mode::Max),
        _ => Err(BadValue::Mode(v.into())),
    }
}

fn compression(v: &str) -> Result<Compression, BadValue> {
    match v {
        "gzip" => Ok(Compression::Gzip),
        "zstd" => Ok(Compression::Zstd),
        "uncompressed" => Ok(Compression::None),
        _ => Err(BadValue::Compression(v.into())),
    }
}

fn boolean(k: &str, v: &str) -> Result<bool, BadValue> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(BadValue::Boolean(k.into(), v.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(v: &str) -> Result<CacheSpec, SpecError> {
        parse(v, Direction::From)
    }

    fn to(v: &str) -> Result<CacheSpec, SpecError> {
        parse(v, Direction::To)
    }

    #[test]
    fn docker_syntax() {
        let r =
            to("type=registry,ref=localhost:5000/app/cache:ci,mode=max,compression=zstd").unwrap();
        assert_eq!(
            r.location,
            Location::Registry(Reference::parse("localhost:5000/app/cache:ci").unwrap())
        );
        assert_eq!((r.mode, r.compression), (Mode::Max, Compression::Zstd));
        // The shorthand is a registry ref; mode defaults to min.
        let s = from("localhost:5000/app/cache").unwrap();
        assert_eq!(
            s.location,
            Location::Registry(Reference::parse("localhost:5000/app/cache:latest").unwrap())
        );
        assert_eq!(s.mode, Mode::Min);
        let l = to("type=local,dest=/tmp/c,mounts=true").unwrap();
        assert_eq!(
            l.location,
            Location::Local {
                dir: "/tmp/c".into(),
                tag: "latest".into()
            }
        );
        assert!(l.mounts);
        let l = from("type=local,src=/tmp/c,tag=v2").unwrap();
        assert_eq!(
            l.location,
            Location::Local {
                dir: "/tmp/c".into(),
                tag: "v2".into()
            }
        );
        assert_eq!(to("type=inline").unwrap().location, Location::Inline);
        assert!(
            to("type=registry,ref=r/a,oci-mediatypes=true,ignore-error=true")
                .unwrap()
                .ignore_error
        );
    }

    #[test]
    fn bad_values_say_what() {
        for (v, dir, want) in [
            ("type=gha", Direction::To, "\"gha\" is not supported"),
            ("type=local", Direction::To, "needs dest=DIR"),
            (
                "type=local,dest=/x",
                Direction::From,
                "unknown attribute \"dest\"",
            ),
            ("type=registry", Direction::From, "needs ref="),
            (
                "type=registry,ref=r/a,mode=all",
                Direction::To,
                "mode \"all\"",
            ),
            ("type=inline", Direction::From, "for --cache-to"),
            ("ref=r/a", Direction::From, "no type="),
            ("type=registry,ref=Bad/Name", Direction::From, "lowercase"),
            ("type=registry,ref=r/a,junk", Direction::To, "not key=value"),
        ] {
            let e = parse(v, dir).unwrap_err();
            assert!(e.to_string().contains(want), "{v}: {e}");
            assert!(e.to_string().starts_with(dir.flag()), "{v}: {e}");
        }
    }
}
