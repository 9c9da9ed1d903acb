//! The seccomp filter a chrooted RUN runs under: the path system calls stop
//! for the tracer (SECCOMP_RET_TRACE), everything else runs at full speed,
//! and the descriptors the redirects hold cannot be closed or replaced.
//!
//! Only the calling architecture is filtered; a 32-bit or x32 call is let
//! through untouched, which only means it sees the chroot's own /proc.

use super::syscalls;

const RET_ALLOW: u32 = 0x7fff_0000;
const RET_TRACE: u32 = 0x7ff0_0000;
const RET_ERRNO: u32 = 0x0005_0000;
/// x32 system calls have this bit set in their number.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

// classic BPF opcodes
const LD_W_ABS: u16 = 0x20;
const JEQ_K: u16 = 0x15;
const JGE_K: u16 = 0x35;
const JGT_K: u16 = 0x25;
const RET_K: u16 = 0x06;

/// Offsets in struct seccomp_data.
const NR_OFFSET: u32 = 0;
const ARCH_OFFSET: u32 = 4;
/// The low 32 bits of argument `i` (little-endian).
const fn arg_offset(i: u32) -> u32 {
    16 + 8 * i
}

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The descriptors `[low, high]` the filter protects.
#[derive(Debug, Clone, Copy)]
pub struct Protected {
    pub low: u32,
    pub high: u32,
}

/// Appends: if the call is `nr` and argument `arg` is a protected fd (and,
/// with `and`, argument `and.0` equals `and.1`), fail with `errno` (0 makes
/// it a no-op that succeeds); otherwise allow.
fn guard_fd(
    prog: &mut Vec<libc::sock_filter>,
    nr: u32,
    arg: u32,
    and: Option<(u32, u32)>,
    fds: Protected,
    errno: u32,
) {
    let tail = if and.is_some() { 2 } else { 0 };
    // Instructions after the first: ld, jge, jgt, [ld, jeq], ret errno, ret allow.
    let len = 5 + tail;
    prog.push(jump(JEQ_K, nr, 0, len));
    prog.push(stmt(LD_W_ABS, arg_offset(arg)));
    prog.push(jump(JGE_K, fds.low, 0, 2 + tail));
    prog.push(jump(JGT_K, fds.high, 1 + tail, 0));
    if let Some((other, value)) = and {
        prog.push(stmt(LD_W_ABS, arg_offset(other)));
        prog.push(jump(JEQ_K, value, 0, 1));
    }
    prog.push(stmt(RET_K, RET_ERRNO | errno));
    prog.push(stmt(RET_K, RET_ALLOW));
}

/// The filter program.
pub fn program(fds: Protected) -> Vec<libc::sock_filter> {
    let mut prog = vec![
        stmt(LD_W_ABS, ARCH_OFFSET),
        jump(JEQ_K, syscalls::AUDIT_ARCH, 1, 0),
        stmt(RET_K, RET_ALLOW),
        stmt(LD_W_ABS, NR_OFFSET),
        jump(JGE_K, X32_SYSCALL_BIT, 0, 1),
        stmt(RET_K, RET_ALLOW),
    ];
    for nr in syscalls::TRACED {
        prog.push(jump(JEQ_K, nr, 0, 1));
        prog.push(stmt(RET_K, RET_TRACE));
    }
    guard_fd(&mut prog, syscalls::CLOSE, 0, None, fds, 0);
    let setfd = Some((1, libc::F_SETFD as u32));
    guard_fd(&mut prog, syscalls::FCNTL, 0, setfd, fds, 0);
    for nr in syscalls::DUP_ONTO {
        guard_fd(&mut prog, nr, 1, None, fds, libc::EBUSY as u32);
    }
    prog.push(stmt(RET_K, RET_ALLOW));
    prog
}

/// Installs the filter on this thread (no_new_privs must be set).
pub fn install(fds: Protected) -> Result<(), nix::errno::Errno> {
    let prog = program(fds);
    let fprog = libc::sock_fprog {
        len: u16::try_from(prog.len()).map_err(|_| nix::errno::Errno::E2BIG)?,
        filter: prog.as_ptr().cast_mut(),
    };
    // SAFETY: fprog points at `prog`, which lives across the call; the
    // kernel copies the program.
    let r = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &fprog as *const libc::sock_fprog,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(nix::errno::Errno::last())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A classic-BPF interpreter for the instructions the filter uses.
    fn run(prog: &[libc::sock_filter], nr: u32, arch: u32, args: [u32; 6]) -> u32 {
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let i = prog[pc];
            pc += 1;
            let cond = match i.code {
                LD_W_ABS => {
                    acc = match i.k {
                        NR_OFFSET => nr,
                        ARCH_OFFSET => arch,
                        k => args[((k - 16) / 8) as usize],
                    };
                    continue;
                }
                RET_K => return i.k,
                JEQ_K => acc == i.k,
                JGE_K => acc >= i.k,
                JGT_K => acc > i.k,
                other => panic!("opcode {other:#x}"),
            };
            pc += usize::from(if cond { i.jt } else { i.jf });
        }
    }

    #[test]
    fn the_filter_traces_paths_and_guards_the_descriptors() {
        let fds = Protected {
            low: 1000,
            high: 1003,
        };
        let prog = program(fds);
        let arch = syscalls::AUDIT_ARCH;
        let call = |nr, args| run(&prog, nr, arch, args);
        for nr in syscalls::TRACED {
            assert_eq!(call(nr, [0; 6]), RET_TRACE, "{nr}");
        }
        assert_eq!(call(syscalls::CLOSE, [1001, 0, 0, 0, 0, 0]), RET_ERRNO);
        assert_eq!(call(syscalls::CLOSE, [999, 0, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(call(syscalls::CLOSE, [1004, 0, 0, 0, 0, 0]), RET_ALLOW);
        let setfd = libc::F_SETFD as u32;
        assert_eq!(call(syscalls::FCNTL, [1000, setfd, 1, 0, 0, 0]), RET_ERRNO);
        assert_eq!(call(syscalls::FCNTL, [1000, 1, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(call(syscalls::FCNTL, [5, setfd, 1, 0, 0, 0]), RET_ALLOW);
        for nr in syscalls::DUP_ONTO {
            let busy = RET_ERRNO | libc::EBUSY as u32;
            assert_eq!(call(nr, [3, 1003, 0, 0, 0, 0]), busy);
            assert_eq!(call(nr, [1003, 4, 0, 0, 0, 0]), RET_ALLOW);
        }
        // getpid, another architecture, an x32 call: untouched.
        assert_eq!(call(39, [0; 6]), RET_ALLOW);
        assert_eq!(run(&prog, 2, 0x4000_0003, [0; 6]), RET_ALLOW);
        assert_eq!(call(2 | X32_SYSCALL_BIT, [0; 6]), RET_ALLOW);
    }
}
