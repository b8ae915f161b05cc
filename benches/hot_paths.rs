//! Criterion benches of refbuf's hot paths, each beside the baseline a
//! network program would otherwise use.
//!
//! The allocation workloads also run against glibc (`std::alloc::System`),
//! jemalloc (`tikv_jemallocator::Jemalloc`) and mimalloc
//! (`mimalloc::MiMalloc`), each called directly through its `GlobalAlloc`
//! methods with the write, memset or memcpy a `Vec<u8>` would do, as
//! `examples/bench_report.rs` does; the global allocator stays std's.
//!
//! `cargo bench --bench hot_paths` runs them all; add a filter such as
//! `-- alloc/` for one group. Compare ratios within one run: absolute times on
//! a shared machine drift.

use std::alloc::{GlobalAlloc, System};
use std::collections::VecDeque;
use std::hint::black_box;
use std::io::{BufReader, Read};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mimalloc::MiMalloc;
use refbuf::{Pool, Slice, coalesce};
use tikv_jemallocator::Jemalloc;

#[path = "common/block.rs"]
mod block;

use block::Block;

const SIZES: [usize; 4] = [64, 512, 1500, 9000];

/// Get a buffer of `len` bytes, write one byte, drop it.
fn alloc(c: &mut Criterion) {
    let mut group = c.benchmark_group("alloc");
    let pool = Pool::new();
    let mut alloc = pool.allocator(0);
    for len in SIZES {
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(BenchmarkId::new("refbuf_for_overwrite", len), &len, |b, &len| {
            b.iter(|| {
                let mut s = alloc.alloc_for_overwrite(black_box(len));
                s[0] = 1;
                black_box(s)
            })
        });
        group.bench_with_input(BenchmarkId::new("refbuf_zeroed", len), &len, |b, &len| {
            b.iter(|| black_box(alloc.alloc(black_box(len))))
        });
        group.bench_with_input(BenchmarkId::new("vec_with_capacity", len), &len, |b, &len| {
            b.iter(|| {
                let mut v = Vec::<u8>::with_capacity(black_box(len));
                v.push(1);
                black_box(v)
            })
        });
        group.bench_with_input(BenchmarkId::new("vec_zeroed", len), &len, |b, &len| {
            b.iter(|| black_box(vec![0u8; black_box(len)]))
        });
        group.bench_with_input(BenchmarkId::new("bytes_mut_with_capacity", len), &len, |b, &len| {
            b.iter(|| {
                let mut v = BytesMut::with_capacity(black_box(len));
                v.extend_from_slice(&[1]);
                black_box(v)
            })
        });
        alloc_direct(&mut group, "glibc", &System, len);
        alloc_direct(&mut group, "jemalloc", &Jemalloc, len);
        alloc_direct(&mut group, "mimalloc", &MiMalloc, len);
    }
    group.finish();
}

/// The `alloc` group's benches of `allocator`, called directly, as `name`:
/// `len` bytes with the first written (`{name}_for_overwrite`), and `len`
/// zero bytes (`{name}_zeroed`), each then freed.
fn alloc_direct<G: GlobalAlloc>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    allocator: &'static G,
    len: usize,
) {
    group.bench_with_input(BenchmarkId::new(format!("{name}_for_overwrite"), len), &len, |b, &len| {
        b.iter(|| {
            let mut block = Block::uninit(allocator, black_box(len));
            block.write_first(1);
            black_box(block)
        })
    });
    group.bench_with_input(BenchmarkId::new(format!("{name}_zeroed"), len), &len, |b, &len| {
        b.iter(|| black_box(Block::zeroed(allocator, black_box(len))))
    });
}

/// Copy a 1500-byte payload into a fresh buffer and drop it.
fn copy(c: &mut Criterion) {
    let mut group = c.benchmark_group("copy");
    let payload = vec![7u8; 1500];
    let pool = Pool::new();
    let mut alloc = pool.allocator(0);
    group.throughput(Throughput::Bytes(payload.len() as u64));
    group.bench_function(BenchmarkId::new("refbuf", 1500), |b| {
        b.iter(|| black_box(alloc.copy_from_slice(black_box(&payload))))
    });
    group.bench_function(BenchmarkId::new("vec", 1500), |b| {
        b.iter(|| black_box(black_box(&payload[..]).to_vec()))
    });
    copy_direct(&mut group, "glibc", &System, &payload);
    copy_direct(&mut group, "jemalloc", &Jemalloc, &payload);
    copy_direct(&mut group, "mimalloc", &MiMalloc, &payload);
    group.finish();
}

/// The `copy` group's bench of `allocator`, called directly, as `name`: a
/// copy of `payload` in a fresh block, then freed.
fn copy_direct<G: GlobalAlloc>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    allocator: &'static G,
    payload: &[u8],
) {
    group.bench_function(BenchmarkId::new(name, payload.len()), |b| {
        b.iter(|| black_box(Block::copy_of(allocator, black_box(payload))))
    });
}

/// Read 1500-byte frames from an in-memory source.
fn reader(c: &mut Criterion) {
    const FRAME: usize = 1500;
    const FRAMES: usize = 1000;
    let stream = vec![3u8; FRAME * FRAMES];
    let mut group = c.benchmark_group("reader");
    group.throughput(Throughput::Bytes(stream.len() as u64));
    let pool = Pool::new();
    group.bench_function(BenchmarkId::new("refbuf", FRAME), |b| {
        b.iter(|| {
            let mut reader = pool.reader(black_box(&stream[..]));
            for _ in 0..FRAMES {
                black_box(reader.read(FRAME).expect("in-memory source"));
            }
        })
    });
    group.bench_function(BenchmarkId::new("bufreader_vec_read_exact", FRAME), |b| {
        b.iter(|| {
            let mut reader = BufReader::with_capacity(64 * 1024, black_box(&stream[..]));
            for _ in 0..FRAMES {
                let mut frame = vec![0u8; FRAME];
                reader.read_exact(&mut frame).expect("in-memory source");
                black_box(frame);
            }
        })
    });
    group.bench_function(BenchmarkId::new("copy_into_reused_buffer", FRAME), |b| {
        let mut frame = vec![0u8; FRAME];
        b.iter(|| {
            let mut src = black_box(&stream[..]);
            for _ in 0..FRAMES {
                let n = src.read(&mut frame).expect("in-memory source");
                black_box(&frame[..n]);
            }
        })
    });
    group.finish();
}

/// Coalesce 16 touching 1 KiB slices into one.
fn coalesce_16(c: &mut Criterion) {
    let mut group = c.benchmark_group("coalesce");
    let pool = Pool::new();
    let mut alloc = pool.allocator(0);
    group.bench_function(BenchmarkId::new("refbuf", "16x1KiB"), |b| {
        b.iter_batched_ref(
            || (0..16).map(|_| alloc.alloc_for_overwrite(1024)).collect::<Vec<Slice>>(),
            |run| coalesce(black_box(run), usize::MAX),
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// Buffers per batch of the cross-thread benches.
const BATCH: usize = 1000;
/// Bytes per buffer of the cross-thread and window benches.
const LEN: usize = 1500;

/// One thread allocates batches of 1000 × 1500-byte buffers and sends them;
/// another drops them. Timed per buffer, from the first send until the
/// dropping thread has dropped the last batch.
fn cross_thread(c: &mut Criterion) {
    let mut group = c.benchmark_group("cross_thread");
    group.throughput(Throughput::Elements(BATCH as u64));
    let pool = Pool::new();
    let mut alloc = pool.allocator(0);
    group.bench_function(BenchmarkId::new("refbuf", "1000x1500"), |b| {
        b.iter_custom(|iters| {
            send_to_dropper(iters, || (0..BATCH).map(|_| alloc.alloc_for_overwrite(LEN)).collect::<Vec<_>>())
        })
    });
    group.bench_function(BenchmarkId::new("vec", "1000x1500"), |b| {
        b.iter_custom(|iters| {
            send_to_dropper(iters, || (0..BATCH).map(|_| Vec::<u8>::with_capacity(LEN)).collect::<Vec<_>>())
        })
    });
    cross_thread_direct(&mut group, "glibc", &System);
    cross_thread_direct(&mut group, "jemalloc", &Jemalloc);
    cross_thread_direct(&mut group, "mimalloc", &MiMalloc);
    group.finish();
}

/// The `cross_thread` group's bench of `allocator`, called directly, as
/// `name`: batches of blocks in place of slices.
fn cross_thread_direct<G: GlobalAlloc + Sync>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    allocator: &'static G,
) {
    group.bench_function(BenchmarkId::new(name, "1000x1500"), |b| {
        b.iter_custom(|iters| {
            send_to_dropper(iters, || (0..BATCH).map(|_| Block::uninit(allocator, LEN)).collect::<Vec<_>>())
        })
    });
}

/// Sends `iters` batches made by `make` to a fresh dropping thread and times
/// until it has dropped them all. The channel holds two batches, so making
/// and dropping overlap.
fn send_to_dropper<T: Send + 'static>(iters: u64, mut make: impl FnMut() -> T) -> Duration {
    let (batches, rx) = mpsc::sync_channel::<T>(2);
    let dropper = thread::spawn(move || rx.into_iter().for_each(drop));
    let start = Instant::now();
    for _ in 0..iters {
        batches.send(make()).expect("the dropping thread runs until the channel closes");
    }
    drop(batches);
    dropper.join().expect("the dropping thread does not panic");
    start.elapsed()
}

/// Buffers kept alive by the window benches.
const WINDOW: usize = 32;

/// A window of the last 32 buffers of 1500 bytes: drop the oldest, make one.
/// refbuf's runs in 64 KiB bufs (`refbuf`) and in 4 KiB bufs
/// (`refbuf_4KiB_bufs`).
fn window(c: &mut Criterion) {
    let mut group = c.benchmark_group("window");
    group.throughput(Throughput::Elements(1));
    for (name, pool) in
        [("refbuf", Pool::new()), ("refbuf_4KiB_bufs", Pool::builder().buf_size(4096).build())]
    {
        let mut alloc = pool.allocator(0);
        let mut slices: VecDeque<Slice> = (0..WINDOW).map(|_| alloc.alloc_for_overwrite(LEN)).collect();
        group.bench_function(BenchmarkId::new(name, "32x1500"), |b| {
            b.iter(|| {
                drop(slices.pop_front());
                let mut s = alloc.alloc_for_overwrite(LEN);
                s[0] = 1;
                slices.push_back(s);
            })
        });
    }
    let mut vecs: VecDeque<Vec<u8>> = (0..WINDOW).map(|_| Vec::with_capacity(LEN)).collect();
    group.bench_function(BenchmarkId::new("vec", "32x1500"), |b| {
        b.iter(|| {
            drop(vecs.pop_front());
            let mut v = Vec::with_capacity(LEN);
            v.push(1);
            vecs.push_back(black_box(v));
        })
    });
    window_direct(&mut group, "glibc", &System);
    window_direct(&mut group, "jemalloc", &Jemalloc);
    window_direct(&mut group, "mimalloc", &MiMalloc);
    group.finish();
}

/// The `window` group's bench of `allocator`, called directly, as `name`: a
/// window of blocks, each new one with its first byte written.
fn window_direct<G: GlobalAlloc>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    allocator: &'static G,
) {
    let mut blocks: VecDeque<Block<G>> = (0..WINDOW).map(|_| Block::uninit(allocator, LEN)).collect();
    group.bench_function(BenchmarkId::new(name, "32x1500"), |b| {
        b.iter(|| {
            drop(blocks.pop_front());
            let mut block = Block::uninit(allocator, LEN);
            block.write_first(1);
            blocks.push_back(black_box(block));
        })
    });
}

criterion_group!(benches, alloc, copy, reader, coalesce_16, cross_thread, window);
criterion_main!(benches);
