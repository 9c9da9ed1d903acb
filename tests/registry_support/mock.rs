//! A registry written for the tests: the distribution API's pull and push
//! paths over in-memory content on 127.0.0.1, with a rule that can turn any
//! request into a fault. Where the proxy (`proxy.rs`) bends what a real
//! `docker-registry` says, this one serves what no real registry would:
//! bodies that stall or reset half way, hostile layers (bombs, bad PAX
//! headers, breakouts) behind a valid manifest, answers that ignore `Range`.
//!
//! ```ignore
//! let reg = MockRegistry::start(|seen, n| match n { 0 if seen.is_blob_get() => Fault::Stall(0.5), _ => Fault::None });
//! let image = reg.push_image("hostile/bomb", "v1", &[(blob, diff_id_hex)]);
//! strata.run(&["pull", &image]);
//! ```
//!
//! One connection per request (`Connection: close`), so every request meets
//! the rule; each is logged (as the proxy logs them) for assertions.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Write;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sha2::Digest as _;

use super::proxy::{take_request, Seen};

/// What the mock does with one request instead of (or while) answering it.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Answer as a registry would.
    None,
    /// Answer with this status and an empty body.
    Status(u16),
    /// Send the headers and this fraction of the body, then nothing more
    /// (the connection stays open until the client gives up or the mock
    /// stops).
    Stall(f64),
    /// Send this fraction of the body, then reset the connection (RST).
    Reset(f64),
    /// Answer a ranged GET with the whole body and 200, as a server that
    /// does not do ranges.
    IgnoreRange,
    /// Answer with this status, headers and body.
    Respond(u16, Vec<(String, String)>, Vec<u8>),
    /// Answer with this status and a body of `len` filler bytes, written
    /// as long as the client reads; with `declared`, the headers announce
    /// the length, else the body ends with the connection. How much the
    /// client took is [`MockRegistry::flooded`].
    Flood {
        status: u16,
        len: u64,
        declared: bool,
    },
}

type Rule = dyn Fn(&Seen, usize) -> Fault + Send + Sync;

/// What the mock holds: blobs by digest (all repositories share them) and
/// manifests by repository and tag or digest.
#[derive(Default)]
struct Content {
    blobs: HashMap<String, Vec<u8>>,
    manifests: HashMap<(String, String), (String, Vec<u8>)>,
    uploads: HashMap<String, Vec<u8>>,
}

/// A running mock registry; stops when dropped.
pub struct MockRegistry {
    /// `127.0.0.1:PORT`
    pub addr: String,
    log: Arc<Mutex<Vec<Seen>>>,
    content: Arc<Mutex<Content>>,
    stop: Arc<AtomicBool>,
    flooded: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

/// How long a stalled answer holds its connection at most, so a client
/// that never gives up cannot keep a test thread forever.
const STALL_LIMIT: Duration = Duration::from_secs(600);

impl Seen {
    /// A GET of a blob (not a manifest, not an upload).
    pub fn is_blob_get(&self) -> bool {
        self.method == "GET" && self.path.contains("/blobs/sha256:")
    }

    pub fn is_manifest(&self) -> bool {
        self.path.contains("/manifests/")
    }
}

impl MockRegistry {
    /// A mock that answers everything as a registry would.
    pub fn serving() -> MockRegistry {
        MockRegistry::start(|_, _| Fault::None)
    }

    /// Listen on a free 127.0.0.1 port, asking `rule` about each request
    /// (with the number of earlier requests with the same method and path).
    pub fn start(rule: impl Fn(&Seen, usize) -> Fault + Send + Sync + 'static) -> MockRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let log: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let content: Arc<Mutex<Content>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let flooded = Arc::new(AtomicU64::new(0));
        let rule: Arc<Rule> = Arc::new(rule);
        let thread = {
            let (log, content, stop) = (log.clone(), content.clone(), stop.clone());
            let flooded = flooded.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((conn, _)) => {
                            let (log, content, rule, stop) =
                                (log.clone(), content.clone(), rule.clone(), stop.clone());
                            let flooded = flooded.clone();
                            std::thread::spawn(move || {
                                let shared = Shared {
                                    log: &log,
                                    content: &content,
                                    stop: &stop,
                                    flooded: &flooded,
                                };
                                // A client that hung up is not a test failure.
                                let _ = serve(conn, &*rule, &shared);
                            });
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        MockRegistry {
            addr,
            log,
            content,
            stop,
            flooded,
            thread: Some(thread),
        }
    }

    /// The filler bytes [`Fault::Flood`] answers got written so far (the
    /// kernel's socket buffers hold a few MiB a client never read).
    pub fn flooded(&self) -> u64 {
        self.flooded.load(Ordering::Relaxed)
    }

    /// Store `bytes` as the blob named `digest`, whatever they hash to: a
    /// registry serving the wrong bytes for a digest.
    pub fn put_blob_as(&self, digest: &str, bytes: &[u8]) {
        let mut c = self.content.lock().unwrap();
        c.blobs.insert(digest.to_string(), bytes.to_vec());
    }

    /// Store a manifest under `repo:reference` only (a digest reference
    /// then names bytes that may hash to anything else).
    pub fn put_manifest_as(&self, repo: &str, reference: &str, media_type: &str, bytes: &[u8]) {
        let mut c = self.content.lock().unwrap();
        c.manifests.insert(
            (repo.to_string(), reference.to_string()),
            (media_type.to_string(), bytes.to_vec()),
        );
    }

    /// The manifest stored under `repo:reference`.
    pub fn manifest(&self, repo: &str, reference: &str) -> Vec<u8> {
        let c = self.content.lock().unwrap();
        c.manifests[&(repo.to_string(), reference.to_string())]
            .1
            .clone()
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.log.lock().unwrap().clone()
    }

    /// The blob GETs so far.
    pub fn blob_gets(&self) -> Vec<Seen> {
        self.seen().into_iter().filter(Seen::is_blob_get).collect()
    }

    /// Store a blob; its digest (`sha256:<hex>`).
    pub fn put_blob(&self, bytes: &[u8]) -> String {
        let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)));
        self.content
            .lock()
            .unwrap()
            .blobs
            .insert(digest.clone(), bytes.to_vec());
        digest
    }

    /// Store a manifest under `repo:reference` and under its digest.
    pub fn put_manifest(&self, repo: &str, reference: &str, media_type: &str, bytes: &[u8]) {
        let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)));
        let mut c = self.content.lock().unwrap();
        for r in [reference.to_string(), digest] {
            c.manifests.insert(
                (repo.to_string(), r),
                (media_type.to_string(), bytes.to_vec()),
            );
        }
    }

    /// An image of `layers` (each a blob as served and the hex of its diff
    /// id; the media type follows the blob's magic: gzip, zstd, else tar)
    /// under `repo:tag`, with an amd64/linux config. Nothing is checked:
    /// the layers may be anything. Returns the reference to pull.
    pub fn push_image(&self, repo: &str, tag: &str, layers: &[(Vec<u8>, String)]) -> String {
        self.push_image_with_config(repo, tag, layers, serde_json::json!({}))
    }

    /// As [`MockRegistry::push_image`], with `config` (its `config` object:
    /// Env, User, Cmd, ...) in the image config.
    pub fn push_image_with_config(
        &self,
        repo: &str,
        tag: &str,
        layers: &[(Vec<u8>, String)],
        config: serde_json::Value,
    ) -> String {
        let diff_ids: Vec<String> = layers.iter().map(|(_, d)| format!("sha256:{d}")).collect();
        let config = serde_json::json!({
            "architecture": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
            "os": "linux",
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        let config = serde_json::to_vec(&config).unwrap();
        let config_digest = self.put_blob(&config);
        let descs: Vec<serde_json::Value> = layers
            .iter()
            .map(|(blob, _)| {
                serde_json::json!({
                    "mediaType": layer_media_type(blob),
                    "digest": self.put_blob(blob),
                    "size": blob.len(),
                })
            })
            .collect();
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": config.len(),
            },
            "layers": descs,
        });
        self.put_manifest(
            repo,
            tag,
            OCI_MANIFEST,
            &serde_json::to_vec(&manifest).unwrap(),
        );
        format!("{}/{repo}:{tag}", self.addr)
    }
}

impl Drop for MockRegistry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// The layer media type a blob's first bytes suggest.
pub fn layer_media_type(blob: &[u8]) -> &'static str {
    if blob.starts_with(&[0x1f, 0x8b]) {
        "application/vnd.oci.image.layer.v1.tar+gzip"
    } else if blob.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        "application/vnd.oci.image.layer.v1.tar+zstd"
    } else {
        "application/vnd.oci.image.layer.v1.tar"
    }
}

/// A layer of `tar` bytes served uncompressed: the blob and its diff id.
pub fn plain_layer(tar: Vec<u8>) -> (Vec<u8>, String) {
    let diff = hex::encode(sha2::Sha256::digest(&tar));
    (tar, diff)
}

/// A layer of `tar` bytes served gzip-compressed: the blob and its diff id.
pub fn gzip_layer(tar: &[u8]) -> (Vec<u8>, String) {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(tar).unwrap();
    (gz.finish().unwrap(), hex::encode(sha2::Sha256::digest(tar)))
}

/// One answer: status line, headers, body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn new(status: u16) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    fn header(mut self, k: &str, v: impl Into<String>) -> Answer {
        self.headers.push((k.to_string(), v.into()));
        self
    }

    fn body(mut self, body: Vec<u8>) -> Answer {
        self.body = body;
        self
    }
}

/// What a registry answers to `seen` (whose body is `body`).
fn answer(seen: &Seen, body: Vec<u8>, content: &Mutex<Content>, ignore_range: bool) -> Answer {
    let path = seen.path.split('?').next().unwrap_or("");
    let query = seen.path.split_once('?').map_or("", |(_, q)| q);
    if path == "/v2/" || path == "/v2" {
        return Answer::new(200).header("Docker-Distribution-API-Version", "registry/2.0");
    }
    let Some(rest) = path.strip_prefix("/v2/") else {
        return Answer::new(404);
    };
    let mut c = content.lock().unwrap();
    if let Some((repo, reference)) = rest.rsplit_once("/manifests/") {
        let key = (repo.to_string(), reference.to_string());
        if seen.method == "PUT" {
            let media = seen
                .header("content-type")
                .unwrap_or(OCI_MANIFEST)
                .to_string();
            let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&body)));
            c.manifests.insert(key, (media.clone(), body.clone()));
            c.manifests
                .insert((repo.to_string(), digest.clone()), (media, body));
            return Answer::new(201).header("Docker-Content-Digest", digest);
        }
        return match c.manifests.get(&key) {
            Some((media, bytes)) => Answer::new(200)
                .header("Content-Type", media.clone())
                .header(
                    "Docker-Content-Digest",
                    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes))),
                )
                .body(bytes.clone()),
            None => not_found("MANIFEST_UNKNOWN"),
        };
    }
    if let Some((repo, upload)) = rest.split_once("/blobs/uploads/") {
        return upload_answer(&mut c, seen, repo, upload, query, body);
    }
    if let Some((_, digest)) = rest.rsplit_once("/blobs/") {
        return match c.blobs.get(digest) {
            Some(bytes) => blob_answer(seen, bytes, ignore_range),
            None => not_found("BLOB_UNKNOWN"),
        };
    }
    Answer::new(404)
}

fn not_found(code: &str) -> Answer {
    Answer::new(404)
        .header("Content-Type", "application/json")
        .body(format!(r#"{{"errors":[{{"code":"{code}","message":"unknown"}}]}}"#).into_bytes())
}

/// A blob, or the part a `Range: bytes=N-` asks for.
fn blob_answer(seen: &Seen, bytes: &[u8], ignore_range: bool) -> Answer {
    let start = seen
        .header("range")
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|_| !ignore_range);
    match start {
        Some(n) if n < bytes.len() => Answer::new(206)
            .header(
                "Content-Range",
                format!("bytes {n}-{}/{}", bytes.len() - 1, bytes.len()),
            )
            .body(bytes[n..].to_vec()),
        _ => Answer::new(200)
            .header("Content-Type", "application/octet-stream")
            .body(bytes.to_vec()),
    }
}

/// The upload session protocol: POST opens, PATCH appends, PUT with
/// `?digest=` closes (after a last chunk in its body).
fn upload_answer(
    c: &mut Content,
    seen: &Seen,
    repo: &str,
    upload: &str,
    query: &str,
    body: Vec<u8>,
) -> Answer {
    let location = |id: &str| format!("/v2/{repo}/blobs/uploads/{id}");
    match seen.method.as_str() {
        "POST" => {
            let id = format!("u{}", c.uploads.len() + c.blobs.len());
            c.uploads.insert(id.clone(), Vec::new());
            Answer::new(202).header("Location", location(&id))
        }
        "PATCH" => match c.uploads.get_mut(upload) {
            Some(data) => {
                data.extend(body);
                Answer::new(202).header("Location", location(upload))
            }
            None => not_found("BLOB_UPLOAD_UNKNOWN"),
        },
        "PUT" => {
            let Some(mut data) = c.uploads.remove(upload) else {
                return not_found("BLOB_UPLOAD_UNKNOWN");
            };
            data.extend(body);
            let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&data)));
            let wanted = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("digest="))
                .map(|d| d.replace("%3A", ":"));
            if wanted.as_deref() != Some(digest.as_str()) {
                return Answer::new(400);
            }
            c.blobs.insert(digest.clone(), data);
            Answer::new(201).header("Docker-Content-Digest", digest)
        }
        _ => Answer::new(405),
    }
}

/// What every connection's thread shares with the mock.
struct Shared<'a> {
    log: &'a Mutex<Vec<Seen>>,
    content: &'a Mutex<Content>,
    stop: &'a AtomicBool,
    flooded: &'a AtomicU64,
}

fn serve(conn: TcpStream, rule: &Rule, shared: &Shared) -> std::io::Result<()> {
    let Some((seen, body, count)) = take_request(&conn, shared.log)? else {
        return Ok(());
    };
    let fault = rule(&seen, count);
    if let Fault::Flood {
        status,
        len,
        declared,
    } = fault
    {
        return flood(conn, status, len, declared, shared.flooded);
    }
    let a = match &fault {
        Fault::Status(code) => Answer::new(*code),
        Fault::Respond(code, headers, body) => Answer {
            status: *code,
            headers: headers.clone(),
            body: body.clone(),
        },
        _ => answer(&seen, body, shared.content, fault == Fault::IgnoreRange),
    };
    let mut conn = conn;
    let mut head = format!("HTTP/1.1 {} Mock\r\n", a.status);
    for (k, v) in &a.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        a.body.len()
    ));
    conn.write_all(head.as_bytes())?;
    if seen.method == "HEAD" {
        return conn.shutdown(Shutdown::Both);
    }
    let part = |f: f64| ((a.body.len() as f64) * f) as usize;
    match fault {
        Fault::Stall(f) => {
            conn.write_all(&a.body[..part(f)])?;
            conn.flush()?;
            let until = Instant::now() + STALL_LIMIT;
            while !shared.stop.load(Ordering::Relaxed) && Instant::now() < until && !hung_up(&conn)
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(())
        }
        Fault::Reset(f) => {
            conn.write_all(&a.body[..part(f)])?;
            conn.flush()?;
            reset(&conn)
        }
        _ => {
            conn.write_all(&a.body)?;
            conn.flush()?;
            conn.shutdown(Shutdown::Both)
        }
    }
}

/// [`Fault::Flood`]: JSON-looking filler (`[[[[...`) until `len` bytes or
/// the client hangs up, counting what was written.
fn flood(
    mut conn: TcpStream,
    status: u16,
    len: u64,
    declared: bool,
    flooded: &AtomicU64,
) -> std::io::Result<()> {
    let length = match declared {
        true => format!("Content-Length: {len}\r\n"),
        false => String::new(),
    };
    let head = format!(
        "HTTP/1.1 {status} Mock\r\nContent-Type: application/json\r\n{length}Connection: close\r\n\r\n"
    );
    conn.write_all(head.as_bytes())?;
    let chunk = vec![b'['; 64 << 10];
    let mut sent = 0u64;
    while sent < len {
        let n = chunk.len().min((len - sent) as usize);
        conn.write_all(&chunk[..n])?;
        sent += n as u64;
        flooded.fetch_add(n as u64, Ordering::Relaxed);
    }
    conn.shutdown(Shutdown::Both)
}

/// Whether the client closed its end (a read sees EOF or an error).
fn hung_up(conn: &TcpStream) -> bool {
    let mut b = [0u8; 1];
    if conn.set_nonblocking(true).is_err() {
        return true;
    }
    let r = conn.peek(&mut b);
    let _ = conn.set_nonblocking(false);
    match r {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
}

/// Close with RST instead of FIN: SO_LINGER with a zero timeout.
fn reset(conn: &TcpStream) -> std::io::Result<()> {
    let linger = nix::libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    nix::sys::socket::setsockopt(conn, nix::sys::socket::sockopt::Linger, &linger)
        .map_err(std::io::Error::from)
}
