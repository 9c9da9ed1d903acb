//! Build flags of issue #16 that shape what RUN sees and what COPY reads:
//! `--add-host`, `--shm-size`, `--ulimit` (and the same on `run`),
//! `--ignorefile`, `--build-context`. Each is checked through the files
//! the image ends up with (`-o type=local`).
#![allow(clippy::unwrap_used)] // a test helper panicking is a failing test

mod common;

use std::path::Path;

use common::{Run, Strata};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `strata build ARGS -o type=local,dest=OUT CTX`, then OUT's `files`.
fn build_files(st: &Strata, ctx: &Path, args: &[&str], files: &[&str]) -> Vec<String> {
    let out = tempfile::tempdir().unwrap();
    let dest = format!("type=local,dest={}", s(out.path()));
    let mut all = vec!["build"];
    all.extend(args);
    all.extend(["-o", &dest, s(ctx)]);
    st.run(&all).success();
    files
        .iter()
        .map(|f| match fs_err::read(out.path().join(f)) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(_) => "(none)".into(),
        })
        .collect()
}

const PROBE: &str = "FROM busybox
RUN (grep -w db /etc/hosts || echo no db) > /hosts \
 && df -k /dev/shm | tail -1 | awk '{print $2}' > /shm \
 && (ulimit -Sn; ulimit -Hn) > /nofile
";

#[test]
fn rootless_build_add_host_shm_size_and_ulimit_reach_run() {
    let st = Strata::new();
    st.import_busybox("busybox");
    let ctx = common::context(&[("Dockerfile", PROBE)]);
    let files = ["hosts", "shm", "nofile"];
    let flagged = build_files(
        &st,
        ctx.path(),
        &[
            "--add-host",
            "db:10.1.2.3",
            "--add-host",
            "v6=[::1]",
            "--shm-size",
            "8m",
            "--ulimit",
            "nofile=512:1024",
        ],
        &files,
    );
    assert_eq!(flagged, ["10.1.2.3\tdb\n", "8192\n", "512\n1024\n"]);
    // The flags are in the RUN's key: without them it runs again, with
    // Docker's defaults (64m of /dev/shm), and is not the flagged one.
    let plain = build_files(&st, ctx.path(), &[], &files);
    assert_eq!(plain[0], "no db\n");
    assert_eq!(plain[1], "65536\n");
    assert_ne!(plain[2], "512\n1024\n");

    for (flag, value, want) in [
        ("--add-host", "db:host-gateway", "strata has no daemon"),
        ("--add-host", "db:10.1.2", "invalid IP address \"10.1.2\""),
        ("--ulimit", "bogus=1", "unknown limit \"bogus\""),
        (
            "--ulimit",
            "nofile=10:5",
            "soft limit is above the hard limit",
        ),
        ("--shm-size", "lots", "invalid size"),
    ] {
        let run = st.run(&["build", flag, value, s(ctx.path())]);
        assert_ne!(run.code, Some(0), "{flag} {value}: {run:#?}");
        assert!(run.stderr.contains(want), "{flag} {value}: {run:#?}");
        assert!(!run.stdout.contains("Step 1/"), "checked before building");
    }
}

#[test]
fn rootless_run_add_host_shm_size_and_ulimit() {
    let st = Strata::new();
    st.import_busybox("busybox");
    let run = st
        .run(&[
            "run",
            "--rm",
            "--add-host",
            "db:10.1.2.3",
            "--shm-size",
            "4m",
            "--ulimit",
            "nofile=256",
            "busybox",
            "sh",
            "-c",
            "grep -w db /etc/hosts; df -k /dev/shm | tail -1 | awk '{print $2}'; ulimit -Sn; ulimit -Hn",
        ])
        .success();
    assert_eq!(run.stdout, "10.1.2.3\tdb\n4096\n256\n256\n");
}

#[test]
fn rootless_build_ignorefile_replaces_dockerignore() {
    let st = Strata::new();
    st.import_busybox("busybox");
    let ctx = common::context(&[
        ("Dockerfile", "FROM busybox\nCOPY . /ctx/\n"),
        (".dockerignore", "a\n"),
        ("a", "a\n"),
        ("b", "b\n"),
    ]);
    let elsewhere = tempfile::tempdir().unwrap();
    let ignore = elsewhere.path().join("only-b.ignore");
    fs_err::write(&ignore, "b\n").unwrap();
    let files = ["ctx/a", "ctx/b"];
    let with = build_files(&st, ctx.path(), &["--ignorefile", s(&ignore)], &files);
    assert_eq!(with, ["a\n", "(none)"]);
    let without = build_files(&st, ctx.path(), &[], &files);
    assert_eq!(without, ["(none)", "b\n"]);
    let missing = st.run(&[
        "build",
        "--ignorefile",
        "/nonexistent/ignore",
        s(ctx.path()),
    ]);
    assert_ne!(missing.code, Some(0));
    assert!(
        missing.stderr.contains("/nonexistent/ignore"),
        "{missing:#?}"
    );
}

/// `--build-context`: a directory for `COPY --from`, an image for FROM
/// (docker-image://), an OCI layout's image (oci-layout://), in a store
/// that has only busybox.
#[test]
fn rootless_build_context_dir_image_and_layout() {
    let maker = Strata::new();
    maker.import_busybox("busybox");
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    let lib = common::context(&[("Dockerfile", "FROM busybox\nRUN echo layered > /layered\n")]);
    maker
        .run(&[
            "build",
            "-t",
            "lib:v1",
            "-o",
            &format!("type=oci,dest={},tar=false", s(&layout)),
            s(lib.path()),
        ])
        .success();

    let st = Strata::new();
    st.import_busybox("busybox");
    let extra = common::context(&[
        ("lib.txt", "from the named context\n"),
        ("secret.txt", "ignored\n"),
        (".dockerignore", "secret.txt\n"),
    ]);
    let ctx = common::context(&[(
        "Dockerfile",
        "FROM base AS first\nRUN echo on-base > /first\n\
         FROM lib\nCOPY --from=extra lib.txt /lib.txt\nCOPY --from=extra . /extra/\n\
         COPY --from=first /first /first\n",
    )]);
    let got = build_files(
        &st,
        ctx.path(),
        &[
            "--build-context",
            "base=docker-image://busybox",
            "--build-context",
            &format!("lib=oci-layout://{}:v1", s(&layout)),
            "--build-context",
            &format!("extra={}", s(extra.path())),
        ],
        &[
            "layered",
            "lib.txt",
            "extra/secret.txt",
            "first",
            "bin/busybox",
        ],
    );
    assert_eq!(got[0], "layered\n");
    assert_eq!(got[1], "from the named context\n");
    assert_eq!(got[2], "(none)", ".dockerignore of the named context");
    assert_eq!(got[3], "on-base\n");
    assert_ne!(got[4], "(none)");

    // A directory is no image; a missing directory fails before building.
    let from_dir = common::context(&[("Dockerfile", "FROM extra\n")]);
    let run: Run = st.run(&[
        "build",
        "--build-context",
        &format!("extra={}", s(extra.path())),
        s(from_dir.path()),
    ]);
    assert_ne!(run.code, Some(0));
    assert!(
        run.stderr
            .contains("a directory is read by COPY --from only"),
        "{run:#?}"
    );
    let missing = st.run(&[
        "build",
        "--build-context",
        "extra=/nonexistent/dir",
        s(from_dir.path()),
    ]);
    assert!(
        missing
            .stderr
            .contains("/nonexistent/dir is not a directory"),
        "{missing:#?}"
    );
    let git = st.run(&[
        "build",
        "--build-context",
        "x=https://example.com/r.git",
        s(from_dir.path()),
    ]);
    assert!(git.stderr.contains("not supported yet"), "{git:#?}");
}
