//! The probes behind `strata info`. Each one does the real thing (in a
//! forked child where it needs namespaces or mounts) and reports what it
//! saw, with one line of fix when it failed. Nothing is inferred from
//! version numbers.

use std::path::{Path, PathBuf};
use std::process::Command;

use nix::mount::{MntFlags, MsFlags};
use nix::unistd::Uid;
use serde::Serialize;

use super::driver::DriverKind;
use super::environment::Environment;
use super::idmap::{Caller, IdMapPlan};
use super::ladder::{self, Choice, Fact, Facts, Isolation, Next, Probe};
use super::userns::{self, error_chain, Mapping};

/// The outcome of one probe.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    /// What was seen (on success) or what went wrong.
    pub detail: String,
    /// One line saying how to fix a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn pass(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            name,
            ok: true,
            detail: detail.into(),
            fix: None,
        }
    }

    fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name,
            ok: false,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// Everything `strata info` reports.
#[derive(Debug, Serialize)]
pub struct Report {
    pub caller: Caller,
    pub root_user: bool,
    pub environment: Environment,
    /// The rung a command would use, if any works.
    pub isolation: Option<Choice>,
    pub checks: Vec<Check>,
    /// The driver a command would use, if any works.
    pub driver: Option<DriverKind>,
}

/// Runs every probe. Must be called while the process is single-threaded.
pub fn run_all(forced: Option<DriverKind>, isolation: Option<Isolation>) -> Report {
    let caller = Caller::current();
    let root_user = Uid::effective().is_root();
    let (facts, next) = survey(&caller, isolation);
    let mut checks = vec![Check::pass("environment", facts.env.to_string())];
    ladder_checks(&next, &mut checks);
    let choice = match &next {
        Next::Use(choice) => Some(choice.clone()),
        _ => None,
    };
    let mapping = match choice.as_ref().map(|c| c.isolation) {
        Some(Isolation::Root) => Some((None, Mapping::Host)),
        Some(Isolation::Nested) if root_user => {
            Some((Some(IdMapPlan::identity(caller.clone())), Mapping::Identity))
        }
        Some(Isolation::Rootless | Isolation::Nested) => probe_userns(&caller, &mut checks),
        Some(Isolation::Chroot) | None => None,
    };
    let (overlay_ok, fuse_ok) = match &mapping {
        Some((plan, mapping)) => {
            let plan = plan.clone().unwrap_or_else(|| host_plan(&caller));
            let overlay = in_ns(&plan, *mapping, "kernel overlay", probe_overlay);
            let overlay_ok = overlay.ok;
            checks.push(overlay);
            let fuse_ok = probe_fuse(&plan, *mapping, &mut checks);
            (overlay_ok, fuse_ok)
        }
        None => (false, false),
    };
    let driver = choice
        .as_ref()
        .and_then(|_| choose_driver(forced, overlay_ok, fuse_ok));
    checks.push(driver_check(forced, driver));
    Report {
        caller,
        root_user,
        environment: facts.env,
        isolation: choice,
        checks,
        driver,
    }
}

fn driver_check(forced: Option<DriverKind>, driver: Option<DriverKind>) -> Check {
    match (forced, driver) {
        (Some(kind), Some(_)) => {
            Check::pass("storage driver", format!("{kind} (--storage-driver)"))
        }
        (Some(kind), None) => Check::fail(
            "storage driver",
            format!("{kind} was asked for with --storage-driver but its probe failed"),
            "see the fix above, or leave --storage-driver out to choose automatically",
        ),
        (None, Some(kind)) => {
            Check::pass("storage driver", format!("{kind} (the first that works)"))
        }
        (None, None) => Check::fail(
            "storage driver",
            "none: no isolation works here",
            "see the fix for isolation above",
        ),
    }
}

/// The ladder decided as `userns::ensure` decides it, every fact probed in
/// a forked child so that this process enters nothing.
fn survey(caller: &Caller, forced: Option<Isolation>) -> (Facts, Next) {
    let mut facts = Facts {
        root: Uid::effective().is_root(),
        env: super::environment::detect(),
        ..Facts::default()
    };
    let (plan, mapping) = if facts.root {
        (Ok(IdMapPlan::identity(caller.clone())), Mapping::Identity)
    } else {
        (IdMapPlan::detect(caller.clone()), Mapping::Single)
    };
    let nothing = || Ok::<_, userns::ProbeFailure>(String::new());
    loop {
        let fact = match ladder::next(&facts, forced) {
            Next::Probe(fact) => fact,
            decided => return (facts, decided),
        };
        match (fact, &plan) {
            (Fact::MountNs, _) => {
                facts.mount_ns =
                    as_probe(userns::probe_in(&host_plan(caller), Mapping::Host, nothing))
            }
            (Fact::UserNs, Ok(plan)) => {
                facts.user_ns = as_probe(userns::probe_in(plan, mapping, nothing))
            }
            (Fact::UserNs, Err(e)) => facts.user_ns = Probe::Failed(error_chain(e)),
            (Fact::FreshProc, Ok(plan)) => {
                let fresh = || match userns::probe_fresh_proc() {
                    Probe::Failed(why) => Err(userns::ProbeFailure(why)),
                    _ => Ok(String::new()),
                };
                facts.fresh_proc = as_probe(userns::probe_in(plan, mapping, fresh));
            }
            (Fact::FreshProc, Err(e)) => facts.fresh_proc = Probe::Failed(error_chain(e)),
            (Fact::Ptrace, _) => facts.ptrace = super::chroot::probe(),
        }
    }
}

fn as_probe(r: Result<Result<String, userns::ProbeFailure>, userns::UsernsError>) -> Probe {
    match r {
        Ok(Ok(_)) => Probe::Ok,
        Ok(Err(why)) => Probe::Failed(why.0),
        Err(e) => Probe::Failed(userns::describe(&e)),
    }
}

/// One row per rung: the one used, why each better one was passed over,
/// and the ones below it (not tried).
fn ladder_checks(next: &Next, checks: &mut Vec<Check>) {
    let (used, skipped) = match next {
        Next::Use(choice) => (Some(choice), &choice.skipped),
        Next::None(err) => (None, &err.skipped),
        Next::Probe(_) => return,
    };
    checks.push(match (used, next) {
        (Some(c), _) => {
            let how = if c.forced {
                "--isolation"
            } else {
                "the best that works here"
            };
            let proc = if c.bind_proc {
                "; RUN gets the container's /proc bound in"
            } else {
                ""
            };
            Check::pass(
                "isolation",
                format!("{}: {} ({how}){proc}", c.isolation, c.isolation.summary()),
            )
        }
        (None, Next::None(err)) => Check::fail(
            "isolation",
            format!("none works in {}", err.env),
            err.fixes().join("; or "),
        ),
        _ => return,
    });
    for rung in Isolation::ALL {
        let detail = if used.is_some_and(|c| c.isolation == rung) {
            "used".to_string()
        } else if let Some((_, why)) = skipped.iter().find(|(r, _)| *r == rung) {
            format!("skipped: {why}")
        } else {
            "not tried".to_string()
        };
        checks.push(Check::pass(rung.label(), detail));
    }
}

/// The first working driver in preference order, or the forced one if it works.
pub fn choose_driver(
    forced: Option<DriverKind>,
    overlay_ok: bool,
    fuse_ok: bool,
) -> Option<DriverKind> {
    let works = |k: DriverKind| match k {
        DriverKind::Overlay => overlay_ok,
        DriverKind::FuseOverlayfs => fuse_ok,
        // vfs needs nothing but the namespace, which the caller has checked.
        DriverKind::Vfs => true,
    };
    match forced {
        Some(kind) => works(kind).then_some(kind),
        None => [
            DriverKind::Overlay,
            DriverKind::FuseOverlayfs,
            DriverKind::Vfs,
        ]
        .into_iter()
        .find(|k| works(*k)),
    }
}

fn host_plan(caller: &Caller) -> IdMapPlan {
    IdMapPlan {
        caller: caller.clone(),
        uid_ranges: vec![],
        gid_ranges: vec![],
        newuidmap: None,
        newgidmap: None,
        suggested_start: 0,
    }
}

/// Subordinate ranges, helpers, and whether a namespace can be entered with
/// the full and with the single-id map. Returns the mapping later probes use.
fn probe_userns(caller: &Caller, checks: &mut Vec<Check>) -> Option<(Option<IdMapPlan>, Mapping)> {
    let plan = match IdMapPlan::detect(caller.clone()) {
        Ok(plan) => plan,
        Err(err) => {
            checks.push(Check::fail(
                "subordinate ids",
                error_chain(&err),
                "make /etc/subuid and /etc/subgid readable",
            ));
            return None;
        }
    };
    let fix = plan.fix().unwrap_or_default();
    for (name, file, ranges) in [
        ("subuid ranges", "/etc/subuid", &plan.uid_ranges),
        ("subgid ranges", "/etc/subgid", &plan.gid_ranges),
    ] {
        checks.push(if ranges.is_empty() {
            Check::fail(
                name,
                format!("none for {} in {file}", caller.display_name()),
                &fix,
            )
        } else {
            let list: Vec<String> = ranges.iter().map(|r| r.to_string()).collect();
            Check::pass(name, format!("{} ({file})", list.join(", ")))
        });
    }
    for (name, path) in [
        ("newuidmap", &plan.newuidmap),
        ("newgidmap", &plan.newgidmap),
    ] {
        checks.push(match path {
            Some(p) => Check::pass(name, p.display().to_string()),
            None => Check::fail(
                name,
                "not found",
                "install the uidmap package (apt-get install uidmap)",
            ),
        });
    }
    let single = in_ns(&plan, Mapping::Single, "user namespace", read_uid_map);
    let single_ok = single.ok;
    checks.push(single);
    if !single_ok {
        if let Some(last) = checks.last_mut() {
            last.fix = Some(
                "enable unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, \
                 user.max_user_namespaces > 0, kernel.apparmor_restrict_unprivileged_userns=0)"
                    .into(),
            );
        }
        return None;
    }
    if !plan.is_full() {
        checks.push(Check::fail(
            "id mapping",
            "single id only: chown to other users inside RUN will fail",
            fix,
        ));
        return Some((Some(plan), Mapping::Single));
    }
    let full = in_ns(&plan, Mapping::Full, "id mapping", read_uid_map);
    if full.ok {
        checks.push(full);
        Some((Some(plan), Mapping::Full))
    } else {
        checks.push(Check {
            fix: Some(format!(
                "check that newuidmap/newgidmap are setuid root and that the ranges in \
                 /etc/subuid and /etc/subgid are right; {fix}"
            )),
            ..full
        });
        Some((Some(plan), Mapping::Single))
    }
}

fn in_ns(
    plan: &IdMapPlan,
    mapping: Mapping,
    name: &'static str,
    probe: impl FnOnce() -> Result<String, ProbeError>,
) -> Check {
    match userns::probe_in(plan, mapping, probe) {
        Ok(Ok(detail)) => Check::pass(name, detail),
        Ok(Err(failure)) => Check::fail(name, failure.0, fix_for(name)),
        Err(err) => Check::fail(name, error_chain(&err), fix_for(name)),
    }
}

fn fix_for(name: &str) -> String {
    match name {
        "kernel overlay" => "use Linux 5.11 or later for overlayfs in a user namespace, \
                             or install fuse-overlayfs"
            .into(),
        "fuse-overlayfs" => "apt-get install fuse-overlayfs, and make /dev/fuse usable \
                             (chmod 0666 /dev/fuse)"
            .into(),
        _ => "enable unprivileged user namespaces (user.max_user_namespaces > 0)".into(),
    }
}

/// Why a probe run in a namespace child failed. The child sends it to the
/// parent as one line with its causes (`userns::probe_in`), so each message
/// leaves its cause to the chain.
#[derive(Debug, thiserror::Error)]
enum ProbeError {
    #[error("reading {file}")]
    Read {
        file: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("entered, but uid is {0} instead of 0")]
    NotRoot(nix::unistd::Uid),
    #[error("creating a scratch dir")]
    Scratch(#[source] std::io::Error),
    #[error("mkdir {sub}")]
    ScratchSub {
        sub: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("writing the lower file")]
    WriteLower(#[source] std::io::Error),
    #[error("reading through the mount")]
    ReadThrough(#[source] std::io::Error),
    #[error("the lower file reads wrong through the mount")]
    LowerWrong,
    #[error("writing through the mount")]
    WriteThrough(#[source] std::io::Error),
    #[error("a write through the mount did not reach the upper dir")]
    UpperMissed,
    #[error("mount -t overlay -o userxattr failed")]
    Overlay(#[source] nix::errno::Errno),
    #[error("unmounting {}", .path.display())]
    Unmount {
        path: PathBuf,
        #[source]
        source: nix::errno::Errno,
    },
    #[error("running {}", .program.display())]
    Spawn {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("mount failed ({status}): {stderr}")]
    FuseMount {
        status: std::process::ExitStatus,
        stderr: String,
    },
}

/// In the child: which ids are mapped.
fn read_uid_map() -> Result<String, ProbeError> {
    let count = |file: &'static str| -> Result<u64, ProbeError> {
        let text =
            fs_err::read_to_string(file).map_err(|source| ProbeError::Read { file, source })?;
        Ok(text
            .lines()
            .filter_map(|l| l.split_whitespace().nth(2)?.parse::<u64>().ok())
            .sum())
    };
    let uid = nix::unistd::getuid();
    if !uid.is_root() {
        return Err(ProbeError::NotRoot(uid));
    }
    let (uids, gids) = (count("/proc/self/uid_map")?, count("/proc/self/gid_map")?);
    Ok(format!(
        "ok: {uids} uids and {gids} gids mapped, root = the calling user"
    ))
}

/// A scratch tree lower/upper/work/merged for a mount probe, removed on drop.
struct Scratch(tempfile::TempDir);

impl Scratch {
    fn new() -> Result<Scratch, ProbeError> {
        let dir = tempfile::Builder::new()
            .prefix("strata-probe-")
            .tempdir()
            .map_err(ProbeError::Scratch)?;
        for sub in ["lower", "upper", "work", "merged"] {
            fs_err::create_dir(dir.path().join(sub))
                .map_err(|source| ProbeError::ScratchSub { sub, source })?;
        }
        fs_err::write(dir.path().join("lower/from-lower"), "lower")
            .map_err(ProbeError::WriteLower)?;
        Ok(Scratch(dir))
    }

    fn path(&self, sub: &str) -> PathBuf {
        self.0.path().join(sub)
    }

    fn options(&self, extra: &str) -> String {
        format!(
            "lowerdir={},upperdir={},workdir={}{extra}",
            self.path("lower").display(),
            self.path("upper").display(),
            self.path("work").display()
        )
    }

    /// Reads through the mount and writes through it, checking the write
    /// lands in the upper dir: proof the overlay really works.
    fn exercise(&self) -> Result<(), ProbeError> {
        let merged = self.path("merged");
        let seen =
            fs_err::read_to_string(merged.join("from-lower")).map_err(ProbeError::ReadThrough)?;
        if seen != "lower" {
            return Err(ProbeError::LowerWrong);
        }
        fs_err::write(merged.join("new"), "upper").map_err(ProbeError::WriteThrough)?;
        if !self.path("upper/new").exists() {
            return Err(ProbeError::UpperMissed);
        }
        Ok(())
    }
}

/// In the child: mount kernel overlayfs with `userxattr` and use it.
fn probe_overlay() -> Result<String, ProbeError> {
    let scratch = Scratch::new()?;
    let merged = scratch.path("merged");
    nix::mount::mount(
        Some("overlay"),
        &merged,
        Some("overlay"),
        MsFlags::empty(),
        Some(scratch.options(",userxattr").as_str()),
    )
    .map_err(ProbeError::Overlay)?;
    let used = scratch.exercise();
    unmount(&merged)?;
    used.map(|()| "ok: mounts with userxattr in strata's namespace".to_string())
}

fn unmount(path: &Path) -> Result<(), ProbeError> {
    nix::mount::umount2(path, MntFlags::MNT_DETACH).map_err(|source| ProbeError::Unmount {
        path: path.to_path_buf(),
        source,
    })
}

/// /dev/fuse access and a real fuse-overlayfs mount. Returns whether the
/// driver works.
fn probe_fuse(plan: &IdMapPlan, mapping: Mapping, checks: &mut Vec<Check>) -> bool {
    let dev = match fs_err::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
    {
        Ok(_) => Check::pass("/dev/fuse", "ok: opens read-write"),
        Err(e) => Check::fail(
            "/dev/fuse",
            format!("cannot open read-write: {e}"),
            "as root: chmod 0666 /dev/fuse (Debian's fuse3 package sets this up)",
        ),
    };
    let dev_ok = dev.ok;
    checks.push(dev);
    let Some(program) = super::idmap::find_program("fuse-overlayfs") else {
        checks.push(Check::fail(
            "fuse-overlayfs",
            "not found",
            "apt-get install fuse-overlayfs",
        ));
        return false;
    };
    let version = Command::new(&program)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("fuse-overlayfs"))
                .map(str::to_string)
        })
        .unwrap_or_else(|| "version unknown".into());
    if !dev_ok {
        checks.push(Check::fail(
            "fuse-overlayfs",
            format!(
                "{} ({version}): cannot mount without /dev/fuse",
                program.display()
            ),
            "fix /dev/fuse above",
        ));
        return false;
    }
    let mut check = in_ns(plan, mapping, "fuse-overlayfs", || {
        probe_fuse_mount(&program)
    });
    check.detail = format!("{} ({version}): {}", program.display(), check.detail);
    let ok = check.ok;
    checks.push(check);
    ok
}

/// In the child: mount with fuse-overlayfs and use it.
fn probe_fuse_mount(program: &Path) -> Result<String, ProbeError> {
    let scratch = Scratch::new()?;
    let merged = scratch.path("merged");
    let out = Command::new(program)
        .arg("-o")
        .arg(scratch.options(""))
        .arg(&merged)
        .output()
        .map_err(|source| ProbeError::Spawn {
            program: program.to_path_buf(),
            source,
        })?;
    if !out.status.success() {
        return Err(ProbeError::FuseMount {
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    let used = scratch.exercise();
    unmount(&merged)?;
    used.map(|()| "ok: mounts in strata's namespace".to_string())
}

/// The running kernel's release string.
pub fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_else(|e| format!("unknown ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_preference_and_forcing() {
        use DriverKind::*;
        let cases = [
            (None, true, true, Some(Overlay)),
            (None, false, true, Some(FuseOverlayfs)),
            (None, false, false, Some(Vfs)),
            (Some(FuseOverlayfs), true, true, Some(FuseOverlayfs)),
            (Some(FuseOverlayfs), true, false, None),
            (Some(Vfs), false, false, Some(Vfs)),
        ];
        for (forced, overlay, fuse, want) in cases {
            assert_eq!(
                choose_driver(forced, overlay, fuse),
                want,
                "{forced:?} {overlay} {fuse}"
            );
        }
    }
}
