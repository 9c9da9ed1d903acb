//! ADD of an http(s) URL: the download, named, dated and checked as Docker
//! does, into a small temporary context the step then copies from (never
//! unpacking it, even a tar: Docker's rule for remote files).
//!
//! - The file is named after the last segment of the URL's path,
//!   percent-decoded. A URL whose path names no file (`http://host/`,
//!   `.../dir/`) is an error when the destination ends with `/`; otherwise
//!   the destination names the file and the download is `__unnamed__`
//!   (Docker's name for it, seen only if the destination is an existing
//!   directory).
//! - Mode 0600, and the mtime of the response's `Last-Modified`, or the
//!   epoch without one (both Docker builders do so).
//! - `--checksum=sha256:<hex>` is checked against the content as it
//!   streams in.
//! - Redirects are followed (at most 10, as Go's client that Docker uses);
//!   connecting and every wait for the server are bounded, so a dead server
//!   fails the step instead of hanging it.
//!
//! Each download lands at `<index>/<name>` in the context: the index keeps
//! two URLs with the same name apart, and keeps a download named
//! `.dockerignore` away from the root, where it would be read as one. The
//! step's cache key has each [`Download`]'s URL and Last-Modified besides
//! the digest of the files (which covers names, modes and content but no
//! times), as BuildKit keys a download on its Last-Modified.

use fs_err::File;
use std::fs::Permissions;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::blocking::Client;
use reqwest::header::LAST_MODIFIED;
use reqwest::Url;
use serde::Serialize;

use crate::digest::{Digest, HashingWriter};
use crate::registry::backoff::{retry, retryable_status, Backoff, Failure};
use crate::registry::client::{chain, url_without_query};

/// The name of a download whose URL names no file (Docker's).
pub const UNNAMED: &str = "__unnamed__";
/// Mode of a downloaded file without `--chmod` (Docker's).
const DOWNLOAD_MODE: u32 = 0o600;
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the server may keep us waiting, for the response or for more
/// of the body: long enough for a slow mirror, short enough that a dead
/// one fails the build within minutes.
const STALL_TIMEOUT: Duration = Duration::from_secs(120);
/// Redirects followed; Go's http client, which Docker uses, stops at 10.
const MAX_REDIRECTS: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("setting up the HTTP client: {cause}")]
    Setup { cause: String },
    #[error("invalid URL {url}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("cannot determine a file name for {url}: its path names no file and the destination ends with /")]
    NoName { url: String },
    #[error("GET {url}: {cause}")]
    Transport { url: String, cause: String },
    #[error("GET {url}: {status}{redirected}")]
    Status {
        url: String,
        status: String,
        /// ` (redirected to ...)` when the answer came from elsewhere.
        redirected: String,
    },
    #[error("downloading {url}: {cause}")]
    Body { url: String, cause: io::Error },
    #[error("checksum mismatch for {url}: expected {expected}, got {actual}")]
    Checksum {
        url: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("{op} {path}: {cause}")]
    Io {
        op: &'static str,
        path: PathBuf,
        cause: io::Error,
    },
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> FetchError {
    let path = path.to_path_buf();
    move |cause| FetchError::Io { op, path, cause }
}

/// Whether ADD downloads `src` (an http or https URL).
pub fn is_url(src: &str) -> bool {
    src.starts_with("http://") || src.starts_with("https://")
}

/// Whether ADD would take `src` as a git repository, as BuildKit does: an
/// ssh-style `git@host:path`, a `git://` URL, or an http(s) URL whose path
/// ends in `.git` (a `#ref` may follow).
pub fn is_git(src: &str) -> bool {
    if src.starts_with("git@") || src.starts_with("git://") {
        return true;
    }
    if !is_url(src) {
        return false;
    }
    let no_ref = src.split('#').next().unwrap_or(src);
    let path = no_ref.split('?').next().unwrap_or(no_ref);
    path.trim_end_matches('/').ends_with(".git")
}

/// The file name the URL's path gives: its last segment, percent-decoded
/// (as Go's `path.Base(u.Path)`); `None` when that is empty, `.` or `..`.
pub fn file_name(url: &Url) -> Option<String> {
    let path = percent_encoding::percent_decode_str(url.path()).decode_utf8_lossy();
    let base = path.rsplit('/').next().unwrap_or("");
    match base {
        "" | "." | ".." => None,
        b if b.contains('\0') => None,
        b => Some(b.to_string()),
    }
}

/// The mtime a `Last-Modified` value gives: the epoch when it is missing
/// or unreadable (Docker's rule), and never before it.
pub fn mtime_of(last_modified: Option<&str>) -> SystemTime {
    last_modified
        .and_then(|v| httpdate::parse_http_date(v.trim()).ok())
        .filter(|t| *t > UNIX_EPOCH)
        .unwrap_or(UNIX_EPOCH)
}

/// One downloaded file; what the cache key takes of it serialises.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Download {
    /// Where it is, relative to the download dir.
    #[serde(skip)]
    pub path: PathBuf,
    pub url: String,
    /// Last-Modified in seconds since the epoch; 0 without one.
    pub modified: u64,
}

/// Downloads for one ADD step.
pub struct Fetcher {
    client: Client,
}

impl Fetcher {
    pub fn new() -> Result<Fetcher, FetchError> {
        Fetcher::with_timeouts(CONNECT_TIMEOUT, STALL_TIMEOUT)
    }

    /// A fetcher whose server may stall for at most `stall` at a time.
    pub fn with_timeouts(connect: Duration, stall: Duration) -> Result<Fetcher, FetchError> {
        let client = crate::registry::http::client_builder(stall)
            .redirect(reqwest::redirect::Policy::limited(MAX_REDIRECTS))
            .connect_timeout(connect)
            // The blocking client applies this to the wait for the response
            // and to each read of the body: a bound on stalls, not on size.
            .timeout(stall)
            .build()
            .map_err(|e| FetchError::Setup { cause: chain(&e) })?;
        Ok(Fetcher { client })
    }

    /// Download `url` into `dir` as the `index`th source of a step;
    /// `dest_is_dir` says whether the destination ends with `/`.
    pub fn fetch(
        &self,
        url: &str,
        dir: &Path,
        index: usize,
        dest_is_dir: bool,
        checksum: Option<&Digest>,
    ) -> Result<Download, FetchError> {
        let parsed = Url::parse(url).map_err(|e| FetchError::BadUrl {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        let name = match (file_name(&parsed), dest_is_dir) {
            (Some(name), _) => name,
            (None, false) => UNNAMED.to_string(),
            (None, true) => {
                return Err(FetchError::NoName {
                    url: url.to_string(),
                })
            }
        };
        let resp = self.get(&parsed, url)?;
        if !resp.status().is_success() {
            let redirected = if resp.url() == &parsed {
                String::new()
            } else {
                format!(" (redirected to {})", url_without_query(resp.url()))
            };
            return Err(FetchError::Status {
                url: url.to_string(),
                status: resp.status().to_string(),
                redirected,
            });
        }
        let last_modified = resp
            .headers()
            .get(LAST_MODIFIED)
            .and_then(|v| v.to_str().ok());
        let mtime = mtime_of(last_modified);
        let sub = dir.join(index.to_string());
        fs_err::create_dir(&sub).map_err(io_err("create", &sub))?;
        let path = sub.join(&name);
        let file = File::create(&path).map_err(io_err("create", &path))?;
        let (actual, file) = save(resp, file, url)?;
        if let Some(expected) = checksum {
            if &actual != expected {
                return Err(FetchError::Checksum {
                    url: url.to_string(),
                    expected: expected.clone(),
                    actual,
                });
            }
        }
        file.set_permissions(Permissions::from_mode(DOWNLOAD_MODE))
            .map_err(io_err("chmod", &path))?;
        file.set_modified(mtime)
            .map_err(io_err("set time of", &path))?;
        Ok(Download {
            path: PathBuf::from(index.to_string()).join(name),
            url: url.to_string(),
            modified: mtime.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        })
    }
}

impl Fetcher {
    /// GET `parsed`, tried again as the registry's requests are: on a
    /// network error, a 5xx or a 429.
    fn get(&self, parsed: &Url, url: &str) -> Result<reqwest::blocking::Response, FetchError> {
        retry(
            &Backoff::default(),
            |_| match self.client.get(parsed.clone()).send() {
                Err(e) => Err(Failure::Retry(FetchError::Transport {
                    url: url.to_string(),
                    cause: chain(&e.without_url()),
                })),
                Ok(r) if retryable_status(r.status().as_u16()) => {
                    Err(Failure::Retry(FetchError::Status {
                        url: url.to_string(),
                        status: r.status().to_string(),
                        redirected: String::new(),
                    }))
                }
                Ok(r) => Ok(r),
            },
            |_, last| last,
        )
    }
}

/// Stream the body into `file`; the content's digest, and the file.
fn save(mut body: impl Read, file: File, url: &str) -> Result<(Digest, File), FetchError> {
    let mut out = HashingWriter::new(file);
    io::copy(&mut body, &mut out).map_err(|cause| FetchError::Body {
        url: url.to_string(),
        cause,
    })?;
    let (digest, _, file) = out.finish();
    Ok((digest, file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_and_git_table() {
        for (src, url, git) in [
            ("http://h/f.txt", true, false),
            ("https://h/a/b.tar.gz", true, false),
            ("https://github.com/o/r.git", true, true),
            ("https://github.com/o/r.git#v1", true, true),
            ("https://h/r.git/", true, true),
            ("https://h/f.git.txt", true, false),
            ("git@github.com:o/r.git", false, true),
            ("git://h/r", false, true),
            ("http:/not-a-url", false, false),
            ("HTTP://h/f", false, false),
            ("./http://x", false, false),
            ("file.txt", false, false),
        ] {
            assert_eq!(is_url(src), url, "{src}");
            assert_eq!(is_git(src), git, "{src}");
        }
    }

    #[test]
    fn file_name_table() {
        for (url, want) in [
            ("http://h/f.txt", Some("f.txt")),
            ("http://h/a/b/c.tar.gz?x=1#frag", Some("c.tar.gz")),
            ("http://h/a%20b.txt", Some("a b.txt")),
            ("http://h/dir%2Ffile", Some("file")),
            ("http://h/", None),
            ("http://h", None),
            ("http://h/dir/", None),
            ("http://h/a/%2e%2e", None),
            ("http://h/a%00b", None),
        ] {
            let u = Url::parse(url).unwrap();
            assert_eq!(file_name(&u).as_deref(), want, "{url}");
        }
    }

    #[test]
    fn mtime_table() {
        let at = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
        for (header, want) in [
            (Some("Sun, 13 Sep 2020 12:26:40 GMT"), at(1_600_000_000)),
            // The obsolete forms HTTP still allows.
            (Some("Sunday, 13-Sep-20 12:26:40 GMT"), at(1_600_000_000)),
            (Some("Sun Sep 13 12:26:40 2020"), at(1_600_000_000)),
            (Some("yesterday"), UNIX_EPOCH),
            (Some("Thu, 01 Jan 1970 00:00:00 GMT"), UNIX_EPOCH),
            (None, UNIX_EPOCH),
        ] {
            assert_eq!(mtime_of(header), want, "{header:?}");
        }
    }

    #[test]
    fn refused_before_any_request() {
        let dir = tempfile::tempdir().unwrap();
        let f = Fetcher::new().unwrap();
        let e = f
            .fetch("http://127.0.0.1:9/", dir.path(), 0, true, None)
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot determine a file name for http://127.0.0.1:9/"),
            "{e}"
        );
        let e = f
            .fetch("http://[::1", dir.path(), 0, false, None)
            .unwrap_err();
        assert!(matches!(e, FetchError::BadUrl { .. }), "{e}");
    }

    #[test]
    fn a_stalled_server_times_out() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // Accept, then say nothing, every time (the request is tried
        // again; the threads end with the test process).
        std::thread::spawn(move || {
            for mut conn in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut buf = [0u8; 1024];
                    while conn.read(&mut buf).unwrap_or(0) > 0 {}
                });
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let f = Fetcher::with_timeouts(Duration::from_secs(5), Duration::from_millis(300)).unwrap();
        let url = format!("http://{addr}/f");
        let e = f.fetch(&url, dir.path(), 0, false, None).unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with(&format!("GET {url}: ")), "{text}");
        assert!(text.contains("timed out"), "{text}");
    }
}
