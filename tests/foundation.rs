//! The foundation: the CLI surface, the user namespace strata enters, the
//! `info` probes, the test machine itself, and the base image fixture.

#![allow(clippy::unwrap_used)] // a test helper panicking is a failing test

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{registry_addr, subid_ranges, whoami, Run, Strata};

/// The parsed `/proc/self/{uid,gid}_map` lines of a command run by `strata unshare`.
fn map_inside(strata: &Strata, file: &str) -> (Vec<(u64, u64, u64)>, Run) {
    let run = strata.run(&["unshare", "cat", file]).success();
    let lines = run
        .stdout
        .lines()
        .map(|l| {
            let n: Vec<u64> = l.split_whitespace().map(|x| x.parse().unwrap()).collect();
            (n[0], n[1], n[2])
        })
        .collect();
    (lines, run)
}

fn info_json(strata: &Strata, extra: &[&str]) -> serde_json::Value {
    let mut args = extra.to_vec();
    args.extend(["info", "--format", "json"]);
    let run = strata.run(&args).success();
    serde_json::from_str(&run.stdout).expect("info --format json prints JSON")
}

fn check<'a>(info: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    info["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no check named {name} in {info:#}"))
}

#[test]
fn rootless_runs_unprivileged_without_capabilities() {
    assert!(
        !nix::unistd::Uid::effective().is_root(),
        "the rootless tier must not run as root"
    );
    let status = fs_err::read_to_string("/proc/self/status").unwrap();
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .map(str::trim)
        .expect("CapEff line");
    assert_eq!(
        u64::from_str_radix(cap_eff, 16).unwrap(),
        0,
        "CapEff must be empty"
    );
}

#[test]
fn rootless_info_reports_every_probe_working() {
    let strata = Strata::new();
    let (user, uid, _) = whoami();
    let info = info_json(&strata, &[]);
    let ranges = subid_ranges("/etc/subuid", &user, uid);
    assert!(
        !ranges.is_empty(),
        "the rootless tier's user needs a subuid range"
    );
    let mapped: u64 = 1 + ranges.iter().map(|r| r.1).sum::<u64>();
    for name in [
        "subuid ranges",
        "subgid ranges",
        "newuidmap",
        "newgidmap",
        "user namespace",
        "id mapping",
        "kernel overlay",
        "/dev/fuse",
        "fuse-overlayfs",
        "storage driver",
    ] {
        assert_eq!(
            check(&info, name)["ok"],
            true,
            "{name}: {:#}",
            check(&info, name)
        );
    }
    let want_ranges = format!("{}:{}", ranges[0].0, ranges[0].1);
    assert!(check(&info, "subuid ranges")["detail"]
        .as_str()
        .unwrap()
        .contains(&want_ranges));
    let mapping = check(&info, "id mapping")["detail"].as_str().unwrap();
    assert!(mapping.contains(&format!("{mapped} uids")), "{mapping}");
    assert!(check(&info, "fuse-overlayfs")["detail"]
        .as_str()
        .unwrap()
        .contains("version"));
    assert_eq!(info["storageDriver"], "overlay");
    assert_eq!(info["isolation"]["isolation"], "rootless", "{info:#}");
    assert_eq!(info["user"]["uid"], uid);
    assert_eq!(info["storeRoot"], strata.root.path().to_str().unwrap());
}

#[test]
fn rootless_info_text_has_a_line_per_probe() {
    let strata = Strata::new();
    let run = strata.run(&["info"]).success();
    for key in [
        "strata version:",
        "store root:",
        "kernel:",
        "environment:",
        "isolation:",
        "rung 1 (rootless):",
        "rung 4 (chroot):",
        "user namespace:",
        "kernel overlay:",
        "storage driver:",
    ] {
        assert!(
            run.stdout.lines().any(|l| l.starts_with(key)),
            "{key} missing:\n{}",
            run.stdout
        );
    }
    assert!(!run.stdout.contains("FAILED"), "{}", run.stdout);
    let row = |key: &str| {
        run.stdout
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_default()
    };
    assert!(
        row("isolation:").contains("rung 1 (rootless)"),
        "{}",
        run.stdout
    );
    assert!(
        row("rung 1 (rootless):").ends_with(" used"),
        "{}",
        run.stdout
    );
}

#[test]
fn rootless_info_honours_a_forced_driver() {
    let strata = Strata::new();
    let info = info_json(&strata, &["--storage-driver", "fuse-overlayfs"]);
    assert_eq!(info["storageDriver"], "fuse-overlayfs");
    let via_env = Run::of(
        strata
            .cmd()
            .env("STRATA_STORAGE_DRIVER", "vfs")
            .args(["info", "--format", "json"])
            .output()
            .unwrap(),
    )
    .success();
    let info: serde_json::Value = serde_json::from_str(&via_env.stdout).unwrap();
    assert_eq!(info["storageDriver"], "vfs");
}

#[test]
fn rootless_unshare_maps_the_subordinate_ranges() {
    let strata = Strata::new();
    let (user, uid, gid) = whoami();
    for (file, outer, subfile) in [
        ("/proc/self/uid_map", uid, "/etc/subuid"),
        ("/proc/self/gid_map", gid, "/etc/subgid"),
    ] {
        let mut want = vec![(0, u64::from(outer), 1)];
        let mut next = 1;
        for (start, count) in subid_ranges(subfile, &user, uid) {
            want.push((next, start, count));
            next += count;
        }
        let (got, run) = map_inside(&strata, file);
        assert_eq!(got, want, "{file}");
        assert_eq!(run.stderr, "", "no warning with a full mapping");
    }
    let id = strata.run(&["unshare", "id", "-u"]).success();
    assert_eq!(id.stdout.trim(), "0");
}

#[test]
fn rootless_unshare_passes_exit_codes_on() {
    let strata = Strata::new();
    assert_eq!(strata.run(&["unshare", "sh", "-c", "exit 7"]).code, Some(7));
    assert_eq!(
        strata.run(&["unshare", "sh", "-c", "kill -TERM $$"]).code,
        Some(143)
    );
    let missing = strata.run(&["unshare", "/nonexistent/program"]);
    assert_eq!(missing.code, Some(127));
    assert!(
        missing.stderr.contains("/nonexistent/program"),
        "{}",
        missing.stderr
    );
}

#[test]
fn rootless_unshare_mounts_do_not_leak_to_the_host() {
    let strata = Strata::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let script = format!("mount -t tmpfs tmpfs {d} && touch {d}/inside && ls {d}");
    let run = strata.run(&["unshare", "sh", "-c", &script]).success();
    assert_eq!(run.stdout.trim(), "inside");
    assert!(
        !dir.path().join("inside").exists(),
        "the tmpfs mount leaked out"
    );
}

#[test]
fn rootless_nosubid_info_shows_the_single_id_fallback_and_the_fix() {
    let (user, uid, _) = whoami();
    assert!(
        subid_ranges("/etc/subuid", &user, uid).is_empty(),
        "this test needs a user without a subuid range"
    );
    let strata = Strata::new();
    let info = info_json(&strata, &[]);
    assert_eq!(check(&info, "user namespace")["ok"], true);
    let ranges = check(&info, "subuid ranges");
    assert_eq!(ranges["ok"], false);
    assert!(
        ranges["fix"]
            .as_str()
            .unwrap()
            .starts_with(&format!("add {user}:")),
        "{ranges:#}"
    );
    let mapping = check(&info, "id mapping");
    assert_eq!(mapping["ok"], false);
    assert!(
        mapping["detail"].as_str().unwrap().contains("single id"),
        "{mapping:#}"
    );
    assert!(
        info["storageDriver"].is_string(),
        "a driver still works: {info:#}"
    );
    let text = strata.run(&["info"]).success().stdout;
    let fix = text
        .lines()
        .find(|l| l.trim_start().starts_with("fix: add "))
        .expect("a fix line");
    assert!(fix.contains("/etc/subuid") && fix.contains(&user), "{fix}");
}

#[test]
fn rootless_nosubid_unshare_warns_once_and_maps_one_id() {
    let (_, uid, _) = whoami();
    let strata = Strata::new();
    let (got, run) = map_inside(&strata, "/proc/self/uid_map");
    assert_eq!(got, vec![(0, u64::from(uid), 1)]);
    let warnings: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("warning:"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", run.stderr);
    assert!(
        warnings[0].contains("no subordinate uid range") && warnings[0].contains("fix: add"),
        "{}",
        warnings[0]
    );
    assert_eq!(
        strata.run(&["unshare", "id", "-u"]).success().stdout.trim(),
        "0"
    );
}

#[test]
fn registry_answers_the_v2_api_check() {
    let addr = registry_addr();
    let mut conn = TcpStream::connect(&addr).expect("connect to the test registry");
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        conn,
        "GET /v2/ HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    conn.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(
        reply
            .to_ascii_lowercase()
            .contains("docker-distribution-api-version: registry/2.0"),
        "{reply}"
    );
}

#[test]
fn cli_version_and_usage_errors() {
    let strata = Strata::new();
    let version = strata.run(&["--version"]).success();
    assert_eq!(
        version.stdout.trim(),
        format!("strata {}", env!("CARGO_PKG_VERSION"))
    );
    let bad = strata.run(&["--storage-driver", "bogus", "info"]);
    assert_eq!(bad.code, Some(125), "Docker's exit code for a usage error");
    assert!(bad.stderr.contains("bogus"), "{}", bad.stderr);
    let unknown = strata.run(&["frobnicate"]);
    assert_eq!(unknown.code, Some(125));
}

#[test]
fn busybox_rootfs_fixture_is_deterministic() {
    let script = common::project_dir().join("scripts/busybox-rootfs.sh");
    let dir = tempfile::tempdir().unwrap();
    let make = |name: &str| {
        let out = dir.path().join(name);
        let status = std::process::Command::new("bash")
            .arg(&script)
            .arg(&out)
            .status()
            .unwrap();
        assert!(status.success());
        fs_err::read(out).unwrap()
    };
    let (a, b) = (make("a.tar"), make("b.tar"));
    assert!(a == b, "two runs gave different tarballs");
    let mut archive = tar::Archive::new(a.as_slice());
    let mut names = Vec::new();
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        assert_eq!(entry.header().mtime().unwrap(), 0);
        assert_eq!(entry.header().uid().unwrap(), 0);
        names.push(entry.path().unwrap().to_string_lossy().into_owned());
    }
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "entries are sorted");
    for want in [
        "./bin/busybox",
        "./bin/sh",
        "./etc/passwd",
        "./etc/group",
        "./tmp/",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} missing");
    }
}

#[test]
fn rootless_output_into_a_closed_pipe_ends_quietly() {
    let s = Strata::new();
    s.import_busybox("busybox");
    // Far more than a pipe holds, so strata is still writing when the
    // reader goes away.
    let mut args = vec!["inspect"];
    args.extend(std::iter::repeat_n("busybox", 300));
    let mut child = s
        .cmd()
        .args(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 1];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(first, *b"[");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(141), "{stderr}");
}
