//! How a build shows its steps (`--progress`), and stages building at once
//! (`--jobs`), as an unprivileged user: raw JSON events cover every step,
//! the live view draws only on a terminal, independent stages overlap, and
//! a failed stage stops the others and leaves no container behind.
#![allow(clippy::unwrap_used)] // a test helper panicking is a failing test

mod common;

use std::path::Path;
use std::process::Command;

use common::{context, processes_with_arg, Run, Strata};
use serde_json::Value;

/// Every stderr line of a `--progress=rawjson` build, parsed (a line that
/// is not JSON fails the test).
fn json_events(run: &Run) -> Vec<Value> {
    run.stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}\n{run:#?}")))
        .collect()
}

fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == kind).collect()
}

/// The position in `events` of the first event of `kind` for step `number`.
fn at(events: &[Value], kind: &str, number: u64) -> usize {
    events
        .iter()
        .position(|e| e["event"] == kind && e["step"]["number"] == number)
        .unwrap_or_else(|| panic!("no {kind} of step {number}: {events:#?}"))
}

/// A port nothing listens on now (the stages meet on it).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn rootless_rawjson_is_one_event_a_line_for_every_step() {
    let s = Strata::new();
    s.import_busybox("busybox");
    let df = "FROM busybox AS base\nRUN echo made-in-run\nFROM base\nENV A=1\nCOPY f /f\n";
    let ctx = context(&[("Dockerfile", df), ("f", "x")]);
    let run = s
        .build(ctx.path(), &["--progress=rawjson", "-t", "j"])
        .success();
    assert!(
        !run.stdout.contains("Step "),
        "steps go to stderr as JSON: {run:#?}"
    );
    let events = json_events(&run);
    assert_eq!(events[0]["event"], "build_started", "{events:#?}");
    assert_eq!(events[0]["total"], 5);
    for number in 1..=5u64 {
        assert!(at(&events, "step_started", number) < at(&events, "step_done", number));
    }
    let started = of_kind(&events, "step_started");
    assert_eq!(started[1]["text"], "RUN echo made-in-run");
    assert_eq!(started[1]["stage_name"], "base");
    assert_eq!(
        (
            started[1]["stage_step"].clone(),
            started[1]["stage_steps"].clone()
        ),
        (2.into(), 2.into())
    );
    assert_eq!(started[2]["stage_name"], "stage-1");
    let output = of_kind(&events, "step_output");
    assert!(
        output
            .iter()
            .any(|e| e["line"] == "made-in-run" && e["step"]["number"] == 2),
        "the RUN's output is an event: {events:#?}"
    );
    assert!(of_kind(&events, "build_line")
        .iter()
        .any(|e| e["text"] == "Successfully tagged j:latest"));

    // Built again, every step but the FROMs is cached.
    let again = json_events(
        &s.build(ctx.path(), &["--progress=rawjson", "-t", "j"])
            .success(),
    );
    let cached: Vec<u64> = of_kind(&again, "step_done")
        .iter()
        .filter(|e| e["cached"] == true)
        .map(|e| e["step"]["number"].as_u64().unwrap())
        .collect();
    assert_eq!(cached, [2, 4, 5], "{again:#?}");
}

#[test]
fn rootless_tty_without_a_terminal_is_plain_and_quiet_is_quiet() {
    let s = Strata::new();
    s.import_busybox("busybox");
    let ctx = context(&[("Dockerfile", "FROM busybox\nRUN echo hi\n")]);
    let run = s.build(ctx.path(), &["--progress=tty"]).success();
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(!all.contains('\x1b') && !all.contains('\r'), "{run:#?}");
    assert!(run.stdout.contains("Step 2/2 : RUN echo hi\n"), "{run:#?}");
    // BuildKit's variable picks the mode when the flag does not.
    let mut cmd = s.cmd();
    cmd.env("BUILDKIT_PROGRESS", "quiet").args([
        "build",
        "--no-cache",
        ctx.path().to_str().unwrap(),
    ]);
    let quiet = Run::of(cmd.output().unwrap()).success();
    assert!(!quiet.stdout.contains("Step "), "{quiet:#?}");
    assert!(quiet.stdout.trim().starts_with("sha256:"), "{quiet:#?}");
}

#[test]
fn rootless_tty_under_a_pseudo_terminal_draws_the_live_view() {
    let s = Strata::new();
    s.import_busybox("busybox");
    let ctx = context(&[("Dockerfile", "FROM busybox\nRUN echo from-the-step\n")]);
    let bin = common::strata_bin();
    let command = format!(
        "{} build --progress=tty -t live {}",
        bin.display(),
        ctx.path().display()
    );
    let live = || {
        let out = Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .env("STRATA_ROOT", s.root.path())
            .env_remove("CI")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:#?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let first = live();
    assert!(
        first.contains("=> [stage-0 2/2] RUN echo from-the-step"),
        "{first:?}"
    );
    assert!(first.contains("from-the-step"), "{first:?}");
    assert!(
        !first.contains("Step 2/2"),
        "no plain lines under the view: {first:?}"
    );
    let second = live();
    assert!(
        second.contains("=> CACHED [stage-0 2/2] RUN echo from-the-step"),
        "{second:?}"
    );
}

#[test]
fn rootless_independent_stages_build_at_once() {
    let s = Strata::new();
    s.import_busybox("busybox");
    let port = free_port();
    // Stage a waits for b to connect: the build ends only if they overlap
    // (nc gives up after 60 s, and the build fails then).
    let df = format!(
        "FROM busybox AS a\nRUN timeout 60 nc -l -p {port} && echo a-met-b\n\
         FROM busybox AS b\nRUN until nc 127.0.0.1 {port} </dev/null; do sleep 0.1; done; echo b-met-a\n\
         FROM busybox\nCOPY --from=a /bin/true /a\nCOPY --from=b /bin/true /b\n"
    );
    let ctx = context(&[("Dockerfile", &df)]);
    let run = s
        .build(ctx.path(), &["--jobs", "2", "--progress=rawjson"])
        .success();
    let events = json_events(&run);
    assert_eq!(events[0]["parallel"], true);
    // Steps 2 (a's RUN) and 4 (b's RUN) each start before the other ends.
    assert!(
        at(&events, "step_started", 2) < at(&events, "step_done", 4),
        "{events:#?}"
    );
    assert!(
        at(&events, "step_started", 4) < at(&events, "step_done", 2),
        "{events:#?}"
    );

    // Plain lines say whose they are, as BuildKit's.
    let plain = s
        .build(
            ctx.path(),
            &["--jobs", "2", "--progress=plain", "--no-cache"],
        )
        .success();
    assert!(plain.stdout.contains("[a 2/2] a-met-b\n"), "{plain:#?}");
    assert!(plain.stdout.contains("[b 2/2] b-met-a\n"), "{plain:#?}");
    assert!(
        plain
            .stdout
            .contains("[stage-2 3/3] COPY --from=b /bin/true /b\n"),
        "{plain:#?}"
    );
    assert!(!plain.stdout.contains("Step "), "{plain:#?}");
}

/// Without `--jobs`, as many stages build at once as there are CPUs (a
/// build on one CPU keeps Docker's lines); `--jobs 1` builds the stages
/// one after the other in the Dockerfile's order, with `Step N/M` lines.
#[test]
fn rootless_jobs_default_to_the_cpus_and_one_keeps_the_order() {
    let s = Strata::new();
    s.import_busybox("busybox");
    let df = "FROM busybox AS a\nRUN echo in-a\n\
              FROM busybox AS b\nRUN echo in-b\n\
              FROM busybox\nCOPY --from=a /bin/true /a\nCOPY --from=b /bin/true /b\n";
    let ctx = context(&[("Dockerfile", df)]);
    let run = s.build(ctx.path(), &["--progress=rawjson"]).success();
    let cpus = std::thread::available_parallelism().unwrap().get();
    assert_eq!(json_events(&run)[0]["parallel"], cpus > 1, "{run:#?}");

    let one = s
        .build(
            ctx.path(),
            &["--jobs", "1", "--progress=plain", "--no-cache"],
        )
        .success();
    let out = &one.stdout;
    let steps: Vec<&str> = out.lines().filter(|l| l.starts_with("Step ")).collect();
    assert_eq!(
        steps,
        [
            "Step 1/7 : FROM busybox AS a",
            "Step 2/7 : RUN echo in-a",
            "Step 3/7 : FROM busybox AS b",
            "Step 4/7 : RUN echo in-b",
            "Step 5/7 : FROM busybox",
            "Step 6/7 : COPY --from=a /bin/true /a",
            "Step 7/7 : COPY --from=b /bin/true /b",
        ],
        "{one:#?}"
    );
    // Each RUN's output comes between its step and the next stage's.
    let line = |l: &str| out.lines().position(|x| x == l).unwrap();
    assert!(line("Step 2/7 : RUN echo in-a") < line("in-a"), "{one:#?}");
    assert!(
        line("in-a") < line("Step 3/7 : FROM busybox AS b"),
        "{one:#?}"
    );
    assert!(line("Step 4/7 : RUN echo in-b") < line("in-b"), "{one:#?}");
    assert!(line("in-b") < line("Step 5/7 : FROM busybox"), "{one:#?}");
}

#[test]
fn rootless_a_failed_stage_stops_the_others_and_leaves_nothing() {
    let s = Strata::new();
    s.import_busybox("busybox");
    let port = free_port();
    // b is surely running when a fails: a fails once it has reached b.
    // Were b not stopped, it would say so after its sleep (a number only
    // this test's sleep has: 20 s).
    let marker = format!("20.{port}");
    let df = format!(
        "FROM busybox AS a\nRUN until nc 127.0.0.1 {port} </dev/null; do sleep 0.1; done; exit 3\n\
         FROM busybox AS b\nRUN nc -l -p {port}; sleep {marker}; echo b-$((40 + 2))\n\
         FROM busybox\nCOPY --from=a /bin/true /a\nCOPY --from=b /bin/true /b\n"
    );
    let ctx = context(&[("Dockerfile", &df)]);
    let run = s.build(
        ctx.path(),
        &["--jobs", "2", "--progress=plain", "-t", "never"],
    );
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(
        run.stderr.contains("step 2/7"),
        "a's failure is the error: {run:#?}"
    );
    assert!(run.stderr.contains("exit status 3"), "{run:#?}");
    assert!(!run.stderr.contains("cancelled"), "{run:#?}");
    assert!(!run.stdout.contains("b-42"), "b was stopped: {run:#?}");
    assert!(
        processes_with_arg(&marker).is_empty(),
        "b's sleep was stopped"
    );
    let ps = s.run(&["ps", "-a", "-q"]).success();
    assert_eq!(ps.stdout.trim(), "", "no container left: {ps:#?}");
    let images = s.run(&["images", "-q", "never"]).success();
    assert_eq!(images.stdout.trim(), "", "nothing tagged");
}

fn report(path: &Path) -> Value {
    serde_json::from_slice(&fs_err::read(path).unwrap()).unwrap()
}

#[test]
fn rootless_report_tells_every_step_hits_misses_and_totals() {
    let s = Strata::new();
    s.import_busybox("busybox");
    let df = "FROM busybox AS a\nRUN echo a > /a\nFROM busybox\nCOPY f /f\nENV X=1\nCOPY --from=a /a /a\n";
    let ctx = context(&[("Dockerfile", df), ("f", "one\n")]);
    let out = tempfile::tempdir().unwrap();
    let path = out.path().join("report.json");
    let file = path.to_str().unwrap();
    s.build(ctx.path(), &["-q", "--report", file]).success();
    fs_err::write(ctx.path().join("f"), "two!\n").unwrap();
    let run = s
        .build(ctx.path(), &["-q", "--report", file, "-t", "rep"])
        .success();
    let r = report(&path);
    assert_eq!(r["version"], 1);
    assert_eq!(r["result"], "built");
    assert_eq!(r["image"]["id"], run.stdout.trim());
    assert_eq!(r["image"]["tags"][0], "rep:latest");
    let steps = r["steps"].as_array().unwrap();
    let status: Vec<&str> = steps
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        status,
        ["base", "cached", "base", "run", "run", "run"],
        "{r:#}"
    );
    assert_eq!(steps[1]["instruction"], "RUN echo a > /a");
    assert_eq!(steps[1]["stage_name"], "a");
    assert_eq!(steps[1]["location"]["line"], 2);
    assert_eq!(steps[1]["miss_reason"], Value::Null);
    assert_eq!(steps[3]["miss_reason"], "not in the cache");
    assert_eq!(steps[4]["miss_reason"], "parent step 4 missed");
    assert_eq!(steps[3]["layer"]["size"], 5, "COPY f: its 5 bytes");
    assert!(steps[3]["layer"]["diff_id"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    assert_eq!(steps[4]["layer"], Value::Null, "ENV adds no layer");
    assert_eq!(steps[5]["image"], r["image"]["id"]);
    let totals = &r["totals"];
    assert_eq!(
        (totals["steps"].clone(), totals["steps_cached"].clone()),
        (6.into(), 1.into())
    );
    assert_eq!(totals["steps_run"], 3);
    assert!(
        totals["context_bytes_read"].as_u64().unwrap() >= 5,
        "{totals:#}"
    );
    assert!(
        totals["peak_memory_bytes"].as_u64().unwrap() > 0,
        "{totals:#}"
    );
    for field in [
        "bytes_downloaded",
        "bytes_uploaded",
        "remote_cache_hits",
        "wall_ms",
    ] {
        assert!(totals[field].is_u64(), "{field}: {totals:#}");
    }
}

#[test]
fn rootless_report_of_a_failed_build_names_the_failed_step() {
    let s = Strata::new();
    s.import_busybox("busybox");
    let ctx = context(&[("Dockerfile", "FROM busybox\nRUN exit 4\nRUN true\n")]);
    let out = tempfile::tempdir().unwrap();
    let path = out.path().join("report.json");
    let run = s.build(ctx.path(), &["--report", path.to_str().unwrap()]);
    assert_eq!(run.code, Some(1), "{run:#?}");
    let r = report(&path);
    assert_eq!(r["result"], "failed");
    assert!(
        r["error"].as_str().unwrap().contains("exit status 4"),
        "{r:#}"
    );
    assert_eq!(r["image"], Value::Null);
    let status: Vec<&str> = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(status, ["base", "failed"], "step 3 never started: {r:#}");
}

#[test]
fn rootless_no_cache_filter_runs_only_the_named_stages_again() {
    let s = Strata::new();
    s.import_busybox("busybox");
    let df = "FROM busybox AS a\nRUN echo a > /a\nFROM busybox AS b\nRUN echo b > /b\nFROM b\nCOPY --from=a /a /a\n";
    let ctx = context(&[("Dockerfile", df)]);
    let out = tempfile::tempdir().unwrap();
    let path = out.path().join("report.json");
    let file = path.to_str().unwrap();
    s.build(ctx.path(), &["-q"]).success();
    s.build(
        ctx.path(),
        &["-q", "--no-cache-filter", "a", "--report", file],
    )
    .success();
    let r = report(&path);
    // By number: stages a and b build at once, their steps interleave.
    let mut steps: Vec<(u64, &str, &Value)> = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["number"].as_u64().unwrap(),
                s["status"].as_str().unwrap(),
                &s["miss_reason"],
            )
        })
        .collect();
    steps.sort_by_key(|s| s.0);
    assert_eq!(
        steps[1],
        (2, "run", &Value::from("--no-cache-filter")),
        "{r:#}"
    );
    assert_eq!(
        steps[3],
        (4, "cached", &Value::Null),
        "stage b is not named: {r:#}"
    );
}
