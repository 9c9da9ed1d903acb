//! A small HTTP proxy in front of a real registry that injects faults:
//! statuses instead of answers, bodies cut short, flipped bytes, redirects
//! to another host. One connection per request (`Connection: close`), so
//! every request passes the rules; requests are logged for assertions.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// What the proxy does with one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Forward,
    /// Answer with this status and an empty body.
    Status(u16),
    /// Forward, but send only this fraction of the body, then close.
    Truncate(f64),
    /// Forward with one body byte flipped.
    FlipByte,
    /// Forward with a byte appended to the body (length adjusted).
    AppendByte,
    /// Answer 307 to this base URL plus the same path.
    RedirectTo(String),
    /// Forward without the `Range` header, as a server that ignores it.
    IgnoreRange,
    /// Answer this status, extra headers and body without asking upstream.
    Respond(u16, Vec<(String, String)>, Vec<u8>),
}

/// One request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The first byte of a TLS record carrying a handshake.
const TLS_HANDSHAKE: u8 = 0x16;

type Rule = dyn Fn(&Seen, usize) -> Action + Send + Sync;

/// A running proxy; stops when dropped.
pub struct Proxy {
    pub addr: String,
    pub log: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Listen on `bind` (e.g. `127.0.0.1:0`) and forward to `upstream`
    /// (`host:port`), asking `rule` what to do with each request (with the
    /// number of earlier requests that had the same method and path).
    pub fn start(
        bind: &str,
        upstream: &str,
        rule: impl Fn(&Seen, usize) -> Action + Send + Sync + 'static,
    ) -> Proxy {
        let listener = TcpListener::bind(bind).unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let log: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let rule: Arc<Rule> = Arc::new(rule);
        let upstream = upstream.to_string();
        let thread = {
            let (log, stop) = (log.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((conn, _)) => {
                            let (log, rule, upstream) =
                                (log.clone(), rule.clone(), upstream.clone());
                            std::thread::spawn(move || {
                                // A client that hung up is not a test failure.
                                let _ = serve(conn, &upstream, &*rule, &log);
                            });
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        Proxy {
            addr,
            log,
            stop,
            thread: Some(thread),
        }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

type Headers = Vec<(String, String)>;

/// Header lines up to the empty one.
fn read_headers<R: BufRead>(r: &mut R) -> std::io::Result<Headers> {
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            return Ok(headers);
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
}

/// Read a request head and body.
fn read_request(r: &mut BufReader<TcpStream>) -> std::io::Result<Option<(Seen, Vec<u8>)>> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
        return Ok(None);
    };
    let (method, path) = (method.to_string(), path.to_string());
    let headers = read_headers(r)?;
    let seen = Seen {
        method,
        path,
        headers,
    };
    let len: usize = seen
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    Ok(Some((seen, body)))
}

/// Forward one request to `upstream` as HTTP/1.0 (so the answer is not
/// chunked and ends at close); the status line, headers and body.
fn forward(
    upstream: &str,
    seen: &Seen,
    body: &[u8],
) -> std::io::Result<(String, Headers, Vec<u8>)> {
    let mut up = TcpStream::connect(upstream)?;
    let mut req = format!("{} {} HTTP/1.0\r\n", seen.method, seen.path);
    for (k, v) in &seen.headers {
        if k.eq_ignore_ascii_case("connection") || k.eq_ignore_ascii_case("host") {
            continue;
        }
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Host: {upstream}\r\nConnection: close\r\n\r\n"));
    up.write_all(req.as_bytes())?;
    up.write_all(body)?;
    let mut r = BufReader::new(up);
    let mut status = String::new();
    r.read_line(&mut status)?;
    let headers = read_headers(&mut r)?;
    let mut out = Vec::new();
    r.read_to_end(&mut out)?;
    Ok((status.trim_end().to_string(), headers, out))
}

/// Read one request from `conn` and log it: the request, its body, and
/// how many earlier requests had its method and path. `None` when the
/// client hung up or sent a TLS ClientHello (strata tries https first on
/// loopback), answered by hanging up at once, as a plain-http server would.
pub fn take_request(
    conn: &TcpStream,
    log: &Mutex<Vec<Seen>>,
) -> std::io::Result<Option<(Seen, Vec<u8>, usize)>> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut first = [0u8; 1];
    if conn.peek(&mut first)? == 0 || first[0] == TLS_HANDSHAKE {
        conn.shutdown(Shutdown::Both)?;
        return Ok(None);
    }
    let mut reader = BufReader::new(conn.try_clone()?);
    let Some((seen, body)) = read_request(&mut reader)? else {
        return Ok(None);
    };
    let mut l = log.lock().unwrap();
    let count = l
        .iter()
        .filter(|s| s.method == seen.method && s.path == seen.path)
        .count();
    l.push(seen.clone());
    Ok(Some((seen, body, count)))
}

fn serve(
    conn: TcpStream,
    upstream: &str,
    rule: &Rule,
    log: &Mutex<Vec<Seen>>,
) -> std::io::Result<()> {
    let Some((seen, body, count)) = take_request(&conn, log)? else {
        return Ok(());
    };
    let mut conn = conn;
    let action = rule(&seen, count);
    let (status, headers, mut out) = match &action {
        Action::Status(code) => {
            let head = format!(
                "HTTP/1.1 {code} Injected\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            conn.write_all(head.as_bytes())?;
            return conn.shutdown(Shutdown::Both);
        }
        Action::RedirectTo(base) => {
            let head = format!(
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: {base}{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                seen.path
            );
            conn.write_all(head.as_bytes())?;
            return conn.shutdown(Shutdown::Both);
        }
        Action::Respond(code, extra, reply) => {
            let mut head = format!("HTTP/1.1 {code} Injected\r\n");
            for (k, v) in extra {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str(&format!(
                "Content-Length: {}\r\nConnection: close\r\n\r\n",
                reply.len()
            ));
            conn.write_all(head.as_bytes())?;
            conn.write_all(reply)?;
            return conn.shutdown(Shutdown::Both);
        }
        Action::IgnoreRange => {
            let mut plain = seen.clone();
            plain
                .headers
                .retain(|(k, _)| !k.eq_ignore_ascii_case("range"));
            forward(upstream, &plain, &body)?
        }
        _ => forward(upstream, &seen, &body)?,
    };
    let full_len = out.len();
    match action {
        Action::FlipByte if !out.is_empty() => {
            let i = out.len() / 2;
            out[i] ^= 0xff;
        }
        Action::AppendByte => out.push(b' '),
        _ => {}
    }
    let upstream_len = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok());
    let announced = match (&action, seen.method.as_str()) {
        (_, "HEAD") => upstream_len.unwrap_or(0),
        (Action::Truncate(_), _) => full_len,
        _ => out.len(),
    };
    let status = status.replacen("HTTP/1.0", "HTTP/1.1", 1);
    let mut head = format!("{status}\r\n");
    for (k, v) in &headers {
        if ["content-length", "connection", "transfer-encoding"]
            .iter()
            .any(|h| k.eq_ignore_ascii_case(h))
        {
            continue;
        }
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {announced}\r\nConnection: close\r\n\r\n"
    ));
    conn.write_all(head.as_bytes())?;
    if seen.method != "HEAD" {
        let send = match action {
            Action::Truncate(f) => &out[..((out.len() as f64) * f) as usize],
            _ => &out[..],
        };
        conn.write_all(send)?;
    }
    conn.flush()?;
    conn.shutdown(Shutdown::Both)
}
