//! `build --dry-run`, as an unprivileged user: it names the steps a build
//! would run after a context file changed (and the stage that copies from
//! them), and leaves the store byte for byte as it was.
#![allow(clippy::unwrap_used)] // a test helper panicking is a failing test

mod common;

use std::path::Path;

use common::{context, Strata};
use serde_json::Value;

const DOCKERFILE: &str = "FROM busybox AS a\n\
                          COPY a.txt /a.txt\n\
                          RUN cat /a.txt > /copy\n\
                          COPY b.txt /b.txt\n\
                          FROM busybox\n\
                          RUN echo final\n\
                          COPY --from=a /b.txt /b\n";

/// Every file and directory of the store: path, type, mode, owner, size,
/// modification time and, for a file, its sha256. Listed from inside the
/// user namespace, where the files the steps made (owned by subordinate
/// ids) can be read.
fn snapshot(s: &Strata) -> String {
    let root = s.root.path().to_str().unwrap();
    let script = "cd \"$1\" && find . -printf '%p %y %m %U:%G %s %T@\\n' | LC_ALL=C sort \
                  && find . -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum";
    s.run(&["unshare", "sh", "-c", script, "sh", root])
        .success()
        .stdout
}

fn report(path: &Path) -> Value {
    serde_json::from_slice(&fs_err::read(path).unwrap()).unwrap()
}

/// The statuses of the report's steps, by step number.
fn statuses(report: &Value) -> Vec<(u64, String)> {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["number"].as_u64().unwrap(), s["status"].to_string()))
        .collect()
}

#[test]
fn rootless_dry_run_names_the_steps_a_change_reruns_and_changes_nothing() {
    let s = Strata::new();
    s.import_busybox("busybox");
    let ctx = context(&[("Dockerfile", DOCKERFILE), ("a.txt", "a"), ("b.txt", "b")]);
    let dir = ctx.path().to_str().unwrap();
    s.run(&["build", "-t", "app", dir]).success();

    // Nothing changed: every step is cached.
    let same = s
        .run(&["build", "--dry-run", "--jobs", "1", "--progress=plain", dir])
        .success();
    assert!(!same.stdout.contains("Would run"), "{same:#?}");
    assert!(
        same.stdout.contains("Dry run: 0 of 7 steps would run"),
        "{same:#?}"
    );

    fs_err::write(ctx.path().join("b.txt"), "b, changed").unwrap();
    let before = snapshot(&s);
    assert!(before.contains("./cache/steps/"), "{before}");
    let out = tempfile::tempdir().unwrap();
    let report_path = out.path().join("report.json");
    let dry = s
        .run(&[
            "build",
            "--dry-run",
            "--jobs",
            "1",
            "--progress=plain",
            "-t",
            "other",
            "--report",
            report_path.to_str().unwrap(),
            dir,
        ])
        .success();
    assert_eq!(before, snapshot(&s), "the store changed: {dry:#?}");
    let text = &dry.stdout;
    assert!(
        text.contains("Step 3/7 : RUN cat /a.txt > /copy\n ---> Using cache\n"),
        "{dry:#?}"
    );
    assert!(
        text.contains("Step 4/7 : COPY b.txt /b.txt\n ---> Would run: not in the cache\n"),
        "{dry:#?}"
    );
    assert!(
        text.contains("Step 6/7 : RUN echo final\n ---> Using cache\n"),
        "{dry:#?}"
    );
    assert!(
        text.contains("Step 7/7 : COPY --from=a /b.txt /b\n ---> Would run: stage a would run\n"),
        "{dry:#?}"
    );
    assert!(text.contains("Dry run: 2 of 7 steps would run"), "{dry:#?}");
    assert!(!text.contains("Successfully"), "{dry:#?}");

    let r = report(&report_path);
    assert_eq!(r["result"], "dry_run");
    let want = [
        (1, "base"),
        (2, "cached"),
        (3, "cached"),
        (4, "would_run"),
        (5, "base"),
        (6, "cached"),
        (7, "would_run"),
    ];
    let want: Vec<(u64, String)> = want.iter().map(|(n, s)| (*n, format!("{s:?}"))).collect();
    assert_eq!(statuses(&r), want, "{r:#}");

    // Nothing was tagged; the real build then runs what the dry run named.
    let images = s.run(&["images", "-q", "other"]).success();
    assert_eq!(images.stdout.trim(), "", "{images:#?}");
    let real = s
        .run(&["build", "--jobs", "1", "--progress=plain", dir])
        .success();
    assert_eq!(real.stdout.matches("Using cache").count(), 3, "{real:#?}");
}

#[test]
fn rootless_dry_run_of_a_missing_base_says_it_would_be_pulled() {
    let s = Strata::new();
    let ctx = context(&[("Dockerfile", "FROM nowhere.invalid/base\nRUN true\n")]);
    // Any command makes the store's layout first.
    s.run(&["images"]).success();
    let before = snapshot(&s);
    let dry = s
        .run(&[
            "build",
            "--dry-run",
            "--progress=plain",
            ctx.path().to_str().unwrap(),
        ])
        .success();
    assert!(
        dry.stdout
            .contains("Would run: nowhere.invalid/base is not in the store: it would be pulled"),
        "{dry:#?}"
    );
    assert!(
        dry.stdout.contains("Would run: parent step 1 would run"),
        "{dry:#?}"
    );
    assert_eq!(before, snapshot(&s));
}

#[test]
fn rootless_dry_run_of_an_add_url_says_its_content_is_unknown() {
    let s = Strata::new();
    s.import_busybox("busybox");
    // Nothing listens there: a dry run must not try.
    let dockerfile = "FROM busybox\nADD http://127.0.0.1:9/f.txt /f\n";
    let ctx = context(&[("Dockerfile", dockerfile)]);
    let dir = ctx.path().to_str().unwrap();
    let before = snapshot(&s);
    let dry = s
        .run(&["build", "--dry-run", "--progress=plain", dir])
        .success();
    let want = "Step 2/2 : ADD http://127.0.0.1:9/f.txt /f\n ---> Would run: \
                http://127.0.0.1:9/f.txt: content unknown until downloaded\n";
    assert!(dry.stdout.contains(want), "{dry:#?}");
    assert_eq!(before, snapshot(&s), "the store changed: {dry:#?}");
}

/// Two steps a first runner pushed to a cache, a changed third: B's dry
/// run, on a fresh store, says the two are cached by the remote cache and
/// the third would run; it reads the cache's record and nothing else
/// (B's store is byte for byte as it was).
fn dry_run_asks_the_remote_cache(to: &str, from: &str, origin: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let a = Strata::new();
    a.import_busybox("base");
    let archive = tmp.path().join("base.tar");
    a.run(&["save", "-o", archive.to_str().unwrap(), "base"])
        .success();
    let dockerfile = "FROM base\nRUN date +%s%N > /t1\nCOPY f /f\nRUN cat /f\n";
    let ctx = context(&[("Dockerfile", dockerfile), ("f", "one\n")]);
    let dir = ctx.path().to_str().unwrap();
    a.run(&["build", "--cache-to", to, dir]).success();

    let b = Strata::new();
    b.run(&["load", "-i", archive.to_str().unwrap()]).success();
    fs_err::write(ctx.path().join("f"), "two\n").unwrap();
    let before = snapshot(&b);
    let args = [
        "build",
        "--dry-run",
        "--progress=plain",
        "--cache-from",
        from,
        dir,
    ];
    let dry = b.run(&args).success();
    assert_eq!(before, snapshot(&b), "the store changed: {dry:#?}");
    let hit = format!(" ---> Using cache ({origin})\n");
    let text = &dry.stdout;
    assert!(
        text.contains(&format!("Step 2/4 : RUN date +%s%N > /t1\n{hit}")),
        "{dry:#?}"
    );
    assert!(
        text.contains("Step 3/4 : COPY f /f\n ---> Would run: not in the cache\n"),
        "{dry:#?}"
    );
    assert!(text.contains("Dry run: 2 of 4 steps would run"), "{dry:#?}");

    // The context as A built it: every step is the remote cache's.
    fs_err::write(ctx.path().join("f"), "one\n").unwrap();
    let dry = b.run(&args).success();
    assert_eq!(dry.stdout.matches(&hit).count(), 3, "{dry:#?}");
    assert!(
        dry.stdout.contains("Dry run: 0 of 4 steps would run"),
        "{dry:#?}"
    );
    assert_eq!(before, snapshot(&b), "the store changed: {dry:#?}");
}

#[test]
fn rootless_dry_run_asks_a_local_cache_from() {
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().join("c");
    let to = format!("type=local,dest={},mode=max", dir.display());
    let from = format!("type=local,src={}", dir.display());
    dry_run_asks_the_remote_cache(&to, &from, &format!("local {}", dir.display()));
}

#[test]
fn registry_dry_run_asks_a_registry_cache_from() {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let repo = format!(
        "{}/dry{}x{ms}/cache",
        common::registry_addr(),
        std::process::id()
    );
    let to = format!("type=registry,ref={repo},mode=max");
    let from = format!("type=registry,ref={repo}");
    dry_run_asks_the_remote_cache(&to, &from, &format!("registry {repo}"));
}
