//! What the registry client makes of HTTP: URLs shown without their
//! query (signed URLs carry secrets), the origin rule for redirects, capped
//! bodies, and errors that name the method, URL and the registry's own
//! message.

use std::io::Read;
use std::time::{Duration, Instant};

use reqwest::blocking::Response;
use reqwest::header::{HeaderMap, LOCATION};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;

use super::manifest::SMALL_BODY_MAX_BYTES;
use super::RegistryError;

/// Every HTTP client strata makes starts here: TLS through rustls with
/// ring (installed once as the process's provider; reqwest's default,
/// aws-lc-rs, would add a C library build for no gain here), strata's
/// user agent, and `read_timeout`: the longest a server may keep us
/// waiting for an answer or for the next bytes of a body. The blocking
/// client applies its client-wide timeout to each of those waits, not to
/// the whole transfer, so it bounds stalls, never the size of a transfer;
/// a request given a timeout of its own uses that for both instead.
pub fn client_builder(read_timeout: std::time::Duration) -> reqwest::blocking::ClientBuilder {
    install_tls_provider();
    reqwest::blocking::Client::builder()
        .user_agent(concat!("strata/", env!("CARGO_PKG_VERSION")))
        .timeout(read_timeout)
}

/// rustls with ring as the process's TLS provider, before any client is
/// built (here, or by a library such as gix).
pub fn install_tls_provider() {
    // Err means a provider is already installed, which is all we need.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The URL without its query, for messages (token URLs carry scopes only,
/// but a signed redirect URL may carry a signature).
pub fn url_without_query(url: &Url) -> Url {
    let mut u = url.clone();
    u.set_query(None);
    u
}

/// Same scheme, host and port.
pub fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// Where a redirect points, resolved against the current URL.
pub fn redirect_target(current: &Url, headers: &HeaderMap) -> Result<Url, RegistryError> {
    let bad = |reason: &str| RegistryError::Redirect {
        url: url_without_query(current).to_string(),
        reason: reason.into(),
    };
    let location = headers
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| bad("without a Location header"))?;
    let target = current
        .join(location)
        .map_err(|_| bad("to an invalid Location"))?;
    match target.scheme() {
        "https" => Ok(target),
        // Never downgrade from https to plain http.
        "http" if current.scheme() == "http" => Ok(target),
        _ => Err(bad("to a less secure scheme")),
    }
}

/// How long a small answer (a manifest, a token, a config) may take in
/// all; each wait within it is bounded by the client's read timeout.
pub const SMALL_ANSWER_TIME: Duration = Duration::from_secs(120);

/// Read a whole body, refusing more than `limit` bytes or more than
/// [`SMALL_ANSWER_TIME`].
pub fn read_capped(mut resp: Response, limit: u64, url: &Url) -> Result<Vec<u8>, RegistryError> {
    let shown = url_without_query(url).to_string();
    let too_large = || RegistryError::TooLarge {
        url: shown.clone(),
        limit,
    };
    if resp.content_length().is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let deadline = Instant::now() + SMALL_ANSWER_TIME;
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        let n = resp.read(&mut chunk).map_err(|e| body_error(&shown, e))?;
        if n == 0 {
            return Ok(buf);
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() as u64 > limit {
            return Err(too_large());
        }
        if Instant::now() > deadline {
            return Err(RegistryError::TooSlow {
                url: shown,
                limit: SMALL_ANSWER_TIME,
            });
        }
    }
}

/// A failed read of a body: a stall (nothing within the read timeout) is
/// said as such, anything else keeps its cause.
pub fn body_error(url: &str, e: std::io::Error) -> RegistryError {
    if is_timeout(&e) {
        return RegistryError::Stalled {
            url: url.to_string(),
        };
    }
    RegistryError::Body {
        url: url.to_string(),
        source: e,
    }
}

/// Whether a read failed for want of bytes: reqwest's wait timed out (an
/// io::Error wrapping its error, whose `source` skips the wrapped error
/// itself) or the socket did.
fn is_timeout(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::TimedOut
        || e.get_ref()
            .and_then(|inner| inner.downcast_ref::<reqwest::Error>())
            .is_some_and(reqwest::Error::is_timeout)
}

pub(super) fn transport(method: &Method, url: &Url, source: reqwest::Error) -> RegistryError {
    RegistryError::Transport {
        method: method.to_string(),
        url: url_without_query(url).to_string(),
        source: source.without_url(),
    }
}

pub(super) fn is_transport(e: &RegistryError) -> bool {
    matches!(e, RegistryError::Transport { .. })
}

/// An error's message with its causes, for embedding in another message.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut last = s.clone();
    let mut cur = e.source();
    while let Some(c) = cur {
        // reqwest nests errors that say the same thing; say it once.
        let text = c.to_string();
        if text != last && !last.ends_with(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        last = text;
        cur = c.source();
    }
    s
}

/// The registry's error document (distribution spec).
#[derive(Deserialize)]
struct ErrorDoc {
    #[serde(default)]
    errors: Vec<ErrorEntry>,
}

#[derive(Deserialize)]
struct ErrorEntry {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// The message for a failed status: the registry's own errors as Docker
/// shows them (`denied: requested access to the resource is denied`),
/// else the status line.
pub fn describe_status(status: u16, body: &[u8]) -> String {
    let reason = StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let doc: Option<ErrorDoc> = serde_json::from_slice(body).ok();
    let entries: Vec<String> = doc
        .map(|d| d.errors)
        .unwrap_or_default()
        .into_iter()
        .filter(|e| !e.code.is_empty() || !e.message.is_empty())
        .map(|e| {
            let code = e.code.to_ascii_lowercase().replace('_', " ");
            if e.message.is_empty() || e.message.eq_ignore_ascii_case(&code) {
                code
            } else if code.is_empty() {
                e.message
            } else {
                format!("{code}: {}", e.message)
            }
        })
        .collect();
    if entries.is_empty() {
        format!("{status} {reason}").trim_end().to_string()
    } else {
        entries.join("; ")
    }
}

pub(super) fn status_error(method: &Method, url: &Url, resp: Response) -> RegistryError {
    let status = resp.status().as_u16();
    // The body is only for the message; an unreadable one leaves the
    // status line, which is still the error.
    let body = read_capped(resp, SMALL_BODY_MAX_BYTES, url).unwrap_or_default();
    RegistryError::Status {
        method: method.to_string(),
        url: url_without_query(url).to_string(),
        status,
        message: describe_status(status, &body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn describe_status_table() {
        let cases: &[(u16, &str, &str)] = &[
            (
                403,
                r#"{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}"#,
                "denied: requested access to the resource is denied",
            ),
            (
                404,
                r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}}]}"#,
                "manifest unknown",
            ),
            (
                401,
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
                "unauthorized: authentication required",
            ),
            (
                400,
                r#"{"errors":[{"code":"A"},{"code":"B_C","message":"m"}]}"#,
                "a; b c: m",
            ),
            (500, "", "500 Internal Server Error"),
            (503, "<html>busy</html>", "503 Service Unavailable"),
            (404, r#"{"errors":[]}"#, "404 Not Found"),
        ];
        for (status, body, want) in cases {
            assert_eq!(
                describe_status(*status, body.as_bytes()),
                *want,
                "{status} {body}"
            );
        }
    }

    #[test]
    fn origin_table() {
        let u = |s: &str| Url::parse(s).unwrap();
        for (a, b, want) in [
            ("https://r.io/v2/", "https://r.io/x", true),
            ("https://r.io:443/v2/", "https://r.io/", true),
            ("http://r.io/", "https://r.io/", false),
            ("https://r.io:5000/", "https://r.io/", false),
            ("https://cdn.r.io/", "https://r.io/", false),
            ("http://127.0.0.1:5000/", "http://127.0.0.1:5000/v2/", true),
        ] {
            assert_eq!(same_origin(&u(a), &u(b)), want, "{a} {b}");
        }
    }

    #[test]
    fn redirect_table() {
        let cur = Url::parse("https://r.io/v2/a/blobs/x").unwrap();
        let plain = Url::parse("http://r.io/v2/a/blobs/x").unwrap();
        let h = |loc: &str| {
            let mut m = HeaderMap::new();
            m.insert(LOCATION, HeaderValue::from_str(loc).unwrap());
            m
        };
        assert_eq!(
            redirect_target(&cur, &h("https://cdn.io/b?sig=1"))
                .unwrap()
                .as_str(),
            "https://cdn.io/b?sig=1"
        );
        assert_eq!(
            redirect_target(&cur, &h("/v2/b")).unwrap().as_str(),
            "https://r.io/v2/b"
        );
        assert!(redirect_target(&cur, &h("http://cdn.io/b")).is_err());
        assert!(redirect_target(&cur, &h("ftp://cdn.io/b")).is_err());
        assert!(redirect_target(&cur, &HeaderMap::new()).is_err());
        assert_eq!(
            redirect_target(&plain, &h("http://other:1/b"))
                .unwrap()
                .as_str(),
            "http://other:1/b"
        );
    }

    #[test]
    fn chain_says_each_cause_once() {
        #[derive(Debug)]
        struct E(&'static str, Option<Box<E>>);
        impl std::fmt::Display for E {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.0)
            }
        }
        impl std::error::Error for E {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                self.1.as_deref().map(|e| e as _)
            }
        }
        let e = E(
            "GET u: sending",
            Some(Box::new(E(
                "sending",
                Some(Box::new(E("sending", Some(Box::new(E("refused", None)))))),
            ))),
        );
        assert_eq!(chain(&e), "GET u: sending: refused");
    }

    #[test]
    fn query_is_dropped_from_messages() {
        let u = Url::parse("https://cdn.io/blob?X-Amz-Signature=abc").unwrap();
        assert_eq!(url_without_query(&u).as_str(), "https://cdn.io/blob");
    }
}
