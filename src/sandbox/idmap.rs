//! How the calling user's ids are mapped into strata's user namespace, and
//! writing that mapping for a process.
//!
//! Container root is the calling user; ids 1..N are the user's subordinate
//! ranges, written by the setuid helpers newuidmap/newgidmap (the only
//! programs allowed to map ids the user does not own). Without ranges or
//! helpers, the user's own id alone is mapped (to 0), which the kernel lets
//! any process do for a child namespace it created.

use std::path::{Path, PathBuf};
use std::process::Command;

use nix::unistd::{Gid, Pid, Uid, User};

use super::subid::{self, SubidRange};

/// Ids mapped per range when we suggest one: what useradd gives by default.
const SUGGESTED_RANGE_SIZE: u32 = 65536;
/// Every id a map line can cover (ids are u32; (u32)-1 is "no id").
const IDS_ALL: u32 = u32::MAX;
/// Where useradd starts allocating subordinate ids by default.
const SUGGESTED_RANGE_FLOOR: u32 = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum IdMapError {
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("running {program}")]
    Spawn {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{program} failed ({status}): {stderr}")]
    Helper {
        program: PathBuf,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("writing {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Who is calling strata, as seen from the host.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Caller {
    pub name: Option<String>,
    pub uid: u32,
    pub gid: u32,
}

impl Caller {
    pub fn current() -> Caller {
        let uid = Uid::current();
        // A uid without a passwd entry is legal (CI containers); the name is
        // then only used to look up subordinate ranges, which can match by id.
        let name = User::from_uid(uid).ok().flatten().map(|u| u.name);
        Caller {
            name,
            uid: uid.as_raw(),
            gid: Gid::current().as_raw(),
        }
    }

    pub fn display_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.uid.to_string())
    }
}

/// Why the full mapping cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shortfall {
    NoSubuid,
    NoSubgid,
    NoHelper(&'static str),
}

/// The mapping strata will ask for.
#[derive(Debug, Clone)]
pub struct IdMapPlan {
    pub caller: Caller,
    pub uid_ranges: Vec<SubidRange>,
    pub gid_ranges: Vec<SubidRange>,
    pub newuidmap: Option<PathBuf>,
    pub newgidmap: Option<PathBuf>,
    /// Where a free range would start, for the fix line.
    pub suggested_start: u32,
}

impl IdMapPlan {
    /// Reads /etc/subuid, /etc/subgid and finds the helpers.
    pub fn detect(caller: Caller) -> Result<IdMapPlan, IdMapError> {
        let read = |file: &str| {
            let path = Path::new(file);
            let content = match fs_err::read_to_string(path) {
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
                Err(source) => {
                    return Err(IdMapError::Read {
                        path: path.into(),
                        source,
                    })
                }
            };
            Ok(content)
        };
        let subuid = read(subid::SUBUID_FILE)?;
        let subgid = read(subid::SUBGID_FILE)?;
        let name = caller.name.as_deref();
        Ok(IdMapPlan {
            uid_ranges: subid::parse_ranges(&subuid, name, caller.uid),
            gid_ranges: subid::parse_ranges(&subgid, name, caller.uid),
            newuidmap: find_program("newuidmap"),
            newgidmap: find_program("newgidmap"),
            suggested_start: suggest_start(&[&subuid, &subgid]),
            caller,
        })
    }

    /// What stands between this plan and a full mapping, first problem first.
    pub fn shortfalls(&self) -> Vec<Shortfall> {
        let mut out = Vec::new();
        if self.uid_ranges.is_empty() {
            out.push(Shortfall::NoSubuid);
        }
        if self.gid_ranges.is_empty() {
            out.push(Shortfall::NoSubgid);
        }
        if self.newuidmap.is_none() {
            out.push(Shortfall::NoHelper("newuidmap"));
        }
        if self.newgidmap.is_none() {
            out.push(Shortfall::NoHelper("newgidmap"));
        }
        out
    }

    pub fn is_full(&self) -> bool {
        self.shortfalls().is_empty()
    }

    /// One line saying how to get the full mapping.
    pub fn fix(&self) -> Option<String> {
        let shortfalls = self.shortfalls();
        if shortfalls
            .iter()
            .any(|s| matches!(s, Shortfall::NoHelper(_)))
        {
            return Some("install the uidmap package (apt-get install uidmap)".into());
        }
        let user = self.caller.display_name();
        let start = self.suggested_start;
        let end = start + SUGGESTED_RANGE_SIZE - 1;
        (!shortfalls.is_empty()).then(|| {
            format!(
                "add {user}:{start}:{SUGGESTED_RANGE_SIZE} to /etc/subuid and /etc/subgid \
                 (as root: usermod --add-subuids {start}-{end} --add-subgids {start}-{end} {user})"
            )
        })
    }

    /// The warning printed once when falling back to a single-id map.
    pub fn fallback_warning(&self) -> Option<String> {
        let fix = self.fix()?;
        let why = match self.shortfalls().first() {
            Some(Shortfall::NoSubuid) => format!(
                "no subordinate uid range for {} in {}",
                self.caller.display_name(),
                subid::SUBUID_FILE
            ),
            Some(Shortfall::NoSubgid) => format!(
                "no subordinate gid range for {} in {}",
                self.caller.display_name(),
                subid::SUBGID_FILE
            ),
            Some(Shortfall::NoHelper(p)) => format!("{p} not found"),
            None => return None,
        };
        Some(format!(
            "{why}: using a single-id user namespace, so files owned by other users \
             cannot be created (chown in RUN fails); fix: {fix}"
        ))
    }

    /// Maps the namespace of `pid` fully (through the helpers).
    pub fn apply_full(&self, pid: Pid) -> Result<(), IdMapError> {
        let helpers = [
            (&self.newuidmap, self.caller.uid, &self.uid_ranges),
            (&self.newgidmap, self.caller.gid, &self.gid_ranges),
        ];
        for (program, outer, ranges) in helpers {
            let Some(program) = program else { continue };
            let mut cmd = Command::new(program);
            cmd.arg(pid.to_string());
            for (inside, outside, count) in map_lines(outer, ranges) {
                cmd.args([inside.to_string(), outside.to_string(), count.to_string()]);
            }
            let out = cmd.output().map_err(|source| IdMapError::Spawn {
                program: program.clone(),
                source,
            })?;
            if !out.status.success() {
                return Err(IdMapError::Helper {
                    program: program.clone(),
                    status: out.status,
                    stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
                });
            }
        }
        Ok(())
    }

    /// The plan of real root nesting a user namespace in a container
    /// (rung 3): no ranges or helpers, every id maps to itself.
    pub fn identity(caller: Caller) -> IdMapPlan {
        IdMapPlan {
            caller,
            uid_ranges: Vec::new(),
            gid_ranges: Vec::new(),
            newuidmap: None,
            newgidmap: None,
            suggested_start: 0,
        }
    }

    /// Maps every id to itself in the namespace of `pid`: root's files keep
    /// their owners, so the store is the same as on rungs 2 and 4. Needs
    /// CAP_SETUID and CAP_SETGID, which root keeps in a default container.
    pub fn apply_identity(&self, pid: Pid) -> Result<(), IdMapError> {
        let proc = PathBuf::from(format!("/proc/{pid}"));
        let all = format!("0 0 {IDS_ALL}");
        for file in ["uid_map", "gid_map"] {
            let path = proc.join(file);
            fs_err::write(&path, &all).map_err(|source| IdMapError::Write { path, source })?;
        }
        Ok(())
    }

    /// Maps only the caller's own uid and gid to 0 in the namespace of `pid`.
    pub fn apply_single(&self, pid: Pid) -> Result<(), IdMapError> {
        let proc = PathBuf::from(format!("/proc/{pid}"));
        // The kernel only accepts an unprivileged gid_map once setgroups is
        // denied, so that dropping groups can't be used to gain access.
        let writes = [
            ("setgroups", "deny".to_string()),
            ("uid_map", format!("0 {} 1", self.caller.uid)),
            ("gid_map", format!("0 {} 1", self.caller.gid)),
        ];
        for (file, content) in writes {
            let path = proc.join(file);
            fs_err::write(&path, content).map_err(|source| IdMapError::Write { path, source })?;
        }
        Ok(())
    }
}

/// The `inside outside count` triplets: 0 is the caller, then the ranges
/// stacked from 1 upwards.
pub fn map_lines(outer: u32, ranges: &[SubidRange]) -> Vec<(u32, u32, u32)> {
    let mut lines = vec![(0, outer, 1)];
    let mut next = 1u32;
    for r in ranges {
        lines.push((next, r.start, r.count));
        next = next.saturating_add(r.count);
    }
    lines
}

/// A start for a new range past every range already given out.
pub fn suggest_start(files: &[&str]) -> u32 {
    let end = files
        .iter()
        .flat_map(|f| f.lines())
        .filter_map(|line| {
            let mut f = line.trim().split(':').skip(1);
            let start: u64 = f.next()?.parse().ok()?;
            let count: u64 = f.next()?.parse().ok()?;
            Some(start + count)
        })
        .max()
        .unwrap_or(0);
    let start = end.max(u64::from(SUGGESTED_RANGE_FLOOR));
    // Past this, no u32 range fits; the floor is as good a guess as any.
    u32::try_from(start)
        .ok()
        .filter(|s| s.checked_add(SUGGESTED_RANGE_SIZE).is_some())
        .unwrap_or(SUGGESTED_RANGE_FLOOR)
}

/// A program on $PATH, or in the standard directories (sudo and su reset
/// PATH, but newuidmap always lives in /usr/bin on Debian).
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs_err::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_lines_stack_ranges_after_root() {
        let ranges = [
            SubidRange {
                start: 100000,
                count: 65536,
            },
            SubidRange {
                start: 300000,
                count: 10,
            },
        ];
        assert_eq!(
            map_lines(1000, &ranges),
            vec![(0, 1000, 1), (1, 100000, 65536), (65537, 300000, 10)]
        );
        assert_eq!(map_lines(7, &[]), vec![(0, 7, 1)]);
    }

    #[test]
    fn suggested_start_is_past_existing_ranges() {
        let cases: &[(&[&str], u32)] = &[
            (&["", ""], 100000),
            (&["a:100000:65536\n", ""], 165536),
            (&["a:100000:65536\n", "b:165536:65536\n"], 231072),
            (&["junk\nx:y:z\n"], 100000),
            (&["a:4294900000:65536\n"], 100000),
        ];
        for (files, want) in cases {
            assert_eq!(suggest_start(files), *want, "{files:?}");
        }
    }

    #[test]
    fn fix_line_names_user_and_range() {
        let plan = IdMapPlan {
            caller: Caller {
                name: Some("tester".into()),
                uid: 1000,
                gid: 1000,
            },
            uid_ranges: vec![],
            gid_ranges: vec![],
            newuidmap: Some("/usr/bin/newuidmap".into()),
            newgidmap: Some("/usr/bin/newgidmap".into()),
            suggested_start: 100000,
        };
        assert_eq!(
            plan.fix().as_deref(),
            Some(
                "add tester:100000:65536 to /etc/subuid and /etc/subgid (as root: usermod \
                 --add-subuids 100000-165535 --add-subgids 100000-165535 tester)"
            )
        );
        let warning = plan.fallback_warning().unwrap_or_default();
        assert!(warning.starts_with("no subordinate uid range for tester in /etc/subuid"));
        let no_helper = IdMapPlan {
            newuidmap: None,
            ..plan
        };
        assert_eq!(
            no_helper.fix().as_deref(),
            Some("install the uidmap package (apt-get install uidmap)")
        );
    }
}
