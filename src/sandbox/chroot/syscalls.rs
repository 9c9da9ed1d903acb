//! The path system calls of x86_64 and how each is sent through a redirect:
//! `openat(AT_FDCWD, "/proc/1/stat")` becomes `openat(FD, "proc/1/stat")`,
//! and a call with no directory argument becomes its `*at` form
//! (`stat(p, buf)` -> `newfstatat(FD, rel, buf, 0)`). Only registers change.
//! Pure: the tracer reads and writes the registers.

use super::redirect::Hit;

/// AUDIT_ARCH_X86_64: what seccomp reports for a native call.
pub const AUDIT_ARCH: u32 = 0xc000_003e;

const OPEN: u64 = 2;
const STAT: u64 = 4;
const LSTAT: u64 = 6;
const ACCESS: u64 = 21;
const MKDIR: u64 = 83;
const RMDIR: u64 = 84;
const CREAT: u64 = 85;
const UNLINK: u64 = 87;
const READLINK: u64 = 89;
const CHMOD: u64 = 90;
const CHOWN: u64 = 92;
const LCHOWN: u64 = 94;
const GETXATTR: u64 = 191;
const LGETXATTR: u64 = 192;
const LISTXATTR: u64 = 194;
const LLISTXATTR: u64 = 195;
const OPENAT: u64 = 257;
const MKDIRAT: u64 = 258;
const FCHOWNAT: u64 = 260;
const NEWFSTATAT: u64 = 262;
const UNLINKAT: u64 = 263;
const READLINKAT: u64 = 267;
const FCHMODAT: u64 = 268;
const FACCESSAT: u64 = 269;
const UTIMENSAT: u64 = 280;
const STATX: u64 = 332;
const CLOSE_RANGE: u64 = 436;
const OPENAT2: u64 = 437;
const FACCESSAT2: u64 = 439;

pub const CLOSE: u32 = 3;
pub const FCNTL: u32 = 72;
/// dup2 and dup3: their second argument is the descriptor replaced.
pub const DUP_ONTO: [u32; 2] = [33, 292];

/// Every call the filter stops for.
pub const TRACED: [u32; 29] = [
    OPEN as u32,
    STAT as u32,
    LSTAT as u32,
    ACCESS as u32,
    MKDIR as u32,
    RMDIR as u32,
    CREAT as u32,
    UNLINK as u32,
    READLINK as u32,
    CHMOD as u32,
    CHOWN as u32,
    LCHOWN as u32,
    GETXATTR as u32,
    LGETXATTR as u32,
    LISTXATTR as u32,
    LLISTXATTR as u32,
    OPENAT as u32,
    MKDIRAT as u32,
    FCHOWNAT as u32,
    NEWFSTATAT as u32,
    UNLINKAT as u32,
    READLINKAT as u32,
    FCHMODAT as u32,
    FACCESSAT as u32,
    UTIMENSAT as u32,
    STATX as u32,
    CLOSE_RANGE as u32,
    OPENAT2 as u32,
    FACCESSAT2 as u32,
];

const AT_SYMLINK_NOFOLLOW: u64 = 0x100;
const AT_REMOVEDIR: u64 = 0x200;
const WRITE_FLAGS: u64 = (libc::O_WRONLY | libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC) as u64;
const CREAT_FLAGS: u64 = (libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC) as u64;

/// A system call as the registers hold it at its seccomp stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call {
    pub nr: u64,
    pub args: [u64; 6],
}

/// Whether a call writes to what its path names.
#[derive(Debug, Clone, Copy)]
enum Writes {
    Never,
    Always,
    /// Open flags in this argument.
    Flags(usize),
    /// openat2: the flags are the first field of the struct this argument
    /// points at.
    How(usize),
}

#[derive(Debug, Clone, Copy)]
enum Shape {
    /// Directory and path in these arguments.
    At {
        dir: usize,
        path: usize,
        writes: Writes,
    },
    /// Path in argument 0 and no directory: rewritten as `into(fd, rel,
    /// [insert,] the other arguments..., [append])`.
    Legacy {
        into: u64,
        insert: Option<u64>,
        append: Option<u64>,
        writes: Writes,
    },
    /// Extended attributes: the files redirected to have none; the call
    /// returns this.
    NoXattr { ret: i64 },
}

fn shape(nr: u64) -> Option<Shape> {
    use Writes::*;
    let legacy = |into, insert, append, writes| Shape::Legacy {
        into,
        insert,
        append,
        writes,
    };
    let at = |writes| Shape::At {
        dir: 0,
        path: 1,
        writes,
    };
    Some(match nr {
        OPEN => legacy(OPENAT, None, None, Flags(1)),
        CREAT => legacy(OPENAT, Some(CREAT_FLAGS), None, Always),
        STAT => legacy(NEWFSTATAT, None, Some(0), Never),
        LSTAT => legacy(NEWFSTATAT, None, Some(AT_SYMLINK_NOFOLLOW), Never),
        ACCESS => legacy(FACCESSAT, None, None, Never),
        READLINK => legacy(READLINKAT, None, None, Never),
        MKDIR => legacy(MKDIRAT, None, None, Always),
        RMDIR => legacy(UNLINKAT, None, Some(AT_REMOVEDIR), Always),
        UNLINK => legacy(UNLINKAT, None, Some(0), Always),
        CHMOD => legacy(FCHMODAT, None, None, Always),
        CHOWN => legacy(FCHOWNAT, None, Some(0), Always),
        LCHOWN => legacy(FCHOWNAT, None, Some(AT_SYMLINK_NOFOLLOW), Always),
        OPENAT => at(Flags(2)),
        OPENAT2 => at(How(2)),
        NEWFSTATAT | STATX | READLINKAT | FACCESSAT | FACCESSAT2 => at(Never),
        MKDIRAT | UNLINKAT | FCHMODAT | FCHOWNAT | UTIMENSAT => at(Always),
        GETXATTR | LGETXATTR => Shape::NoXattr {
            ret: -i64::from(libc::ENODATA),
        },
        LISTXATTR | LLISTXATTR => Shape::NoXattr { ret: 0 },
        _ => return None,
    })
}

/// Where the path of `call` is, if it has one.
pub fn path_arg(call: &Call) -> Option<u64> {
    let addr = match shape(call.nr)? {
        Shape::At { path, .. } => call.args[path],
        Shape::Legacy { .. } | Shape::NoXattr { .. } => call.args[0],
    };
    // utimensat(fd, NULL, ...) is futimens: no path.
    (addr != 0).then_some(addr)
}

/// What the tracer does with a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Let it run as it is.
    Pass,
    /// Run this instead.
    Rewrite(Call),
    /// Do not run it; return this (0 or a negative errno).
    Return(i64),
}

/// How `call`, whose path hit `hit`, goes out of the chroot. `read_how`
/// reads the flags openat2 was given (from the traced process's memory).
pub fn redirect(call: &Call, path: u64, hit: Hit, read_how: impl Fn(u64) -> Option<u64>) -> Action {
    let Some(shape) = shape(call.nr) else {
        return Action::Pass;
    };
    let writes = match shape {
        Shape::NoXattr { ret } => return Action::Return(ret),
        Shape::At { writes, .. } | Shape::Legacy { writes, .. } => match writes {
            Writes::Never => false,
            Writes::Always => true,
            Writes::Flags(i) => call.args[i] & WRITE_FLAGS != 0,
            // Unreadable flags: assume the worst.
            Writes::How(i) => read_how(call.args[i]).is_none_or(|f| f & WRITE_FLAGS != 0),
        },
    };
    if hit.readonly && writes {
        return Action::Return(-i64::from(libc::EROFS));
    }
    let fd = hit.fd as i64 as u64;
    let rel = path + hit.offset as u64;
    let mut out = *call;
    match shape {
        Shape::At { dir, path, .. } => {
            out.args[dir] = fd;
            out.args[path] = rel;
        }
        Shape::Legacy {
            into,
            insert,
            append,
            ..
        } => {
            let rest = call.args[1..].iter().copied();
            let args: Vec<u64> = [fd, rel]
                .into_iter()
                .chain(insert)
                .chain(rest)
                .take(6)
                .collect();
            out.nr = into;
            out.args = [0; 6];
            out.args[..args.len()].copy_from_slice(&args);
            if let Some(flags) = append {
                // The slot after the call's own arguments.
                let used = legacy_arity(call.nr) + 1 + usize::from(insert.is_some());
                out.args[used] = flags;
            }
        }
        Shape::NoXattr { .. } => unreachable!("returned above"),
    }
    Action::Rewrite(out)
}

/// How many arguments a legacy call takes.
fn legacy_arity(nr: u64) -> usize {
    match nr {
        UNLINK | RMDIR => 1,
        STAT | LSTAT | ACCESS | MKDIR | CHMOD | CREAT => 2,
        OPEN | READLINK | CHOWN | LCHOWN => 3,
        _ => 6,
    }
}

/// close_range over the protected descriptors: the range is cut short of
/// them (descriptors above them stay open, which only leaks them).
pub fn close_range(call: &Call, low: u64, high: u64) -> Action {
    if call.nr != CLOSE_RANGE {
        return Action::Pass;
    }
    let (first, last) = (call.args[0] & 0xffff_ffff, call.args[1] & 0xffff_ffff);
    if last < low || first > high {
        return Action::Pass;
    }
    let mut out = *call;
    if first < low {
        out.args[1] = low - 1;
    } else if last > high {
        out.args[0] = high + 1;
    } else {
        return Action::Return(0);
    }
    Action::Rewrite(out)
}

/// The call in `regs`.
pub fn from_regs(regs: &libc::user_regs_struct) -> Call {
    Call {
        nr: regs.orig_rax,
        args: [regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9],
    }
}

/// Writes `action` into `regs`; false if there is nothing to write.
pub fn to_regs(action: Action, regs: &mut libc::user_regs_struct) -> bool {
    match action {
        Action::Pass => false,
        Action::Rewrite(call) => {
            regs.orig_rax = call.nr;
            [regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9] = call.args;
            true
        }
        Action::Return(value) => {
            // -1 skips the call; rax is what it returns.
            regs.orig_rax = u64::MAX;
            regs.rax = value as u64;
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT_FDCWD: u64 = -100i64 as u64;

    fn hit(readonly: bool) -> Hit {
        Hit {
            fd: 1000,
            offset: 1,
            readonly,
        }
    }

    fn call(nr: u64, args: &[u64]) -> Call {
        let mut a = [0; 6];
        a[..args.len()].copy_from_slice(args);
        Call { nr, args: a }
    }

    fn go(c: Call) -> Action {
        let path = path_arg(&c).expect("a path");
        redirect(&c, path, hit(false), |_| Some(0))
    }

    #[test]
    fn calls_become_their_at_forms_on_the_redirect() {
        let p = 0x5000;
        let cases = [
            (
                call(OPEN, &[p, 0o2, 0o644]),
                call(OPENAT, &[1000, p + 1, 0o2, 0o644]),
            ),
            (
                call(CREAT, &[p, 0o600]),
                call(OPENAT, &[1000, p + 1, CREAT_FLAGS, 0o600]),
            ),
            (
                call(STAT, &[p, 0x9000]),
                call(NEWFSTATAT, &[1000, p + 1, 0x9000, 0]),
            ),
            (
                call(LSTAT, &[p, 0x9000]),
                call(NEWFSTATAT, &[1000, p + 1, 0x9000, AT_SYMLINK_NOFOLLOW]),
            ),
            (call(ACCESS, &[p, 4]), call(FACCESSAT, &[1000, p + 1, 4])),
            (
                call(READLINK, &[p, 0x9000, 64]),
                call(READLINKAT, &[1000, p + 1, 0x9000, 64]),
            ),
            (call(UNLINK, &[p]), call(UNLINKAT, &[1000, p + 1, 0])),
            (
                call(RMDIR, &[p]),
                call(UNLINKAT, &[1000, p + 1, AT_REMOVEDIR]),
            ),
            (
                call(LCHOWN, &[p, 5, 6]),
                call(FCHOWNAT, &[1000, p + 1, 5, 6, AT_SYMLINK_NOFOLLOW]),
            ),
            (
                call(OPENAT, &[AT_FDCWD, p, 0, 0]),
                call(OPENAT, &[1000, p + 1, 0, 0]),
            ),
            (
                call(STATX, &[AT_FDCWD, p, 0, 0x7ff, 0x9000]),
                call(STATX, &[1000, p + 1, 0, 0x7ff, 0x9000]),
            ),
        ];
        for (from, want) in cases {
            assert_eq!(go(from), Action::Rewrite(want), "{from:?}");
        }
        assert_eq!(
            go(call(LGETXATTR, &[p, 0x10, 0x20, 8])),
            Action::Return(-i64::from(libc::ENODATA))
        );
        // futimens: no path, nothing to redirect.
        assert_eq!(path_arg(&call(UTIMENSAT, &[3, 0, 0, 0])), None);
    }

    #[test]
    fn readonly_redirects_refuse_writes() {
        let p = 0x5000;
        let ro = |c: Call, how: Option<u64>| redirect(&c, p, hit(true), |_| how);
        let erofs = Action::Return(-i64::from(libc::EROFS));
        assert_eq!(
            ro(call(OPENAT, &[AT_FDCWD, p, libc::O_RDWR as u64]), None),
            erofs
        );
        assert_eq!(ro(call(OPEN, &[p, libc::O_CREAT as u64, 0]), None), erofs);
        assert_eq!(ro(call(UNLINK, &[p]), None), erofs);
        assert_eq!(ro(call(OPENAT2, &[AT_FDCWD, p, 0x9000, 24]), None), erofs);
        assert!(matches!(
            ro(call(OPENAT2, &[AT_FDCWD, p, 0x9000, 24]), Some(0)),
            Action::Rewrite(_)
        ));
        assert!(matches!(
            ro(call(OPEN, &[p, 0, 0]), None),
            Action::Rewrite(_)
        ));
    }

    #[test]
    fn close_range_spares_the_protected_descriptors() {
        let c = |lo: u64, hi: u64| call(CLOSE_RANGE, &[lo, hi, 0]);
        let cut = |lo, hi| Action::Rewrite(c(lo, hi));
        assert_eq!(close_range(&c(3, u32::MAX.into()), 1000, 1003), cut(3, 999));
        assert_eq!(close_range(&c(1002, 2000), 1000, 1003), cut(1004, 2000));
        assert_eq!(close_range(&c(1001, 1002), 1000, 1003), Action::Return(0));
        assert_eq!(close_range(&c(3, 10), 1000, 1003), Action::Pass);
    }
}
