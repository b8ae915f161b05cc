//! Throughput of one pool shared by two threads, against one thread alone:
//! each thread allocates and drops 1500-byte slices through its own
//! allocator. The project's target: two threads reach at least 1.8× one.
//!
//! `cargo bench --bench shared_pool`. Criterion reports elements per second
//! for each; the ratio of `threads/2` to `threads/1` is the speed-up. The
//! threads are started before the clock and released together by a
//! spinning [`StartLine`], so thread start-up is not timed and they run
//! side by side from their first slice.
//!
//! Two workloads:
//!
//! - `shared_pool_1500B`: each slice is dropped at once, so the allocator
//!   rewinds over its buf and the pool is hardly touched;
//! - `shared_pool_turnover_1500B`: each thread keeps its last 64 slices
//!   alive, in 4 KiB bufs (two slices each), so every other slice takes a
//!   buf from the pool and one goes back: the pool's own path, with the
//!   per-thread caches on (`cache`) and off (`lock`).

use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use refbuf::{Pool, Slice};

#[path = "common/start.rs"]
mod start;

use start::StartLine;

const FRAME: usize = 1500;

/// Slices each thread keeps alive in the turnover workload.
const WINDOW: usize = 64;

/// `threads` threads each allocate `iters` slices from `pool`, keeping the
/// last `window` alive; returns the time the slowest took.
fn run(pool: &Pool, threads: usize, window: usize, iters: u64) -> Duration {
    let start_line = Arc::new(StartLine::new(threads));
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let pool = pool.clone();
            let start_line = Arc::clone(&start_line);
            thread::spawn(move || {
                let mut alloc = pool.allocator(0);
                let mut kept: VecDeque<Slice> = VecDeque::with_capacity(window + 1);
                start_line.wait();
                let start = Instant::now();
                if window == 0 {
                    for _ in 0..iters {
                        let mut s = alloc.alloc_for_overwrite(black_box(FRAME));
                        s[0] = 1;
                        black_box(s);
                    }
                } else {
                    for _ in 0..iters {
                        let mut s = alloc.alloc_for_overwrite(black_box(FRAME));
                        s[0] = 1;
                        kept.push_back(s);
                        if kept.len() > window {
                            black_box(kept.pop_front());
                        }
                    }
                }
                let elapsed = start.elapsed();
                drop(kept);
                elapsed
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
            b.iter_custom(|iters| run(&pool, threads, 0, iters))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("shared_pool_turnover_1500B");
    for (name, cache) in [("cache", refbuf::DEFAULT_THREAD_CACHE_BUFS), ("lock", 0)] {
        let pool = Pool::builder().buf_size(4096).thread_cache(cache).build();
        for threads in [1usize, 2] {
            group.throughput(Throughput::Elements(threads as u64));
            group.bench_with_input(BenchmarkId::new(name, threads), &threads, |b, &threads| {
                b.iter_custom(|iters| run(&pool, threads, WINDOW, iters))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, shared_pool);
criterion_main!(benches);
