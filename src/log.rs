//! `--log-level`: what strata says on stderr beyond errors and warnings.
//! One process-wide level, set once by the CLI before any thread starts;
//! what passes it goes to the printer as [`crate::progress::Event::Log`].

use std::sync::atomic::{AtomicU8, Ordering};

/// Levels from quiet to chatty; the CLI's `--log-level` maps onto them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Level {
    Error = 0,
    Warn = 1,
    Info = 2,
    Debug = 3,
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Warn as u8);

pub fn set_level(level: Level) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

pub fn enabled(level: Level) -> bool {
    LEVEL.load(Ordering::Relaxed) >= level as u8
}

/// `strata: info: ...` when `--log-level info` or more.
pub fn info(message: &str) {
    if enabled(Level::Info) {
        crate::progress::emit(crate::progress::Event::Log {
            level: crate::progress::LogLevel::Info,
            message: message.into(),
        });
    }
}

/// `strata: debug: ...` when `--log-level debug`.
pub fn debug(message: &str) {
    if enabled(Level::Debug) {
        crate::progress::emit(crate::progress::Event::Log {
            level: crate::progress::LogLevel::Debug,
            message: message.into(),
        });
    }
}
