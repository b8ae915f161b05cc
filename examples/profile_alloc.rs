//! Two small programs for seeing where an allocation's time goes.
//!
//! - `cargo run --release --example profile_alloc -- loop LEN N` allocates,
//!   writes one byte into and drops N slices of LEN bytes, for a profiler:
//!   `valgrind --tool=callgrind target/release/examples/profile_alloc loop 64 1000000`
//!   counts the instructions per operation (divide the total by N).
//! - `cargo run --release --example profile_alloc -- atomic` times the cost
//!   of the one atomic on that path, the `Release` decrement a drop does: a
//!   loop of one-byte stores into a 64 KiB block followed by an atomic
//!   decrement, against the same loop with a plain decrement.

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use clap::{Parser, Subcommand};

/// Two small programs for seeing where an allocation's time goes.
// Public, as is its field, for `tests/examples.rs`, which checks it.
#[derive(Debug, Parser)]
#[command(name = "profile_alloc", disable_help_subcommand = true)]
pub struct Args {
    /// The program to run.
    #[command(subcommand)]
    pub program: Program,
}

/// `profile_alloc`'s programs.
#[derive(Debug, PartialEq, Eq, Subcommand)]
pub enum Program {
    /// Allocate, write one byte into and drop N slices of LEN bytes, for a
    /// profiler.
    Loop {
        /// Bytes in each slice.
        len: usize,
        /// Slices to allocate.
        n: usize,
    },
    /// Time the `Release` decrement a drop does against a plain decrement,
    /// each after a one-byte store.
    Atomic,
}

fn main() {
    match Args::parse().program {
        Program::Loop { len, n } => alloc_loop(len, n),
        Program::Atomic => {
            for stride in [64, 1500] {
                let atomic = best_ns_per_op(stride, true);
                let plain = best_ns_per_op(stride, false);
                println!(
                    "stride {stride:>4} B: store + atomic Release decrement {atomic:5.2} ns, \
                     store + plain decrement {plain:5.2} ns"
                );
            }
        }
    }
}

/// N allocations of `len` bytes, each written once and dropped.
fn alloc_loop(len: usize, n: usize) {
    let pool = refbuf::Pool::new();
    let mut alloc = pool.allocator(0);
    for _ in 0..n {
        let mut s = alloc.alloc_for_overwrite(black_box(len));
        s[0] = 1;
        black_box(s);
    }
}

/// Best of seven runs, in nanoseconds per iteration, of a one-byte store
/// `stride` bytes after the last (wrapping in a 64 KiB block, as slices
/// walk a buf) followed by a decrement, atomic or plain.
fn best_ns_per_op(stride: usize, atomic: bool) -> f64 {
    const N: usize = 20_000_000;
    let mut block = vec![0u8; 64 * 1024];
    let refs = AtomicUsize::new(usize::MAX / 2);
    let mut plain = usize::MAX / 2;
    (0..7)
        .map(|_| {
            let mut at = 0;
            let start = Instant::now();
            for _ in 0..N {
                block[at] = 1;
                at = if at + 2 * stride > block.len() { 0 } else { at + stride };
                if atomic {
                    // Release, as `Slice::drop` does; nothing pairs with it
                    // here, the point is its cost.
                    refs.fetch_sub(1, Ordering::Release);
                } else {
                    plain = black_box(plain) - 1;
                }
                black_box(&block);
            }
            start.elapsed().as_nanos() as f64 / N as f64
        })
        .fold(f64::INFINITY, f64::min)
}
