//! Which absolute paths a chrooted RUN reaches outside its root, and how:
//! the table the tracer consults at every path system call. Pure.
//!
//! An entry names a target inside the container (`/proc`), a directory
//! descriptor the traced process holds, and how many of the target's
//! trailing components the path relative to that descriptor keeps: `/proc`
//! through a descriptor of the container's `/` keeps all (`proc/self/…`),
//! `/etc/hosts` through the directory holding strata's copy keeps one
//! (`hosts`). The relative path is then a tail of the string the program
//! passed, so the tracer only changes registers and never writes into the
//! traced process's memory.

/// One way out of the chroot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Absolute, without `.`, `..` or repeated slashes.
    pub target: String,
    /// The descriptor (in the traced process) paths resolve from.
    pub fd: i32,
    /// Trailing components of `target` kept in the relative path.
    pub keep: usize,
    pub readonly: bool,
}

/// Where a path goes instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    pub fd: i32,
    /// Offset into the path string where the relative path starts.
    pub offset: usize,
    pub readonly: bool,
}

/// The table, longest targets first so `/dev/fd` wins over `/dev`.
#[derive(Debug, Clone, Default)]
pub struct Redirects {
    entries: Vec<(Vec<String>, Entry)>,
}

impl Redirects {
    pub fn new(entries: Vec<Entry>) -> Redirects {
        let mut entries: Vec<(Vec<String>, Entry)> = entries
            .into_iter()
            .map(|e| {
                let comps = e
                    .target
                    .split('/')
                    .filter(|c| !c.is_empty())
                    .map(str::to_string)
                    .collect();
                (comps, e)
            })
            .collect();
        entries.sort_by_key(|(comps, _)| std::cmp::Reverse(comps.len()));
        Redirects { entries }
    }

    /// Where `path` (as the program passed it) goes, if anywhere. Relative
    /// paths and paths with `..` stay in the chroot.
    pub fn lookup(&self, path: &[u8]) -> Option<Hit> {
        if path.first() != Some(&b'/') {
            return None;
        }
        let comps = components(path)?;
        self.entries.iter().find_map(|(target, entry)| {
            let n = target.len();
            if n == 0 || comps.len() < n {
                return None;
            }
            let matches = comps[..n]
                .iter()
                .zip(target)
                .all(|((_, c), t)| *c == t.as_bytes());
            matches.then(|| Hit {
                fd: entry.fd,
                offset: comps[n - entry.keep.clamp(1, n)].0,
                readonly: entry.readonly,
            })
        })
    }
}

/// The components of `path` with their offsets, `.` left out; `None` when
/// one is `..` (which could climb out of whatever a descriptor names).
fn components(path: &[u8]) -> Option<Vec<(usize, &[u8])>> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, &b) in path.iter().chain(std::iter::once(&b'/')).enumerate() {
        if b != b'/' {
            continue;
        }
        let comp = &path[start..i];
        match comp {
            b"" | b"." => {}
            b".." => return None,
            _ => out.push((start, comp)),
        }
        start = i + 1;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Redirects {
        let e = |target: &str, fd, keep, readonly| Entry {
            target: target.into(),
            fd,
            keep,
            readonly,
        };
        Redirects::new(vec![
            e("/proc", 1000, 1, false),
            e("/dev", 1000, 1, false),
            e("/dev/fd", 1001, 1, false),
            e("/etc/hosts", 1002, 1, false),
            e("/data/in", 1003, 1, true),
        ])
    }

    /// The relative path a hit leaves, for reading the table.
    fn rel(path: &str) -> Option<(i32, String, bool)> {
        let hit = table().lookup(path.as_bytes())?;
        Some((hit.fd, path[hit.offset..].to_string(), hit.readonly))
    }

    #[test]
    fn paths_out_of_the_chroot() {
        type Want<'a> = Option<(i32, &'a str, bool)>;
        let cases: &[(&str, Want)] = &[
            ("/proc", Some((1000, "proc", false))),
            ("/proc/self/status", Some((1000, "proc/self/status", false))),
            ("//proc//self", Some((1000, "proc//self", false))),
            ("/./proc/1", Some((1000, "proc/1", false))),
            ("/dev/null", Some((1000, "dev/null", false))),
            ("/dev/fd/1", Some((1001, "fd/1", false))),
            ("/dev/fdx", Some((1000, "dev/fdx", false))),
            ("/etc/hosts", Some((1002, "hosts", false))),
            ("/etc/hostsx", None),
            ("/etc/passwd", None),
            ("/data/in/x", Some((1003, "in/x", true))),
            ("/procfoo", None),
            ("/", None),
            ("proc/self", None),
            ("/proc/../etc/shadow", None),
            ("/proc/self/..", None),
            ("", None),
        ];
        for (path, want) in cases {
            let want = want.map(|(fd, r, ro)| (fd, r.to_string(), ro));
            assert_eq!(rel(path), want, "{path}");
        }
    }
}
