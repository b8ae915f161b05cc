//! A counting global allocator for the test binaries that check no heap
//! byte outlives a pool: `tests/stress.rs` and `tests/cache.rs`, each of
//! which includes this file with `#[path]` and installs [`Counting`] as its
//! `#[global_allocator]`.
//!
//! It counts only some threads, so that the test harness's own allocations
//! do not interfere: between [`start_counting`] and [`stop_counting`], the
//! thread that started and every thread that first touches the heap
//! meanwhile, plus any thread that opts in with [`count_this_thread`].

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};

/// Live heap bytes allocated and freed by the threads that [`counts`].
static LIVE: AtomicIsize = AtomicIsize::new(0);

/// Set between [`start_counting`] and [`stop_counting`]: a thread that
/// first touches the heap then counts.
static COUNTING: AtomicBool = AtomicBool::new(false);

/// `COUNTED` before a thread's first allocation.
const UNDECIDED: u8 = 2;

thread_local! {
    /// Whether this thread's allocations count: 1 or 0, decided at its first
    /// allocation or free (or set by [`count_this_thread`]).
    /// `const`-initialised with no destructor, so reading it never allocates
    /// and works at any point in a thread's life.
    static COUNTED: Cell<u8> = const { Cell::new(UNDECIDED) };
}

/// Whether this thread's heap traffic goes into [`LIVE`]: the test's own
/// thread and every thread that first touches the heap while [`COUNTING`]
/// is set (the threads a run spawns, from their very first allocation), but
/// not the test harness's other threads, which touched it long before. The
/// harness's main thread makes allocations of its own at some moment while
/// a test runs (752 bytes, once, seen racing a count of the whole process),
/// which made a whole-process count flaky.
fn counts() -> bool {
    COUNTED
        .try_with(|c| {
            if c.get() == UNDECIDED {
                // Relaxed: `start_counting` sets the flag before the test spawns, and the
                // spawn orders that before every access in the new thread.
                c.set(u8::from(COUNTING.load(Ordering::Relaxed)));
            }
            c.get() == 1
        })
        .unwrap_or(true)
}

/// Adds `bytes` to [`LIVE`] if this thread counts.
fn record(bytes: isize) {
    if counts() {
        LIVE.fetch_add(bytes, Ordering::Relaxed);
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

/// Counts the heap traffic of this thread, and of every thread that first
/// touches the heap from now on.
pub fn start_counting() {
    count_this_thread(true);
    COUNTING.store(true, Ordering::SeqCst);
}

/// Stops what [`start_counting`] started, for new threads and this one.
pub fn stop_counting() {
    COUNTING.store(false, Ordering::SeqCst);
    count_this_thread(false);
}

/// Counts this thread's heap traffic from now on, or stops.
pub fn count_this_thread(on: bool) {
    COUNTED.with(|c| c.set(u8::from(on)));
}

/// Live heap bytes allocated and freed by the counted threads.
pub fn live() -> isize {
    LIVE.load(Ordering::SeqCst)
}
