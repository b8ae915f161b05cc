//! The one place that names atomics, `Arc`, `Mutex` and the global allocator.
//!
//! Under `--cfg loom` every item here is loom's model-checked twin, so the loom
//! suite in `loom-tests/` explores the same code the crate ships. Nothing else
//! in the crate may import `std::sync`, `core::sync::atomic` or `std::alloc`
//! directly.

#[cfg(not(loom))]
mod imp {
    pub(crate) use std::alloc::{alloc_zeroed, dealloc};
    pub(crate) use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    pub(crate) use std::sync::{Arc, Mutex, MutexGuard};
}

#[cfg(loom)]
mod imp {
    pub(crate) use loom::alloc::{alloc_zeroed, dealloc};
    pub(crate) use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    pub(crate) use loom::sync::{Arc, Mutex, MutexGuard};
}

pub(crate) use imp::*;

/// Locks `mutex`, ignoring poisoning.
///
/// The crate never runs user code while holding one of its locks, so a
/// poisoned lock only means a panic elsewhere in the same thread (an
/// allocation failure, say) and the data behind it is still consistent.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}
