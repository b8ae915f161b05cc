//! A counting global allocator, for the test binaries that count heap
//! traffic: `tests/no_alloc.rs` and `tests/no_alloc_io.rs` (no allocation
//! once warm), `tests/stress.rs` and `tests/cache.rs` (no heap byte outlives
//! a pool), and `tests/fault.rs` (the system refusing a buf). Each includes
//! this file with `#[path]` and installs [`Counting`] as its
//! `#[global_allocator]`.
//!
//! It can also refuse one of a thread's zeroed allocations
//! ([`refuse_zeroed`]): refbuf asks for every pooled buf with
//! `alloc_zeroed`, while Rust's collections and boxes ask with `alloc`, and
//! abort the process when refused (std's `handle_alloc_error`).
//!
//! Two kinds of count:
//! - **Per thread**, always: the allocations a thread makes
//!   ([`allocations_in`]) and its net heap bytes since it began
//!   ([`thread_live`]). Tests running in parallel on other threads do not
//!   disturb them.
//! - **Across threads**, for memory one thread allocates and another frees:
//!   [`live`] sums the net heap bytes of the threads a test chooses. A thread
//!   counts there from the moment it calls [`count_this_thread`], or from its
//!   very first heap access if it calls [`count_from_birth`] (for threads the
//!   test spawns: `thread::spawn` is not the start of a thread's heap
//!   traffic, std's start-up comes first). The harness's threads never
//!   count: not its main thread, which allocates at some moment while a test
//!   runs, nor a thread it starts for another test while a count runs.
//!   (Counting every thread whose first heap access fell inside the count
//!   once failed under valgrind at -25 bytes, most likely from such a thread
//!   freeing what the main thread had allocated.)
//!
//! Each binary uses only some of the functions here.
#![allow(dead_code, reason = "each test binary that includes this module uses a part of it")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, Ordering};

/// Net heap bytes of the threads that count across threads.
static LIVE: AtomicIsize = AtomicIsize::new(0);

/// One thread's counts.
struct Counts {
    /// Allocations made (`alloc`, `alloc_zeroed` and `realloc` each count one).
    allocs: Cell<u64>,
    /// Net heap bytes allocated less freed since the thread began.
    live: Cell<isize>,
    /// Whether this thread's heap traffic also goes into [`LIVE`].
    in_live: Cell<bool>,
    /// `alloc_zeroed` calls made, refused ones included.
    zeroed: Cell<u64>,
    /// The value of `zeroed` at which the call is refused; 0 for none.
    refuse_at: Cell<u64>,
}

thread_local! {
    /// `const`-initialised with no destructor, so reading it never allocates
    /// and works at any point in a thread's life.
    static THREAD: Counts = const {
        Counts {
            allocs: Cell::new(0),
            live: Cell::new(0),
            in_live: Cell::new(false),
            zeroed: Cell::new(0),
            refuse_at: Cell::new(0),
        }
    };
}

/// Records `allocs` allocations and a change of `bytes` in live bytes for
/// this thread, and in [`LIVE`] if it counts there.
fn record(allocs: u64, bytes: isize) {
    THREAD.with(|t| {
        t.allocs.set(t.allocs.get() + allocs);
        t.live.set(t.live.get().wrapping_add(bytes));
        if t.in_live.get() {
            LIVE.fetch_add(bytes, Ordering::Relaxed);
        }
    });
}

/// The allocator: `System`'s, with the bookkeeping above.
pub struct Counting;

// SAFETY: every method forwards its arguments unchanged to `System`, which
// implements `GlobalAlloc` correctly, and returns `System`'s result, except
// that `alloc_zeroed` may return null without calling it, which the trait
// allows for any request; the bookkeeping is thread-local `Cell`s and one
// atomic add, which neither allocate, unwind nor touch the memory being
// managed.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: our caller upholds `GlobalAlloc::alloc`'s contract
        // (non-zero size), which is `System::alloc`'s.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            record(1, layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let refuse = THREAD.with(|t| {
            t.zeroed.set(t.zeroed.get() + 1);
            t.zeroed.get() == t.refuse_at.get()
        });
        if refuse {
            // As the system does when out of memory.
            return std::ptr::null_mut();
        }
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            record(1, layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: our caller guarantees `ptr` was allocated by this allocator,
        // that is by `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        record(0, -(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: our caller guarantees `ptr` came from `System` with `layout`
        // and that `new_size` is valid, as `System::realloc` requires.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            record(1, new_size as isize - layout.size() as isize);
        }
        p
    }
}

/// The heap allocations this thread makes while running `f`.
pub fn allocations_in(f: impl FnOnce()) -> u64 {
    let before = THREAD.with(|t| t.allocs.get());
    f();
    THREAD.with(|t| t.allocs.get()) - before
}

/// This thread's net heap bytes, allocated less freed, since it began.
pub fn thread_live() -> isize {
    THREAD.with(|t| t.live.get())
}

/// Counts this thread's heap traffic in [`live`] from now on, or stops.
pub fn count_this_thread(on: bool) {
    THREAD.with(|t| t.in_live.set(on));
}

/// Counts this thread's heap traffic in [`live`] from its first heap access
/// on: call it first thing in a thread the test spawned, before the thread
/// has ever counted there.
pub fn count_from_birth() {
    THREAD.with(|t| {
        LIVE.fetch_add(t.live.get(), Ordering::Relaxed);
        t.in_live.set(true);
    });
}

/// The `alloc_zeroed` calls this thread has made, refused ones included.
pub fn zeroed_allocations() -> u64 {
    THREAD.with(|t| t.zeroed.get())
}

/// Refuses this thread's `n`-th `alloc_zeroed` call from now on (1 for the
/// next), returning null as the system does when out of memory; `None`
/// refuses none.
pub fn refuse_zeroed(n: Option<u64>) {
    THREAD.with(|t| t.refuse_at.set(n.map_or(0, |n| t.zeroed.get() + n)));
}

/// Net heap bytes of the threads that count across threads.
pub fn live() -> isize {
    LIVE.load(Ordering::SeqCst)
}
