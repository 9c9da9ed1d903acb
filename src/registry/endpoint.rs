//! Where a registry lives and how to talk to it: the API host of a
//! reference's registry (Docker Hub's `docker.io` is served by
//! `registry-1.docker.io`), whether plain http may be tried, which
//! directories hold its CA certificates, and the API v2 paths.
//!
//! Plain http is allowed only for loopback registries (127.0.0.0/8,
//! `localhost`, `[::1]`), a registry named with `--tls-verify=false`, or one
//! in the `insecure-registries` list of strata's config file. Even then
//! https is tried first, as Docker does, so a local registry with TLS keeps
//! it. Everything here is pure.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::reference::DEFAULT_DOMAIN;

/// The host that serves Docker Hub's registry API.
pub const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";
/// Other names Docker Hub has had; all mean [`DEFAULT_DOMAIN`].
const DOCKER_HUB_ALIASES: [&str; 3] = ["index.docker.io", "registry-1.docker.io", "docker.io"];

/// How far a registry's transport may be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// https only, certificates verified against the system roots and the
    /// registry's CA files.
    Verified,
    /// https verified first; plain http if the server does not speak TLS
    /// (loopback registries, as Docker treats them).
    VerifiedOrPlain,
    /// https without certificate verification, then plain http
    /// (`--tls-verify=false`, or the config file's insecure list).
    Insecure,
}

impl Security {
    pub fn allows_plain_http(self) -> bool {
        self != Security::Verified
    }
}

/// The canonical registry name of `domain`: Docker Hub's aliases become
/// `docker.io`; anything else is kept as written.
pub fn canonical_registry(domain: &str) -> &str {
    if DOCKER_HUB_ALIASES.contains(&domain) {
        DEFAULT_DOMAIN
    } else {
        domain
    }
}

/// The host (with port) that serves the API of a registry.
pub fn api_host(domain: &str) -> &str {
    if canonical_registry(domain) == DEFAULT_DOMAIN {
        DOCKER_HUB_API_HOST
    } else {
        domain
    }
}

/// The host part of `host[:port]` or `[v6]:port`, without brackets.
fn host_only(domain: &str) -> &str {
    if let Some(rest) = domain.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match domain.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => domain,
    }
}

/// Whether `domain` names this machine's loopback (127.0.0.0/8,
/// `localhost`, `::1`), where traffic never leaves the host.
pub fn is_loopback(domain: &str) -> bool {
    let host = host_only(domain);
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.is_loopback(),
        Ok(IpAddr::V6(v6)) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => false,
    }
}

/// The transport rules for `domain`, given `--tls-verify` (if given) and the
/// config file's insecure list (entries `host` or `host:port`).
pub fn security(domain: &str, tls_verify: Option<bool>, insecure: &[String]) -> Security {
    let listed = insecure
        .iter()
        .map(|entry| entry.trim().trim_end_matches('/'))
        .any(|entry| entry == domain || (!entry.contains(':') && entry == host_only(domain)));
    match tls_verify {
        Some(false) => Security::Insecure,
        _ if listed => Security::Insecure,
        // An explicit --tls-verify=true refuses the loopback fallback too.
        Some(true) => Security::Verified,
        None if is_loopback(domain) => Security::VerifiedOrPlain,
        None => Security::Verified,
    }
}

/// Directories searched for a registry's CA certificates (`*.crt`) and
/// client certificate (`*.cert` + `*.key`): the `--cert-dir` given, or the
/// certs.d directories of containers tools and Docker for that host.
pub fn cert_dirs(
    domain: &str,
    cert_dir: Option<&Path>,
    config_home: Option<&Path>,
) -> Vec<PathBuf> {
    if let Some(dir) = cert_dir {
        return vec![dir.to_path_buf()];
    }
    // Docker names the directory `host:port`; a colon is fine on Linux.
    let mut dirs = Vec::new();
    if let Some(home) = config_home {
        dirs.push(home.join("containers/certs.d").join(domain));
    }
    dirs.push(Path::new("/etc/containers/certs.d").join(domain));
    dirs.push(Path::new("/etc/docker/certs.d").join(domain));
    dirs
}

/// `/v2/` — the API's version check, and the first place a registry
/// says how to authenticate.
pub fn ping_path() -> &'static str {
    "/v2/"
}

/// `/v2/<repo>/manifests/<tag or digest>`. Both parts were validated by
/// the reference parser (or are a [`Digest`]), so no escaping is needed.
pub fn manifest_path(repository: &str, tag_or_digest: &str) -> String {
    format!("/v2/{repository}/manifests/{tag_or_digest}")
}

/// `/v2/<repo>/blobs/<digest>`.
pub fn blob_path(repository: &str, digest: &Digest) -> String {
    format!("/v2/{repository}/blobs/{digest}")
}

/// `/v2/<repo>/blobs/uploads/`, optionally asking to mount `digest` from
/// another repository of the same registry.
pub fn upload_path(repository: &str, mount: Option<(&Digest, &str)>) -> String {
    match mount {
        Some((digest, from)) => {
            format!("/v2/{repository}/blobs/uploads/?mount={digest}&from={from}")
        }
        None => format!("/v2/{repository}/blobs/uploads/"),
    }
}

/// `/v2/<repo>/tags/list`.
pub fn tags_path(repository: &str) -> String {
    format!("/v2/{repository}/tags/list")
}

/// `/v2/_catalog?n=<limit>`.
pub fn catalog_path(limit: usize) -> String {
    format!("/v2/_catalog?n={limit}")
}

/// Where Docker Hub's search API lives (it is not part of the v2 API).
pub const DOCKER_HUB_SEARCH_URL: &str = "https://index.docker.io/v1/search";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_host_table() {
        for (domain, canonical, host) in [
            ("docker.io", "docker.io", "registry-1.docker.io"),
            ("index.docker.io", "docker.io", "registry-1.docker.io"),
            ("registry-1.docker.io", "docker.io", "registry-1.docker.io"),
            ("quay.io", "quay.io", "quay.io"),
            ("localhost:5000", "localhost:5000", "localhost:5000"),
        ] {
            assert_eq!(canonical_registry(domain), canonical, "{domain}");
            assert_eq!(api_host(domain), host, "{domain}");
        }
    }

    #[test]
    fn loopback_table() {
        for (domain, want) in [
            ("localhost", true),
            ("localhost:5000", true),
            ("LOCALHOST:5000", true),
            ("127.0.0.1", true),
            ("127.0.0.1:5000", true),
            ("127.255.1.2:80", true),
            ("[::1]:5000", true),
            ("[::ffff:127.0.0.1]:5000", true),
            ("128.0.0.1:5000", false),
            ("10.0.0.1:5000", false),
            ("localhost.example.com", false),
            ("docker.io", false),
            ("[::2]:5000", false),
        ] {
            assert_eq!(is_loopback(domain), want, "{domain}");
        }
    }

    #[test]
    fn security_table() {
        let list = vec!["reg.lan:5000".to_string(), "plain.lan".to_string()];
        use Security::*;
        for (domain, tls_verify, want) in [
            ("quay.io", None, Verified),
            ("quay.io", Some(true), Verified),
            ("quay.io", Some(false), Insecure),
            ("127.0.0.1:5000", None, VerifiedOrPlain),
            ("localhost:5000", None, VerifiedOrPlain),
            ("localhost:5000", Some(true), Verified),
            ("localhost:5000", Some(false), Insecure),
            ("reg.lan:5000", None, Insecure),
            ("reg.lan:5001", None, Verified),
            ("plain.lan:443", None, Insecure),
            ("plain.lan", Some(true), Insecure),
        ] {
            assert_eq!(
                security(domain, tls_verify, &list),
                want,
                "{domain} {tls_verify:?}"
            );
        }
        assert!(!Verified.allows_plain_http());
        assert!(VerifiedOrPlain.allows_plain_http());
    }

    #[test]
    fn cert_dirs_follow_certs_d() {
        let home = Path::new("/home/u/.config");
        assert_eq!(
            cert_dirs("reg:5000", None, Some(home)),
            vec![
                PathBuf::from("/home/u/.config/containers/certs.d/reg:5000"),
                PathBuf::from("/etc/containers/certs.d/reg:5000"),
                PathBuf::from("/etc/docker/certs.d/reg:5000"),
            ]
        );
        assert_eq!(
            cert_dirs("reg:5000", Some(Path::new("/c")), Some(home)),
            vec![PathBuf::from("/c")]
        );
    }

    #[test]
    fn paths() {
        let d = Digest::of(b"");
        assert_eq!(
            manifest_path("library/busybox", "latest"),
            "/v2/library/busybox/manifests/latest"
        );
        assert_eq!(blob_path("a/b", &d), format!("/v2/a/b/blobs/{d}"));
        assert_eq!(upload_path("a/b", None), "/v2/a/b/blobs/uploads/");
        assert_eq!(
            upload_path("a/b", Some((&d, "c/d"))),
            format!("/v2/a/b/blobs/uploads/?mount={d}&from=c/d")
        );
        assert_eq!(tags_path("a"), "/v2/a/tags/list");
        assert_eq!(catalog_path(10), "/v2/_catalog?n=10");
        assert_eq!(ping_path(), "/v2/");
    }
}
