//! The loopback interface of a private network namespace (`--network none`).

use nix::errno::Errno;

#[derive(Debug, thiserror::Error)]
#[error("bringing up the loopback interface: {0}")]
pub struct NetError(#[source] Errno);

/// Sets `lo` up in the current network namespace.
pub fn loopback_up() -> Result<(), NetError> {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
    use std::os::fd::AsRawFd;
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(NetError)?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: nix::libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as nix::libc::c_char;
    }
    // SAFETY: the socket is open and `req` is a valid ifreq for these ioctls,
    // which read the name and read/write the flags union member.
    unsafe {
        if nix::libc::ioctl(sock.as_raw_fd(), nix::libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(NetError(Errno::last()));
        }
        req.ifr_ifru.ifru_flags |= nix::libc::IFF_UP as i16;
        if nix::libc::ioctl(sock.as_raw_fd(), nix::libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(NetError(Errno::last()));
        }
    }
    Ok(())
}
