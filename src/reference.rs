//! Image references, normalised the way Docker does it.
//!
//! `busybox` is `docker.io/library/busybox:latest`, `user/app` is
//! `docker.io/user/app:latest`, `host:port/ns/app:tag` keeps its registry,
//! `app@sha256:...` names a manifest by digest. The first path component is a
//! registry only when it contains `.` or `:`, is `localhost`, or has an
//! uppercase letter (the rule of distribution/reference). Everything here is
//! pure: [`Reference::parse`] takes a `&str`.
//!
//! [`Reference`]'s `Display` is the full form stored in the tag index;
//! [`Reference::familiar`] is the short form Docker shows in tables.

use std::fmt;
use std::str::FromStr;

use crate::digest::{Digest, DigestError};

/// Docker Hub's canonical registry name.
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// Docker Hub's legacy name, normalised to [`DEFAULT_DOMAIN`].
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
/// The namespace of Docker Hub's official images.
const OFFICIAL_NAMESPACE: &str = "library";
pub const DEFAULT_TAG: &str = "latest";
/// Longest repository name (domain + path) distribution accepts.
const NAME_MAX_LEN: usize = 255;
/// Longest tag distribution accepts.
const TAG_MAX_LEN: usize = 128;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    #[error("invalid reference format: {input:?} is empty")]
    Empty { input: String },
    #[error("invalid reference format: repository name {input:?} must be lowercase")]
    Uppercase { input: String },
    #[error("invalid repository name ({input}), cannot specify 64-byte hexadecimal strings")]
    HexName { input: String },
    #[error("invalid reference format: {input:?} has a bad {part} {found:?}")]
    Component {
        input: String,
        part: &'static str,
        found: String,
    },
    #[error("invalid reference format: repository name {input:?} is longer than {NAME_MAX_LEN} characters")]
    TooLong { input: String },
    #[error("invalid reference format: {input:?}")]
    Digest { input: String, source: DigestError },
    #[error("invalid reference format: {input:?}: a reference has no user:password@ (use `strata login`)")]
    Credentials { input: String },
}

/// A normalised image reference: `domain/path[:tag][@digest]`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parse and normalise; a reference with neither tag nor digest gets
    /// `latest`, as `docker pull busybox` does.
    pub fn parse(input: &str) -> Result<Reference, ReferenceError> {
        let mut r = Reference::parse_name(input)?;
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some(DEFAULT_TAG.to_string());
        }
        Ok(r)
    }

    /// Parse and normalise without adding a default tag (for `images REPO`
    /// style filters and `docker-archive:FILE:REF`).
    pub fn parse_name(input: &str) -> Result<Reference, ReferenceError> {
        let shown = shown(input);
        if shown != input {
            return Err(ReferenceError::Credentials { input: shown });
        }
        if input.is_empty() {
            return Err(ReferenceError::Empty {
                input: input.into(),
            });
        }
        if is_full_hex_id(input) {
            return Err(ReferenceError::HexName {
                input: input.into(),
            });
        }
        let (rest, digest) = match input.split_once('@') {
            Some((rest, d)) => {
                let digest = d.parse().map_err(|source| ReferenceError::Digest {
                    input: input.into(),
                    source,
                })?;
                (rest, Some(digest))
            }
            None => (input, None),
        };
        // A tag is a ':' after the last '/', so `host:5000/app` has none.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag {
            if !is_tag(tag) {
                return Err(component_error(input, "tag", tag));
            }
        }
        let (domain, path) = split_domain(name);
        if path.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(ReferenceError::Uppercase {
                input: input.into(),
            });
        }
        if !is_domain(&domain) {
            return Err(component_error(input, "registry", &domain));
        }
        if let Some(bad) = path.split('/').find(|c| !is_path_component(c)) {
            return Err(component_error(input, "path component", bad));
        }
        if domain.len() + 1 + path.len() > NAME_MAX_LEN {
            return Err(ReferenceError::TooLong {
                input: input.into(),
            });
        }
        Ok(Reference {
            domain,
            path,
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// The registry host, e.g. `docker.io` or `localhost:5000`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The path inside the registry, e.g. `library/busybox`.
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `docker.io/library/busybox`.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// `busybox`, `user/app`, `localhost:5000/app`: as Docker shows it.
    pub fn familiar_repository(&self) -> String {
        if self.domain != DEFAULT_DOMAIN {
            return self.repository();
        }
        match self.path.strip_prefix("library/") {
            Some(rest) if !rest.contains('/') => rest.to_string(),
            _ => self.path.clone(),
        }
    }

    /// The familiar form with tag and digest: `busybox:latest`.
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_repository();
        self.push_suffix(&mut s);
        s
    }

    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Result<Reference, ReferenceError> {
        if !is_tag(tag) {
            return Err(component_error(tag, "tag", tag));
        }
        Ok(Reference {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        })
    }

    /// The same repository pinned to a digest, without a tag
    /// (the `RepoDigests` form).
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            tag: None,
            digest: Some(digest),
            ..self.clone()
        }
    }

    fn push_suffix(&self, s: &mut String) {
        if let Some(tag) = &self.tag {
            s.push(':');
            s.push_str(tag);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.repository();
        self.push_suffix(&mut s);
        f.write_str(&s)
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Reference, ReferenceError> {
        Reference::parse(s)
    }
}

/// `input` as an error may show it. A reference has one `@`, before its
/// digest; any other `@` ends a URL's `user:password@` (a registry URL with
/// credentials pasted in), whose password is hidden: `user:***@host/app`.
/// Everything after the last `@` is kept.
pub fn shown(input: &str) -> String {
    let Some((before, after)) = input.rsplit_once('@') else {
        return input.to_string();
    };
    if after.parse::<Digest>().is_ok() && !before.contains('@') {
        return input.to_string();
    }
    let user_start = before.find("://").map_or(0, |i| i + 3);
    match before[user_start..].find(':') {
        Some(i) => format!("{}:***@{after}", &before[..user_start + i]),
        None => input.to_string(),
    }
}

fn component_error(input: &str, part: &'static str, found: &str) -> ReferenceError {
    ReferenceError::Component {
        input: input.into(),
        part,
        found: found.into(),
    }
}

/// Whether `s` is a 64-character hex string (an image id, not a name).
pub fn is_full_hex_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Split `name` into (domain, path) with Docker Hub's normalisation.
fn split_domain(name: &str) -> (String, String) {
    let (domain, path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
    };
    let domain = if domain == LEGACY_DEFAULT_DOMAIN {
        DEFAULT_DOMAIN.to_string()
    } else {
        domain
    };
    let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
        format!("{OFFICIAL_NAMESPACE}/{path}")
    } else {
        path
    };
    (domain, path)
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn is_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// A host name or IPv4 address (or `[ipv6]`), with an optional `:port`.
fn is_domain(d: &str) -> bool {
    let (host, port) = if d.starts_with('[') {
        match d.find(']') {
            Some(end) => (&d[..=end], d[end + 1..].strip_prefix(':')),
            None => return false,
        }
    } else {
        match d.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (d, None),
        }
    };
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_hexdigit() || b == b':');
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// `[\w][\w.-]{0,127}`
fn is_tag(t: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= TAG_MAX_LEN
        && word(b[0])
        && b.iter().all(|&x| word(x) || x == b'.' || x == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn a_password_in_a_reference_is_never_shown() {
        let with_digest = (
            format!("u:p@S3CR3T@sha256:{HEX}"),
            format!("u:***@sha256:{HEX}"),
        );
        for (input, shown_as) in [
            ("user:S3CR3T@host/app", "user:***@host/app"),
            (
                "https://user:S3CR3T@host/app:v1",
                "https://user:***@host/app:v1",
            ),
            ("u:p@S3CR3T@host/app", "u:***@host/app"),
            ("u:S3CR3T/x@localhost:5000/app", "u:***@localhost:5000/app"),
            (&with_digest.0, &with_digest.1),
        ] {
            let err = Reference::parse(input).unwrap_err().to_string();
            assert!(!err.contains("S3CR3T"), "{input}: {err}");
            assert!(err.contains(shown_as), "{input}: {err}");
        }
        // A digest after the @ is a reference's own: shown as given.
        let bad_tag = format!("app:-bad@sha256:{HEX}");
        let err = Reference::parse(&bad_tag).unwrap_err().to_string();
        assert!(err.contains(&bad_tag), "{err}");
    }

    #[test]
    fn normalisation_table() {
        // input, full form, familiar form
        let digest_ref = format!("app@sha256:{HEX}");
        let cases: Vec<(&str, String, String)> = vec![
            (
                "busybox",
                "docker.io/library/busybox:latest".into(),
                "busybox:latest".into(),
            ),
            (
                "busybox:1.36",
                "docker.io/library/busybox:1.36".into(),
                "busybox:1.36".into(),
            ),
            (
                "library/busybox",
                "docker.io/library/busybox:latest".into(),
                "busybox:latest".into(),
            ),
            (
                "docker.io/busybox",
                "docker.io/library/busybox:latest".into(),
                "busybox:latest".into(),
            ),
            (
                "index.docker.io/user/app",
                "docker.io/user/app:latest".into(),
                "user/app:latest".into(),
            ),
            (
                "user/app",
                "docker.io/user/app:latest".into(),
                "user/app:latest".into(),
            ),
            (
                "user/team/app:v1",
                "docker.io/user/team/app:v1".into(),
                "user/team/app:v1".into(),
            ),
            (
                "localhost:5000/ns/app:tag",
                "localhost:5000/ns/app:tag".into(),
                "localhost:5000/ns/app:tag".into(),
            ),
            (
                "localhost/app",
                "localhost/app:latest".into(),
                "localhost/app:latest".into(),
            ),
            (
                "quay.io/a/b_c.d__e-f--g",
                "quay.io/a/b_c.d__e-f--g:latest".into(),
                "quay.io/a/b_c.d__e-f--g:latest".into(),
            ),
            (
                "[::1]:5000/app",
                "[::1]:5000/app:latest".into(),
                "[::1]:5000/app:latest".into(),
            ),
            (
                &digest_ref,
                format!("docker.io/library/app@sha256:{HEX}"),
                format!("app@sha256:{HEX}"),
            ),
        ];
        for (input, full, familiar) in &cases {
            let r = Reference::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(&r.to_string(), full, "{input}");
            assert_eq!(&r.familiar(), familiar, "{input}");
            // The full form parses back to itself.
            assert_eq!(Reference::parse(full).unwrap(), r, "{full}");
        }
    }

    #[test]
    fn parts() {
        let r = Reference::parse("host:5000/ns/app:v2").unwrap();
        assert_eq!(r.domain(), "host:5000");
        assert_eq!(r.path(), "ns/app");
        assert_eq!(r.tag(), Some("v2"));
        assert_eq!(r.digest(), None);
        assert_eq!(r.familiar_repository(), "host:5000/ns/app");
        let n = Reference::parse_name("busybox").unwrap();
        assert_eq!(n.tag(), None);
        let d = n.with_digest(Digest::from_hex(HEX).unwrap());
        assert_eq!(d.familiar(), format!("busybox@sha256:{HEX}"));
        assert_eq!(n.with_tag("x").unwrap().familiar(), "busybox:x");
    }

    #[test]
    fn rejects_table() {
        let bad = [
            "",
            "Busybox",
            "user/App",
            "busybox:",
            "busybox:-x",
            "a//b",
            "a/b/",
            "app@sha256:abc",
            "app@md5:abc",
            "-app",
            "app_",
            "a___b",
            "host:port/app",
            HEX,
        ];
        for input in bad {
            assert!(
                Reference::parse(input).is_err(),
                "{input:?} should be refused"
            );
        }
        assert_eq!(
            Reference::parse("Busybox"),
            Err(ReferenceError::Uppercase {
                input: "Busybox".into()
            })
        );
        // An uppercase first component is a registry host, as in Docker.
        assert_eq!(Reference::parse("Host/app").unwrap().domain(), "Host");
    }

    #[test]
    fn long_tag_refused() {
        let tag = "a".repeat(TAG_MAX_LEN + 1);
        assert!(Reference::parse(&format!("app:{tag}")).is_err());
        assert!(Reference::parse(&format!("app:{}", &tag[1..])).is_ok());
    }
}
