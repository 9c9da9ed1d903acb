//! Where strata is running, as far as the error messages and `strata info`
//! need to say it: a host or which kind of container, the user, whether a
//! seccomp filter is on, CAP_SYS_ADMIN, and Ubuntu's AppArmor restriction of
//! user namespaces. Read from files the kernel and the container runtimes
//! write; the parsing is pure and tested with fixtures.

use std::path::Path;

use serde::Serialize;

/// The sysctl Ubuntu 23.10+ uses to confine unprivileged user namespaces.
pub const APPARMOR_SYSCTL: &str = "/proc/sys/kernel/apparmor_restrict_unprivileged_userns";
const CAP_SYS_ADMIN_BIT: u32 = 21;

/// What runs strata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Runtime {
    #[default]
    Host,
    Docker,
    Podman,
    Kubernetes,
    /// Another container runtime (lxc, systemd-nspawn, containerd, ...).
    Container,
}

impl Runtime {
    pub fn is_container(self) -> bool {
        self != Runtime::Host
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Environment {
    pub runtime: Runtime,
    pub uid: u32,
    pub cap_sys_admin: bool,
    /// A seccomp filter is in force (`Seccomp: 2`).
    pub seccomp_filtered: bool,
    pub apparmor_restricts_userns: bool,
}

impl std::fmt::Display for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.runtime {
            Runtime::Host => "this machine",
            Runtime::Docker => "a Docker container",
            Runtime::Podman => "a Podman container",
            Runtime::Kubernetes => "a Kubernetes pod",
            Runtime::Container => "a container",
        };
        let mut traits = vec![format!("uid {}", self.uid)];
        if self.seccomp_filtered {
            traits.push("seccomp filter on".into());
        }
        traits.push(if self.cap_sys_admin {
            "CAP_SYS_ADMIN".into()
        } else {
            "no CAP_SYS_ADMIN".into()
        });
        if self.apparmor_restricts_userns {
            traits.push("AppArmor restricts user namespaces".into());
        }
        write!(f, "{what} ({})", traits.join(", "))
    }
}

/// What detection reads, gathered so tests can give fixtures.
#[derive(Debug, Default)]
pub struct Inputs<'a> {
    pub dockerenv: bool,
    pub containerenv: bool,
    pub kubernetes_env: bool,
    /// The `container` variable podman, lxc and systemd-nspawn set for pid 1.
    pub container_var: Option<&'a str>,
    pub cgroup: &'a str,
    pub status: &'a str,
    pub apparmor_sysctl: Option<&'a str>,
    pub uid: u32,
}

/// The environment from `inputs`.
pub fn classify(inputs: &Inputs) -> Environment {
    Environment {
        runtime: runtime(inputs),
        uid: inputs.uid,
        cap_sys_admin: status_hex(inputs.status, "CapEff:")
            .is_some_and(|caps| caps & (1 << CAP_SYS_ADMIN_BIT) != 0),
        seccomp_filtered: status_field(inputs.status, "Seccomp:") == Some("2"),
        apparmor_restricts_userns: apparmor_restricts(inputs.apparmor_sysctl),
    }
}

fn runtime(i: &Inputs) -> Runtime {
    // Kubernetes first: its containers are also Docker's or containerd's.
    if i.kubernetes_env || i.cgroup.contains("kubepods") {
        Runtime::Kubernetes
    } else if i.containerenv || i.container_var == Some("podman") {
        Runtime::Podman
    } else if i.dockerenv || i.cgroup.contains("/docker") {
        Runtime::Docker
    } else if i.container_var.is_some_and(|v| !v.is_empty()) || i.cgroup.contains("containerd") {
        Runtime::Container
    } else {
        Runtime::Host
    }
}

/// `kernel.apparmor_restrict_unprivileged_userns` is 1 (absent on kernels
/// without Ubuntu's patch).
pub fn apparmor_restricts(sysctl: Option<&str>) -> bool {
    sysctl.is_some_and(|v| v.trim() == "1")
}

fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(str::trim)
}

fn status_hex(status: &str, key: &str) -> Option<u64> {
    u64::from_str_radix(status_field(status, key)?, 16).ok()
}

/// This process's environment, read now.
pub fn detect() -> Environment {
    let read = |p: &str| fs_err::read_to_string(p).ok();
    let cgroup = read("/proc/1/cgroup")
        .or_else(|| read("/proc/self/cgroup"))
        .unwrap_or_default();
    let status = read("/proc/self/status").unwrap_or_default();
    let apparmor = read(APPARMOR_SYSCTL);
    let container_var = read("/proc/1/environ").and_then(|env| {
        env.split('\0')
            .find_map(|kv| kv.strip_prefix("container="))
            .map(str::to_string)
    });
    classify(&Inputs {
        dockerenv: Path::new("/.dockerenv").exists(),
        containerenv: Path::new("/run/.containerenv").exists(),
        kubernetes_env: std::env::var_os("KUBERNETES_SERVICE_HOST").is_some(),
        container_var: container_var.as_deref(),
        cgroup: &cgroup,
        status: &status,
        apparmor_sysctl: apparmor.as_deref(),
        uid: nix::unistd::geteuid().as_raw(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// /proc/self/status in a default `docker run` (abridged).
    const DOCKER_STATUS: &str = "Name:\tcat\nUid:\t0\t0\t0\t0\nCapInh:\t0000000000000000\n\
        CapPrm:\t00000000a80425fb\nCapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\n\
        NoNewPrivs:\t0\nSeccomp:\t2\nSeccomp_filters:\t1\n";
    /// The same with --cap-add SYS_ADMIN --security-opt seccomp=unconfined.
    const SYS_ADMIN_STATUS: &str = "CapEff:\t00000000a82425fb\nSeccomp:\t0\n";

    #[test]
    fn docker_default_is_seen_as_such() {
        let env = classify(&Inputs {
            dockerenv: true,
            cgroup: "0::/\n",
            status: DOCKER_STATUS,
            uid: 0,
            ..Inputs::default()
        });
        assert_eq!(env.runtime, Runtime::Docker);
        assert!(env.seccomp_filtered && !env.cap_sys_admin);
        assert_eq!(
            env.to_string(),
            "a Docker container (uid 0, seccomp filter on, no CAP_SYS_ADMIN)"
        );
        let env = classify(&Inputs {
            dockerenv: true,
            status: SYS_ADMIN_STATUS,
            ..Inputs::default()
        });
        assert!(env.cap_sys_admin && !env.seccomp_filtered);
    }

    #[test]
    fn runtimes_from_their_marks() {
        let kube_cgroup = "12:pids:/kubepods/besteffort/pod1234/abcd\n";
        let cases = [
            (
                Inputs {
                    cgroup: kube_cgroup,
                    dockerenv: true,
                    ..Inputs::default()
                },
                Runtime::Kubernetes,
            ),
            (
                Inputs {
                    kubernetes_env: true,
                    ..Inputs::default()
                },
                Runtime::Kubernetes,
            ),
            (
                Inputs {
                    containerenv: true,
                    ..Inputs::default()
                },
                Runtime::Podman,
            ),
            (
                Inputs {
                    cgroup: "1:name=systemd:/docker/0123abcd\n",
                    ..Inputs::default()
                },
                Runtime::Docker,
            ),
            (
                Inputs {
                    container_var: Some("lxc"),
                    ..Inputs::default()
                },
                Runtime::Container,
            ),
            (
                Inputs {
                    cgroup: "0::/user.slice/user-1000.slice/session-2.scope\n",
                    ..Inputs::default()
                },
                Runtime::Host,
            ),
        ];
        for (inputs, want) in cases {
            assert_eq!(runtime(&inputs), want, "{inputs:?}");
        }
    }

    #[test]
    fn ubuntus_apparmor_sysctl() {
        assert!(apparmor_restricts(Some("1\n")));
        assert!(!apparmor_restricts(Some("0\n")));
        // Debian and upstream kernels have no such sysctl.
        assert!(!apparmor_restricts(None));
        let env = classify(&Inputs {
            apparmor_sysctl: Some("1\n"),
            uid: 1000,
            ..Inputs::default()
        });
        assert!(env
            .to_string()
            .contains("AppArmor restricts user namespaces"));
    }
}
