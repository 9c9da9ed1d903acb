//! Authentication: the `WWW-Authenticate` challenge a registry answers
//! with, the scopes a token is asked for, the token server's answer, and
//! [`Secret`], the only type a password or token is ever held in.
//!
//! The flow (distribution's token spec): a request without credentials gets
//! `401` and a challenge. `Basic realm=...` means: send the username and
//! password on every request. `Bearer realm=...,service=...,scope=...` means:
//! ask the realm (with Basic credentials, or anonymously) for a token valid
//! for `service` and the scopes needed, then send `Authorization: Bearer`.
//! Tokens are cached per scope set by the client until they expire.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;

/// A password, identity token or bearer token. Its `Debug` is redacted and
/// it has no `Display`, so it cannot end up in an error or a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the one place that must send or store it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Parsing never fails: any text is a secret. Lets clap hold a password
/// argument as a [`Secret`], so the parsed command line's `Debug` hides it.
impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Secret, Self::Err> {
        Ok(Secret::new(s))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// What a registry asked for in `WWW-Authenticate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic {
        realm: Option<String>,
    },
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChallengeError {
    #[error("malformed WWW-Authenticate header {header:?}: {reason}")]
    Malformed {
        header: String,
        reason: &'static str,
    },
    #[error("WWW-Authenticate header {header:?} offers no scheme strata supports (Basic, Bearer)")]
    Unsupported { header: String },
    #[error("Bearer challenge {header:?} has no realm")]
    NoRealm { header: String },
}

/// Parse a `WWW-Authenticate` value (RFC 7235: one or more challenges,
/// each a scheme and comma-separated `name=value` parameters, values as
/// tokens or quoted strings) and return the best one strata supports:
/// Bearer over Basic.
pub fn parse_challenge(header: &str) -> Result<Challenge, ChallengeError> {
    let raw = parse_raw_challenges(header).map_err(|reason| ChallengeError::Malformed {
        header: header.into(),
        reason,
    })?;
    let find = |scheme: &str| raw.iter().find(|(s, _)| s.eq_ignore_ascii_case(scheme));
    if let Some((_, params)) = find("bearer") {
        let realm = params
            .get("realm")
            .cloned()
            .ok_or_else(|| ChallengeError::NoRealm {
                header: header.into(),
            })?;
        return Ok(Challenge::Bearer {
            realm,
            service: params.get("service").cloned(),
            scope: params.get("scope").cloned(),
        });
    }
    if let Some((_, params)) = find("basic") {
        return Ok(Challenge::Basic {
            realm: params.get("realm").cloned(),
        });
    }
    Err(ChallengeError::Unsupported {
        header: header.into(),
    })
}

type RawChallenge = (String, BTreeMap<String, String>);

/// Splits a header into (scheme, params) pairs; parameter names are
/// lowercased (they are case-insensitive), values kept as sent.
fn parse_raw_challenges(header: &str) -> Result<Vec<RawChallenge>, &'static str> {
    let mut p = Cursor {
        s: header.as_bytes(),
        i: 0,
    };
    let mut out: Vec<RawChallenge> = Vec::new();
    loop {
        p.skip_separators();
        if p.done() {
            break;
        }
        let scheme = p.token().ok_or("expected an auth scheme")?;
        let mut params = BTreeMap::new();
        loop {
            p.skip_separators();
            // A token followed by '=' is a parameter; otherwise it starts
            // the next challenge.
            let save = p.i;
            let Some(name) = p.token() else { break };
            p.skip_ws();
            if !p.eat(b'=') {
                p.i = save;
                break;
            }
            p.skip_ws();
            let value = if p.peek() == Some(b'"') {
                p.quoted()?
            } else {
                p.token().unwrap_or_default()
            };
            params.insert(name.to_ascii_lowercase(), value);
        }
        out.push((scheme, params));
    }
    if out.is_empty() {
        return Err("empty header");
    }
    Ok(out)
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn done(&self) -> bool {
        self.i >= self.s.len()
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }
    fn skip_separators(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.i += 1;
        }
    }
    /// RFC 7230 `token` (plus `/` so token68-ish values survive).
    fn token(&mut self) -> Option<String> {
        let start = self.i;
        while let Some(b) = self.peek() {
            let tchar = b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/:".contains(&b);
            if !tchar {
                break;
            }
            self.i += 1;
        }
        (self.i > start).then(|| String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }
    fn quoted(&mut self) -> Result<String, &'static str> {
        self.i += 1; // the opening quote
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err("unterminated quoted string"),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(String::from_utf8_lossy(&out).into_owned());
                }
                Some(b'\\') => {
                    self.i += 1;
                    let c = self.peek().ok_or("unterminated quoted string")?;
                    out.push(c);
                    self.i += 1;
                }
                Some(c) => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
    }
}

/// What a token is asked for: `repository:<name>:<actions>` or
/// `registry:catalog:*`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Scope {
    resource_type: &'static str,
    name: String,
    actions: &'static str,
}

impl Scope {
    /// Read access to a repository.
    pub fn pull(repository: &str) -> Scope {
        Scope {
            resource_type: "repository",
            name: repository.into(),
            actions: "pull",
        }
    }

    /// Read and write access to a repository (push needs pull too: HEAD of
    /// existing blobs and the mount source checks).
    pub fn push(repository: &str) -> Scope {
        Scope {
            resource_type: "repository",
            name: repository.into(),
            actions: "pull,push",
        }
    }

    /// The catalog (`/v2/_catalog`).
    pub fn catalog() -> Scope {
        Scope {
            resource_type: "registry",
            name: "catalog".into(),
            actions: "*",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.resource_type, self.name, self.actions)
    }
}

/// The key a token is cached under: its scopes, sorted, space-separated.
pub fn scope_key(scopes: &[Scope]) -> String {
    let mut v: Vec<String> = scopes.iter().map(Scope::to_string).collect();
    v.sort();
    v.dedup();
    v.join(" ")
}

/// How long a token is trusted when the server does not say (the token
/// spec's default).
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// Tokens are renewed this long before they expire, so one does not run
/// out between being chosen and being used.
const TOKEN_EXPIRY_MARGIN: Duration = Duration::from_secs(10);

/// A token server's answer.
#[derive(Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// A bearer token and how long it may be used.
#[derive(Debug, Clone)]
pub struct Token {
    pub secret: Secret,
    pub lifetime: Duration,
}

/// Parse a token server's JSON answer (`token` or OAuth's `access_token`).
/// The error never includes the body: it may hold a token.
pub fn parse_token_response(body: &[u8]) -> Result<Token, &'static str> {
    let r: TokenResponse =
        serde_json::from_slice(body).map_err(|_| "the answer is not a token response")?;
    let secret = r
        .token
        .filter(|t| !t.is_empty())
        .or(r.access_token.filter(|t| !t.is_empty()))
        .ok_or("the answer holds no token")?;
    let lifetime = r
        .expires_in
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_TOKEN_LIFETIME)
        .saturating_sub(TOKEN_EXPIRY_MARGIN)
        .max(Duration::from_secs(1));
    Ok(Token {
        secret: Secret::new(secret),
        lifetime,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_table() {
        let bearer = |realm: &str, service: Option<&str>, scope: Option<&str>| Challenge::Bearer {
            realm: realm.into(),
            service: service.map(Into::into),
            scope: scope.map(Into::into),
        };
        let cases = [
            (
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
                Ok(bearer(
                    "https://auth.docker.io/token",
                    Some("registry.docker.io"),
                    Some("repository:library/busybox:pull"),
                )),
            ),
            (
                r#"bearer   realm="https://r/t" , service=reg"#,
                Ok(bearer("https://r/t", Some("reg"), None)),
            ),
            (
                r#"Bearer realm="https://r/t",scope="repository:a:pull,push""#,
                Ok(bearer("https://r/t", None, Some("repository:a:pull,push"))),
            ),
            (
                r#"Basic realm="Registry Realm""#,
                Ok(Challenge::Basic {
                    realm: Some("Registry Realm".into()),
                }),
            ),
            ("Basic", Ok(Challenge::Basic { realm: None })),
            (
                r#"Basic realm="x", Bearer realm="https://r/t",service="s""#,
                Ok(bearer("https://r/t", Some("s"), None)),
            ),
            (
                r#"Bearer realm="with \"quotes\" and, comma""#,
                Ok(bearer(r#"with "quotes" and, comma"#, None, None)),
            ),
            (
                r#"Negotiate abc, Basic realm="r""#,
                Ok(Challenge::Basic {
                    realm: Some("r".into()),
                }),
            ),
        ];
        for (header, want) in cases {
            assert_eq!(parse_challenge(header), want, "{header}");
        }
    }

    #[test]
    fn challenge_errors() {
        assert!(matches!(
            parse_challenge(r#"Bearer service="s""#),
            Err(ChallengeError::NoRealm { .. })
        ));
        assert!(matches!(
            parse_challenge("Negotiate"),
            Err(ChallengeError::Unsupported { .. })
        ));
        assert!(matches!(
            parse_challenge(r#"Bearer realm="open"#),
            Err(ChallengeError::Malformed { .. })
        ));
        assert!(matches!(
            parse_challenge("  "),
            Err(ChallengeError::Malformed { .. })
        ));
    }

    #[test]
    fn scope_strings() {
        assert_eq!(
            Scope::pull("library/busybox").to_string(),
            "repository:library/busybox:pull"
        );
        assert_eq!(Scope::push("a/b").to_string(), "repository:a/b:pull,push");
        assert_eq!(Scope::catalog().to_string(), "registry:catalog:*");
        assert_eq!(
            scope_key(&[Scope::push("b"), Scope::pull("a"), Scope::push("b")]),
            "repository:a:pull repository:b:pull,push"
        );
    }

    #[test]
    fn token_responses() {
        let t = parse_token_response(br#"{"token":"abc","expires_in":300}"#).unwrap();
        assert_eq!(t.secret.expose(), "abc");
        assert_eq!(t.lifetime, Duration::from_secs(290));
        let t = parse_token_response(br#"{"access_token":"x"}"#).unwrap();
        assert_eq!(t.secret.expose(), "x");
        assert_eq!(t.lifetime, Duration::from_secs(50));
        let t = parse_token_response(br#"{"token":"","access_token":"y","expires_in":1}"#).unwrap();
        assert_eq!(t.secret.expose(), "y");
        assert_eq!(t.lifetime, Duration::from_secs(1));
        assert!(parse_token_response(b"{}").is_err());
        assert!(parse_token_response(b"not json with secret").is_err());
    }

    #[test]
    fn secret_debug_is_redacted() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        let t = Token {
            secret: s,
            lifetime: Duration::from_secs(1),
        };
        assert!(!format!("{t:?}").contains("hunter2"));
    }
}
