//! USER resolution through the image's /etc/passwd and /etc/group, the way
//! Docker does it: `name`, `uid`, `name:group`, `uid:gid`; a numeric id
//! needs no entry, a name must have one.
//!
//! Parsing is pure; the caller reads the files from inside the rootfs with
//! [`read_account_file`], since an image's /etc/passwd can be a trap.

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UserError {
    #[error("unable to find user {0}: no matching entries in passwd file")]
    NoUser(String),
    #[error("unable to find group {0}: no matching entries in group file")]
    NoGroup(String),
    #[error("invalid user specification {0:?}")]
    Invalid(String),
}

/// The most of /etc/passwd or /etc/group read: far above any real file,
/// far below what a hostile image could make a reader hold.
pub const ACCOUNT_FILE_CAP: u64 = 4 << 20;

/// Opens and reads an image's /etc/passwd or /etc/group (the caller is
/// inside the rootfs). Only a regular file of at most
/// [`ACCOUNT_FILE_CAP`] bytes counts: a link to /dev/zero, a FIFO (opened
/// without blocking), a directory or a huge file reads as missing, so
/// numeric ids still work and names fail with "unable to find user".
pub fn read_account_file(path: &std::path::Path) -> String {
    use fs_err::os::unix::fs::OpenOptionsExt;
    fs_err::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY)
        .open(path)
        .map(|f| read_account(f.into()))
        .unwrap_or_default()
}

/// Reads an opened account file by the rules of [`read_account_file`].
pub fn read_account(file: std::fs::File) -> String {
    use std::io::Read;
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return String::new();
    }
    let mut text = String::new();
    match file.take(ACCOUNT_FILE_CAP + 1).read_to_string(&mut text) {
        Ok(n) if n as u64 <= ACCOUNT_FILE_CAP => text,
        _ => String::new(),
    }
}

/// Who the container process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecUser {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups: the groups listing the user by name.
    pub groups: Vec<u32>,
    pub home: String,
}

/// Resolves `spec` (as in USER or `run -u`) against the contents of the
/// image's /etc/passwd and /etc/group (empty when the files are missing).
pub fn resolve(spec: &str, passwd: &str, group: &str) -> Result<ExecUser, UserError> {
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user_part.is_empty() && group_part.is_none() {
        return resolve("0", passwd, group);
    }
    if user_part.is_empty() || group_part == Some("") {
        return Err(UserError::Invalid(spec.into()));
    }
    let entries: Vec<Vec<&str>> = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 7)
        .collect();
    let by_name = entries.iter().find(|f| f[0] == user_part);
    let numeric: Option<u32> = user_part.parse().ok();
    let entry = by_name.or_else(|| {
        let uid = numeric?.to_string();
        entries.iter().find(|f| f[2] == uid)
    });
    let (uid, mut gid, name, home) = match (entry, numeric) {
        (Some(f), _) => (
            f[2].parse()
                .map_err(|_| UserError::NoUser(user_part.into()))?,
            f[3].parse()
                .map_err(|_| UserError::NoUser(user_part.into()))?,
            Some(f[0]),
            f[5].to_string(),
        ),
        (None, Some(uid)) => (uid, uid, None, "/".to_string()),
        (None, None) => return Err(UserError::NoUser(user_part.into())),
    };
    // Without an entry a bare numeric uid runs with gid 0, as Docker does.
    if entry.is_none() {
        gid = 0;
    }
    let groups_file: Vec<Vec<&str>> = group
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 4)
        .collect();
    if let Some(g) = group_part {
        gid = match groups_file.iter().find(|f| f[0] == g) {
            Some(f) => f[2].parse().map_err(|_| UserError::NoGroup(g.into()))?,
            None => g.parse().map_err(|_| UserError::NoGroup(g.into()))?,
        };
    }
    let mut groups = vec![gid];
    if let (Some(name), None) = (name, group_part) {
        for f in &groups_file {
            if f[3].split(',').any(|m| m == name) {
                if let Ok(id) = f[2].parse::<u32>() {
                    if !groups.contains(&id) {
                        groups.push(id);
                    }
                }
            }
        }
    }
    Ok(ExecUser {
        uid,
        gid,
        groups,
        home,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                          admin:x:1000:1000:Linux User,,,:/home/admin:/bin/sh\n\
                          svc:x:1001:1001::/srv:/bin/false\n";
    const GROUP: &str = "root:x:0:\nwheel:x:10:admin\nadmin:x:1000:\nstaff:x:50:svc,admin\n";

    fn user(uid: u32, gid: u32, groups: &[u32], home: &str) -> ExecUser {
        ExecUser {
            uid,
            gid,
            groups: groups.to_vec(),
            home: home.into(),
        }
    }

    #[test]
    fn resolves_like_docker() {
        let cases = [
            ("", Ok(user(0, 0, &[0], "/root"))),
            ("root", Ok(user(0, 0, &[0], "/root"))),
            (
                "admin",
                Ok(user(1000, 1000, &[1000, 10, 50], "/home/admin")),
            ),
            ("1000", Ok(user(1000, 1000, &[1000, 10, 50], "/home/admin"))),
            ("admin:staff", Ok(user(1000, 50, &[50], "/home/admin"))),
            ("admin:7", Ok(user(1000, 7, &[7], "/home/admin"))),
            ("4242", Ok(user(4242, 0, &[0], "/"))),
            ("4242:4242", Ok(user(4242, 4242, &[4242], "/"))),
            ("nobody", Err(UserError::NoUser("nobody".into()))),
            ("admin:nogroup", Err(UserError::NoGroup("nogroup".into()))),
            (":5", Err(UserError::Invalid(":5".into()))),
            ("admin:", Err(UserError::Invalid("admin:".into()))),
        ];
        for (spec, want) in cases {
            assert_eq!(resolve(spec, PASSWD, GROUP), want, "{spec:?}");
        }
    }

    #[test]
    fn missing_files_allow_numeric_ids_only() {
        assert_eq!(resolve("5:6", "", ""), Ok(user(5, 6, &[6], "/")));
        assert_eq!(
            resolve("root", "", ""),
            Err(UserError::NoUser("root".into()))
        );
    }

    #[test]
    fn account_files_are_read_only_as_small_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // Would block forever (no writer) if opened without O_NONBLOCK.
        assert_eq!(read_account_file(&fifo), "");
        // Would grow without end if read as a file.
        assert_eq!(read_account_file(std::path::Path::new("/dev/zero")), "");
        assert_eq!(read_account_file(dir.path()), "");
        let big = dir.path().join("big");
        fs_err::write(&big, vec![b'x'; ACCOUNT_FILE_CAP as usize + 1]).unwrap();
        assert_eq!(read_account_file(&big), "");
        let passwd = dir.path().join("passwd");
        fs_err::write(&passwd, "app:x:7:8::/home/app:/bin/sh\n").unwrap();
        assert_eq!(
            resolve("app", &read_account_file(&passwd), ""),
            Ok(user(7, 8, &[8], "/home/app"))
        );
    }
}
