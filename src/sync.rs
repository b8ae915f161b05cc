//! The one place that names atomics, `Arc`, `Mutex`, `Condvar`, `UnsafeCell`,
//! `thread_local!` and the global allocator.
//!
//! Under `--cfg loom` every item here is loom's model-checked twin, so the loom
//! suite in `loom-tests/` explores the same code the crate ships. Nothing else
//! in the crate may import `std::sync`, `core::sync::atomic`, `std::alloc` or
//! `std::thread_local` directly. The two process-wide statics of
//! `cache.rs` are declared there with these types: as plain statics, and
//! under loom with `loom::lazy_static!`, which loom resets between runs.

#[cfg(not(loom))]
mod imp {
    pub(crate) use std::alloc::{alloc_zeroed, dealloc};
    pub(crate) use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
    pub(crate) use std::sync::{Arc, Condvar, Mutex, MutexGuard};
    pub(crate) use std::thread_local;
}

#[cfg(loom)]
mod imp {
    pub(crate) use loom::alloc::{alloc_zeroed, dealloc};
    pub(crate) use loom::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
    pub(crate) use loom::sync::{Arc, Condvar, Mutex, MutexGuard};
    pub(crate) use loom::thread_local;
}

pub(crate) use imp::*;

/// Lets loom see accesses to a buf's data, which is raw memory it cannot
/// track itself. Outside loom it is zero-sized and does nothing.
///
/// Each holder of a buf calls [`shared`](BufAccess::shared) just before it
/// gives up its reference, standing for every write it made to the buf; the
/// thread that then takes the whole buf (to recycle, reuse or free it) calls
/// [`exclusive`](BufAccess::exclusive). Loom reports a data race unless every
/// `shared` access happens before the `exclusive` one, which is exactly what
/// the reference count's `Release`/`Acquire` pairs must guarantee.
#[derive(Debug, Default)]
pub(crate) struct BufAccess {
    #[cfg(loom)]
    cell: loom::cell::UnsafeCell<()>,
}

impl BufAccess {
    /// A holder is done with the buf.
    #[inline(always)]
    pub(crate) fn shared(&self) {
        #[cfg(loom)]
        self.cell.with(|_| ());
    }

    /// The caller now has the whole buf to itself.
    #[inline(always)]
    pub(crate) fn exclusive(&self) {
        #[cfg(loom)]
        self.cell.with_mut(|_| ());
    }
}

/// Locks `mutex`, ignoring poisoning.
///
/// The crate never runs user code while holding one of its locks, and no
/// critical section can panic part-way (counter updates are checked before
/// any of them is made), so a poisoned lock does not mean inconsistent
/// data: it can only come from a panic such as an allocation failure inside
/// std, after which the state is as it was.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Waits on `cond` with `guard`'s lock, ignoring poisoning as [`lock`] does.
pub(crate) fn wait_on<'a, T>(cond: &Condvar, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    match cond.wait(guard) {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Waits on `cond` with `guard`'s lock for at most `timeout`, ignoring
/// poisoning as [`lock`] does. The caller rechecks its condition and the
/// clock: the wait may end early, spuriously or on a notification.
pub(crate) fn wait_timeout<'a, T>(
    cond: &Condvar,
    guard: MutexGuard<'a, T>,
    timeout: std::time::Duration,
) -> MutexGuard<'a, T> {
    match cond.wait_timeout(guard, timeout) {
        Ok((guard, _)) => guard,
        Err(poisoned) => poisoned.into_inner().0,
    }
}
