//! Everything that needs namespaces and mounts: choosing how to isolate
//! (`ladder`, from `environment` and probes), entering strata's user
//! namespace (`userns`), the subordinate id ranges it maps (`subid`,
//! `idmap`), the storage drivers (`driver`) and the probes `strata info`
//! runs (`probe`).
//!
//! This is the one place where `unsafe` is allowed (fork, and the syscalls
//! nix only exposes as unsafe); every block says why it is sound.
#![allow(unsafe_code)]

pub mod caps;
pub mod children;
pub mod chroot;
pub mod driver;
pub mod environment;
pub mod extras;
pub mod idmap;
pub mod init;
pub mod interrupt;
pub mod ladder;
pub mod net;
pub mod probe;
pub mod rootfs;
pub mod spawn;
pub mod spec;
pub mod subid;
pub mod tty;
pub mod user;
pub mod userns;
