//! The isolation ladder: which of strata's four ways of running a command
//! works where it was started, chosen from probed facts by a pure function.
//!
//! 1. `rootless`: a user namespace with the caller's subordinate ids, and a
//!    mount namespace (laptops, VM runners).
//! 2. `root`: real root with CAP_SYS_ADMIN: a mount namespace and no user
//!    namespace (VMs, privileged containers).
//! 3. `nested`: a user namespace inside a container whose seccomp profile
//!    allows one, for root without CAP_SYS_ADMIN as for other users; where
//!    the container's /proc is masked and a new one is refused, RUN gets the
//!    container's /proc bound in (as podman does).
//! 4. `chroot`: root in a container that allows neither (Docker's default, a
//!    default Kubernetes pod): no namespace and no mount at all. RUN is
//!    chrooted into a vfs copy of its root file system, and its /proc, /dev
//!    and /sys are the container's, reached through ptrace (`sandbox::chroot`).
//!
//! [`next`] looks at the facts gathered so far and says which fact it needs
//! probed next or which rung to use; probing is the caller's job (entering a
//! user namespace is itself the probe of rung 1 and 3). With every fact
//! known it is a plain function, which the tests drive with fixtures.

use serde::{Deserialize, Serialize};

use super::environment::Environment;

/// A rung of the ladder, best isolation first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Isolation {
    /// 1: a user namespace with the caller's subordinate ids
    Rootless,
    /// 2: real root with CAP_SYS_ADMIN: a mount namespace only
    Root,
    /// 3: a user namespace nested in a container (/proc bound when masked)
    Nested,
    /// 4: no namespaces: chroot, with /proc, /dev, /sys reached by ptrace
    Chroot,
}

impl Isolation {
    pub const ALL: [Isolation; 4] = [
        Isolation::Rootless,
        Isolation::Root,
        Isolation::Nested,
        Isolation::Chroot,
    ];

    pub fn rung(self) -> u8 {
        match self {
            Isolation::Rootless => 1,
            Isolation::Root => 2,
            Isolation::Nested => 3,
            Isolation::Chroot => 4,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Isolation::Rootless => "rootless",
            Isolation::Root => "root",
            Isolation::Nested => "nested",
            Isolation::Chroot => "chroot",
        }
    }

    /// `rung N (name)`, as `strata info` labels its row.
    pub fn label(self) -> &'static str {
        match self {
            Isolation::Rootless => "rung 1 (rootless)",
            Isolation::Root => "rung 2 (root)",
            Isolation::Nested => "rung 3 (nested)",
            Isolation::Chroot => "rung 4 (chroot)",
        }
    }

    /// What the rung is, in a few words.
    pub fn summary(self) -> &'static str {
        match self {
            Isolation::Rootless => "user namespace with subordinate ids, mount namespace",
            Isolation::Root => "real root: mount namespace, no user namespace",
            Isolation::Nested => "user namespace nested in a container",
            Isolation::Chroot => "no namespaces: chroot, /proc /dev /sys through ptrace",
        }
    }
}

/// What `--isolation` takes: Docker's `default` (the best rung that works,
/// as with no flag) or a rung.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IsolationFlag {
    /// The best rung that works here (Docker's only value on Linux)
    Default,
    /// 1: a user namespace with the caller's subordinate ids
    Rootless,
    /// 2: real root with CAP_SYS_ADMIN: a mount namespace only
    Root,
    /// 3: a user namespace nested in a container (/proc bound when masked)
    Nested,
    /// 4: no namespaces: chroot, with /proc, /dev, /sys reached by ptrace
    Chroot,
}

impl IsolationFlag {
    /// The rung forced, if any.
    pub fn forced(self) -> Option<Isolation> {
        match self {
            IsolationFlag::Default => None,
            IsolationFlag::Rootless => Some(Isolation::Rootless),
            IsolationFlag::Root => Some(Isolation::Root),
            IsolationFlag::Nested => Some(Isolation::Nested),
            IsolationFlag::Chroot => Some(Isolation::Chroot),
        }
    }
}

impl std::fmt::Display for Isolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// The outcome of one probe.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(tag = "result", content = "detail", rename_all = "kebab-case")]
pub enum Probe {
    /// Not needed (yet).
    #[default]
    NotRun,
    Ok,
    /// What failed, in words (no raw errno).
    Failed(String),
}

impl Probe {
    pub fn ok(&self) -> bool {
        matches!(self, Probe::Ok)
    }

    pub fn from_result<E: std::fmt::Display>(r: Result<(), E>) -> Probe {
        match r {
            Ok(()) => Probe::Ok,
            Err(e) => Probe::Failed(e.to_string()),
        }
    }
}

/// What is known about where strata runs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Facts {
    /// Effective uid 0.
    pub root: bool,
    pub env: Environment,
    /// A private mount namespace, as real root (rung 2).
    pub mount_ns: Probe,
    /// A user + mount namespace, mapped, with a mount made in it (rung 1, 3).
    pub user_ns: Probe,
    /// A new /proc mounted in a user + pid namespace (rung 1; rung 3 binds
    /// the container's /proc instead).
    pub fresh_proc: Probe,
    /// A child traced under a seccomp filter, and chroot (rung 4).
    pub ptrace: Probe,
}

/// A fact [`next`] needs before it can decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fact {
    MountNs,
    UserNs,
    FreshProc,
    Ptrace,
}

/// The rung to use, and why each better one was passed over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Choice {
    pub isolation: Isolation,
    /// Forced with `--isolation`.
    pub forced: bool,
    /// RUN gets the container's /proc bound in, a new one being refused.
    pub bind_proc: bool,
    pub skipped: Vec<(Isolation, String)>,
}

/// What [`next`] says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Probe(Fact),
    Use(Choice),
    /// No rung works; the error says why and what to change.
    None(NoRung),
}

/// Why a rung cannot be used, or the fact still needed to know.
enum Verdict {
    Works { bind_proc: bool },
    Skip(String),
    Need(Fact),
}

/// The one decision: the first rung (or the forced one) whose facts hold.
pub fn next(facts: &Facts, forced: Option<Isolation>) -> Next {
    let candidates: Vec<Isolation> = match forced {
        Some(rung) => vec![rung],
        None => Isolation::ALL.to_vec(),
    };
    let mut skipped = Vec::new();
    for rung in candidates {
        match verdict(facts, rung) {
            Verdict::Need(fact) => return Next::Probe(fact),
            Verdict::Skip(why) => skipped.push((rung, why)),
            Verdict::Works { bind_proc } => {
                return Next::Use(Choice {
                    isolation: rung,
                    forced: forced.is_some(),
                    bind_proc,
                    skipped,
                })
            }
        }
    }
    Next::None(NoRung {
        env: facts.env.clone(),
        root: facts.root,
        forced,
        skipped,
    })
}

fn need(probe: &Probe, fact: Fact) -> Result<(), Verdict> {
    match probe {
        Probe::NotRun => Err(Verdict::Need(fact)),
        Probe::Ok => Ok(()),
        Probe::Failed(why) => Err(Verdict::Skip(why.clone())),
    }
}

fn verdict(f: &Facts, rung: Isolation) -> Verdict {
    let checked = || -> Result<Verdict, Verdict> {
        match rung {
            Isolation::Rootless => {
                if f.root {
                    return Err(Verdict::Skip(
                        "for an unprivileged user; this is root".into(),
                    ));
                }
                need(&f.user_ns, Fact::UserNs)?;
                need(&f.fresh_proc, Fact::FreshProc)?;
                Ok(Verdict::Works { bind_proc: false })
            }
            Isolation::Root => {
                if !f.root {
                    return Err(Verdict::Skip("needs real root".into()));
                }
                if !f.env.cap_sys_admin {
                    return Err(Verdict::Skip("no CAP_SYS_ADMIN".into()));
                }
                need(&f.mount_ns, Fact::MountNs)?;
                Ok(Verdict::Works { bind_proc: false })
            }
            Isolation::Nested => {
                need(&f.user_ns, Fact::UserNs)?;
                let fresh = match need(&f.fresh_proc, Fact::FreshProc) {
                    Ok(()) => true,
                    Err(Verdict::Need(fact)) => return Err(Verdict::Need(fact)),
                    Err(_) => false,
                };
                Ok(Verdict::Works { bind_proc: !fresh })
            }
            Isolation::Chroot => {
                if !f.root {
                    return Err(Verdict::Skip(
                        "needs root (chroot, and files owned by any user)".into(),
                    ));
                }
                need(&f.ptrace, Fact::Ptrace)?;
                Ok(Verdict::Works { bind_proc: false })
            }
        }
    };
    match checked() {
        Ok(v) | Err(v) => v,
    }
}

/// No rung works: the environment seen, why each rung failed, and the fixes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.message())]
pub struct NoRung {
    pub env: Environment,
    pub root: bool,
    pub forced: Option<Isolation>,
    pub skipped: Vec<(Isolation, String)>,
}

impl NoRung {
    fn message(&self) -> String {
        let mut out = match self.forced {
            Some(rung) => format!("--isolation {} cannot be used in {}", rung.name(), self.env),
            None => format!("no isolation works in {}", self.env),
        };
        for (rung, why) in &self.skipped {
            out.push_str(&format!("\n  {rung}: {why}"));
        }
        for (i, fix) in self.fixes().iter().enumerate() {
            let lead = if i == 0 { "fix" } else { "or" };
            out.push_str(&format!("\n  {lead}: {fix}"));
        }
        out
    }

    /// What to change, most likely first.
    pub fn fixes(&self) -> Vec<String> {
        let mut fixes = Vec::new();
        if self.forced.is_some() {
            fixes.push("leave --isolation out to let strata choose (see strata info)".into());
        }
        if self.env.apparmor_restricts_userns {
            fixes.push(APPARMOR_FIX.into());
        }
        if self.env.runtime.is_container() {
            if !self.root {
                fixes.push(
                    "run the job as root in the container (docker run --user 0, a pod's \
                     runAsUser: 0): strata needs no added privileges there"
                        .into(),
                );
            }
            fixes.push(
                "allow user namespaces: docker run --security-opt seccomp=unconfined \
                 --security-opt apparmor=unconfined, or in Kubernetes the container's \
                 securityContext seccompProfile: {type: Unconfined} and procMount: Unmasked"
                    .into(),
            );
            fixes.push(
                "use a VM runner (GitHub's ubuntu-latest, a GitLab shell or VM executor)".into(),
            );
        } else {
            fixes.push(
                "enable unprivileged user namespaces: sysctl -w user.max_user_namespaces=15000 \
                 (and kernel.unprivileged_userns_clone=1 where the kernel has it)"
                    .into(),
            );
        }
        fixes
    }
}

/// Ubuntu 23.10+ (and GitHub's ubuntu-24.04 runners) confine unprivileged
/// user namespaces with AppArmor unless a profile allows them.
pub const APPARMOR_FIX: &str = "AppArmor restricts unprivileged user namespaces here \
    (kernel.apparmor_restrict_unprivileged_userns=1): install strata's profile \
    (sudo install -m 644 contrib/apparmor/strata /etc/apparmor.d/strata && \
    sudo apparmor_parser -r /etc/apparmor.d/strata), or sudo sysctl -w \
    kernel.apparmor_restrict_unprivileged_userns=0";

#[cfg(test)]
mod tests {
    use super::super::environment::Runtime;
    use super::*;

    fn failed(s: &str) -> Probe {
        Probe::Failed(s.into())
    }

    fn docker(root: bool, cap_sys_admin: bool) -> Facts {
        Facts {
            root,
            env: Environment {
                runtime: Runtime::Docker,
                uid: if root { 0 } else { 1000 },
                cap_sys_admin,
                seccomp_filtered: true,
                apparmor_restricts_userns: false,
            },
            ..Facts::default()
        }
    }

    /// Runs `next`, answering probes from `answers`, until it decides.
    fn decide(mut facts: Facts, forced: Option<Isolation>, answers: &Facts) -> Next {
        loop {
            match next(&facts, forced) {
                Next::Probe(fact) => {
                    let (slot, answer) = match fact {
                        Fact::MountNs => (&mut facts.mount_ns, &answers.mount_ns),
                        Fact::UserNs => (&mut facts.user_ns, &answers.user_ns),
                        Fact::FreshProc => (&mut facts.fresh_proc, &answers.fresh_proc),
                        Fact::Ptrace => (&mut facts.ptrace, &answers.ptrace),
                    };
                    assert_ne!(
                        *answer,
                        Probe::NotRun,
                        "{fact:?} asked for but not in fixture"
                    );
                    assert_eq!(*slot, Probe::NotRun, "{fact:?} asked for twice");
                    *slot = answer.clone();
                }
                other => return other,
            }
        }
    }

    fn used(n: &Next) -> (Isolation, bool) {
        match n {
            Next::Use(c) => (c.isolation, c.bind_proc),
            other => panic!("expected a rung, got {other:?}"),
        }
    }

    #[test]
    fn the_settings_of_the_issue_pick_their_rungs() {
        let userns_blocked = failed("creating a user namespace was refused");
        // uid 1000 on a VM: rung 1.
        let mut vm = docker(false, false);
        vm.env.runtime = Runtime::Host;
        let answers = Facts {
            user_ns: Probe::Ok,
            fresh_proc: Probe::Ok,
            ..Facts::default()
        };
        assert_eq!(
            used(&decide(vm, None, &answers)),
            (Isolation::Rootless, false)
        );

        // root with --cap-add SYS_ADMIN and unconfined profiles: rung 2.
        let answers = Facts {
            mount_ns: Probe::Ok,
            ..Facts::default()
        };
        assert_eq!(
            used(&decide(docker(true, true), None, &answers)),
            (Isolation::Root, false)
        );

        // root or uid 1000, seccomp unconfined, /proc masked: rung 3, bound /proc.
        for root in [true, false] {
            let answers = Facts {
                mount_ns: failed("making a mount namespace was refused"),
                user_ns: Probe::Ok,
                fresh_proc: failed("mounting a new /proc was refused"),
                ..Facts::default()
            };
            let got = decide(docker(root, false), None, &answers);
            assert_eq!(used(&got), (Isolation::Nested, true), "root={root}");
        }

        // root under Docker's defaults: rung 4, rungs 1-3 said why.
        let answers = Facts {
            user_ns: userns_blocked.clone(),
            ptrace: Probe::Ok,
            ..Facts::default()
        };
        let got = decide(docker(true, false), None, &answers);
        assert_eq!(used(&got), (Isolation::Chroot, false));
        let Next::Use(choice) = got else {
            unreachable!()
        };
        let why: Vec<Isolation> = choice.skipped.iter().map(|(r, _)| *r).collect();
        assert_eq!(
            why,
            [Isolation::Rootless, Isolation::Root, Isolation::Nested]
        );
        assert!(choice.skipped[1].1.contains("CAP_SYS_ADMIN"));

        // uid 1000 under Docker's defaults: nothing, with the fixes in order.
        let answers = Facts {
            user_ns: userns_blocked,
            ..Facts::default()
        };
        let Next::None(err) = decide(docker(false, false), None, &answers) else {
            panic!("a rung was chosen for uid 1000 under Docker's defaults");
        };
        let text = err.to_string();
        assert!(
            text.starts_with("no isolation works in a Docker container"),
            "{text}"
        );
        let fixes = err.fixes();
        assert!(fixes[0].contains("as root"), "{fixes:?}");
        assert!(fixes[1].contains("seccomp=unconfined"), "{fixes:?}");
        assert!(fixes[1].contains("procMount: Unmasked"), "{fixes:?}");
        assert!(fixes[2].contains("VM runner"), "{fixes:?}");
        assert!(!text.contains("EPERM"), "{text}");
    }

    #[test]
    fn rung_2_is_not_probed_without_cap_sys_admin_and_rung_1_never_for_root() {
        let answers = Facts {
            user_ns: Probe::Ok,
            fresh_proc: Probe::Ok,
            ..Facts::default()
        };
        // mount_ns stays NotRun in the answers: asking for it would panic.
        assert_eq!(
            used(&decide(docker(true, false), None, &answers)),
            (Isolation::Nested, false)
        );
    }

    #[test]
    fn forcing_a_rung_checks_only_that_rung() {
        let answers = Facts {
            mount_ns: Probe::Ok,
            user_ns: Probe::Ok,
            fresh_proc: Probe::Ok,
            ptrace: Probe::Ok,
            ..Facts::default()
        };
        let got = decide(docker(true, true), Some(Isolation::Chroot), &answers);
        let Next::Use(choice) = got else { panic!() };
        assert!(choice.forced && choice.skipped.is_empty());
        assert_eq!(choice.isolation, Isolation::Chroot);

        let got = decide(docker(false, false), Some(Isolation::Chroot), &answers);
        let Next::None(err) = got else { panic!() };
        assert!(err
            .to_string()
            .starts_with("--isolation chroot cannot be used"));
        assert!(err.fixes()[0].contains("leave --isolation out"));
    }

    #[test]
    fn apparmor_restriction_comes_first_among_the_fixes() {
        let mut facts = docker(false, false);
        facts.env.runtime = Runtime::Host;
        facts.env.apparmor_restricts_userns = true;
        let answers = Facts {
            user_ns: failed("the new user namespace has no capabilities"),
            ..Facts::default()
        };
        let Next::None(err) = decide(facts, None, &answers) else {
            panic!()
        };
        assert_eq!(err.fixes()[0], APPARMOR_FIX);
        assert!(err.fixes()[0].contains("contrib/apparmor/strata"));
    }
}
