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

pub mod auth;
pub mod backoff;
pub mod credentials;
pub mod endpoint;
pub mod manifest;
