//! Containers that try to get out: images with symlinks aimed at the host,
//! WORKDIR through an inherited descriptor, a process racing the layer
//! capture, and strata killed mid-run or mid-commit, as an unprivileged user.
#![allow(clippy::unwrap_used)] // a test helper panicking is a failing test

mod common;

use std::time::{Duration, Instant};

use common::{busybox_variant, processes_running, processes_with_arg, symlink_entry, Strata};

#[test]
fn rootless_malicious_images_cannot_reach_the_host() {
    let s = Strata::new();
    let dir = tempfile::tempdir().unwrap();
    let canary_dir = dir.path().join("canary");
    fs_err::create_dir(&canary_dir).unwrap();
    fs_err::write(canary_dir.join("file"), "untouched").unwrap();
    let canary = canary_dir.to_str().unwrap().to_string();
    for (name, target) in [
        ("proc", canary.clone()),
        ("dev", canary.clone()),
        ("dev", "../../..".to_string()),
    ] {
        let tar = busybox_variant(dir.path(), &[name], |b| symlink_entry(b, name, &target));
        let image = format!("evil-{name}");
        s.run(&["import", tar.to_str().unwrap(), &image]).success();
        let run = s.run(&["run", "--rm", &image, "true"]);
        assert_eq!(run.code, Some(125), "{name} -> {target}: {run:?}");
        assert!(
            run.stderr.contains("symlink") || run.stderr.contains("not a plain directory"),
            "{}",
            run.stderr
        );
    }
    // /etc/resolv.conf pointing at a host path: followed only inside the rootfs.
    let file = format!("{canary}/file");
    let tar = busybox_variant(dir.path(), &[], |b| {
        symlink_entry(b, "etc/resolv.conf", &file)
    });
    s.run(&["import", tar.to_str().unwrap(), "evil-resolv"])
        .success();
    s.run(&[
        "run",
        "--rm",
        "evil-resolv",
        "sh",
        "-c",
        "echo pwned > /etc/resolv.conf; true",
    ])
    .success();
    // WORKDIR through an inherited descriptor (CVE-2024-21626).
    s.import_busybox("busybox");
    for fd in 3..8 {
        let w = format!("/proc/self/fd/{fd}");
        let run = s.run(&[
            "run",
            "--rm",
            "-w",
            &w,
            "busybox",
            "sh",
            "-c",
            "echo pwned > escaped; ls ..",
        ]);
        assert_eq!(run.code, Some(125), "workdir {w}: {run:?}");
    }
    assert_eq!(
        fs_err::read_to_string(canary_dir.join("file")).unwrap(),
        "untouched"
    );
    assert_eq!(
        fs_err::read_dir(&canary_dir).unwrap().count(),
        1,
        "nothing was created in the canary dir"
    );
}

#[test]
fn rootless_container_kill_9_leaves_nothing_behind() {
    let s = Strata::new();
    s.import_busybox("busybox");
    let marker = format!("{}", 4000 + std::process::id() % 1000);
    let mut child = s
        .cmd()
        .args(["run", "--name", "victim", "busybox", "sleep", &marker])
        .spawn()
        .unwrap();
    // The container's own process, not the strata processes (outside and
    // inside the user namespace) whose arguments carry the marker too:
    // those exist before the container is recorded.
    let deadline = Instant::now() + Duration::from_secs(20);
    while processes_running(&["sleep", &marker]).is_empty() {
        assert!(Instant::now() < deadline, "the container never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !processes_with_arg(&marker).is_empty() {
        assert!(
            Instant::now() < deadline,
            "processes outlived strata: {:?}",
            processes_with_arg(&marker)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let ps = s.run(&["ps", "-a"]).success().stdout;
    assert!(ps.contains("victim") && ps.contains("Exited"), "{ps}");
    assert_eq!(
        s.run(&["ps", "-q"]).success().stdout,
        "",
        "nothing is running"
    );
    s.run(&["system", "check"]).success();
    s.run(&["rm", "victim"]).success();
}

#[test]
fn rootless_container_sigint_kills_the_whole_pid_namespace() {
    use std::os::unix::process::CommandExt;
    let s = Strata::new();
    s.import_busybox("busybox");
    let marker = format!("{}", 5000 + std::process::id() % 1000);
    let script = format!("sleep {marker} & sleep {marker}");
    let mut child = s
        .cmd()
        .args([
            "run",
            "--name",
            "interrupted",
            "busybox",
            "sh",
            "-c",
            &script,
        ])
        .process_group(0)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while processes_running(&["sleep", &marker]).len() < 2 {
        assert!(Instant::now() < deadline, "the container never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let running = s.run(&["ps"]).success().stdout;
    assert!(
        running.contains("interrupted") && running.contains("Up "),
        "{running}"
    );
    let refused = s.run(&["commit", "interrupted", "nope"]);
    assert_ne!(
        refused.code,
        Some(0),
        "a running container is not committed"
    );
    // ^C at a terminal: SIGINT to the whole foreground process group.
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "128 + SIGINT");
    assert!(
        processes_with_arg(&marker).is_empty(),
        "a background process survived"
    );
    let ps = s.run(&["ps", "-a"]).success().stdout;
    assert!(ps.contains("Exited (130)"), "{ps}");
}

#[test]
fn rootless_malicious_dev_null_and_background_flipper() {
    let s = Strata::new();
    let dir = tempfile::tempdir().unwrap();
    let canary = dir.path().join("canary");
    fs_err::write(&canary, "untouched").unwrap();
    let target = canary.to_str().unwrap().to_string();
    let tar = busybox_variant(dir.path(), &[], |b| symlink_entry(b, "dev/null", &target));
    s.run(&["import", tar.to_str().unwrap(), "evil-null"])
        .success();
    s.run(&[
        "run",
        "--rm",
        "evil-null",
        "sh",
        "-c",
        "echo pwned > /dev/null; cat /dev/null",
    ])
    .success();
    // A process left behind flips /flip between a directory and a symlink to
    // the host file while the layer is taken.
    let flipper = format!(
        "(while true; do rm -rf /flip; ln -s {target} /flip; rm -f /flip; mkdir /flip; done) >/dev/null 2>&1 & sleep 0.3; exit 0"
    );
    s.run(&[
        "run",
        "--name",
        "flipper",
        "evil-null",
        "sh",
        "-c",
        &flipper,
    ])
    .success();
    s.run(&["commit", "flipper", "flipped"]).success();
    let marker_gone = s
        .run(&[
            "run",
            "--rm",
            "flipped",
            "sh",
            "-c",
            "cat /flip 2>/dev/null; true",
        ])
        .success();
    assert!(
        !marker_gone.stdout.contains("untouched"),
        "the host file was read into the layer"
    );
    assert_eq!(fs_err::read_to_string(&canary).unwrap(), "untouched");
    assert_eq!(
        s.run(&["ps", "-q"]).success().stdout,
        "",
        "the flipper did not outlive its container"
    );
    s.run(&["system", "check"]).success();
}

#[test]
fn rootless_container_kill_9_during_commit() {
    let s = Strata::new();
    s.import_busybox("busybox");
    s.run(&[
        "run",
        "--name",
        "big",
        "busybox",
        "sh",
        "-c",
        "for i in $(seq 100); do head -c 100000 /dev/urandom > /f$i; done",
    ])
    .success();
    let before = s.run(&["images", "-q"]).success().stdout;
    let start = Instant::now();
    s.run(&["commit", "big", "probe"]).success();
    let span = start.elapsed().as_micros() as u64 + 1;
    s.run(&["rmi", "probe"]).success();
    for i in 0..8u64 {
        let mut child = s.cmd().args(["commit", "big", "killed"]).spawn().unwrap();
        std::thread::sleep(Duration::from_micros((span * (i + 1)) / 9));
        let _ = child.kill();
        child.wait().unwrap();
        s.run(&["system", "check"]).success();
        let _ = s.run(&["rmi", "killed"]);
    }
    assert_eq!(
        s.run(&["images", "-q"]).success().stdout,
        before,
        "earlier images intact"
    );
    assert!(s.run(&["ps", "-a"]).success().stdout.contains("big"));
    s.run(&["commit", "big", "after"]).success();
    assert_eq!(
        s.run(&["run", "--rm", "after", "sh", "-c", "ls / | grep -c '^f'"])
            .success()
            .stdout,
        "100\n"
    );
}

/// Starts `args` in a process group of its own, waits until the
/// container's `sleep MARKER` runs, sends `sig` to the group (`group`) or
/// to strata alone, and waits for strata to end.
fn stopped_while_sleeping(
    s: &Strata,
    args: &[&str],
    marker: &str,
    sig: nix::sys::signal::Signal,
    group: bool,
) {
    use std::os::unix::process::CommandExt;
    let mut child = s
        .cmd()
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while processes_running(&["sleep", marker]).is_empty() {
        assert!(Instant::now() < deadline, "{args:?}: the sleep never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = child.id() as i32;
    let target = nix::unistd::Pid::from_raw(if group { -pid } else { pid });
    nix::sys::signal::kill(target, sig).unwrap();
    child.wait().unwrap();
    // Until every process of it is gone: strata inside the user namespace
    // (its arguments end as the command's do) holds the container's locks
    // until it is.
    let last = args.last().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !processes_running(&["sleep", marker]).is_empty() || !processes_with_arg(last).is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "{args:?}: processes outlived strata"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn rootless_container_killed_build_and_run_rm_leave_no_container() {
    use nix::sys::signal::Signal;
    let s = Strata::new();
    s.import_busybox("busybox");
    let marker = format!("{}", 6000 + std::process::id() % 1000);
    let ctx = common::context(&[(
        "Dockerfile",
        &format!("FROM busybox\nRUN echo a > /a\nRUN [\"sleep\", \"{marker}\"]\n"),
    )]);
    let build = ["build", "-t", "killed", ctx.path().to_str().unwrap()];
    let run_rm = ["run", "--rm", "busybox", "sleep", &marker];
    for (args, sig) in [
        (&build[..], Signal::SIGKILL),
        (&run_rm[..], Signal::SIGKILL),
        (&run_rm[..], Signal::SIGTERM),
    ] {
        stopped_while_sleeping(&s, args, &marker, sig, sig == Signal::SIGKILL);
        // The next command finds the container's owner gone and removes it.
        let ps = s.run(&["ps", "-a", "-q"]).success().stdout;
        assert_eq!(ps, "", "{args:?} {sig}: containers left");
        let df = s.run(&["system", "df", "--format", "{{.Type}} {{.TotalCount}}"]);
        assert!(
            df.success().stdout.contains("Containers 0"),
            "{args:?} {sig}"
        );
        s.run(&["system", "check"]).success();
    }
    // A container made to stay (run without --rm) stays, stopped.
    let kept = ["run", "--name", "kept", "busybox", "sleep", &marker];
    stopped_while_sleeping(&s, &kept, &marker, Signal::SIGKILL, true);
    let ps = s.run(&["ps", "-a"]).success().stdout;
    assert!(ps.contains("kept"), "{ps}");
    let df = s.run(&[
        "system",
        "df",
        "--format",
        "{{.Type}} {{.TotalCount}} {{.Active}}",
    ]);
    assert!(
        df.success().stdout.contains("Containers 1 0"),
        "a stopped container is not active"
    );
    s.run(&["rm", "kept"]).success();
}
