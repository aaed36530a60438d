//! Locking shared plain data.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, ignoring poisoning: the data behind weft's locks is plain (counts,
/// lists, maps), so a panic elsewhere leaves nothing half-done to protect.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
