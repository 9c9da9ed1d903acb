//! The registry client: the Registry HTTP API v2 / OCI distribution spec
//! over reqwest (blocking; blob transfers run on a few threads).
//!
//! - [`endpoint`]: reference -> API host, transport rules, cert dirs, paths.
//! - [`auth`]: `WWW-Authenticate` challenges, scopes, tokens, [`auth::Secret`].
//! - [`credentials`]: Docker's `config.json` and credential helpers.
//! - [`backoff`]: which failures are retried and when.
//! - [`manifest`]: manifest kinds, platforms, size caps.
//!
//! Nothing in this module prints a secret: passwords and tokens live only in
//! [`auth::Secret`], whose `Debug` is redacted, and no error quotes a
//! request header or a token server's body.

pub mod attest;
pub mod auth;
pub mod backoff;
pub mod client;
pub mod credentials;
pub mod endpoint;
pub mod flags;
pub mod http;
pub mod login;
pub mod manifest;
mod pool;
pub mod pull;
pub mod push;
pub mod push_list;
mod push_stream;
pub mod search;
pub mod transfer;
pub mod transport;

use std::path::PathBuf;

use crate::digest::{DigestMismatch, SizeMismatch};

pub use client::{Options, Registry};

/// Everything that can go wrong talking to a registry. Messages name the
/// request (method and URL without its query), the reference or the
/// digest, and the expected and found values; none holds a secret.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{method} {url}: {source}")]
    Transport {
        method: String,
        url: String,
        source: reqwest::Error,
    },
    #[error("{method} {url}: {message}")]
    Status {
        method: String,
        url: String,
        status: u16,
        message: String,
    },
    #[error("{method} {url}: giving up after {tries} tries: {last}")]
    GaveUp {
        method: String,
        url: String,
        tries: u32,
        last: String,
    },
    #[error("{url}: reading the response: {source}")]
    Body { url: String, source: std::io::Error },
    #[error("{url}: the registry stopped sending (nothing came within the read timeout)")]
    Stalled { url: String },
    #[error("{url}: the answer took longer than {limit:?} (too slow)")]
    TooSlow {
        url: String,
        limit: std::time::Duration,
    },
    #[error("{url}: the response is larger than the {limit}-byte limit")]
    TooLarge { url: String, limit: u64 },
    #[error("bad URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("{url}: redirect {reason}")]
    Redirect { url: String, reason: String },
    #[error("{registry}: {reason}")]
    Auth { registry: String, reason: String },
    #[error("{registry}: {source}")]
    Challenge {
        registry: String,
        source: auth::ChallengeError,
    },
    #[error("cannot reach registry {registry}: {reason}")]
    Unreachable { registry: String, reason: String },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: bad certificate or key: {source}")]
    Certificate {
        path: PathBuf,
        source: reqwest::Error,
    },
    #[error(transparent)]
    DigestMismatch(#[from] DigestMismatch),
    #[error(transparent)]
    SizeMismatch(#[from] SizeMismatch),
    #[error("{url}: the registry sent an invalid digest: {source}")]
    BadDigest {
        url: String,
        source: crate::digest::DigestError,
    },
    #[error("{reference}: {source}")]
    Manifest {
        reference: String,
        source: manifest::ManifestError,
    },
    #[error("{reference}: {what} is not valid: {source}")]
    Json {
        reference: String,
        what: &'static str,
        source: serde_json::Error,
    },
    #[error("{reference}: no image for platform {wanted} (the index has {available})")]
    NoPlatform {
        reference: String,
        wanted: String,
        available: String,
    },
    #[error("{reference}: {reason}")]
    Invalid { reference: String, reason: String },
    #[error(transparent)]
    Credentials(#[from] credentials::CredentialError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl RegistryError {
    /// Whether trying the same operation again may succeed: a server
    /// error, a network failure, a body cut short.
    pub fn is_retryable(&self) -> bool {
        match self {
            RegistryError::Transport { .. }
            | RegistryError::Body { .. }
            | RegistryError::Stalled { .. }
            | RegistryError::TooSlow { .. } => true,
            RegistryError::Status { status, .. } => backoff::retryable_status(*status),
            _ => false,
        }
    }
}
