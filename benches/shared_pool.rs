//! Throughput of one pool shared by two threads, against one thread alone:
//! each thread allocates and drops 1500-byte slices through its own
//! allocator (issue 3's target: two threads reach at least 1.8× one).
//!
//! `cargo bench --bench shared_pool`. Criterion reports elements per second
//! for each; the ratio of `threads/2` to `threads/1` is the speed-up. The
//! threads are started before the clock and released together by a
//! `Barrier`, so thread start-up is not timed.

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use refbuf::Pool;

const FRAME: usize = 1500;

/// `threads` threads each allocate and drop `iters` slices from `pool`;
/// returns the time the slowest took.
fn run(pool: &Pool, threads: usize, iters: u64) -> Duration {
    let barrier = Arc::new(Barrier::new(threads));
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let pool = pool.clone();
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                let mut alloc = pool.allocator(0);
                barrier.wait();
                let start = Instant::now();
                for _ in 0..iters {
                    let mut s = alloc.alloc_for_overwrite(black_box(FRAME));
                    s[0] = 1;
                    black_box(s);
                }
                start.elapsed()
            })
        })
        .collect();
    workers.into_iter().map(|w| w.join().expect("a worker panicked")).max().unwrap_or_default()
}

fn shared_pool(c: &mut Criterion) {
    let mut group = c.benchmark_group("shared_pool_1500B");
    let pool = Pool::new();
    for threads in [1usize, 2] {
        group.throughput(Throughput::Elements(threads as u64));
        group.bench_with_input(BenchmarkId::new("threads", threads), &threads, |b, &threads| {
            b.iter_custom(|iters| run(&pool, threads, iters))
        });
    }
    group.finish();
}

criterion_group!(benches, shared_pool);
criterion_main!(benches);
