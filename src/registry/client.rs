//! One registry's HTTP client: transport choice (https, or http where the
//! rules allow it), authentication (Basic, or Bearer tokens cached per
//! scope set), retries with backoff, and redirects that never carry the
//! `Authorization` header to another origin.
//!
//! Redirects are followed here rather than by reqwest so the rule is in
//! one visible place: credentials go only to the registry's own
//! scheme/host/port, never to where a blob GET is redirected (a CDN or an
//! object store authenticates with the signed URL itself).

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::blocking::{Body, Client, Response};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode, Url};

use super::auth::{parse_challenge, parse_token_response, scope_key, Challenge, Scope, Secret};
use super::backoff::{retry, retryable_status, Backoff, Failure};
use super::credentials::Credential;
use super::endpoint::{api_host, canonical_registry, cert_dirs, ping_path, security, Security};
pub use super::http::{chain, read_capped, url_without_query};
use super::http::{is_transport, redirect_target, same_origin, status_error, transport};
use super::manifest::TOKEN_MAX_BYTES;
use super::RegistryError;

/// How long connecting may take before the try counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Whole-request limit for the ping and token requests.
const SMALL_REQUEST_TIMEOUT: Duration = super::http::SMALL_ANSWER_TIME;
/// Redirects followed for one request; registries use one, CDNs two.
const MAX_REDIRECTS: usize = 10;
/// How long the server may keep us waiting for the first byte of an answer
/// or for the next bytes of a body before the try counts as failed (and a
/// blob download resumes from where it stopped). A registry serving bytes
/// at any pace never meets it; one that stopped sending always does.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How to reach registries: the command line's and config file's choices.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--tls-verify`: `Some(false)` allows unverified https and plain http.
    pub tls_verify: Option<bool>,
    /// `--cert-dir`: CA files (`*.crt`) and client certs for the registry.
    pub cert_dir: Option<PathBuf>,
    /// Registries (`host` or `host:port`) allowed without verified TLS.
    pub insecure: Vec<String>,
    pub backoff: Backoff,
    /// The longest wait for more bytes ([`DEFAULT_READ_TIMEOUT`]; the
    /// config file's `read-timeout`).
    pub read_timeout: Option<Duration>,
}

impl Options {
    pub fn read_timeout(&self) -> Duration {
        self.read_timeout.unwrap_or(DEFAULT_READ_TIMEOUT)
    }
}

/// What the body of a request is; kept re-creatable so a retry can send
/// it again.
#[derive(Debug, Clone)]
pub enum ReqBody {
    Empty,
    Bytes(bytes::Bytes),
    /// `len` bytes of a file from `offset`.
    File {
        path: PathBuf,
        offset: u64,
        len: u64,
    },
}

/// One request, described so it can be sent again.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: Method,
    /// A path on the registry (`/v2/...`) or an absolute URL (an upload
    /// location the registry gave).
    pub target: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: ReqBody,
    /// Statuses the caller handles itself besides 2xx (404 for a HEAD).
    pub accept_status: Vec<u16>,
    /// Whether the request may be sent again after a failure (PATCH of an
    /// upload chunk may not: the server may have applied it).
    pub retry: bool,
    /// Whole-request limit (and the longest wait for each read), for
    /// uploads; `None` (the default): each wait is bounded by the client's
    /// read timeout, and whoever reads the body bounds the whole.
    pub timeout: Option<Duration>,
}

impl Req {
    pub fn new(method: Method, target: impl Into<String>) -> Req {
        Req {
            method,
            target: target.into(),
            headers: Vec::new(),
            body: ReqBody::Empty,
            accept_status: Vec::new(),
            retry: true,
            timeout: None,
        }
    }

    pub fn get(target: impl Into<String>) -> Req {
        Req::new(Method::GET, target)
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Req {
        self.headers.push((name, value.into()));
        self
    }

    pub fn body(mut self, body: ReqBody) -> Req {
        self.body = body;
        self
    }

    pub fn accept(mut self, status: u16) -> Req {
        self.accept_status.push(status);
        self
    }

    pub fn no_retry(mut self) -> Req {
        self.retry = false;
        self
    }

    pub fn timeout(mut self, timeout: Option<Duration>) -> Req {
        self.timeout = timeout;
        self
    }
}

/// A small answer read whole: its headers, final URL and body.
#[derive(Debug)]
pub struct Answer {
    pub headers: HeaderMap,
    pub url: Url,
    pub bytes: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

/// The cached auth state of one registry.
#[derive(Default)]
struct AuthState {
    challenge: Option<Challenge>,
    tokens: HashMap<String, (Secret, Instant)>,
}

/// A client for one registry.
pub struct Registry {
    /// The canonical registry name (`docker.io`, `localhost:5000`).
    name: String,
    security: Security,
    client: Client,
    /// Base URL (`https://host`) chosen by [`Registry::connect`].
    base: Url,
    credential: Option<Credential>,
    auth: Mutex<AuthState>,
    backoff: Backoff,
    read_timeout: Duration,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("name", &self.name)
            .field("base", &self.base.as_str())
            .field("security", &self.security)
            .field("credential", &self.credential.as_ref().map(|c| &c.username))
            .finish()
    }
}

type Failed = Failure<RegistryError>;

impl Registry {
    /// Reach `domain`'s registry: choose https (or http where allowed and
    /// https is not spoken) by asking `/v2/`, and remember how it wants to
    /// be authenticated.
    pub fn connect(
        domain: &str,
        credential: Option<Credential>,
        opts: &Options,
    ) -> Result<Registry, RegistryError> {
        let name = canonical_registry(domain).to_string();
        let host = api_host(domain).to_string();
        let security = security(&name, opts.tls_verify, &opts.insecure);
        let config_home = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
        let client = build_client(
            &host,
            security,
            (opts.cert_dir.as_deref(), config_home.as_deref()),
            opts.read_timeout(),
        )?;
        let https = base_url("https", &host)?;
        let mut reg = Registry {
            name,
            security,
            client,
            base: https,
            credential,
            auth: Mutex::new(AuthState::default()),
            backoff: opts.backoff,
            read_timeout: opts.read_timeout(),
        };
        let https_err = match reg.ping() {
            Ok(()) => return Ok(reg),
            Err(e) if !security.allows_plain_http() || !is_transport(&e) => return Err(e),
            Err(e) => e,
        };
        reg.base = base_url("http", &host)?;
        reg.ping().map_err(|http_err| RegistryError::Unreachable {
            registry: reg.name.clone(),
            reason: format!("https: {}; http: {}", chain(&https_err), chain(&http_err)),
        })?;
        Ok(reg)
    }

    /// The canonical registry name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The retry schedule, for transfers that retry on their own.
    pub fn backoff(&self) -> Backoff {
        self.backoff
    }

    /// The longest wait for more bytes of an answer.
    pub fn read_timeout(&self) -> Duration {
        self.read_timeout
    }

    /// [`retry`] with this registry's schedule; the error after the last
    /// try names `method` and `url`.
    pub fn with_retries<T>(
        &self,
        method: &Method,
        url: &Url,
        op: impl FnMut(u32) -> Result<T, Failed>,
    ) -> Result<T, RegistryError> {
        retry(&self.backoff, op, |tries, last| RegistryError::GaveUp {
            method: method.to_string(),
            url: url_without_query(url).to_string(),
            tries,
            last: chain(&last),
        })
    }

    /// `https://host` or `http://host`.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// `GET /v2/`: 200 (open), or 401 with the challenge to remember.
    fn ping(&self) -> Result<(), RegistryError> {
        let url = self.url(ping_path())?;
        self.with_retries(&Method::GET, &url, |_| {
            let resp = self
                .client
                .get(url.clone())
                .timeout(SMALL_REQUEST_TIMEOUT)
                .send()
                .map_err(|source| transport(&Method::GET, &url, source))
                // A TLS handshake against a plain-http server fails at
                // once; retrying it only delays the http fallback.
                .map_err(|e| match self.security.allows_plain_http() {
                    true => Failure::Fatal(e),
                    false => Failure::Retry(e),
                })?;
            match resp.status() {
                s if s.is_success() => Ok(()),
                StatusCode::UNAUTHORIZED => {
                    let challenge =
                        challenge_of(&self.name, resp.headers()).map_err(Failure::Fatal)?;
                    self.lock_auth().challenge = Some(challenge);
                    Ok(())
                }
                s => Err(by_status(s, status_error(&Method::GET, &url, resp))),
            }
        })
    }

    fn url(&self, target: &str) -> Result<Url, RegistryError> {
        if target.starts_with("http://") || target.starts_with("https://") {
            Url::parse(target)
        } else {
            self.base.join(target)
        }
        .map_err(|e| RegistryError::BadUrl {
            url: target.into(),
            reason: e.to_string(),
        })
    }

    fn lock_auth(&self) -> std::sync::MutexGuard<'_, AuthState> {
        // A panic elsewhere while holding the lock leaves a cache that is
        // still valid: take it back.
        self.auth.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Send `req` with the credentials `scopes` need: retried on 5xx,
    /// 429 and transport errors (if `req.retry`), re-authenticated once on
    /// 401, redirects followed. A status other than 2xx and
    /// `req.accept_status` is an error with the registry's message.
    pub fn send(&self, req: &Req, scopes: &[Scope]) -> Result<Response, RegistryError> {
        let url = self.url(&req.target)?;
        self.with_retries(&req.method, &url, |_| {
            self.try_once(req, &url, scopes).map_err(|f| match f {
                Failure::Retry(e) if !req.retry => Failure::Fatal(e),
                f => f,
            })
        })
    }

    /// [`Registry::send`] and read the whole body (at most `limit` bytes),
    /// trying again when the body breaks off or stalls.
    pub fn get_capped(
        &self,
        req: &Req,
        scopes: &[Scope],
        limit: u64,
    ) -> Result<Answer, RegistryError> {
        let url = self.url(&req.target)?;
        self.with_retries(&req.method, &url, |_| {
            let resp = self.send(req, scopes).map_err(Failure::Fatal)?;
            let (headers, url) = (resp.headers().clone(), resp.url().clone());
            match read_capped(resp, limit, &url) {
                Ok(bytes) => Ok(Answer {
                    headers,
                    url,
                    bytes,
                }),
                Err(e) if e.is_retryable() => Err(Failure::Retry(e)),
                Err(e) => Err(Failure::Fatal(e)),
            }
        })
    }

    fn try_once(&self, req: &Req, start: &Url, scopes: &[Scope]) -> Result<Response, Failed> {
        let mut url = start.clone();
        let mut method = req.method.clone();
        let mut reauthenticated = false;
        let mut redirects = 0;
        loop {
            let own_origin = same_origin(&url, &self.base);
            let mut builder = self.client.request(method.clone(), url.clone());
            if let Some(t) = req.timeout {
                builder = builder.timeout(t);
            }
            for (name, value) in &req.headers {
                builder = builder.header(*name, value);
            }
            if own_origin {
                if let Some(auth) = self.authorization(scopes) {
                    builder = builder.header(AUTHORIZATION, auth);
                }
            }
            if method != Method::GET && method != Method::HEAD {
                builder = builder.body(body_of(&req.body).map_err(Failure::Fatal)?);
            }
            let resp = builder
                .send()
                .map_err(|source| Failure::Retry(transport(&method, &url, source)))?;
            let status = resp.status();
            if status.is_success() || req.accept_status.contains(&status.as_u16()) {
                return Ok(resp);
            }
            if status.is_redirection() {
                redirects += 1;
                if redirects > MAX_REDIRECTS {
                    return Err(Failure::Fatal(RegistryError::Redirect {
                        url: url.to_string(),
                        reason: format!("more than {MAX_REDIRECTS} redirects"),
                    }));
                }
                url = redirect_target(&url, resp.headers()).map_err(Failure::Fatal)?;
                if status == StatusCode::SEE_OTHER && method != Method::HEAD {
                    method = Method::GET;
                }
                continue;
            }
            if status == StatusCode::UNAUTHORIZED && own_origin && !reauthenticated {
                reauthenticated = true;
                let challenge = challenge_of(&self.name, resp.headers()).map_err(Failure::Fatal)?;
                self.authenticate(challenge, scopes)?;
                continue;
            }
            return Err(by_status(status, status_error(&method, &url, resp)));
        }
    }

    /// The `Authorization` value for `scopes`, if one is known.
    fn authorization(&self, scopes: &[Scope]) -> Option<HeaderValue> {
        let state = self.lock_auth();
        let value = match state.challenge.as_ref()? {
            Challenge::Basic { .. } => {
                let c = self.credential.as_ref()?;
                basic_value(c)
            }
            Challenge::Bearer { .. } => {
                let (token, expiry) = state.tokens.get(&scope_key(scopes))?;
                if Instant::now() >= *expiry {
                    return None;
                }
                format!("Bearer {}", token.expose())
            }
        };
        let mut v = HeaderValue::from_str(&value).ok()?;
        v.set_sensitive(true);
        Some(v)
    }

    /// Answer a challenge: remember it, and for Bearer fetch a token.
    fn authenticate(&self, challenge: Challenge, scopes: &[Scope]) -> Result<(), Failed> {
        self.lock_auth().challenge = Some(challenge.clone());
        match challenge {
            Challenge::Basic { .. } if self.credential.is_none() => {
                Err(Failure::Fatal(RegistryError::Auth {
                    registry: self.name.clone(),
                    reason: "unauthorized: authentication required (run strata login)".into(),
                }))
            }
            Challenge::Basic { .. } => Ok(()),
            Challenge::Bearer { realm, service, .. } => {
                let (token, lifetime) = self
                    .fetch_token(&realm, service.as_deref(), scopes)
                    .map_err(Failure::Fatal)?;
                self.lock_auth()
                    .tokens
                    .insert(scope_key(scopes), (token, Instant::now() + lifetime));
                Ok(())
            }
        }
    }

    /// Ask the token server for a token for `scopes`.
    fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scopes: &[Scope],
    ) -> Result<(Secret, Duration), RegistryError> {
        let auth_error = |reason: String| RegistryError::Auth {
            registry: self.name.clone(),
            reason,
        };
        let fatal = |reason: String| Failure::Fatal(auth_error(reason));
        let mut url =
            Url::parse(realm).map_err(|e| auth_error(format!("bad token realm {realm:?}: {e}")))?;
        let plain_ok = self.security.allows_plain_http();
        if url.scheme() != "https" && !(url.scheme() == "http" && plain_ok) {
            return Err(auth_error(format!(
                "refusing token realm {realm:?}: not https"
            )));
        }
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            for s in scopes {
                q.append_pair("scope", &s.to_string());
            }
        }
        let shown = url_without_query(&url);
        self.with_retries(&Method::GET, &shown, |_| {
            let mut b = self.client.get(url.clone()).timeout(SMALL_REQUEST_TIMEOUT);
            if let Some(c) = &self.credential {
                b = b.header(AUTHORIZATION, basic_value(c));
            }
            let resp = b
                .send()
                .map_err(|source| Failure::Retry(transport(&Method::GET, &shown, source)))?;
            match resp.status() {
                s if s.is_success() => {
                    let body = read_capped(resp, TOKEN_MAX_BYTES, &url).map_err(Failure::Fatal)?;
                    let token = parse_token_response(&body)
                        .map_err(|why| fatal(format!("token server {shown}: {why}")))?;
                    Ok((token.secret, token.lifetime))
                }
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    Err(fatal(match self.credential.is_some() {
                        true => "unauthorized: incorrect username or password".into(),
                        false => "unauthorized: authentication required (run strata login)".into(),
                    }))
                }
                s => Err(by_status(s, status_error(&Method::GET, &shown, resp))),
            }
        })
    }

    /// Check that the credentials work: a token for `scopes` (or the
    /// catalog), or `/v2/` accepted with Basic credentials.
    pub fn check_login(&self) -> Result<(), RegistryError> {
        let challenge = self.lock_auth().challenge.clone();
        match challenge {
            None => Ok(()),
            Some(Challenge::Bearer { realm, service, .. }) => self
                .fetch_token(&realm, service.as_deref(), &[])
                .map(|_| ()),
            Some(Challenge::Basic { .. }) => {
                let resp =
                    self.send(&Req::get(ping_path()).accept(401), &[])
                        .map_err(|e| match e {
                            RegistryError::Status { status: 401, .. } => RegistryError::Auth {
                                registry: self.name.clone(),
                                reason: "unauthorized: incorrect username or password".into(),
                            },
                            e => e,
                        })?;
                if resp.status() == StatusCode::UNAUTHORIZED {
                    return Err(RegistryError::Auth {
                        registry: self.name.clone(),
                        reason: "unauthorized: incorrect username or password".into(),
                    });
                }
                Ok(())
            }
        }
    }
}

/// A status answer as a failure: worth another try or not.
fn by_status(status: StatusCode, err: RegistryError) -> Failed {
    match retryable_status(status.as_u16()) {
        true => Failure::Retry(err),
        false => Failure::Fatal(err),
    }
}

fn base_url(scheme: &str, host: &str) -> Result<Url, RegistryError> {
    let s = format!("{scheme}://{host}/");
    Url::parse(&s).map_err(|e| RegistryError::BadUrl {
        url: s,
        reason: e.to_string(),
    })
}

fn basic_value(c: &Credential) -> String {
    use base64::Engine as _;
    let raw = format!("{}:{}", c.username, c.secret.expose());
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

fn challenge_of(registry: &str, headers: &HeaderMap) -> Result<Challenge, RegistryError> {
    let header = headers
        .get(WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| RegistryError::Auth {
            registry: registry.into(),
            reason: "401 Unauthorized without a WWW-Authenticate header".into(),
        })?;
    parse_challenge(header).map_err(|source| RegistryError::Challenge {
        registry: registry.into(),
        source,
    })
}

fn body_of(body: &ReqBody) -> Result<Body, RegistryError> {
    Ok(match body {
        ReqBody::Empty => Body::from(Vec::new()),
        // A clone shares the bytes: a request sent again copies nothing.
        ReqBody::Bytes(b) => Body::from(b.clone()),
        ReqBody::File { path, offset, len } => {
            use std::io::{Seek, SeekFrom};
            let io = |op| {
                let path = path.clone();
                move |source| RegistryError::Io { op, path, source }
            };
            let mut f = fs_err::File::open(path).map_err(io("open"))?;
            f.seek(SeekFrom::Start(*offset)).map_err(io("seek"))?;
            Body::sized(f.take(*len), *len)
        }
    })
}

/// A reqwest client for `host` with its CA files and client certificate,
/// verifying certificates unless the registry is insecure.
fn build_client(
    host: &str,
    security: Security,
    (cert_dir, config_home): (Option<&Path>, Option<&Path>),
    read_timeout: Duration,
) -> Result<Client, RegistryError> {
    let mut b = super::http::client_builder(read_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT);
    if security == Security::Insecure {
        b = b.danger_accept_invalid_certs(true);
    }
    for dir in cert_dirs(host, cert_dir, config_home) {
        let Ok(entries) = fs_err::read_dir(&dir) else {
            // A certs.d directory that does not exist is the usual case.
            continue;
        };
        let mut names: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        names.sort();
        for path in &names {
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            let read = |p: &Path| {
                fs_err::read(p).map_err(|source| RegistryError::Io {
                    op: "read",
                    path: p.into(),
                    source,
                })
            };
            let cert_err = |p: &Path| {
                let path = p.to_path_buf();
                move |source| RegistryError::Certificate { path, source }
            };
            match ext {
                "crt" => {
                    let pem = read(path)?;
                    for cert in
                        reqwest::Certificate::from_pem_bundle(&pem).map_err(cert_err(path))?
                    {
                        b = b.add_root_certificate(cert);
                    }
                }
                "cert" => {
                    let key = path.with_extension("key");
                    let mut pem = read(path)?;
                    pem.extend(read(&key)?);
                    b = b.identity(reqwest::Identity::from_pem(&pem).map_err(cert_err(path))?);
                }
                _ => {}
            }
        }
    }
    b.build().map_err(|source| RegistryError::Transport {
        method: "setup".into(),
        url: host.into(),
        source,
    })
}
