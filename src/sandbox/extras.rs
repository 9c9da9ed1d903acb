//! What a process gets beyond its image, as Docker's flags of the same
//! names give it: `--add-host` lines in its /etc/hosts, `--shm-size` for
//! its /dev/shm, `--ulimit`s set before it starts. Parsed here (pure), and
//! applied by container-init ([`apply_ulimits`]) and the root file system
//! setup (`shm_size`).

use std::net::IpAddr;

use nix::sys::resource::{setrlimit, Resource};
use serde::{Deserialize, Serialize};

/// Docker's /dev/shm when `--shm-size` is not given: 64 MiB.
pub const DEFAULT_SHM_SIZE: u64 = 64 << 20;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extras {
    /// `--add-host`: (name, address), appended to /etc/hosts in order.
    #[serde(default)]
    pub hosts: Vec<(String, String)>,
    /// `--shm-size` in bytes; [`DEFAULT_SHM_SIZE`] when `None`.
    #[serde(default)]
    pub shm_size: Option<u64>,
    #[serde(default)]
    pub ulimits: Vec<Ulimit>,
}

/// One `--ulimit NAME=SOFT[:HARD]`; `None` is unlimited (`-1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ulimit {
    pub name: String,
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExtrasError {
    #[error("--add-host {0:?}: expected HOST:IP (or HOST=IP)")]
    HostForm(String),
    #[error("--add-host {text:?}: invalid IP address {ip:?}")]
    HostIp { text: String, ip: String },
    #[error("--add-host {0:?}: host-gateway is the Docker daemon's gateway; strata has no daemon: give the address")]
    HostGateway(String),
    #[error("--ulimit {0:?}: expected NAME=SOFT[:HARD] (e.g. nofile=1024:2048)")]
    UlimitForm(String),
    #[error("--ulimit {text:?}: unknown limit {name:?} (core, cpu, data, fsize, locks, memlock, msgqueue, nice, nofile, nproc, rss, rtprio, rttime, sigpending, stack)")]
    UlimitName { text: String, name: String },
    #[error("--ulimit {0:?}: the soft limit is above the hard limit")]
    UlimitOrder(String),
}

/// Docker's names for the limits, and what the kernel calls them.
const LIMITS: &[(&str, Resource)] = &[
    ("core", Resource::RLIMIT_CORE),
    ("cpu", Resource::RLIMIT_CPU),
    ("data", Resource::RLIMIT_DATA),
    ("fsize", Resource::RLIMIT_FSIZE),
    ("locks", Resource::RLIMIT_LOCKS),
    ("memlock", Resource::RLIMIT_MEMLOCK),
    ("msgqueue", Resource::RLIMIT_MSGQUEUE),
    ("nice", Resource::RLIMIT_NICE),
    ("nofile", Resource::RLIMIT_NOFILE),
    ("nproc", Resource::RLIMIT_NPROC),
    ("rss", Resource::RLIMIT_RSS),
    ("rtprio", Resource::RLIMIT_RTPRIO),
    ("rttime", Resource::RLIMIT_RTTIME),
    ("sigpending", Resource::RLIMIT_SIGPENDING),
    ("stack", Resource::RLIMIT_STACK),
];

/// One `--add-host`: `HOST:IP` or `HOST=IP`, an IPv6 address maybe in
/// brackets (`h:[::1]`), as Docker's CLI reads it.
pub fn parse_host(text: &str) -> Result<(String, String), ExtrasError> {
    let (host, ip) = text
        .split_once('=')
        .or_else(|| text.split_once(':'))
        .ok_or_else(|| ExtrasError::HostForm(text.into()))?;
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(ExtrasError::HostForm(text.into()));
    }
    let ip = ip
        .strip_prefix('[')
        .and_then(|i| i.strip_suffix(']'))
        .unwrap_or(ip);
    if ip == "host-gateway" {
        return Err(ExtrasError::HostGateway(text.into()));
    }
    let addr: IpAddr = ip.parse().map_err(|_| ExtrasError::HostIp {
        text: text.into(),
        ip: ip.into(),
    })?;
    Ok((host.to_string(), addr.to_string()))
}

impl Ulimit {
    /// `NAME=SOFT[:HARD]` (HARD is SOFT when left out; -1 is unlimited).
    pub fn parse(text: &str) -> Result<Ulimit, ExtrasError> {
        let form = || ExtrasError::UlimitForm(text.into());
        let (name, values) = text.split_once('=').ok_or_else(form)?;
        if !LIMITS.iter().any(|(n, _)| *n == name) {
            return Err(ExtrasError::UlimitName {
                text: text.into(),
                name: name.into(),
            });
        }
        let value = |v: &str| -> Result<Option<u64>, ExtrasError> {
            match v {
                "-1" => Ok(None),
                v => v.parse().map(Some).map_err(|_| form()),
            }
        };
        let (soft, hard) = match values.split_once(':') {
            Some((s, h)) => (value(s)?, value(h)?),
            None => (value(values)?, value(values)?),
        };
        let above = match (soft, hard) {
            (None, Some(_)) => true,
            (Some(s), Some(h)) => s > h,
            _ => false,
        };
        if above {
            return Err(ExtrasError::UlimitOrder(text.into()));
        }
        Ok(Ulimit {
            name: name.into(),
            soft,
            hard,
        })
    }

    fn resource(&self) -> Option<Resource> {
        LIMITS
            .iter()
            .find(|(n, _)| *n == self.name)
            .map(|(_, r)| *r)
    }
}

impl std::fmt::Display for Ulimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = |x: Option<u64>| x.map_or("-1".to_string(), |x| x.to_string());
        write!(f, "{}={}:{}", self.name, v(self.soft), v(self.hard))
    }
}

impl Extras {
    /// The /etc/hosts lines `--add-host` adds (BuildKit's `IP\tHOST`).
    pub fn hosts_lines(&self) -> String {
        self.hosts
            .iter()
            .map(|(host, ip)| format!("{ip}\t{host}\n"))
            .collect()
    }

    /// What a RUN step's cache key holds of these (nothing when none is
    /// given, so keys stay as they were without the flags): they change
    /// what a step can do, as BuildKit keys them.
    pub fn key_lines(&self) -> Vec<String> {
        let hosts = self
            .hosts
            .iter()
            .map(|(h, ip)| format!("add-host {h}={ip}"));
        let shm = self.shm_size.map(|s| format!("shm-size {s}"));
        let ulimits = self.ulimits.iter().map(|u| format!("ulimit {u}"));
        hosts.chain(shm).chain(ulimits).collect()
    }
}

/// Sets the `--ulimit`s on this process (container-init, before exec).
/// Rootless, a hard limit cannot go above the caller's: the kernel's EPERM
/// is reported with the limit.
pub fn apply_ulimits(ulimits: &[Ulimit]) -> Result<(), (String, nix::errno::Errno)> {
    const INFINITY: u64 = nix::libc::RLIM_INFINITY;
    for u in ulimits {
        let Some(resource) = u.resource() else {
            return Err((u.to_string(), nix::errno::Errno::EINVAL));
        };
        setrlimit(
            resource,
            u.soft.unwrap_or(INFINITY),
            u.hard.unwrap_or(INFINITY),
        )
        .map_err(|e| (u.to_string(), e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_as_docker_reads_them() {
        for (text, want) in [
            ("db:10.0.0.2", ("db", "10.0.0.2")),
            ("db=10.0.0.2", ("db", "10.0.0.2")),
            ("v6:::1", ("v6", "::1")),
            ("v6:[2001:db8::1]", ("v6", "2001:db8::1")),
            ("v6=[::1]", ("v6", "::1")),
        ] {
            assert_eq!(
                parse_host(text),
                Ok((want.0.to_string(), want.1.to_string())),
                "{text}"
            );
        }
        assert!(matches!(
            parse_host("gw:host-gateway"),
            Err(ExtrasError::HostGateway(_))
        ));
        for bad in ["nocolon", ":1.2.3.4", "h:999.1.1.1", "h:", "a b:1.2.3.4"] {
            assert!(parse_host(bad).is_err(), "{bad}");
        }
        let e = Extras {
            hosts: vec![("db".into(), "10.0.0.2".into())],
            ..Extras::default()
        };
        assert_eq!(e.hosts_lines(), "10.0.0.2\tdb\n");
    }

    #[test]
    fn ulimits_as_docker_reads_them() {
        let u = Ulimit::parse("nofile=1024:2048").unwrap();
        assert_eq!((u.soft, u.hard), (Some(1024), Some(2048)));
        let u = Ulimit::parse("nproc=100").unwrap();
        assert_eq!((u.soft, u.hard), (Some(100), Some(100)));
        let u = Ulimit::parse("memlock=-1:-1").unwrap();
        assert_eq!((u.soft, u.hard), (None, None));
        assert_eq!(u.to_string(), "memlock=-1:-1");
        for bad in ["nofile", "bogus=1", "nofile=x", "nofile=10:5", "core=-1:5"] {
            assert!(Ulimit::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn no_flags_key_nothing() {
        assert!(Extras::default().key_lines().is_empty());
        let e = Extras {
            shm_size: Some(1 << 20),
            ulimits: vec![Ulimit::parse("nofile=10").unwrap()],
            ..Extras::default()
        };
        assert_eq!(e.key_lines(), ["shm-size 1048576", "ulimit nofile=10:10"]);
    }
}
