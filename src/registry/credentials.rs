//! Registry credentials in Docker's `config.json` format: `auths` entries
//! (`base64(user:password)`), a default `credsStore` and per-registry
//! `credHelpers`, both `docker-credential-<name>` programs speaking Docker's
//! helper protocol (`get`, `store`, `erase` on stdin/stdout).
//!
//! The file is `$REGISTRY_AUTH_FILE` if set, else `$DOCKER_CONFIG/config.json`,
//! else `~/.docker/config.json`. It is rewritten atomically with mode 0600,
//! keeping every field strata does not know. Docker Hub's entry is keyed
//! `https://index.docker.io/v1/`, as Docker keys it; lookups accept any
//! spelling of a registry (`https://host/v2/`, `http://host`, `host`).
//!
//! Errors never contain a password: a helper's stdout is never quoted, and
//! [`Credential`]'s `Debug` is redacted through [`Secret`].

use fs_err::os::unix::fs::OpenOptionsExt;
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::auth::Secret;
use super::endpoint::canonical_registry;
use crate::reference::DEFAULT_DOMAIN;

/// Docker's key for Docker Hub in `auths`.
pub const DOCKER_HUB_AUTH_KEY: &str = "https://index.docker.io/v1/";
/// How much of a helper's stderr is quoted in an error.
const HELPER_STDERR_MAX: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{path}: not a valid docker config file: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: the auth entry for {registry} is not base64 of \"user:password\"")]
    BadAuth { path: PathBuf, registry: String },
    #[error("credential helper docker-credential-{helper} {verb} for {registry}: {message}")]
    Helper {
        helper: String,
        verb: &'static str,
        registry: String,
        message: String,
    },
    #[error("cannot find the docker config file: neither REGISTRY_AUTH_FILE, DOCKER_CONFIG nor HOME is set")]
    NoPath,
}

/// A username and its password (or identity token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub username: String,
    pub secret: Secret,
}

/// Where the credentials file is, from the environment's values.
pub fn auth_file_path(
    registry_auth_file: Option<PathBuf>,
    docker_config: Option<PathBuf>,
    home: Option<PathBuf>,
) -> Option<PathBuf> {
    let nonempty = |p: &PathBuf| !p.as_os_str().is_empty();
    if let Some(p) = registry_auth_file.filter(nonempty) {
        return Some(p);
    }
    if let Some(dir) = docker_config.filter(nonempty) {
        return Some(dir.join("config.json"));
    }
    home.filter(nonempty).map(|h| h.join(".docker/config.json"))
}

/// [`auth_file_path`] from this process's environment.
pub fn default_auth_file() -> Result<PathBuf, CredentialError> {
    let var = |k: &str| std::env::var_os(k).map(PathBuf::from);
    auth_file_path(var("REGISTRY_AUTH_FILE"), var("DOCKER_CONFIG"), var("HOME"))
        .ok_or(CredentialError::NoPath)
}

/// The key a registry's entry is written under.
pub fn auth_key(registry: &str) -> String {
    if canonical_registry(registry) == DEFAULT_DOMAIN {
        DOCKER_HUB_AUTH_KEY.into()
    } else {
        registry.into()
    }
}

/// The registry an `auths` key means: scheme and path dropped, Docker
/// Hub's spellings folded into `docker.io`.
pub fn normalize_key(key: &str) -> &str {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = rest.split('/').next().unwrap_or(rest);
    canonical_registry(host)
}

/// `base64("user:password")`, as `auths` stores it.
pub fn encode_auth(username: &str, secret: &Secret) -> String {
    BASE64.encode(format!("{username}:{}", secret.expose()))
}

/// The inverse of [`encode_auth`]; `None` when it is not that shape.
pub fn decode_auth(auth: &str) -> Option<Credential> {
    let bytes = BASE64.decode(auth.trim()).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some(Credential {
        username: user.into(),
        secret: Secret::new(pass),
    })
}

/// One `auths` entry.
#[derive(Debug, Default, Serialize, Deserialize)]
struct AuthEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    auth: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    identitytoken: Option<String>,
    #[serde(flatten)]
    extra: BTreeMap<String, Value>,
}

/// A docker config file, loaded whole so rewriting it loses nothing.
#[derive(Debug)]
pub struct AuthFile {
    path: PathBuf,
    doc: Map<String, Value>,
}

/// Where a registry's credentials live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// In the file's `auths`.
    File,
    /// In a credential helper (`docker-credential-<name>`).
    Helper(String),
}

impl AuthFile {
    /// Load the file at `path`; a missing file is an empty config.
    pub fn load(path: &Path) -> Result<AuthFile, CredentialError> {
        let doc = match fs_err::read(path) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Map::new(),
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|source| CredentialError::Json {
                    path: path.into(),
                    source,
                })?
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Map::new(),
            Err(source) => {
                return Err(CredentialError::Io {
                    op: "read",
                    path: path.into(),
                    source,
                })
            }
        };
        Ok(AuthFile {
            path: path.into(),
            doc,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where credentials for `registry` are kept: a `credHelpers` entry,
    /// else `credsStore`, else the file itself.
    pub fn source(&self, registry: &str) -> Source {
        let registry = canonical_registry(registry);
        if let Some(helpers) = self.doc.get("credHelpers").and_then(Value::as_object) {
            for (key, helper) in helpers {
                if let Some(h) = helper.as_str().filter(|h| !h.is_empty()) {
                    if normalize_key(key) == registry {
                        return Source::Helper(h.into());
                    }
                }
            }
        }
        match self.doc.get("credsStore").and_then(Value::as_str) {
            Some(store) if !store.is_empty() => Source::Helper(store.into()),
            _ => Source::File,
        }
    }

    /// The `auths` key already used for `registry`, if any.
    fn find_key(&self, registry: &str) -> Option<String> {
        let registry = canonical_registry(registry);
        let auths = self.doc.get("auths")?.as_object()?;
        // The exact key first, then any spelling of the same registry.
        let exact = auth_key(registry);
        if auths.contains_key(&exact) {
            return Some(exact);
        }
        auths.keys().find(|k| normalize_key(k) == registry).cloned()
    }

    /// The credentials in `auths` for `registry` (not asking helpers).
    pub fn file_credential(&self, registry: &str) -> Result<Option<Credential>, CredentialError> {
        let Some(key) = self.find_key(registry) else {
            return Ok(None);
        };
        let Some(value) = self.doc.get("auths").and_then(|a| a.get(&key)) else {
            return Ok(None);
        };
        let entry: AuthEntry =
            serde_json::from_value(value.clone()).map_err(|source| CredentialError::Json {
                path: self.path.clone(),
                source,
            })?;
        match entry.auth.as_deref().filter(|a| !a.is_empty()) {
            Some(auth) => decode_auth(auth)
                .map(Some)
                .ok_or_else(|| CredentialError::BadAuth {
                    path: self.path.clone(),
                    registry: registry.into(),
                }),
            // An entry without `auth` (what `docker login` leaves when a
            // helper holds the secret) means no credentials in the file.
            None => Ok(None),
        }
    }

    /// The credentials for `registry`, from its helper or the file.
    pub fn get(&self, registry: &str) -> Result<Option<Credential>, CredentialError> {
        match self.source(registry) {
            Source::Helper(helper) => helper_get(&helper, &auth_key(registry)),
            Source::File => self.file_credential(registry),
        }
    }

    /// Remember credentials for `registry` (in its helper, or in `auths`).
    /// Call [`AuthFile::save`] afterwards.
    pub fn set(&mut self, registry: &str, cred: &Credential) -> Result<(), CredentialError> {
        let key = self
            .find_key(registry)
            .unwrap_or_else(|| auth_key(registry));
        let source = self.source(registry);
        let mut entry = Map::new();
        match source {
            Source::Helper(helper) => helper_store(&helper, &auth_key(registry), cred)?,
            Source::File => {
                entry.insert(
                    "auth".into(),
                    Value::String(encode_auth(&cred.username, &cred.secret)),
                );
            }
        }
        let auths = self
            .doc
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        if !auths.is_object() {
            *auths = Value::Object(Map::new());
        }
        if let Some(map) = auths.as_object_mut() {
            map.insert(key, Value::Object(entry));
        }
        Ok(())
    }

    /// Forget `registry`'s credentials; whether there were any.
    pub fn remove(&mut self, registry: &str) -> Result<bool, CredentialError> {
        let mut found = false;
        if let Source::Helper(helper) = self.source(registry) {
            found |= helper_erase(&helper, &auth_key(registry))?;
        }
        let registry = canonical_registry(registry);
        if let Some(auths) = self.doc.get_mut("auths").and_then(Value::as_object_mut) {
            let keys: Vec<String> = auths
                .keys()
                .filter(|k| normalize_key(k) == registry)
                .cloned()
                .collect();
            for k in keys {
                auths.remove(&k);
                found = true;
            }
        }
        Ok(found)
    }

    /// Write the file atomically (temp file + rename in the same
    /// directory), mode 0600, its directory created 0700 if missing.
    pub fn save(&self) -> Result<(), CredentialError> {
        let io_err = |op, path: &Path| {
            let path = path.to_path_buf();
            move |source| CredentialError::Io { op, path, source }
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        if !dir.as_os_str().is_empty() && !dir.exists() {
            fs_err::create_dir_all(dir).map_err(io_err("create", dir))?;
            fs_err::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .map_err(io_err("chmod", dir))?;
        }
        let mut bytes =
            serde_json::to_vec_pretty(&self.doc).map_err(|source| CredentialError::Json {
                path: self.path.clone(),
                source,
            })?;
        bytes.push(b'\n');
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
        let write = || -> io::Result<()> {
            let mut f = fs_err::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            // The mode above is subject to the umask only to remove bits,
            // but an existing temp file keeps its mode: set it explicitly.
            f.set_permissions(fs::Permissions::from_mode(0o600))?;
            f.write_all(&bytes)?;
            f.sync_all()
        };
        if let Err(source) = write() {
            // The temp file may not exist; the write error is what matters.
            let _ = fs_err::remove_file(&tmp);
            return Err(CredentialError::Io {
                op: "write",
                path: tmp,
                source,
            });
        }
        fs_err::rename(&tmp, &self.path).map_err(io_err("rename", &self.path))
    }
}

/// What `docker-credential-<x> get` prints.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HelperCredential {
    #[serde(default)]
    username: String,
    #[serde(default)]
    secret: String,
}

/// What `docker-credential-<x> store` reads.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct HelperStore<'a> {
    server_u_r_l: &'a str,
    username: &'a str,
    secret: &'a str,
}

/// Why a credential helper gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum HelperFailure {
    /// The protocol's "credentials not found in native keychain".
    #[error("credentials not found")]
    NotFound,
    /// Its stderr (or exit status): helpers print their errors there.
    #[error("{0}")]
    Failed(String),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Runs `program verb` with `input` on stdin; stdout on success.
pub fn run_helper(program: &Path, verb: &str, input: &[u8]) -> Result<Vec<u8>, HelperFailure> {
    let mut child = Command::new(program)
        .arg(verb)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input)?;
    }
    let out = child.wait_with_output()?;
    if out.status.success() {
        return Ok(out.stdout);
    }
    // The protocol reports "credentials not found in native keychain" on
    // stdout; that message holds no secret.
    let stdout = String::from_utf8_lossy(&out.stdout);
    if stdout.contains("credentials not found") {
        return Err(HelperFailure::NotFound);
    }
    let mut msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
    msg.truncate(HELPER_STDERR_MAX);
    if msg.is_empty() {
        msg = format!("exited with {}", out.status);
    }
    Err(HelperFailure::Failed(msg))
}

fn helper_program(helper: &str) -> PathBuf {
    PathBuf::from(format!("docker-credential-{helper}"))
}

fn helper_error(
    helper: &str,
    verb: &'static str,
    registry: &str,
    message: String,
) -> CredentialError {
    CredentialError::Helper {
        helper: helper.into(),
        verb,
        registry: registry.into(),
        message,
    }
}

fn helper_get(helper: &str, server: &str) -> Result<Option<Credential>, CredentialError> {
    match run_helper(&helper_program(helper), "get", server.as_bytes()) {
        Ok(stdout) => {
            // Never quote the output in an error: it holds the secret.
            let c: HelperCredential = serde_json::from_slice(&stdout).map_err(|_| {
                helper_error(
                    helper,
                    "get",
                    server,
                    "printed something that is not a credential".into(),
                )
            })?;
            Ok(Some(Credential {
                username: c.username,
                secret: Secret::new(c.secret),
            }))
        }
        Err(HelperFailure::NotFound) => Ok(None),
        Err(e) => Err(helper_error(helper, "get", server, e.to_string())),
    }
}

fn helper_store(helper: &str, server: &str, cred: &Credential) -> Result<(), CredentialError> {
    let input = serde_json::to_vec(&HelperStore {
        server_u_r_l: server,
        username: &cred.username,
        secret: cred.secret.expose(),
    })
    .map_err(|e| helper_error(helper, "store", server, e.to_string()))?;
    match run_helper(&helper_program(helper), "store", &input) {
        Ok(_) => Ok(()),
        Err(e) => Err(helper_error(helper, "store", server, e.to_string())),
    }
}

fn helper_erase(helper: &str, server: &str) -> Result<bool, CredentialError> {
    match run_helper(&helper_program(helper), "erase", server.as_bytes()) {
        Ok(_) => Ok(true),
        Err(HelperFailure::NotFound) => Ok(false),
        Err(e) => Err(helper_error(helper, "erase", server, e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(dir: &Path, json: &str) -> AuthFile {
        let path = dir.join("config.json");
        fs_err::write(&path, json).unwrap();
        AuthFile::load(&path).unwrap()
    }

    #[test]
    fn path_table() {
        let p = |s: &str| Some(PathBuf::from(s));
        let cases = [
            (p("/a/auth.json"), p("/d"), p("/h"), p("/a/auth.json")),
            (p(""), p("/d"), p("/h"), p("/d/config.json")),
            (None, None, p("/h"), p("/h/.docker/config.json")),
            (None, None, None, None),
        ];
        for (a, d, h, want) in cases {
            assert_eq!(auth_file_path(a, d, h), want);
        }
    }

    #[test]
    fn key_table() {
        for (key, want) in [
            ("https://index.docker.io/v1/", "docker.io"),
            ("index.docker.io", "docker.io"),
            ("docker.io", "docker.io"),
            ("registry-1.docker.io", "docker.io"),
            ("http://localhost:5000/v2/", "localhost:5000"),
            ("https://quay.io", "quay.io"),
            ("quay.io", "quay.io"),
        ] {
            assert_eq!(normalize_key(key), want, "{key}");
        }
        assert_eq!(auth_key("docker.io"), DOCKER_HUB_AUTH_KEY);
        assert_eq!(auth_key("localhost:5000"), "localhost:5000");
    }

    #[test]
    fn auth_round_trip() {
        let s = Secret::new("p:a:ss");
        let enc = encode_auth("user", &s);
        assert_eq!(enc, "dXNlcjpwOmE6c3M=");
        let c = decode_auth(&enc).unwrap();
        assert_eq!(c.username, "user");
        assert_eq!(c.secret, s);
        assert!(decode_auth("!!").is_none());
        assert!(decode_auth(&BASE64.encode("nocolon")).is_none());
    }

    #[test]
    fn reads_any_key_spelling() {
        let dir = tempfile::tempdir().unwrap();
        let f = file_with(
            dir.path(),
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dTpw"},"http://localhost:5000/v2/":{"auth":"YTpi"},"q.io":{}}}"#,
        );
        let hub = f.get("docker.io").unwrap().unwrap();
        assert_eq!((hub.username.as_str(), hub.secret.expose()), ("u", "p"));
        let local = f.get("localhost:5000").unwrap().unwrap();
        assert_eq!((local.username.as_str(), local.secret.expose()), ("a", "b"));
        assert!(f.get("q.io").unwrap().is_none());
        assert!(f.get("other.io").unwrap().is_none());
    }

    #[test]
    fn bad_auth_is_an_error_without_the_value() {
        let dir = tempfile::tempdir().unwrap();
        let f = file_with(dir.path(), r#"{"auths":{"r.io":{"auth":"c2VjcmV0"}}}"#);
        let err = f.get("r.io").unwrap_err().to_string();
        assert!(err.contains("r.io"), "{err}");
        assert!(
            !err.contains("c2VjcmV0") && !err.contains("secret"),
            "{err}"
        );
    }

    #[test]
    fn helper_selection() {
        let dir = tempfile::tempdir().unwrap();
        let f = file_with(
            dir.path(),
            r#"{"credsStore":"desktop","credHelpers":{"gcr.io":"gcloud","https://index.docker.io/v1/":"hub"}}"#,
        );
        assert_eq!(f.source("gcr.io"), Source::Helper("gcloud".into()));
        assert_eq!(f.source("docker.io"), Source::Helper("hub".into()));
        assert_eq!(f.source("quay.io"), Source::Helper("desktop".into()));
        let plain = file_with(dir.path(), r#"{"credsStore":""}"#);
        assert_eq!(plain.source("quay.io"), Source::File);
    }

    #[test]
    fn write_keeps_other_fields_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = file_with(
            dir.path(),
            r#"{"auths":{"https://localhost:5000":{"auth":"eDp5"}},"psFormat":"table","proxies":{"default":{}}}"#,
        );
        let cred = Credential {
            username: "me".into(),
            secret: Secret::new("pw"),
        };
        f.set("localhost:5000", &cred).unwrap();
        f.set("docker.io", &cred).unwrap();
        f.save().unwrap();
        let mode = fs_err::metadata(f.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = AuthFile::load(f.path()).unwrap();
        assert_eq!(again.get("localhost:5000").unwrap().unwrap(), cred);
        assert_eq!(again.get("docker.io").unwrap().unwrap(), cred);
        let v: Value = serde_json::from_slice(&fs_err::read(f.path()).unwrap()).unwrap();
        assert_eq!(v["psFormat"], "table");
        // The existing key spelling is reused, not duplicated.
        assert!(v["auths"]["https://localhost:5000"]["auth"].is_string());
        assert!(v["auths"][DOCKER_HUB_AUTH_KEY]["auth"].is_string());
        let mut again = again;
        assert!(again.remove("localhost:5000").unwrap());
        assert!(!again.remove("localhost:5000").unwrap());
        assert!(again.get("localhost:5000").unwrap().is_none());
    }

    #[test]
    fn new_file_and_directory_are_created_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/config.json");
        let mut f = AuthFile::load(&path).unwrap();
        f.set(
            "r.io",
            &Credential {
                username: "u".into(),
                secret: Secret::new("p"),
            },
        )
        .unwrap();
        f.save().unwrap();
        let mode = fs_err::metadata(dir.path().join("sub"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn helper_protocol() {
        let dir = tempfile::tempdir().unwrap();
        let prog = dir.path().join("docker-credential-fake");
        fs_err::write(
            &prog,
            "#!/bin/sh\nread server\ncase \"$1:$server\" in\n  get:r.io) echo '{\"ServerURL\":\"r.io\",\"Username\":\"u\",\"Secret\":\"s3cret\"}';;\n  get:*) echo 'credentials not found in native keychain'; exit 1;;\n  *) echo \"boom $1\" >&2; exit 3;;\nesac\n",
        )
        .unwrap();
        fs_err::set_permissions(&prog, fs::Permissions::from_mode(0o755)).unwrap();
        let out = run_helper(&prog, "get", b"r.io").unwrap();
        let c: HelperCredential = serde_json::from_slice(&out).unwrap();
        assert_eq!((c.username.as_str(), c.secret.as_str()), ("u", "s3cret"));
        assert!(matches!(
            run_helper(&prog, "get", b"x.io"),
            Err(HelperFailure::NotFound)
        ));
        assert!(matches!(
            run_helper(&prog, "erase", b"x.io"),
            Err(HelperFailure::Failed(m)) if m == "boom erase"
        ));
    }

    #[test]
    fn credential_debug_is_redacted() {
        let c = Credential {
            username: "u".into(),
            secret: Secret::new("hunter2"),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
