//! ADD of a local archive: the destination is the archive's root, so links
//! inside the archive resolve within it. The expected results were taken
//! from Docker BuildKit (Debian's docker.io 20.10.24, `DOCKER_BUILDKIT=1
//! docker build`) with the same archives on a busybox base.
#![allow(clippy::unwrap_used)]

mod common;

use common::tarspec::{tar, T};
use common::{context, Strata};

/// Build `dockerfile` with `archives` (name, bytes) in the context.
fn build(s: &Strata, tag: &str, dockerfile: &str, archives: &[(&str, Vec<u8>)]) -> common::Run {
    let ctx = context(&[("Dockerfile", dockerfile)]);
    for (name, bytes) in archives {
        fs_err::write(ctx.path().join(name), bytes).unwrap();
    }
    s.run(&["build", "-t", tag, ctx.path().to_str().unwrap()])
}

#[test]
fn rootless_add_archive_resolves_its_links_inside_the_destination() {
    let s = Strata::new();
    s.import_busybox("busybox");
    // `symldir1 -> ..` at the archive's root points at the destination
    // itself. Docker BuildKit: /testsubdir/etc/myfile, no /etc/myfile.
    let rel = tar(&[
        T::Sym("symldir1", ".."),
        T::File("symldir1/etc/myfile", b"rel\n"),
    ]);
    build(
        &s,
        "rel",
        "FROM busybox\nADD rel.tar /testsubdir/\n",
        &[("rel.tar", rel)],
    )
    .success();
    let out = s
        .sh("rel", "find /testsubdir | sort; ls /etc/myfile 2>&1; true")
        .success()
        .stdout;
    assert_eq!(
        out,
        "/testsubdir\n/testsubdir/etc\n/testsubdir/etc/myfile\n/testsubdir/symldir1\n\
         ls: /etc/myfile: No such file or directory\n"
    );
    assert_eq!(
        s.sh("rel", "readlink /testsubdir/symldir1")
            .success()
            .stdout,
        "..\n"
    );

    // An absolute link inside the archive points into the destination,
    // where /etc does not exist. Docker BuildKit: "Error processing tar
    // file(exit status 1): open /abs/myfile2: no such file or directory",
    // and with a directory below the link, "mkdir /abs: file exists".
    for (name, entry) in [("abs", "abs/myfile2"), ("absdeep", "abs/sub/myfile3")] {
        let archive = tar(&[T::Sym("abs", "/etc"), T::File(entry, b"abs\n")]);
        let file = format!("{name}.tar");
        let dockerfile = format!("FROM busybox\nADD {file} /testsubdir/\n");
        let run = build(&s, name, &dockerfile, &[(&file, archive)]);
        assert_ne!(run.code, Some(0), "{name}: {run:#?}");
        assert!(
            run.stderr.contains("testsubdir/abs") && run.stderr.contains("No such file"),
            "{name}: {}",
            run.stderr
        );
        let busybox_etc = s
            .sh("busybox", "ls /etc | grep -c myfile; true")
            .success()
            .stdout;
        assert_eq!(busybox_etc, "0\n", "{name}");
    }

    // A hard link whose target goes down and up again stays inside.
    // Docker BuildKit: /h/link and /h/t/tgt, one inode, 2 links.
    let hl = tar(&[T::File("t/tgt", b"tgt\n"), T::Hard("link", "t/../t/tgt")]);
    build(
        &s,
        "hl",
        "FROM busybox\nADD hl.tar /h/\n",
        &[("hl.tar", hl)],
    )
    .success();
    let out = s
        .sh("hl", "find /h | sort; stat -c %h /h/link; cat /h/link")
        .success()
        .stdout;
    assert_eq!(out, "/h\n/h/link\n/h/t\n/h/t/tgt\n2\ntgt\n");

    // Anything that would leave the destination is still refused.
    let up = tar(&[T::Hard("h", "../../etc/passwd")]);
    let run = build(
        &s,
        "up",
        "FROM busybox\nADD up.tar /d/\n",
        &[("up.tar", up)],
    );
    assert_ne!(run.code, Some(0), "{run:#?}");
    assert!(
        run.stderr.contains("climbs above the root"),
        "{}",
        run.stderr
    );
}
