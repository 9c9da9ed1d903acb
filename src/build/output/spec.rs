//! `-o/--output` values and `--annotation`s, parsed (pure), as `docker
//! buildx build` reads them: `type=local,dest=DIR`, `type=tar,dest=FILE`,
//! `type=oci,dest=FILE[,tar=false]`, `type=docker,dest=FILE[,name=REF]`,
//! `type=image,name=REF[,push=true]`, `type=registry,name=REF`; a value
//! without `=` is `type=local,dest=VALUE`, and `-` alone is a tar on stdout.
//! Fields are comma-separated CSV: a field in double quotes may hold commas
//! (`"name=a,b"`, two names).

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::layer::compress::Compression;
pub use crate::store::config::Annotations;

/// A bad `-o` value or `--annotation`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    #[error("--annotation {0:?}: expected KEY=VALUE")]
    AnnotationForm(String),
    #[error("--annotation {0:?}: the key is empty")]
    AnnotationKey(String),
    #[error("--annotation {text:?}: unknown type {kind:?} (manifest, index, manifest-descriptor)")]
    AnnotationType { text: String, kind: String },
    #[error("--output: empty value")]
    Empty,
    #[error("--output {0:?}: unterminated quote")]
    Quote(String),
    #[error("--output {text:?}: {field:?} is not KEY=VALUE")]
    Field { text: String, field: String },
    #[error("--output {text:?}: {key} is not an option of type={kind}")]
    NotAnOption {
        text: String,
        key: String,
        kind: String,
    },
    /// One field of `text` is wrong: the cause says which.
    #[error("--output {text:?}")]
    Output {
        text: String,
        #[source]
        source: Box<SpecError>,
    },
    #[error("compression={0}: gzip, zstd or uncompressed")]
    Compression(String),
    #[error("compression-level={0}: not a number")]
    Level(String),
    #[error("{key}={value}: expected true or false")]
    Bool { key: String, value: String },
    #[error("{0}: expected annotation.KEY=VALUE")]
    AnnotationAttr(String),
    #[error("type={0} needs dest=FILE (or dest=- for stdout)")]
    NeedsDest(String),
    #[error("type=local writes a directory: dest=DIR")]
    LocalStdout,
    #[error("tar=false writes a directory: dest=DIR")]
    OciDirStdout,
    #[error("type=docker needs dest=FILE: the image is in strata's store already (strata has no daemon to load it into)")]
    DockerDest,
    #[error("unknown type {0:?} (local, tar, oci, docker, image, registry)")]
    UnknownType(String),
}

impl SpecError {
    fn in_output(text: &str) -> impl FnOnce(SpecError) -> SpecError + '_ {
        move |e| SpecError::Output {
            text: text.to_string(),
            source: Box::new(e),
        }
    }
}

/// Where a file output goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    Stdout,
    File(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputKind {
    /// The final root file system, as a directory.
    Local(PathBuf),
    /// The final root file system, as a tar.
    Tar(Dest),
    /// An OCI layout: a tar, or a directory with `tar=false`.
    Oci { dest: Dest, tar: bool },
    /// A `docker load` archive.
    Docker(Dest),
    /// Names in the store, pushed with `push=true` (`type=registry`).
    Image { push: bool },
}

/// One `-o`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputSpec {
    pub kind: OutputKind,
    /// `name=`: the names the image goes out under (`-t` tags if none).
    pub names: Vec<String>,
    /// `compression=`, `compression-level=`, `force-compression=`: this
    /// output's own, over the command's flags.
    pub compression: Option<Compression>,
    pub compression_level: Option<i32>,
    pub force_compression: Option<bool>,
    /// `annotation[-TYPE].KEY=VALUE`.
    pub annotations: Annotations,
}

/// Parsing of `--annotation`.
pub trait AddAnnotation {
    fn add(&mut self, text: &str) -> Result<(), SpecError>;
}

impl AddAnnotation for Annotations {
    /// One `[TYPE:]KEY=VALUE`: TYPE is `manifest`, `index`,
    /// `manifest-descriptor` (or `index-descriptor`, which has nowhere to
    /// go in an image strata writes and is refused).
    fn add(&mut self, text: &str) -> Result<(), SpecError> {
        let (key, value) = text
            .split_once('=')
            .ok_or_else(|| SpecError::AnnotationForm(text.into()))?;
        let (kind, key) = match key.split_once(':') {
            Some((k, rest)) if !k.contains('/') && !k.contains('.') => (k, rest),
            _ => ("manifest", key),
        };
        // BuildKit's `TYPE[PLATFORM]:`: one platform is built, so a
        // bracketed platform is accepted and ignored only when empty.
        let kind = kind.strip_suffix("[]").unwrap_or(kind);
        if key.is_empty() {
            return Err(SpecError::AnnotationKey(text.into()));
        }
        let map = match kind {
            "manifest" => &mut self.manifest,
            "index" => &mut self.index,
            "manifest-descriptor" => &mut self.descriptor,
            other => {
                return Err(SpecError::AnnotationType {
                    text: text.into(),
                    kind: other.into(),
                })
            }
        };
        map.insert(key.to_string(), value.to_string());
        Ok(())
    }
}

/// Splits CSV fields: commas separate, double quotes group (`""` is a
/// quote inside quotes).
fn csv_fields(s: &str) -> Result<Vec<String>, SpecError> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    if quoted {
        return Err(SpecError::Quote(s.into()));
    }
    fields.push(cur);
    Ok(fields)
}

fn boolean(key: &str, value: &str) -> Result<bool, SpecError> {
    match value {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(SpecError::Bool {
            key: key.into(),
            value: value.into(),
        }),
    }
}

fn dest_of(value: Option<&String>, kind: &str) -> Result<Dest, SpecError> {
    match value.map(String::as_str) {
        Some("-") => Ok(Dest::Stdout),
        Some("") | None => Err(SpecError::NeedsDest(kind.into())),
        Some(path) => Ok(Dest::File(PathBuf::from(path))),
    }
}

impl OutputSpec {
    pub fn parse(text: &str) -> Result<OutputSpec, SpecError> {
        let bare = |kind| OutputSpec {
            kind,
            names: Vec::new(),
            compression: None,
            compression_level: None,
            force_compression: None,
            annotations: Annotations::default(),
        };
        if text == "-" {
            return Ok(bare(OutputKind::Tar(Dest::Stdout)));
        }
        if !text.contains('=') {
            if text.is_empty() {
                return Err(SpecError::Empty);
            }
            return Ok(bare(OutputKind::Local(PathBuf::from(text))));
        }
        let mut attrs: BTreeMap<String, String> = BTreeMap::new();
        let mut spec = bare(OutputKind::Image { push: false });
        for field in csv_fields(text)? {
            let (k, v) = field.split_once('=').ok_or_else(|| SpecError::Field {
                text: text.into(),
                field: field.clone(),
            })?;
            spec.attr(k, v, &mut attrs)
                .map_err(SpecError::in_output(text))?;
        }
        let kind = attrs.remove("type").unwrap_or_else(|| "local".into());
        spec.kind = kind_of(&kind, &mut attrs).map_err(SpecError::in_output(text))?;
        if let Some(k) = attrs.keys().next() {
            return Err(SpecError::NotAnOption {
                text: text.into(),
                key: k.clone(),
                kind,
            });
        }
        Ok(spec)
    }

    /// One `KEY=VALUE`: the ones every type has are set here, the rest
    /// kept in `attrs` for the type.
    fn attr(
        &mut self,
        k: &str,
        v: &str,
        attrs: &mut BTreeMap<String, String>,
    ) -> Result<(), SpecError> {
        match k {
            "name" => self.names.extend(v.split(',').map(str::to_string)),
            "compression" => {
                self.compression = Some(match v {
                    "gzip" => Compression::Gzip,
                    "zstd" => Compression::Zstd,
                    "uncompressed" => Compression::None,
                    _ => return Err(SpecError::Compression(v.into())),
                })
            }
            "compression-level" => {
                self.compression_level = Some(v.parse().map_err(|_| SpecError::Level(v.into()))?)
            }
            "force-compression" => self.force_compression = Some(boolean(k, v)?),
            // strata writes OCI media types in OCI outputs and Docker's in
            // docker archives whatever this says; its timestamps are
            // rewritten whenever an epoch is given.
            "oci-mediatypes" | "rewrite-timestamp" => {
                boolean(k, v)?;
            }
            _ if k.starts_with("annotation") => {
                let (kind, key) = match k.split_once('.') {
                    Some(("annotation", key)) => ("manifest", key),
                    Some((a, key)) => (a.trim_start_matches("annotation-"), key),
                    None => return Err(SpecError::AnnotationAttr(k.into())),
                };
                self.annotations.add(&format!("{kind}:{key}={v}"))?;
            }
            _ => {
                attrs.insert(k.to_string(), v.to_string());
            }
        }
        Ok(())
    }
}

/// The type and its own attributes (removed from `attrs` as read).
fn kind_of(kind: &str, attrs: &mut BTreeMap<String, String>) -> Result<OutputKind, SpecError> {
    Ok(match kind {
        "local" => match dest_of(attrs.remove("dest").as_ref(), kind)? {
            Dest::File(dir) => OutputKind::Local(dir),
            Dest::Stdout => return Err(SpecError::LocalStdout),
        },
        "tar" => OutputKind::Tar(dest_of(attrs.remove("dest").as_ref(), kind)?),
        "oci" => {
            let tar = match attrs.remove("tar") {
                Some(v) => boolean("tar", &v)?,
                None => true,
            };
            let dest = dest_of(attrs.remove("dest").as_ref(), kind)?;
            if !tar && dest == Dest::Stdout {
                return Err(SpecError::OciDirStdout);
            }
            OutputKind::Oci { dest, tar }
        }
        "docker" => match attrs.remove("dest") {
            Some(d) => OutputKind::Docker(dest_of(Some(&d), kind)?),
            None => return Err(SpecError::DockerDest),
        },
        "image" => OutputKind::Image {
            push: match attrs.remove("push") {
                Some(v) => boolean("push", &v)?,
                None => false,
            },
        },
        "registry" => OutputKind::Image { push: true },
        other => return Err(SpecError::UnknownType(other.into())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(s: &str) -> Result<OutputKind, SpecError> {
        OutputSpec::parse(s).map(|o| o.kind)
    }

    #[test]
    fn output_table() {
        let file = |p: &str| Dest::File(PathBuf::from(p));
        for (input, want) in [
            ("out", OutputKind::Local("out".into())),
            ("-", OutputKind::Tar(Dest::Stdout)),
            ("type=local,dest=d", OutputKind::Local("d".into())),
            ("dest=d", OutputKind::Local("d".into())),
            ("type=tar,dest=-", OutputKind::Tar(Dest::Stdout)),
            ("type=tar,dest=a.tar", OutputKind::Tar(file("a.tar"))),
            (
                "type=oci,dest=o.tar",
                OutputKind::Oci {
                    dest: file("o.tar"),
                    tar: true,
                },
            ),
            (
                "type=oci,dest=o,tar=false",
                OutputKind::Oci {
                    dest: file("o"),
                    tar: false,
                },
            ),
            (
                "type=docker,dest=d.tar,name=a:1",
                OutputKind::Docker(file("d.tar")),
            ),
            ("type=image,name=a", OutputKind::Image { push: false }),
            (
                "type=image,name=a,push=true",
                OutputKind::Image { push: true },
            ),
            ("type=registry,name=r/a", OutputKind::Image { push: true }),
        ] {
            assert_eq!(kind(input), Ok(want), "{input}");
        }
        for bad in [
            "",
            "type=nope,dest=x",
            "type=tar",
            "type=local,dest=-",
            "type=oci,dest=-,tar=false",
            "type=tar,dest=x,bogus=1",
            "type=docker",
            "type=image,push=maybe",
            "type=tar,dest=\"x",
            "type=tar,dest=x,compression=lz4",
        ] {
            assert!(kind(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_compression_and_annotations() {
        let o = OutputSpec::parse(
            "type=registry,\"name=a:1,b:2\",compression=zstd,compression-level=3,force-compression=true,annotation.k=v,annotation-index.i=j",
        )
        .unwrap();
        assert_eq!(o.names, ["a:1", "b:2"]);
        assert_eq!(o.compression, Some(Compression::Zstd));
        assert_eq!(o.compression_level, Some(3));
        assert_eq!(o.force_compression, Some(true));
        assert_eq!(o.annotations.manifest["k"], "v");
        assert_eq!(o.annotations.index["i"], "j");
    }

    /// The cause chain as the CLI renders it.
    fn chain(e: &SpecError) -> String {
        let mut out = e.to_string();
        let mut cause = std::error::Error::source(e);
        while let Some(c) = cause {
            out.push_str(&format!(": {c}"));
            cause = c.source();
        }
        out
    }

    #[test]
    fn messages_name_the_value_and_the_field() {
        for (input, want) in [
            (
                "type=tar,dest=x,compression=lz4",
                "--output \"type=tar,dest=x,compression=lz4\": compression=lz4: gzip, zstd or uncompressed",
            ),
            (
                "type=tar,dest=x,bogus=1",
                "--output \"type=tar,dest=x,bogus=1\": bogus is not an option of type=tar",
            ),
            (
                "type=image,push=maybe",
                "--output \"type=image,push=maybe\": push=maybe: expected true or false",
            ),
            ("type=tar,x", "--output \"type=tar,x\": \"x\" is not KEY=VALUE"),
        ] {
            assert_eq!(chain(&OutputSpec::parse(input).unwrap_err()), want);
        }
        let e = Annotations::default().add("bogus:k=v").unwrap_err();
        assert_eq!(
            chain(&e),
            "--annotation \"bogus:k=v\": unknown type \"bogus\" (manifest, index, manifest-descriptor)"
        );
    }

    #[test]
    fn annotation_table() {
        let mut a = Annotations::default();
        a.add("org.opencontainers.image.title=x").unwrap();
        a.add("index:i=1").unwrap();
        a.add("manifest-descriptor:d=2").unwrap();
        a.add("manifest[]:m=3").unwrap();
        a.add("url=http://x:1/y").unwrap();
        assert_eq!(a.manifest["org.opencontainers.image.title"], "x");
        assert_eq!(a.manifest["m"], "3");
        assert_eq!(a.manifest["url"], "http://x:1/y");
        assert_eq!(a.index["i"], "1");
        assert_eq!(a.descriptor["d"], "2");
        for bad in ["novalue", "=v", "bogus:k=v", "index:=v"] {
            assert!(Annotations::default().add(bad).is_err(), "{bad}");
        }
    }
}
