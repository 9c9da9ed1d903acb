//! `build --explain-cache`, as an unprivileged user: a step that misses
//! says what changed since the last build of the same target (the files
//! of a COPY, a build arg with a secret's value masked, the base image),
//! and the report's miss reasons say the same; `--cache-ttl` makes old
//! entries misses.
#![allow(clippy::unwrap_used)] // a test helper panicking is a failing test

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{busybox_variant, context, file_entry, Run, Strata};
use serde_json::Value;

const DOCKERFILE: &str = "FROM busybox\n\
                          ARG VERSION=1\n\
                          ARG API_TOKEN=none\n\
                          COPY app/ /app/\n\
                          RUN echo $VERSION > /v\n";

/// A changed arg and a changed secret.
const NEW_ARGS: &[&str] = &[
    "--build-arg",
    "VERSION=2",
    "--build-arg",
    "API_TOKEN=hunter2-secret",
];

fn build(s: &Strata, dir: &Path, extra: &[&str]) -> Run {
    let mut args = vec![
        "build",
        "--explain-cache",
        "--jobs",
        "1",
        "--progress=plain",
    ];
    args.extend(extra);
    args.push(dir.to_str().unwrap());
    s.run(&args).success()
}

/// The ` ---> Cache miss:` lines of a build, by step.
fn misses(run: &Run) -> Vec<String> {
    let mut out = Vec::new();
    let mut step = "";
    for line in run.stdout.lines() {
        if line.starts_with("Step ") {
            step = line.split(" : ").next().unwrap();
        }
        if let Some(why) = line.strip_prefix(" ---> Cache miss: ") {
            out.push(format!("{step}: {why}"));
        }
    }
    out
}

#[test]
fn rootless_explain_cache_names_the_changed_files_args_and_base() {
    let s = Strata::new();
    s.import_busybox("busybox");
    let ctx = context(&[
        ("Dockerfile", DOCKERFILE),
        ("app/b.txt", "b"),
        ("app/c.sh", "c"),
        ("app/old.txt", "old"),
        ("app/same.txt", "same"),
    ]);
    let app = ctx.path().join("app");
    let first = build(&s, ctx.path(), &[]);
    // The first build of a target has nothing to compare with.
    assert!(
        misses(&first).contains(&"Step 2/5: not in the cache".to_string()),
        "{first:#?}"
    );

    // Files: content, mode, added, removed.
    fs_err::write(app.join("b.txt"), "b, changed").unwrap();
    fs_err::set_permissions(app.join("c.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    fs_err::write(app.join("new.txt"), "new").unwrap();
    fs_err::remove_file(app.join("old.txt")).unwrap();
    let out = tempfile::tempdir().unwrap();
    let report_path = out.path().join("report.json");
    let files = build(&s, ctx.path(), &["--report", report_path.to_str().unwrap()]);
    let said = "files changed: app/b.txt (content), app/c.sh (mode 644 → 755), \
                app/new.txt (added), app/old.txt (removed)";
    assert_eq!(
        misses(&files),
        [
            format!("Step 4/5: {said}"),
            "Step 5/5: parent step 4 missed".to_string()
        ],
        "{files:#?}"
    );
    let report: Value = serde_json::from_slice(&fs_err::read(&report_path).unwrap()).unwrap();
    assert_eq!(report["steps"][3]["miss_reason"], said, "{report:#}");
    assert_eq!(report["steps"][2]["status"], "cached", "{report:#}");

    // Build args: old → new, a secret's values masked everywhere.
    let args = build(&s, ctx.path(), NEW_ARGS);
    assert_eq!(
        misses(&args),
        ["Step 5/5: build args changed: API_TOKEN *** → ***, VERSION \"1\" → \"2\""],
        "{args:#?}"
    );
    assert!(!args.stdout.contains("hunter2"), "{args:#?}");
    let root = s.root.path().to_str().unwrap();
    let grep = s.run(&["unshare", "grep", "-r", "-l", "hunter2", root]);
    assert_eq!(grep.code, Some(1), "the secret is in the store: {grep:#?}");

    // The base image: the same name, another image.
    let variant = busybox_variant(out.path(), &[], |b| {
        file_entry(b, "etc/variant", b"v", 0o644)
    });
    s.run(&["import", variant.to_str().unwrap(), "busybox"])
        .success();
    let base = build(&s, ctx.path(), NEW_ARGS);
    let first_miss = misses(&base).into_iter().next().unwrap_or_default();
    assert!(
        first_miss.starts_with("Step 2/5: the base image changed: "),
        "{base:#?}"
    );
}

#[test]
fn rootless_cache_ttl_takes_old_entries_as_misses() {
    let s = Strata::new();
    s.import_busybox("busybox");
    let ctx = context(&[("Dockerfile", "FROM busybox\nRUN echo hi > /hi\n")]);
    let dir = ctx.path().to_str().unwrap();
    s.run(&["build", "--progress=plain", dir]).success();
    // The entry is at least two seconds old now.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let young = s
        .run(&["build", "--progress=plain", "--cache-ttl", "1h", dir])
        .success();
    assert!(young.stdout.contains("Using cache"), "{young:#?}");
    let old = s
        .run(&["build", "--progress=plain", "--cache-ttl", "1s", dir])
        .success();
    assert!(!old.stdout.contains("Using cache"), "{old:#?}");
    let bad = s.run(&["build", "--cache-ttl", "soon", dir]);
    assert_eq!(bad.code, Some(125), "{bad:#?}");
}

/// The `--explain-cache` records in the store.
fn explain_records(s: &Strata) -> usize {
    let dir = s.root.path().join("cache/explain");
    fs_err::read_dir(&dir).map_or(0, |d| d.filter(|e| e.is_ok()).count())
}

#[test]
fn rootless_prune_build_cache_and_prune_all_forget_the_explain_records() {
    let s = Strata::new();
    s.import_busybox("busybox");
    let ctx = context(&[("Dockerfile", "FROM busybox\nRUN echo one > /one\n")]);
    build(&s, ctx.path(), &[]);
    assert_eq!(explain_records(&s), 1);
    s.run(&["system", "prune", "--build-cache"]).success();
    assert_eq!(explain_records(&s), 0);
    // Nothing to compare with now: the miss says only that.
    let again = build(&s, ctx.path(), &[]);
    assert_eq!(misses(&again), ["Step 2/2: not in the cache"], "{again:#?}");
    assert_eq!(explain_records(&s), 1);
    s.run(&["system", "prune", "-a"]).success();
    assert_eq!(explain_records(&s), 0);
}

#[test]
fn rootless_explain_cache_names_the_stage_a_run_mount_changed() {
    let s = Strata::new();
    s.import_busybox("busybox");
    let dockerfile = "FROM busybox AS dep\n\
                      COPY d.txt /d.txt\n\
                      FROM busybox\n\
                      RUN --mount=from=dep,target=/m cat /m/d.txt > /out\n\
                      COPY --from=dep /d.txt /d\n";
    let ctx = context(&[("Dockerfile", dockerfile), ("d.txt", "one")]);
    build(&s, ctx.path(), &[]);
    fs_err::write(ctx.path().join("d.txt"), "two").unwrap();
    let out = build(&s, ctx.path(), &[]);
    let said = misses(&out);
    assert_eq!(said.len(), 3, "{out:#?}");
    assert_eq!(
        said[0], "Step 2/5: files changed: d.txt (content)",
        "{out:#?}"
    );
    assert!(
        said[1].starts_with("Step 4/5: the --mount from=dep image changed: ")
            && said[1].contains(" → "),
        "{out:#?}"
    );
    assert_eq!(said[2], "Step 5/5: parent step 4 missed", "{out:#?}");
}
