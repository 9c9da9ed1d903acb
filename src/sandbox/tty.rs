//! `run -t`: the container's stdio on a pseudo-terminal, relayed to and
//! from strata's own, with the caller's terminal in raw mode so keys
//! (^C included) reach the container's program, and window size changes
//! passed on.
//!
//! The pty comes from the container's own devpts (as runc's console), so
//! its name (`/dev/pts/0`) exists inside and `tty` or `ttyname(3)` work:
//! pid 1 opens it after entering the root file system and sends the master
//! end to container-init over a socket, which relays it.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use std::os::fd::{FromRawFd, IntoRawFd, RawFd};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::pty::Winsize;
use nix::sys::socket::{self, ControlMessage, ControlMessageOwned, MsgFlags};
use nix::sys::termios::{self, SetArg, Termios};

/// The two ends of a new pseudo-terminal.
pub struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
}

/// The caller's terminal size, if stdin is one.
fn window_size(fd: BorrowedFd) -> Option<Winsize> {
    let mut ws = Winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one Winsize into the pointer we pass.
    let r = unsafe { nix::libc::ioctl(fd.as_raw_fd(), nix::libc::TIOCGWINSZ, &mut ws) };
    (r == 0).then_some(ws)
}

/// A new pty from this mount namespace's /dev/ptmx, sized as the caller's
/// terminal (still this process's stdin).
pub fn open() -> Result<Pty, Errno> {
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)?;
    nix::pty::unlockpt(&master)?;
    let name = nix::pty::ptsname_r(&master)?;
    // SAFETY: the fd was just opened by posix_openpt and is owned by nobody else.
    let master = unsafe { OwnedFd::from_raw_fd(master.into_raw_fd()) };
    let slave = nix::fcntl::open(
        name.as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    if let Some(ws) = window_size(std::io::stdin().as_fd()) {
        // SAFETY: TIOCSWINSZ reads one Winsize from the pointer.
        unsafe { nix::libc::ioctl(master.as_raw_fd(), nix::libc::TIOCSWINSZ, &ws) };
    }
    Ok(Pty { master, slave })
}

/// Sends the master end over `socket` (pid 1 to container-init).
pub fn send_master(socket: &OwnedFd, master: &OwnedFd) -> Result<(), Errno> {
    let fds = [master.as_raw_fd()];
    let iov = [std::io::IoSlice::new(b"m")];
    socket::sendmsg::<()>(
        socket.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )?;
    Ok(())
}

/// The master end pid 1 sent, or `None` if it closed the socket first
/// (it failed before opening the pty, and says why itself).
pub fn receive_master(socket: &OwnedFd) -> Result<Option<OwnedFd>, Errno> {
    let mut byte = [0u8; 1];
    let mut iov = [std::io::IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = loop {
        match socket::recvmsg::<()>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(Errno::EINTR) => continue,
            other => break other?,
        }
    };
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            if let Some(&fd) = fds.first() {
                // SAFETY: the kernel just installed this fd for us.
                return Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }));
            }
        }
    }
    Ok(None)
}

/// Makes `slave` the controlling terminal and stdio of this process (pid 1
/// of the container, before exec).
pub fn attach(slave: &OwnedFd) -> Result<(), Errno> {
    nix::unistd::setsid()?;
    // SAFETY: TIOCSCTTY takes an integer argument; the fd is open.
    if unsafe { nix::libc::ioctl(slave.as_raw_fd(), nix::libc::TIOCSCTTY, 0) } < 0 {
        return Err(Errno::last());
    }
    for target in 0..=2 {
        // SAFETY: dup2 onto the standard descriptors, which this process
        // owns; the slave fd stays valid.
        if unsafe { nix::libc::dup2(slave.as_raw_fd(), target) } < 0 {
            return Err(Errno::last());
        }
    }
    Ok(())
}

/// Passes the caller's window size on to the pty.
pub fn copy_window_size(master: &OwnedFd) {
    if let Some(ws) = window_size(std::io::stdin().as_fd()) {
        // SAFETY: TIOCSWINSZ reads one Winsize from the pointer.
        unsafe { nix::libc::ioctl(master.as_raw_fd(), nix::libc::TIOCSWINSZ, &ws) };
    }
}

/// Raw mode on stdin while alive; the old settings come back on drop.
pub struct RawMode(Option<Termios>);

impl RawMode {
    pub fn enter() -> RawMode {
        let stdin = std::io::stdin();
        let Ok(old) = termios::tcgetattr(stdin.as_fd()) else {
            // Not a terminal: nothing to switch.
            return RawMode(None);
        };
        let mut raw = old.clone();
        termios::cfmakeraw(&mut raw);
        // Best effort: a terminal that refuses raw mode still relays.
        let _ = termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw);
        RawMode(Some(old))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(old) = &self.0 {
            // Restoring can only fail if stdin is gone, and then nobody sees it.
            let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSADRAIN, old);
        }
    }
}

/// Copies what is readable on `from` to `to`; `false` once `from` is done
/// (EOF, or EIO from a pty whose other side closed).
pub fn pump(from: BorrowedFd, to: &mut impl Write) -> bool {
    let mut buf = [0u8; 8192];
    let mut file = std::fs::File::from(match from.try_clone_to_owned() {
        Ok(fd) => fd,
        Err(_) => return false,
    });
    match file.read(&mut buf) {
        Ok(0) | Err(_) => false,
        Ok(n) => to.write_all(&buf[..n]).and_then(|()| to.flush()).is_ok(),
    }
}
