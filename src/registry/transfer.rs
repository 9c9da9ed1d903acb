//! The API v2 operations on one repository: manifests (GET verified
//! against the digest asked for, PUT with its media type), blobs (HEAD,
//! streaming GET verified against digest and size while it is written,
//! resumed with `Range` when the server honours it, cross-repository
//! mount, monolithic or chunked upload), tags and the catalog.

use fs_err::File;
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;

use super::auth::Scope;
use super::backoff::Failure;
use super::client::{url_without_query, Registry, Req, ReqBody};
use super::endpoint::{blob_path, catalog_path, manifest_path, tags_path, upload_path};
use super::http::body_error;
use super::manifest::{accept_header, classify, Kind, MANIFEST_MAX_BYTES, SMALL_BODY_MAX_BYTES};
use super::RegistryError;
use crate::digest::{Digest, DigestMismatch};
use crate::store::Writer;

/// Header in which registries return a manifest's or blob's digest.
const DOCKER_CONTENT_DIGEST: &str = "Docker-Content-Digest";
/// Read buffer of blob downloads.
const READ_CHUNK: usize = 256 << 10;
/// A blob download may take this long at least, however small it is.
const BLOB_TIMEOUT_FLOOR: Duration = Duration::from_secs(300);
/// ... and longer for large blobs: a transfer slower than this (bytes per
/// second) is taken as stalled and tried again from where it stopped.
const BLOB_MIN_RATE: u64 = 64 << 10;

/// A manifest or index as the registry sent it.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    /// The exact bytes: they define the digest.
    pub bytes: Vec<u8>,
    pub digest: Digest,
    pub kind: Kind,
    /// The media type (the body's own, else the header's).
    pub media_type: Option<String>,
}

/// What a mount request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountResult {
    /// The blob is now in the target repository.
    Mounted,
    /// The registry could not mount; it opened an upload session instead.
    Upload(String),
}

/// A blob in a local file, to upload.
#[derive(Debug, Clone, Copy)]
pub struct LocalBlob<'a> {
    pub digest: &'a Digest,
    pub path: &'a Path,
    pub size: u64,
}

/// How a blob is uploaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadMode {
    /// One PUT with the whole blob.
    Monolithic,
    /// PATCH requests of at most this many bytes, then a PUT.
    Chunked(u64),
}

#[derive(Deserialize)]
struct TagList {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct Catalog {
    #[serde(default)]
    repositories: Vec<String>,
}

/// Time allowed for one GET of a `size`-byte blob.
pub fn blob_timeout(size: u64) -> Duration {
    BLOB_TIMEOUT_FLOOR.max(Duration::from_secs(size / BLOB_MIN_RATE))
}

/// `Content-Range: bytes <start>-<end>/<total>` -> start, for checking a
/// resumed download continues where it should.
pub fn content_range_start(value: &str) -> Option<u64> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (range, _total) = rest.split_once('/')?;
    let (start, _end) = range.split_once('-')?;
    start.trim().parse().ok()
}

/// `location` with `digest=<digest>` added to its query (it may already
/// carry the registry's own state parameters).
pub fn with_digest_param(location: &Url, digest: &Digest) -> Url {
    let mut u = location.clone();
    u.query_pairs_mut()
        .append_pair("digest", &digest.to_string());
    u
}

/// A blob being downloaded: the store's writer of it (its bytes so far
/// and their hash), and the size it must reach and not pass.
struct BlobSink<'a> {
    writer: &'a mut Writer,
    size: u64,
    what: String,
}

impl BlobSink<'_> {
    fn written(&self) -> u64 {
        self.writer.offset()
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), RegistryError> {
        let found = self.written() + bytes.len() as u64;
        if found > self.size {
            return Err(RegistryError::SizeMismatch(crate::digest::SizeMismatch {
                what: self.what.clone(),
                expected: self.size,
                found,
            }));
        }
        self.writer
            .write_all(bytes)
            .map_err(io_err("write", &self.writer.path()))
    }

    /// Start over: the server sent the whole blob again.
    fn restart(&mut self) -> Result<(), RegistryError> {
        Ok(self.writer.restart()?)
    }

    /// Check the digest of the whole, and flush it to the file.
    fn finish(self, digest: &Digest) -> Result<(), RegistryError> {
        check_digest(self.what, digest, &self.writer.digest())?;
        self.writer
            .flush()
            .map_err(io_err("write", &self.writer.path()))
    }
}

/// `found` must be `expected`.
fn check_digest(what: String, expected: &Digest, found: &Digest) -> Result<(), RegistryError> {
    if expected == found {
        return Ok(());
    }
    Err(RegistryError::DigestMismatch(DigestMismatch {
        what,
        expected: expected.clone(),
        found: found.clone(),
    }))
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> RegistryError {
    let path = path.to_path_buf();
    move |source| RegistryError::Io { op, path, source }
}

impl Registry {
    /// GET a manifest by tag or digest. When `tag_or_digest` is a digest the
    /// bytes must hash to it; a `Docker-Content-Digest` that disagrees with
    /// the bytes is refused too.
    pub fn get_manifest(
        &self,
        repository: &str,
        tag_or_digest: &str,
    ) -> Result<FetchedManifest, RegistryError> {
        let path = manifest_path(repository, tag_or_digest);
        let req = Req::get(path.as_str()).header("Accept", accept_header());
        let answer = self.get_capped(&req, &[Scope::pull(repository)], MANIFEST_MAX_BYTES)?;
        let content_type = answer.header(CONTENT_TYPE.as_str());
        let announced = answer.header(DOCKER_CONTENT_DIGEST);
        let (url, bytes) = (answer.url, answer.bytes);
        let digest = Digest::of(&bytes);
        let what = format!("manifest {}/{tag_or_digest}", self.name_and(repository));
        if let Ok(expected) = tag_or_digest.parse::<Digest>() {
            check_digest(what.clone(), &expected, &digest)?;
        }
        if let Some(announced) = announced {
            let expected: Digest =
                announced
                    .parse()
                    .map_err(|source| RegistryError::BadDigest {
                        url: url_without_query(&url).to_string(),
                        source,
                    })?;
            check_digest(
                format!("{what} (Docker-Content-Digest)"),
                &expected,
                &digest,
            )?;
        }
        let kind = classify(content_type.as_deref(), &bytes).map_err(|source| {
            RegistryError::Manifest {
                reference: format!("{}:{tag_or_digest}", self.name_and(repository)),
                source,
            }
        })?;
        let body_type = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| {
                v.get("mediaType")
                    .and_then(|m| m.as_str())
                    .map(str::to_string)
            });
        Ok(FetchedManifest {
            bytes,
            digest,
            kind,
            media_type: body_type.or(content_type),
        })
    }

    fn name_and(&self, repository: &str) -> String {
        format!("{}/{repository}", self.name())
    }

    /// PUT a manifest under a tag (or its digest); returns its digest,
    /// checked against what the registry says it stored.
    pub fn put_manifest(
        &self,
        repository: &str,
        tag_or_digest: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Digest, RegistryError> {
        let digest = Digest::of(bytes);
        let req = Req::new(Method::PUT, manifest_path(repository, tag_or_digest))
            .header("Content-Type", media_type)
            .body(ReqBody::Bytes(bytes::Bytes::copy_from_slice(bytes)));
        let resp = self.send(&req, &[Scope::push(repository)])?;
        if let Some(announced) = header_str(&resp, DOCKER_CONTENT_DIGEST) {
            if let Ok(found) = announced.parse::<Digest>() {
                if found != digest {
                    return Err(RegistryError::DigestMismatch(DigestMismatch {
                        what: format!(
                            "manifest {}:{tag_or_digest} as stored",
                            self.name_and(repository)
                        ),
                        expected: digest,
                        found,
                    }));
                }
            }
        }
        Ok(digest)
    }

    /// HEAD a blob: its size if the repository has it.
    pub fn blob_exists(
        &self,
        repository: &str,
        digest: &Digest,
    ) -> Result<Option<u64>, RegistryError> {
        let req = Req::new(Method::HEAD, blob_path(repository, digest)).accept(404);
        let resp = self.send(&req, &[Scope::push(repository)])?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        Ok(Some(resp.content_length().unwrap_or(0)))
    }

    /// GET a small blob (a config) whole, verified.
    pub fn get_small_blob(
        &self,
        repository: &str,
        digest: &Digest,
        limit: u64,
    ) -> Result<Vec<u8>, RegistryError> {
        let bytes = self
            .get_capped(
                &Req::get(blob_path(repository, digest)),
                &[Scope::pull(repository)],
                limit,
            )?
            .bytes;
        let found = Digest::of(&bytes);
        check_digest(
            format!("blob {digest} of {}", self.name_and(repository)),
            digest,
            &found,
        )?;
        Ok(bytes)
    }

    /// Download a blob into the store's writer `dest`, verifying size and
    /// digest as it streams. It starts where `dest` is (what a killed
    /// download left) with `Range`; a connection that breaks or a body
    /// that ends early is resumed the same way (or restarted when the
    /// server ignores it), within the retry budget. Bytes that turn out
    /// wrong are dropped from `dest`; bytes cut short stay for a resume.
    /// `progress` gets the bytes written so far.
    pub fn download_blob(
        &self,
        repository: &str,
        digest: &Digest,
        size: u64,
        dest: &mut Writer,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), RegistryError> {
        if dest.offset() > size || dest.offset() == size && &dest.digest() != digest {
            dest.restart()?;
        }
        let result = self.download_blob_inner(repository, digest, size, dest, progress);
        let wrong = match &result {
            Err(RegistryError::DigestMismatch(_)) => true,
            Err(RegistryError::SizeMismatch(m)) => m.found > size,
            _ => false,
        };
        if wrong {
            // The error says what was wrong; a failing truncate adds nothing.
            let _ = dest.restart();
        }
        result
    }

    fn download_blob_inner(
        &self,
        repository: &str,
        digest: &Digest,
        size: u64,
        dest: &mut Writer,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), RegistryError> {
        let what = format!("blob {digest} of {}", self.name_and(repository));
        let mut sink = BlobSink {
            writer: dest,
            size,
            what,
        };
        if sink.written() == size {
            // A killed download got it all; its digest was checked above.
            progress(size);
            return sink.finish(digest);
        }
        let path = blob_path(repository, digest);
        let url = self
            .base()
            .join(path.trim_start_matches('/'))
            .map_err(|e| RegistryError::BadUrl {
                url: path.clone(),
                reason: e.to_string(),
            })?;
        self.with_retries(&Method::GET, &url, |_| {
            let mut req = Req::get(path.as_str()).timeout(None);
            if sink.written() > 0 {
                req = req.header("Range", format!("bytes={}-", sink.written()));
            }
            // `send` retried what it could; what it returns is final.
            let resp = self
                .send(&req, &[Scope::pull(repository)])
                .map_err(Failure::Fatal)?;
            self.receive(resp, &mut sink, progress)
        })?;
        sink.finish(digest)
    }

    /// One answer's body into `sink`, after what it holds when the answer
    /// resumes there (a 206 from exactly that offset), else from the start.
    fn receive(
        &self,
        mut resp: reqwest::blocking::Response,
        sink: &mut BlobSink,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), Failure<RegistryError>> {
        let resumed = resp.status() == StatusCode::PARTIAL_CONTENT
            && header_str(&resp, CONTENT_RANGE.as_str()).and_then(|v| content_range_start(&v))
                == Some(sink.written());
        if sink.written() > 0 && !resumed {
            sink.restart().map_err(Failure::Fatal)?;
            progress(0);
        }
        let url = url_without_query(resp.url()).to_string();
        let mut buf = vec![0u8; READ_CHUNK];
        // Each read waits at most the read timeout; the whole answer may
        // take as long as its size at the slowest rate we accept.
        let deadline = Instant::now() + blob_timeout(sink.size);
        loop {
            let n = resp
                .read(&mut buf)
                .map_err(|e| Failure::Retry(body_error(&url, e)))?;
            if n == 0 {
                break;
            }
            if Instant::now() > deadline {
                return Err(Failure::Retry(RegistryError::TooSlow {
                    url,
                    limit: blob_timeout(sink.size),
                }));
            }
            sink.write(&buf[..n]).map_err(Failure::Fatal)?;
            progress(sink.written());
        }
        if sink.written() < sink.size {
            return Err(Failure::Retry(RegistryError::SizeMismatch(
                crate::digest::SizeMismatch {
                    what: format!("{} (body ended early)", sink.what),
                    expected: sink.size,
                    found: sink.written(),
                },
            )));
        }
        Ok(())
    }

    /// Ask the registry to mount `digest` from repository `from` (same
    /// registry) into `repository`.
    pub fn mount_blob(
        &self,
        repository: &str,
        digest: &Digest,
        from: &str,
    ) -> Result<MountResult, RegistryError> {
        let req = Req::new(Method::POST, upload_path(repository, Some((digest, from))));
        let resp = self.send(&req, &[Scope::push(repository), Scope::pull(from)])?;
        if resp.status() == StatusCode::CREATED {
            return Ok(MountResult::Mounted);
        }
        Ok(MountResult::Upload(self.location(&resp)?))
    }

    /// Open an upload session; its location.
    pub fn start_upload(&self, repository: &str) -> Result<String, RegistryError> {
        let req = Req::new(Method::POST, upload_path(repository, None));
        let resp = self.send(&req, &[Scope::push(repository)])?;
        self.location(&resp)
    }

    fn location(&self, resp: &reqwest::blocking::Response) -> Result<String, RegistryError> {
        let loc = header_str(resp, LOCATION.as_str()).ok_or_else(|| RegistryError::Redirect {
            url: url_without_query(resp.url()).to_string(),
            reason: "upload answer without a Location header".into(),
        })?;
        let url = resp.url().join(&loc).map_err(|e| RegistryError::BadUrl {
            url: loc.clone(),
            reason: e.to_string(),
        })?;
        Ok(url.to_string())
    }

    /// Upload a blob from a file, in the session
    /// `location` (from [`Registry::start_upload`] or a failed mount).
    pub fn upload_blob(
        &self,
        repository: &str,
        blob: &LocalBlob<'_>,
        location: String,
        mode: UploadMode,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), RegistryError> {
        let LocalBlob { digest, path, size } = *blob;
        let mut location = location;
        let mut sent = 0u64;
        if let UploadMode::Chunked(chunk) = mode {
            let chunk = chunk.max(1);
            while sent < size {
                let len = chunk.min(size - sent);
                let body = ReqBody::File {
                    path: path.into(),
                    offset: sent,
                    len,
                };
                location = self.patch_upload(repository, &location, sent, len, body)?;
                sent += len;
                progress(sent);
            }
        }
        let body = match sent < size {
            true => ReqBody::File {
                path: path.into(),
                offset: 0,
                len: size,
            },
            false => ReqBody::Empty,
        };
        self.finish_upload(repository, &location, digest, size - sent, body)?;
        progress(size);
        Ok(())
    }

    /// PATCH `len` bytes at `offset` of a blob into the upload session at
    /// `location`; returns the session's next location.
    pub fn patch_upload(
        &self,
        repository: &str,
        location: &str,
        offset: u64,
        len: u64,
        body: ReqBody,
    ) -> Result<String, RegistryError> {
        let req = Req::new(Method::PATCH, location)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", format!("{}-{}", offset, offset + len - 1))
            .body(body)
            .timeout(Some(blob_timeout(len)))
            .no_retry();
        let resp = self.send(&req, &[Scope::push(repository)])?;
        self.location(&resp)
    }

    /// Close the upload session at `location` with the blob's last `len`
    /// bytes (none when every byte was PATCHed) and its digest, which the
    /// registry checks.
    pub fn finish_upload(
        &self,
        repository: &str,
        location: &str,
        digest: &Digest,
        len: u64,
        body: ReqBody,
    ) -> Result<(), RegistryError> {
        let url = Url::parse(location).map_err(|e| RegistryError::BadUrl {
            url: location.to_string(),
            reason: e.to_string(),
        })?;
        let req = Req::new(Method::PUT, with_digest_param(&url, digest).as_str())
            .header("Content-Type", "application/octet-stream")
            .header(CONTENT_LENGTH.as_str(), len.to_string())
            .body(body)
            .timeout(Some(blob_timeout(len)))
            // Retrying a PUT to a session that may have completed could
            // fail confusingly; the caller starts a new session instead.
            .no_retry();
        self.send(&req, &[Scope::push(repository)])?;
        Ok(())
    }

    /// The tags of a repository.
    pub fn list_tags(&self, repository: &str) -> Result<Vec<String>, RegistryError> {
        let req = Req::get(tags_path(repository));
        let bytes = self
            .get_capped(&req, &[Scope::pull(repository)], MANIFEST_MAX_BYTES)?
            .bytes;
        let list: TagList =
            serde_json::from_slice(&bytes).map_err(|source| RegistryError::Json {
                reference: self.name_and(repository),
                what: "tag list",
                source,
            })?;
        Ok(list.tags.unwrap_or_default())
    }

    /// Up to `limit` repository names from `/v2/_catalog`.
    pub fn catalog(&self, limit: usize) -> Result<Vec<String>, RegistryError> {
        let req = Req::get(catalog_path(limit));
        let bytes = self
            .get_capped(&req, &[Scope::catalog()], SMALL_BODY_MAX_BYTES * 4)?
            .bytes;
        let c: Catalog = serde_json::from_slice(&bytes).map_err(|source| RegistryError::Json {
            reference: self.name().to_string(),
            what: "catalog",
            source,
        })?;
        Ok(c.repositories)
    }
}

fn header_str(resp: &reqwest::blocking::Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Read a file fully, for small blobs (configs, manifests).
pub fn read_file(path: &Path) -> Result<Vec<u8>, RegistryError> {
    let mut buf = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut buf))
        .map_err(io_err("read", path))?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_table() {
        for (v, want) in [
            ("bytes 100-199/200", Some(100)),
            ("bytes 0-0/1", Some(0)),
            (" bytes  5-9/*", Some(5)),
            ("bytes */200", None),
            ("items 1-2/3", None),
            ("", None),
        ] {
            assert_eq!(content_range_start(v), want, "{v:?}");
        }
    }

    #[test]
    fn digest_param_keeps_state() {
        let d = Digest::of(b"");
        let u = Url::parse("http://r/v2/a/blobs/uploads/u1?_state=xyz").unwrap();
        let got = with_digest_param(&u, &d);
        assert_eq!(
            got.query(),
            Some(format!("_state=xyz&digest=sha256%3A{}", d.hex()).as_str())
        );
    }

    #[test]
    fn blob_timeout_grows_with_size() {
        assert_eq!(blob_timeout(0), BLOB_TIMEOUT_FLOOR);
        assert_eq!(
            blob_timeout(1 << 30),
            Duration::from_secs((1 << 30) / BLOB_MIN_RATE)
        );
    }
}
