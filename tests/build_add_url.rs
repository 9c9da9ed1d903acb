//! `ADD <http URL>` in `strata build`, against a static server on
//! 127.0.0.1: naming, mode, owner and time of the download, `--checksum`,
//! HTTP failures, the cache, and URLs and inline files mixed with context
//! files in one step.
#![allow(clippy::unwrap_used)] // a test helper panicking is a failing test

mod common;

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use common::http::serve_dir;
use common::{Run, Strata};

/// Last-Modified of the served files (2020-09-13T12:26:40Z).
const SERVED_AT: u64 = 1_600_000_000;

/// Writes a file to serve, dated `secs` after the epoch.
fn served(dir: &Path, name: &str, content: &[u8], secs: u64) {
    let path = dir.join(name);
    fs_err::write(&path, content).unwrap();
    let f = fs_err::File::options().write(true).open(&path).unwrap();
    f.set_modified(UNIX_EPOCH + Duration::from_secs(secs))
        .unwrap();
}

/// Builds `dockerfile` in a context holding it and `files`.
fn build(s: &Strata, dockerfile: &str, files: &[(&str, &str)], extra: &[&str]) -> Run {
    let ctx = tempfile::tempdir().unwrap();
    fs_err::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
    for (name, content) in files {
        fs_err::write(ctx.path().join(name), content).unwrap();
    }
    let mut args = vec!["build"];
    args.extend(extra);
    args.push(ctx.path().to_str().unwrap());
    s.run(&args)
}

fn sha256(data: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

/// A tar holding one file, to show it is not unpacked.
fn tar_bytes() -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(3);
    h.set_mode(0o644);
    h.set_mtime(0);
    tar.append_data(&mut h, "inside.txt", &b"in\n"[..]).unwrap();
    tar.into_inner().unwrap()
}

#[test]
fn rootless_build_add_url_names_dates_and_never_unpacks() {
    let s = Strata::new();
    s.import_busybox("busybox");
    let www = tempfile::tempdir().unwrap();
    served(www.path(), "hello.txt", b"hello\n", SERVED_AT);
    served(www.path(), "bundle.tar", &tar_bytes(), SERVED_AT);
    served(www.path(), "undated.txt", b"undated\n", 0);
    let url = serve_dir(www.path());
    let sum = sha256(b"hello\n");
    let dockerfile = format!(
        "FROM busybox
ADD {url}/hello.txt /dl/
ADD {url}/hello.txt /renamed.txt
ADD --chmod=755 --chown=1:2 {url}/hello.txt /owned.txt
ADD {url}/bundle.tar /opt/
ADD {url}/redirect/hello.txt /moved/
ADD {url}/undated.txt /undated.txt
ADD --checksum={sum} {url}/hello.txt /checked.txt
ADD {url}/hello.txt {url}/undated.txt /both/
ADD {url}/hello.txt local.tar /mixed/
COPY <<note.txt local.tar /inline/
noted
note.txt
"
    );
    let local_tar = String::from_utf8(tar_bytes()).unwrap();
    build(
        &s,
        &dockerfile,
        &[("local.tar", &local_tar)],
        &["-t", "fetched"],
    )
    .success();
    let script = "for f in /dl/hello.txt /renamed.txt /owned.txt /opt/bundle.tar \
                  /moved/hello.txt /undated.txt /checked.txt /both/hello.txt /both/undated.txt; \
                  do echo \"$f $(stat -c '%F %a %u:%g %Y' $f)\"; done; \
                  cat /dl/hello.txt; ls /opt; ls /mixed /inline; cat /inline/note.txt";
    let out = s
        .run(&["run", "--rm", "fetched", "sh", "-c", script])
        .success()
        .stdout;
    let at = SERVED_AT;
    assert_eq!(
        out,
        format!(
            "/dl/hello.txt regular file 600 0:0 {at}
/renamed.txt regular file 600 0:0 {at}
/owned.txt regular file 755 1:2 {at}
/opt/bundle.tar regular file 600 0:0 {at}
/moved/hello.txt regular file 600 0:0 {at}
/undated.txt regular file 600 0:0 0
/checked.txt regular file 600 0:0 {at}
/both/hello.txt regular file 600 0:0 {at}
/both/undated.txt regular file 600 0:0 0
hello
bundle.tar
/inline:
local.tar
note.txt

/mixed:
hello.txt
inside.txt
noted
"
        )
    );
}

#[test]
fn rootless_build_add_url_failures_say_what_and_where() {
    let s = Strata::new();
    s.import_busybox("busybox");
    let www = tempfile::tempdir().unwrap();
    served(www.path(), "hello.txt", b"hello\n", SERVED_AT);
    let url = serve_dir(www.path());
    let wrong = format!("sha256:{}", "0".repeat(64));
    // A port nothing listens on: bound, then released.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    // (the step after FROM, what stderr must say)
    let cases: Vec<(String, Vec<String>)> = vec![
        (
            format!("ADD --checksum={wrong} {url}/hello.txt /h"),
            vec![format!(
                "checksum mismatch for {url}/hello.txt: expected {wrong}, got {}",
                sha256(b"hello\n")
            )],
        ),
        (
            format!("ADD --checksum={wrong} local.txt /h"),
            vec!["checksum can't be specified for non-HTTP(S) sources".into()],
        ),
        (
            format!("ADD --checksum=md5:abc {url}/hello.txt /h"),
            vec!["--checksum: unsupported digest algorithm".into()],
        ),
        (
            format!("ADD {url}/missing.txt /m"),
            vec![format!("GET {url}/missing.txt: 404 Not Found")],
        ),
        (
            format!("ADD {url}/redirect/gone.txt /m"),
            vec![format!(
                "GET {url}/redirect/gone.txt: 404 Not Found (redirected to {url}/gone.txt)"
            )],
        ),
        (
            format!("ADD {url}/loop /m"),
            vec![format!("GET {url}/loop: "), "too many redirects".into()],
        ),
        (
            format!("ADD http://{closed}/f /f"),
            vec![format!("GET http://{closed}/f: "), "refused".into()],
        ),
        (
            format!("ADD {url}/ /d/"),
            vec![format!("cannot determine a file name for {url}/")],
        ),
        (
            // A git source: fetched as a repository, not downloaded.
            "ADD https://example.invalid/repo.git /src".into(),
            vec!["fetching https://example.invalid/repo.git: ".into()],
        ),
        // COPY takes a URL as a path in the context, as Docker does.
        (format!("COPY {url}/hello.txt /h"), vec!["not found".into()]),
    ];
    for (step, needles) in &cases {
        let dockerfile = format!("FROM busybox\nENV A=1\n{step}\n");
        let run = build(&s, &dockerfile, &[("local.txt", "x")], &[]);
        assert_eq!(run.code, Some(1), "{step}: {run:#?}");
        for needle in needles.iter().chain([&"Dockerfile:3:1) ".to_string()]) {
            assert!(run.stderr.contains(needle), "{step}: {}", run.stderr);
        }
    }
}

#[test]
fn rootless_build_add_url_cache_follows_the_content() {
    let s = Strata::new();
    s.import_busybox("busybox");
    let www = tempfile::tempdir().unwrap();
    served(www.path(), "data.txt", b"one\n", SERVED_AT);
    let url = serve_dir(www.path());
    let dockerfile = format!("FROM busybox\nADD {url}/data.txt /data.txt\nRUN cat /data.txt\n");
    let hits = |out: &str| out.matches("Using cache").count();

    let first = build(&s, &dockerfile, &[], &["-t", "d"]).success().stdout;
    assert_eq!(hits(&first), 0, "{first}");
    let again = build(&s, &dockerfile, &[], &["-t", "d"]).success().stdout;
    assert_eq!(hits(&again), 2, "an unchanged file hits: {again}");

    // Same size and date, new content: the download is keyed by content.
    served(www.path(), "data.txt", b"two\n", SERVED_AT);
    let changed = build(&s, &dockerfile, &[], &["-t", "d"]).success().stdout;
    assert_eq!(hits(&changed), 0, "{changed}");
    assert_eq!(
        s.run(&["run", "--rm", "d", "cat", "/data.txt"])
            .success()
            .stdout,
        "two\n"
    );

    // A new Last-Modified alone changes the layer (the file's mtime).
    served(www.path(), "data.txt", b"two\n", SERVED_AT + 60);
    let touched = build(&s, &dockerfile, &[], &["-t", "d"]).success().stdout;
    assert_eq!(hits(&touched), 0, "{touched}");
    let mtime = s
        .run(&["run", "--rm", "d", "stat", "-c", "%Y", "/data.txt"])
        .success()
        .stdout;
    assert_eq!(mtime.trim(), (SERVED_AT + 60).to_string());
}
