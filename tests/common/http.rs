//! A small static HTTP server on 127.0.0.1 for `ADD <url>` tests: files of
//! one directory, nothing from the internet.
//!
//! - `GET /<path>`: the file, with `Last-Modified` from its mtime (none for
//!   a file dated the epoch, so a test can see the header missing).
//! - `GET /redirect/<path>`: 302 to `/<path>`; `GET /loop`: 302 to itself.
//! - Anything else, or a path with `..`: 404.
//!
//! Every response closes its connection; requests are served one at a time
//! by a thread that lives as long as the test process.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};

/// Serves `dir`; returns the base URL, `http://127.0.0.1:PORT`.
pub fn serve_dir(dir: &Path) -> String {
    let dir = dir.to_path_buf();
    listen(move |conn| serve(conn, &dir))
}

/// Hands each connection to 127.0.0.1:PORT to `handle`, one at a time, on a
/// thread that lives as long as the test process; returns the base URL.
pub fn listen(handle: impl Fn(TcpStream) -> std::io::Result<()> + Send + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let addr = listener.local_addr().expect("local address");
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            // A client that hangs up early is its own problem.
            let _ = handle(conn);
        }
    });
    format!("http://{addr}")
}

fn serve(mut conn: TcpStream, dir: &Path) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
    }
    let mut words = request.split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    if let Some(rest) = path.strip_prefix("/redirect/") {
        return respond(
            &mut conn,
            "302 Found",
            &[("Location", &format!("/{rest}"))],
            b"",
        );
    }
    if path == "/loop" {
        return respond(&mut conn, "302 Found", &[("Location", "/loop")], b"");
    }
    let file = match local_path(dir, path) {
        Some(f) if method == "GET" && f.is_file() => f,
        _ => return respond(&mut conn, "404 Not Found", &[], b"not found\n"),
    };
    let body = fs_err::read(&file)?;
    let mtime = fs_err::metadata(&file)?.modified()?;
    let mut headers = vec![];
    let date = httpdate::fmt_http_date(mtime);
    if mtime != std::time::UNIX_EPOCH {
        headers.push(("Last-Modified", date.as_str()));
    }
    respond(&mut conn, "200 OK", &headers, &body)
}

/// The file a URL path names inside `dir`, if it stays inside.
fn local_path(dir: &Path, path: &str) -> Option<PathBuf> {
    let rel = path.trim_start_matches('/');
    if rel.is_empty() || rel.split('/').any(|c| c == "..") {
        return None;
    }
    Some(dir.join(rel))
}

fn respond(
    conn: &mut TcpStream,
    status: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes())?;
    conn.write_all(body)?;
    conn.flush()
}
