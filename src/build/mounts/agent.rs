//! The ssh agent strata serves to a step: for `--ssh ID=KEYFILE`, an agent
//! of its own that lists the keys and signs with them; for
//! `--ssh ID=SOCKET` (and `default`, `$SSH_AUTH_SOCK`), a relay to that
//! agent. Either way the step sees one socket strata made for it, with the
//! owner and mode its mount asks for, gone with the step; the host's agent
//! socket itself is never bound into a container.
//!
//! The protocol (draft-miller-ssh-agent) is read and written with
//! ssh-agent-lib's message types and the keys parsed and used with the
//! RustCrypto ssh-key crate it re-exports: key formats and signatures are
//! exactly where a hand-written parser would go wrong.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use ssh_agent_lib::proto::{signature, Identity, Request, Response, SignRequest};
use ssh_agent_lib::ssh_encoding::{Decode, Encode};
use ssh_agent_lib::ssh_key::{Algorithm, HashAlg, PrivateKey, Signature};

/// The longest agent message accepted (OpenSSH's agent allows 256 KiB).
const MAX_MESSAGE: usize = 256 * 1024;
/// How often the accept loop looks whether the step is over.
const POLL: Duration = Duration::from_millis(50);

/// Why an `--ssh` flag cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("invalid --ssh {0:?}: no id")]
    NoId(String),
    #[error("invalid empty ssh agent socket: make sure SSH_AUTH_SOCK is set")]
    NoSocket,
    #[error("--ssh {id}: {path}")]
    Unreadable {
        id: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--ssh {id}: {path}: not an OpenSSH private key or agent socket")]
    NotAKey {
        id: String,
        path: PathBuf,
        #[source]
        source: ssh_agent_lib::ssh_key::Error,
    },
    #[error("--ssh {id}: {path}: keys with a passphrase are not supported (add it to an ssh-agent and pass its socket)")]
    Encrypted { id: String, path: PathBuf },
}

/// One `--ssh ID[=SOCKET|KEY,...]` of `strata build`, loaded.
#[derive(Debug, Clone)]
pub struct SshAgent {
    pub id: String,
    pub upstream: Arc<Upstream>,
}

impl SshAgent {
    /// `default`, `ID`, or `ID=PATH[,PATH...]`, as `docker build --ssh`;
    /// without paths, the agent of `$SSH_AUTH_SOCK`.
    pub fn parse(text: &str) -> Result<SshAgent, AgentError> {
        let (id, paths): (&str, Vec<PathBuf>) = match text.split_once('=') {
            Some((id, paths)) => (
                id,
                paths
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(PathBuf::from)
                    .collect(),
            ),
            None => (text, Vec::new()),
        };
        if id.is_empty() {
            return Err(AgentError::NoId(text.to_string()));
        }
        let paths = match paths.is_empty() {
            false => paths,
            true => match std::env::var_os("SSH_AUTH_SOCK").filter(|s| !s.is_empty()) {
                Some(sock) => vec![PathBuf::from(sock)],
                None => return Err(AgentError::NoSocket),
            },
        };
        Ok(SshAgent {
            id: id.to_string(),
            upstream: Arc::new(Upstream::load(id, &paths)?),
        })
    }
}

/// What a step's agent socket leads to.
#[derive(Debug)]
pub enum Upstream {
    /// An agent's socket on the host, relayed.
    Socket(PathBuf),
    /// Private keys strata holds and signs with itself.
    Keys(Vec<PrivateKey>),
}

impl Upstream {
    /// A socket alone, or key files (OpenSSH format, unencrypted, as
    /// `ssh-keygen` writes them), as `docker build --ssh` takes them.
    fn load(id: &str, paths: &[PathBuf]) -> Result<Upstream, AgentError> {
        use std::os::unix::fs::FileTypeExt;
        if let [path] = paths {
            let meta = fs_err::metadata(path).map_err(|source| AgentError::Unreadable {
                id: id.to_string(),
                path: path.clone(),
                source,
            })?;
            if meta.file_type().is_socket() {
                return Ok(Upstream::Socket(path.clone()));
            }
        }
        let mut keys = Vec::new();
        for path in paths {
            let key =
                PrivateKey::read_openssh_file(path).map_err(|source| AgentError::NotAKey {
                    id: id.to_string(),
                    path: path.clone(),
                    source,
                })?;
            if key.is_encrypted() {
                return Err(AgentError::Encrypted {
                    id: id.to_string(),
                    path: path.clone(),
                });
            }
            keys.push(key);
        }
        Ok(Upstream::Keys(keys))
    }
}

/// An agent socket served until dropped.
pub struct Served {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            // A panicked server thread has nothing left to clean up.
            let _ = t.join();
        }
    }
}

/// Listens on `socket` (a path in the step's private tmpfs) and serves
/// `upstream` to every connection until the returned guard is dropped.
pub fn serve(socket: &Path, upstream: Arc<Upstream>) -> std::io::Result<Served> {
    let listener = UnixListener::bind(socket)?;
    listener.set_nonblocking(true)?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::Builder::new()
        .name("ssh-agent".into())
        .spawn(move || accept_loop(&listener, &upstream, &flag))?;
    Ok(Served {
        stop,
        thread: Some(thread),
    })
}

fn accept_loop(listener: &UnixListener, upstream: &Arc<Upstream>, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((client, _)) => {
                let upstream = upstream.clone();
                // Each connection on its own thread: the container is killed
                // with the step, which closes its end and ends the thread.
                let spawned = std::thread::Builder::new()
                    .name("ssh-agent-conn".into())
                    .spawn(move || connection(client, &upstream));
                if spawned.is_err() {
                    continue;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

fn connection(client: UnixStream, upstream: &Upstream) {
    // Errors end the connection: the client sees it close, as with any agent.
    let _ = client.set_nonblocking(false);
    let _ = match upstream {
        Upstream::Socket(path) => relay(client, path),
        Upstream::Keys(keys) => answer(client, keys),
    };
}

/// Copies bytes both ways between the step and the host's agent.
fn relay(client: UnixStream, path: &Path) -> std::io::Result<()> {
    let agent = UnixStream::connect(path)?;
    let (mut c_in, mut a_out) = (client.try_clone()?, agent.try_clone()?);
    let up = std::thread::spawn(move || {
        let _ = std::io::copy(&mut c_in, &mut a_out);
        let _ = a_out.shutdown(std::net::Shutdown::Write);
    });
    let (mut a_in, mut c_out) = (agent, client);
    std::io::copy(&mut a_in, &mut c_out)?;
    let _ = c_out.shutdown(std::net::Shutdown::Both);
    let _ = up.join();
    Ok(())
}

/// Answers requests with the keys strata holds.
fn answer(mut client: UnixStream, keys: &[PrivateKey]) -> std::io::Result<()> {
    loop {
        let mut len = [0u8; 4];
        match client.read_exact(&mut len) {
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            other => other?,
        }
        let len = u32::from_be_bytes(len) as usize;
        if len == 0 || len > MAX_MESSAGE {
            return Ok(());
        }
        let mut msg = vec![0u8; len];
        client.read_exact(&mut msg)?;
        let response = match Request::decode(&mut msg.as_slice()) {
            Ok(request) => respond(keys, request),
            Err(_) => Response::Failure,
        };
        client.write_all(&frame(&response))?;
    }
}

/// The response to one request: only listing and signing are offered.
pub(super) fn respond(keys: &[PrivateKey], request: Request) -> Response {
    match request {
        Request::RequestIdentities => Response::IdentitiesAnswer(
            keys.iter()
                .map(|k| Identity {
                    credential: k.public_key().key_data().clone().into(),
                    comment: k.comment().to_string(),
                })
                .collect(),
        ),
        Request::SignRequest(req) => {
            sign(keys, &req).map_or(Response::Failure, Response::SignResponse)
        }
        _ => Response::Failure,
    }
}

fn sign(keys: &[PrivateKey], req: &SignRequest) -> Option<Signature> {
    use ::signature::Signer;
    let key = keys
        .iter()
        .find(|k| k.public_key().key_data() == req.credential.key_data())?;
    // ssh-key signs RSA with SHA-512 only: a client asking for SHA-256 or
    // for SHA-1 (`ssh-rsa`) is refused rather than sent the wrong kind.
    if matches!(key.algorithm(), Algorithm::Rsa { .. }) && req.flags & signature::RSA_SHA2_512 == 0
    {
        return None;
    }
    let sig: Signature = key.try_sign(&req.data).ok()?;
    match sig.algorithm() {
        Algorithm::Rsa { hash } if hash != Some(HashAlg::Sha512) => None,
        _ => Some(sig),
    }
}

/// A message with its length in front, as the protocol sends it.
fn frame(response: &Response) -> Vec<u8> {
    let mut body = Vec::new();
    // Encoding into a Vec cannot fail; a failure would send an empty
    // message, which the client reads as a broken agent.
    let _ = response.encode(&mut body);
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ssh_agent_lib::blocking::Client;
    use ssh_agent_lib::ssh_key::{rand_core::OsRng, Algorithm as Alg, PrivateKey};

    #[test]
    fn serves_its_keys_over_a_socket_and_relays_another_agent() {
        let t = tempfile::tempdir().unwrap();
        let key = PrivateKey::random(&mut OsRng, Alg::Ed25519).unwrap();
        let public = key.public_key().key_data().clone();
        let first = t.path().join("keys.sock");
        let _keys = serve(&first, Arc::new(Upstream::Keys(vec![key]))).unwrap();
        let relayed = t.path().join("relay.sock");
        let _relay = serve(&relayed, Arc::new(Upstream::Socket(first.clone()))).unwrap();
        for socket in [&first, &relayed] {
            let mut client = Client::new(UnixStream::connect(socket).unwrap());
            let ids = client.request_identities().unwrap();
            assert_eq!(ids.len(), 1);
            assert_eq!(ids[0].credential.key_data(), &public);
            let sig = client
                .sign(SignRequest {
                    credential: public.clone().into(),
                    data: b"challenge".to_vec(),
                    flags: 0,
                })
                .unwrap();
            use ::signature::Verifier;
            public.verify(b"challenge", &sig).unwrap();
        }
    }

    #[test]
    fn refuses_what_it_does_not_offer() {
        let other = PrivateKey::random(&mut OsRng, Alg::Ed25519).unwrap();
        let req = Request::SignRequest(SignRequest {
            credential: other.public_key().key_data().clone().into(),
            data: b"x".to_vec(),
            flags: 0,
        });
        assert_eq!(respond(&[], req), Response::Failure);
        assert_eq!(
            respond(&[], Request::RemoveAllIdentities),
            Response::Failure
        );
        assert_eq!(
            respond(&[], Request::RequestIdentities),
            Response::IdentitiesAnswer(vec![])
        );
    }

    #[test]
    fn loads_sockets_and_unencrypted_keys_only() {
        let t = tempfile::tempdir().unwrap();
        let key = PrivateKey::random(&mut OsRng, Alg::Ed25519).unwrap();
        let path = t.path().join("id");
        key.write_openssh_file(&path, Default::default()).unwrap();
        let one = SshAgent::parse(&format!("k={}", path.display())).unwrap();
        assert_eq!(one.id, "k");
        assert!(matches!(&*one.upstream, Upstream::Keys(k) if k.len() == 1));
        let sock = t.path().join("s");
        let _l = UnixListener::bind(&sock).unwrap();
        let s = SshAgent::parse(&format!("default={}", sock.display())).unwrap();
        assert!(matches!(&*s.upstream, Upstream::Socket(_)));
        let junk = t.path().join("junk");
        fs_err::write(&junk, "not a key").unwrap();
        let e = SshAgent::parse(&format!("j={}", junk.display()))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("--ssh j: ") && e.contains("not an OpenSSH private key"),
            "{e}"
        );
        let missing = format!("m={}", t.path().join("missing").display());
        assert!(matches!(
            SshAgent::parse(&missing),
            Err(AgentError::Unreadable { .. })
        ));
        assert!(matches!(SshAgent::parse("=x"), Err(AgentError::NoId(_))));
    }
}
