//! A counting global allocator for the test binaries that check no heap
//! byte outlives a pool: `tests/stress.rs` and `tests/cache.rs`, each of
//! which includes this file with `#[path]` and installs [`Counting`] as its
//! `#[global_allocator]`.
//!
//! It counts only the threads a test chooses, so that the test harness's
//! own threads do not interfere: a thread counts from the moment it calls
//! [`count_this_thread`], or from its very first heap access if it calls
//! [`count_from_birth`] (for threads the test spawns; `thread::spawn` is not
//! the start of a thread's heap traffic, std's start-up comes first). The
//! harness's threads never count: not its main thread, which allocates at
//! some moment while a test runs, nor a thread it starts for another test
//! while a count runs. (Counting every thread whose first heap access fell
//! inside the count once failed under valgrind at -25 bytes, most likely
//! from such a thread freeing what the main thread had allocated.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, Ordering};

/// Live heap bytes allocated and freed by the threads that count.
static LIVE: AtomicIsize = AtomicIsize::new(0);

thread_local! {
    /// Whether this thread's heap traffic goes into [`LIVE`].
    /// `const`-initialised with no destructor, like [`UNCLAIMED`], so
    /// reading it never allocates and works at any point in a thread's life.
    static COUNTS: Cell<bool> = const { Cell::new(false) };
    /// This thread's net heap bytes since it began, while it has never
    /// counted: what [`count_from_birth`] adds to [`LIVE`].
    static UNCLAIMED: Cell<isize> = const { Cell::new(0) };
}

/// Adds `bytes` to [`LIVE`] if this thread counts, or to its unclaimed
/// bytes otherwise.
fn record(bytes: isize) {
    if COUNTS.get() {
        LIVE.fetch_add(bytes, Ordering::Relaxed);
    } else {
        UNCLAIMED.set(UNCLAIMED.get().wrapping_add(bytes));
    }
}

/// The allocator: `System`'s, with the bookkeeping above.
pub struct Counting;

// SAFETY: every method forwards its arguments unchanged to `System`, which
// implements `GlobalAlloc` correctly, and returns `System`'s result; the
// bookkeeping is a thread-local `Cell` and one atomic add, which neither
// allocate, unwind nor touch the memory being managed.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: our caller upholds `GlobalAlloc::alloc`'s contract
        // (non-zero size), which is `System::alloc`'s.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            record(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            record(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: our caller guarantees `ptr` was allocated by this allocator,
        // that is by `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        record(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: our caller guarantees `ptr` came from `System` with `layout`
        // and that `new_size` is valid, as `System::realloc` requires.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            record(new_size as isize - layout.size() as isize);
        }
        p
    }
}

/// Counts this thread's heap traffic from now on, or stops.
pub fn count_this_thread(on: bool) {
    COUNTS.set(on);
}

/// Counts this thread's heap traffic from its first heap access on: call it
/// first thing in a thread the test spawned, and before it has ever counted.
pub fn count_from_birth() {
    LIVE.fetch_add(UNCLAIMED.replace(0), Ordering::Relaxed);
    COUNTS.set(true);
}

/// Live heap bytes allocated and freed by the counted threads.
pub fn live() -> isize {
    LIVE.load(Ordering::SeqCst)
}
