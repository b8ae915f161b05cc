//! `StartLine`: lets the threads of a multi-threaded benchmark start their
//! timed work together, for `benches/shared_pool.rs` and
//! `examples/bench_report.rs`, which both mount this file.

use std::hint;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A start line for a fixed number of threads: each waits at it, spinning,
/// until all have arrived.
///
/// It spins rather than sleeping (as `std::sync::Barrier` does) so that the
/// threads start within a microsecond of each other. A thread asleep at a
/// barrier is woken only once the last one arrives, and on a virtual
/// machine whose CPU went idle meanwhile that wake-up took a millisecond
/// or more (the median gap between two threads' starts at a `Barrier`, 2
/// vCPUs, KVM): longer than a third of a run of `bench_report`'s
/// two-thread workloads, timed from the first start to the last finish.
///
/// Meant for no more threads than the machine has CPUs: a spinning thread
/// keeps its CPU.
pub struct StartLine {
    arrived: AtomicUsize,
    threads: usize,
}

impl StartLine {
    /// A start line for `threads` threads.
    pub fn new(threads: usize) -> StartLine {
        StartLine { arrived: AtomicUsize::new(0), threads }
    }

    /// Arrives at the line, and returns once every thread has.
    pub fn wait(&self) {
        // Release: what this thread did before (its warm-up) is done before
        // the others start; Acquire, with the loop's loads: the others' is
        // before this thread's start.
        self.arrived.fetch_add(1, Ordering::AcqRel);
        while self.arrived.load(Ordering::Acquire) < self.threads {
            hint::spin_loop();
        }
    }
}
