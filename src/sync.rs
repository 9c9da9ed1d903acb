//! Locking a value that threads share.

use std::sync::{Mutex, MutexGuard};

/// Lock `m`, poisoned or not: every value strata shares between threads
/// is changed in one statement, so a thread that panicked holding it left
/// it whole.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
