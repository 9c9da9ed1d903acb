//! Putting a file's times back: the one utimensat call that copying,
//! mirroring and normalising layers all need.

use std::fs::Metadata;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Sets `path`'s access and modification times (not following a symlink)
/// to those in `meta`.
pub fn copy_times(path: &Path, meta: &Metadata) -> io::Result<()> {
    let ts = |sec, nsec| rustix::fs::Timespec {
        tv_sec: sec,
        tv_nsec: nsec,
    };
    set(
        path,
        ts(meta.atime(), meta.atime_nsec()),
        ts(meta.mtime(), meta.mtime_nsec()),
    )
}

/// Sets both times of `path` to the epoch.
pub fn zero_times(path: &Path) -> io::Result<()> {
    date(path, 0)
}

/// Sets both times of `path` (a symlink itself, not followed) to `secs`
/// after the epoch.
pub fn date(path: &Path, secs: i64) -> io::Result<()> {
    let t = rustix::fs::Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    set(path, t, t)
}

fn set(path: &Path, atime: rustix::fs::Timespec, mtime: rustix::fs::Timespec) -> io::Result<()> {
    let times = rustix::fs::Timestamps {
        last_access: atime,
        last_modification: mtime,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &times,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| io::Error::from_raw_os_error(e.raw_os_error()))
}
