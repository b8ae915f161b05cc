//! The one place that names atomics, `Arc`, `Mutex`, `Condvar`, `UnsafeCell`,
//! `thread_local!`, the global allocator and the current thread's identity.
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
    pub(crate) use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicU64, AtomicUsize, Ordering};
    pub(crate) use std::sync::{Arc, Condvar, Mutex, MutexGuard};
    pub(crate) use std::thread_local;
}

#[cfg(loom)]
mod imp {
    pub(crate) use loom::alloc::{alloc_zeroed, dealloc};
    pub(crate) use loom::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicU64, AtomicUsize, Ordering};
    pub(crate) use loom::sync::{Arc, Condvar, Mutex, MutexGuard};
    pub(crate) use loom::thread_local;
}

pub(crate) use imp::*;

#[cfg(not(loom))]
imp::thread_local! {
    /// The calling thread's number, or `UNNUMBERED` until it has one.
    static ID: core::cell::Cell<usize> = const { core::cell::Cell::new(UNNUMBERED) };
}
#[cfg(loom)]
imp::thread_local! {
    static ID: core::cell::Cell<usize> = core::cell::Cell::new(UNNUMBERED);
}

/// What a thread's `ID` holds until [`thread_id`] gives it a number: the
/// top bit alone. That is no thread's number (they lie below 2^63 - 2) and
/// no buf's home mark (0, a thread's number, one with the top bit set as
/// `TRACKED`, `COUNTED` or `PROBED`; see `buf.rs`).
const UNNUMBERED: usize = 1 << (usize::BITS - 1);

/// A number that identifies the calling thread: never 0, and never given to
/// another thread while the process lives (numbers are not reused, unlike
/// the addresses of thread-locals), so a stale number names no live thread.
/// Costs a thread-local read once the thread has its number. Where the
/// thread-local is gone (on platforms that destroy even a plain one, late in
/// a thread's exit) it answers `usize::MAX`, a number no thread is given and
/// no buf is made at home with (several threads may answer it at once), so
/// such a thread's drops take the atomic path.
#[inline]
pub(crate) fn thread_id() -> usize {
    ID.try_with(|id| match id.get() {
        UNNUMBERED => {
            let fresh = next_thread_id();
            id.set(fresh);
            fresh
        }
        known => known,
    })
    .unwrap_or(usize::MAX)
}

/// The calling thread's number where [`thread_id`] has given it one, else
/// a value that is neither a thread's number nor a buf's home mark, with or
/// without the `TRACKED` bit. A thread has its number before any buf is
/// made at home on it, so a drop learns with one comparison whether it is
/// on its buf's home thread, and a thread with no number yet is not given
/// one by its drops.
#[inline(always)]
pub(crate) fn known_thread_id() -> usize {
    ID.try_with(core::cell::Cell::get).unwrap_or(usize::MAX)
}

#[cfg(not(loom))]
imp::thread_local! {
    /// Whether a slice was dropped on this thread on the atomic path since
    /// the flag was last taken; see [`note_slice_dropped`].
    static DROPPED: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
}
#[cfg(loom)]
imp::thread_local! {
    static DROPPED: core::cell::Cell<bool> = core::cell::Cell::new(false);
}

/// Notes that a slice of a probe or of a counting buf (see `buf.rs`,
/// `PROBED` and `COUNTED`) was dropped on the calling thread, whatever its
/// pool: an `Allocator` that may move learns from it whether the thread it
/// runs on drops its slices (see `Allocator::look_at_probe`). A
/// thread-local load, and a store only where the flag was taken since the
/// last note.
#[inline(always)]
pub(crate) fn note_slice_dropped() {
    // Ignored where gone: the flag is a hint.
    let _ = DROPPED.try_with(|dropped| {
        if !dropped.get() {
            dropped.set(true);
        }
    });
}

/// Whether [`note_slice_dropped`] was called on this thread since the last
/// call of this function here; clears the flag.
pub(crate) fn take_slices_dropped() -> bool {
    DROPPED.try_with(|dropped| dropped.replace(false)).unwrap_or(false)
}

/// Hands out thread numbers, from 1 up.
#[cold]
fn next_thread_id() -> usize {
    // A std atomic even under loom: it only hands out distinct numbers,
    // publishes nothing, and must not restart between a model's runs.
    // Relaxed: uniqueness needs only the atomicity of the increment.
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);
    let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // Below 2^63 - 2: a buf's home mark keeps the top bit for itself, and
    // 2^63 - 1 and 2^63 - 2 mark a counting buf and a probe (see `buf.rs`,
    // `TRACKED`, `COUNTED` and `PROBED`), so no number may be any of them.
    assert!(id != 0 && id < (1 << (usize::BITS - 1)) - 2, "refbuf: thread numbers ran out");
    id
}

/// A value that only one thread at a time reads and writes, with no atomic
/// operation: a buf's count of references released on its home thread, and
/// the home thread's record of which segments of the buf are alive (see
/// `segments.rs`). Under loom its accesses are tracked, so a model in which
/// two threads touch it without ordering fails.
#[derive(Debug, Default)]
pub(crate) struct HomeCell<T> {
    #[cfg(not(loom))]
    value: core::cell::UnsafeCell<T>,
    #[cfg(loom)]
    value: loom::cell::UnsafeCell<T>,
}

impl<T> HomeCell<T> {
    /// A cell holding `value`.
    pub(crate) fn new(value: T) -> HomeCell<T> {
        #[cfg(not(loom))]
        return HomeCell { value: core::cell::UnsafeCell::new(value) };
        #[cfg(loom)]
        return HomeCell { value: loom::cell::UnsafeCell::new(value) };
    }

    /// Runs `f` on the value.
    ///
    /// # Safety
    /// No other thread accesses the cell during the call, and every earlier
    /// access by another thread happens before it. `f` does not reach the
    /// cell again.
    #[inline(always)]
    pub(crate) unsafe fn with_mut<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        #[cfg(not(loom))]
        // SAFETY: the caller has the cell to itself, as above.
        return f(unsafe { &mut *self.value.get() });
        #[cfg(loom)]
        // SAFETY: as above; loom checks it.
        return self.value.with_mut(|p| f(unsafe { &mut *p }));
    }
}

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

/// Stores `value` at `ptr` with `Release` ordering, for memory shared with
/// the kernel (an io_uring buffer ring's tail), which loom does not model.
///
/// # Safety
/// `ptr` is valid and aligned for a `u16` that is only ever accessed
/// atomically by this process.
#[cfg(all(feature = "io-uring", target_os = "linux", not(loom)))]
pub(crate) unsafe fn publish_u16(ptr: *mut u16, value: u16) {
    // Release: the entries written before the store are visible to the
    // kernel's `smp_load_acquire` of the tail.
    // SAFETY: the caller guarantees `ptr`.
    unsafe { std::sync::atomic::AtomicU16::from_ptr(ptr) }.store(value, Ordering::Release);
}
