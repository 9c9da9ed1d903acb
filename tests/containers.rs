//! Containers without a daemon, as an unprivileged user: the seeds' flow,
//! the view from inside, exit codes, options, changes across drivers, the
//! terminal, and tall images. Isolation tests are in containers_isolation.rs.
#![allow(clippy::unwrap_used)] // a test helper panicking is a failing test

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{busybox_tar, busybox_variant, file_entry, Strata};

#[test]
fn rootless_container_seed_flow() {
    let s = Strata::new();
    s.import_busybox("busybox");
    s.run(&[
        "run",
        "--name",
        "c1",
        "busybox",
        "sh",
        "-c",
        "adduser -D admin && echo hi > /hello",
    ])
    .success();
    let id = s
        .run(&[
            "commit",
            "-m",
            "with a user named admin",
            "-a",
            "me",
            "c1",
            "busybox:v1",
        ])
        .success();
    assert!(id.stdout.trim().starts_with("sha256:"), "{}", id.stdout);
    let who = s
        .run(&["run", "--rm", "busybox:v1", "id", "admin"])
        .success();
    assert!(
        who.stdout.starts_with("uid=1000(admin) gid=1000(admin)"),
        "{}",
        who.stdout
    );
    let history = s.run(&["history", "busybox:v1"]).success().stdout;
    let top = history.lines().nth(1).unwrap();
    assert!(
        top.contains("with a user named admin") && top.contains("adduser -D admin"),
        "{history}"
    );
    assert!(!top.contains(" 0B "), "the new layer has a size: {top}");
    let refused = s.run(&["rmi", "busybox"]);
    assert_ne!(
        refused.code,
        Some(0),
        "rmi must refuse while c1 uses busybox"
    );
    assert!(refused.stderr.contains("container"), "{}", refused.stderr);
    assert_eq!(s.run(&["rm", "c1"]).success().stdout.trim(), "c1");
    // busybox:v1 was built on it: the image stays, only the tag goes (Docker).
    assert_eq!(
        s.run(&["rmi", "busybox"]).success().stdout,
        "Untagged: busybox:latest\n"
    );
    // The committed image still runs without its base's tag.
    assert_eq!(
        s.run(&["run", "--rm", "busybox:v1", "cat", "/hello"])
            .success()
            .stdout,
        "hi\n"
    );
    s.run(&["system", "check"]).success();
}

#[test]
fn rootless_container_inside_view() {
    let s = Strata::new();
    s.import_busybox("busybox");
    let out = s
        .run(&["run", "--rm", "busybox", "sh", "-c", "id -u; grep CapEff /proc/self/status; ps -o pid | tail -n +2; chown 1000:1000 /tmp && stat -c %u:%g /tmp"])
        .success()
        .stdout;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "0");
    assert_eq!(
        lines[1], "CapEff:\t00000000a80425fb",
        "Docker's default capability set"
    );
    let pids: Vec<u32> = lines[2..lines.len() - 1]
        .iter()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert!(
        pids.contains(&1) && pids.iter().all(|p| *p < 10),
        "only the container's processes: {pids:?}"
    );
    assert_eq!(
        *lines.last().unwrap(),
        "1000:1000",
        "chown to a subordinate id works"
    );
    let net = s
        .run(&[
            "run",
            "--rm",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "ip -o link | cut -d: -f2; ip route",
        ])
        .success()
        .stdout;
    assert_eq!(
        net.trim(),
        "lo",
        "--network none has only loopback and no route: {net}"
    );
    let host_net = s
        .run(&["run", "--rm", "busybox", "ip", "-o", "link"])
        .success()
        .stdout;
    let host_links = fs_err::read_dir("/sys/class/net").unwrap().count();
    assert_eq!(
        host_net.lines().count(),
        host_links,
        "the host's network by default"
    );
}

#[test]
fn rootless_container_exit_codes_and_options() {
    let s = Strata::new();
    s.import_busybox("busybox");
    assert_eq!(
        s.run(&["run", "--rm", "busybox", "sh", "-c", "exit 3"])
            .code,
        Some(3)
    );
    let missing = s.run(&["run", "--rm", "busybox", "no-such-command"]);
    assert_eq!(missing.code, Some(127));
    assert!(
        missing.stderr.contains("no-such-command"),
        "{}",
        missing.stderr
    );
    assert_eq!(
        s.run(&["run", "--rm", "busybox", "/etc/passwd"]).code,
        Some(126)
    );
    assert_eq!(
        s.run(&["run", "--rm", "no-such-image", "true"]).code,
        Some(125)
    );
    let out = s
        .run(&[
            "run",
            "--rm",
            "-e",
            "GREETING=hello",
            "-w",
            "/made/here",
            "-u",
            "nobody",
            "busybox",
            "sh",
            "-c",
            "echo $GREETING; pwd; id -u",
        ])
        .success()
        .stdout;
    assert_eq!(out, "hello\n/made/here\n65534\n");
    let unknown = s.run(&["run", "--rm", "-u", "ghost", "busybox", "true"]);
    assert_eq!(unknown.code, Some(125));
    assert!(unknown.stderr.contains("ghost"), "{}", unknown.stderr);
    let host = tempfile::tempdir().unwrap();
    let v = format!("{}:/data", host.path().display());
    s.run(&[
        "run",
        "--rm",
        "-v",
        &v,
        "busybox",
        "sh",
        "-c",
        "echo out > /data/f",
    ])
    .success();
    assert_eq!(
        fs_err::read_to_string(host.path().join("f")).unwrap(),
        "out\n"
    );
    let ro = format!("{}:/data:ro", host.path().display());
    assert_ne!(
        s.run(&[
            "run",
            "--rm",
            "-v",
            &ro,
            "busybox",
            "sh",
            "-c",
            "echo x > /data/g"
        ])
        .code,
        Some(0)
    );
    assert!(!host.path().join("g").exists());
    assert_eq!(
        s.run(&["ps", "-aq"]).success().stdout,
        "",
        "--rm removed every container"
    );
}

#[test]
fn rootless_container_changes_leave_out_mount_points() {
    let s = Strata::new();
    s.import_busybox("busybox");
    let host = tempfile::tempdir().unwrap();
    let v = format!("{}:/new/mount/point", host.path().display());
    s.run(&["run", "--name", "quiet", "-v", &v, "busybox", "true"])
        .success();
    assert_eq!(
        s.run(&["diff", "quiet"]).success().stdout,
        "",
        "mount points are not changes"
    );
    s.run(&[
        "run",
        "--name",
        "busy",
        "busybox",
        "sh",
        "-c",
        "echo x > /etc/added; rm /etc/group; mkdir /d",
    ])
    .success();
    assert_eq!(
        s.run(&["diff", "busy"]).success().stdout,
        "A /d\nC /etc\nA /etc/added\nD /etc/group\n"
    );
    let tar = tempfile::tempdir().unwrap();
    let out = tar.path().join("rootfs.tar");
    s.run(&["export", "-o", out.to_str().unwrap(), "busy"])
        .success();
    let names: Vec<String> = tar::Archive::new(fs_err::File::open(&out).unwrap())
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .any(|n| n.trim_end_matches('/').ends_with("etc/added")),
        "export has the new file"
    );
    assert!(
        !names.iter().any(|n| n.ends_with("etc/group")),
        "export lacks the deleted file"
    );
    assert!(
        names.iter().any(|n| n.ends_with("bin/busybox")),
        "export has the image's files"
    );
}

#[test]
fn rootless_container_fuse_overlayfs_driver() {
    let s = Strata::new();
    s.import_busybox("busybox");
    s.run(&[
        "--storage-driver",
        "fuse-overlayfs",
        "run",
        "--name",
        "f",
        "busybox",
        "sh",
        "-c",
        "rm -r /home; mkdir /home; echo y > /home/new",
    ])
    .success();
    let diff = s.run(&["diff", "f"]).success().stdout;
    assert_eq!(
        diff, "C /home\nA /home/new\n",
        "an opaque dir from fuse-overlayfs reads like overlay's"
    );
    s.run(&["commit", "f", "fused"]).success();
    assert_eq!(
        s.run(&["run", "--rm", "fused", "ls", "/home"])
            .success()
            .stdout,
        "new\n"
    );
}

#[test]
fn rootless_nosubid_container_runs_with_one_id() {
    let s = Strata::new();
    s.import_busybox("busybox");
    let run = s.run(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "id -u; chown 1000 /tmp",
    ]);
    assert_eq!(run.stdout.lines().next(), Some("0"));
    assert_ne!(run.code, Some(0), "chown to an unmapped id must fail");
    assert!(
        run.stderr.contains("warning: no subordinate uid range"),
        "{}",
        run.stderr
    );
}

/// Runs `strata run -it` in a detached tmux session, types `keys`, and
/// returns the screen once `done` shows on it.
fn under_tmux(s: &Strata, keys: &[&str], done: &str) -> String {
    let socket = format!("strata-test-{}", std::process::id());
    let tmux = |args: &[&str]| {
        std::process::Command::new("tmux")
            .arg("-L")
            .arg(&socket)
            .args(args)
            .output()
            .unwrap()
    };
    let cmd = format!(
        "STRATA_ROOT={} {} run -it --rm busybox sh; echo EXITED=$?; sleep 60",
        s.root.path().display(),
        common::strata_bin().display()
    );
    assert!(tmux(&["new-session", "-d", "-x", "100", "-y", "30", &cmd])
        .status
        .success());
    let screen = || String::from_utf8_lossy(&tmux(&["capture-pane", "-p"]).stdout).into_owned();
    let wait_for = |text: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let shown = screen();
            if shown.contains(text) {
                return shown;
            }
            assert!(Instant::now() < deadline, "{text:?} never showed:\n{shown}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_for("/ #");
    for key in keys {
        tmux(&["send-keys", key]);
        std::thread::sleep(Duration::from_millis(300));
    }
    let shown = wait_for(done);
    tmux(&["kill-server"]);
    shown
}

#[test]
fn rootless_container_interactive_terminal_under_tmux() {
    let s = Strata::new();
    s.import_busybox("busybox");
    let screen = under_tmux(
        &s,
        &[
            "echo $((6*7)); stty size; [ -t 0 ] && echo on-a-tty; tty; echo T=$TERM",
            "Enter",
            "sleep 100",
            "Enter",
            "C-c",
            "exit 5",
            "Enter",
        ],
        "EXITED=",
    );
    assert!(screen.contains("\n42\n"), "{screen}");
    assert!(
        screen.contains("30 100"),
        "the window size is passed on: {screen}"
    );
    assert!(screen.contains("on-a-tty"), "{screen}");
    // As Docker's `run -t` (docker.io 20.10: TERM=xterm).
    assert!(screen.contains("\nT=xterm\n"), "{screen}");
    assert!(
        screen.contains("\n/dev/pts/0\n"),
        "the terminal is the container's own, named inside it: {screen}"
    );
    assert!(
        screen.contains("EXITED=5"),
        "^C went to the program, exit 5 came back: {screen}"
    );
}

/// File operations every driver must record the same way.
const OPS: &str = "set -e
echo new > /new-file
echo more >> /etc/passwd
rm /etc/group
rm -r /lowerdir && mkdir /lowerdir && echo again > /lowerdir/x
echo f > /swap && rm /swap && mkdir /swap && rmdir /swap && echo f > /swap
rm /lowerfile && mkdir /lowerfile && rmdir /lowerfile && echo back > /lowerfile
rm -r /gone
ln /new-file /new-link
touch /capfile
mkfifo /fifo
touch -h -d '2001-02-03 04:05:06' /new-file /etc/passwd /etc /lowerdir /lowerdir/x /swap /lowerfile /capfile /fifo";

#[test]
fn rootless_container_drivers_make_identical_layers() {
    let s = Strata::new();
    let dir = tempfile::tempdir().unwrap();
    // security.capability, VFS_CAP_REVISION_2 with CAP_NET_RAW effective+permitted.
    let mut cap = vec![0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00];
    cap.extend([0u8; 12]);
    let tar = busybox_variant(dir.path(), &[], |b| {
        file_entry(b, "lowerdir/", b"", 0o755);
        file_entry(b, "lowerdir/a", b"a", 0o644);
        file_entry(b, "lowerfile", b"lower", 0o644);
        file_entry(b, "gone/", b"", 0o755);
        file_entry(b, "gone/deep", b"d", 0o644);
        b.append_pax_extensions([("SCHILY.xattr.security.capability", cap.as_slice())])
            .unwrap();
        file_entry(b, "capfile", b"cap", 0o755);
    });
    s.run(&["import", tar.to_str().unwrap(), "base"]).success();
    let mut layers = Vec::new();
    for driver in ["overlay", "fuse-overlayfs", "vfs"] {
        s.run(&[
            "--storage-driver",
            driver,
            "run",
            "--name",
            driver,
            "base",
            "sh",
            "-c",
            OPS,
        ])
        .success();
        let diff = s.run(&["diff", driver]).success().stdout;
        s.run(&["commit", driver, &format!("made-by-{driver}")])
            .success();
        let inspect: serde_json::Value = serde_json::from_str(
            &s.run(&["inspect", &format!("made-by-{driver}")])
                .success()
                .stdout,
        )
        .unwrap();
        let top = inspect[0]["RootFS"]["Layers"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .as_str()
            .unwrap()
            .to_string();
        layers.push((driver, top, diff));
    }
    let (_, first_layer, first_diff) = &layers[0];
    for (driver, layer, diff) in &layers[1..] {
        assert_eq!(diff, first_diff, "{driver}'s diff differs from overlay's");
        assert_eq!(
            layer, first_layer,
            "{driver}'s layer differs from overlay's"
        );
    }
    for want in [
        "A /new-file",
        "C /etc/passwd",
        "D /etc/group",
        "C /lowerdir",
        "A /swap",
        "C /lowerfile",
        "D /gone",
        "A /new-link",
        "C /capfile",
        "A /fifo",
    ] {
        assert!(
            first_diff.lines().any(|l| l == want),
            "{want} missing from:\n{first_diff}"
        );
    }
    // What the layer holds comes back in a container of the committed image.
    let check = "cat /lowerdir/x; ls /lowerdir; test -p /fifo && echo fifo; stat -c %h /new-file; test -e /gone || echo no-gone";
    let out = s
        .run(&["run", "--rm", "made-by-vfs", "sh", "-c", check])
        .success()
        .stdout;
    assert_eq!(out, "again\nx\nfifo\n2\nno-gone\n");
}

/// A docker-archive of busybox plus `extra` one-file layers, made here.
fn many_layer_archive(dir: &Path, extra: usize) -> std::path::PathBuf {
    use sha2::{Digest, Sha256};
    let mut files: Vec<(String, Vec<u8>)> =
        vec![("base.tar".into(), fs_err::read(busybox_tar()).unwrap())];
    for i in 0..extra {
        let mut b = tar::Builder::new(Vec::new());
        let data = format!("layer {i}\n");
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        b.append_data(&mut h, format!("layers/f{i:03}"), data.as_bytes())
            .unwrap();
        files.push((format!("l{i}.tar"), b.into_inner().unwrap()));
    }
    let diff_ids: Vec<String> = files
        .iter()
        .map(|(_, d)| format!("sha256:{}", hex::encode(Sha256::digest(d))))
        .collect();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": diff_ids.iter().map(|_| serde_json::json!({"created_by": "test"})).collect::<Vec<_>>(),
    });
    let config_bytes = serde_json::to_vec(&config).unwrap();
    let config_name = format!("{}.json", hex::encode(Sha256::digest(&config_bytes)));
    let manifest = serde_json::json!([{
        "Config": config_name,
        "RepoTags": ["tall:latest"],
        "Layers": files.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
    }]);
    let out = dir.join("tall.tar");
    let mut b = tar::Builder::new(fs_err::File::create(&out).unwrap());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        b.append_data(&mut h, name, data).unwrap();
    };
    add(&config_name, &config_bytes);
    for (name, data) in &files {
        add(name, data);
    }
    add("manifest.json", &serde_json::to_vec(&manifest).unwrap());
    b.finish().unwrap();
    out
}

#[test]
fn rootless_container_image_with_120_layers_mounts() {
    let s = Strata::new();
    let dir = tempfile::tempdir().unwrap();
    let archive = many_layer_archive(dir.path(), 120);
    s.run(&["load", "-i", archive.to_str().unwrap()]).success();
    for driver in ["overlay", "fuse-overlayfs"] {
        let out = s
            .run(&[
                "--storage-driver",
                driver,
                "run",
                "--rm",
                "tall",
                "sh",
                "-c",
                "ls /layers | wc -l; cat /layers/f000 /layers/f119",
            ])
            .success()
            .stdout;
        assert_eq!(out, "120\nlayer 0\nlayer 119\n", "{driver}");
    }
}
