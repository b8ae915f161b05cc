//! Criterion benches of refbuf's hot paths, each beside the baseline a
//! network program would otherwise use.
//!
//! `cargo bench --bench hot_paths` runs them all; add a filter such as
//! `-- alloc/` for one group. Compare ratios within one run: absolute times on
//! a shared machine drift.

use std::collections::VecDeque;
use std::hint::black_box;
use std::io::{BufReader, Read};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use refbuf::{Pool, Slice, coalesce};

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
    }
    group.finish();
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
    group.finish();
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

/// One thread allocates batches of 1000 × 1500-byte buffers and sends them;
/// another drops them. Timed per buffer, from the first send until the
/// dropping thread has dropped the last batch.
fn cross_thread(c: &mut Criterion) {
    const BATCH: usize = 1000;
    const LEN: usize = 1500;
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
    group.finish();
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

/// A window of the last 32 buffers of 1500 bytes: drop the oldest, make one.
fn window(c: &mut Criterion) {
    const WINDOW: usize = 32;
    const LEN: usize = 1500;
    let mut group = c.benchmark_group("window");
    group.throughput(Throughput::Elements(1));
    let pool = Pool::new();
    let mut alloc = pool.allocator(0);
    let mut slices: VecDeque<Slice> = (0..WINDOW).map(|_| alloc.alloc_for_overwrite(LEN)).collect();
    group.bench_function(BenchmarkId::new("refbuf", "32x1500"), |b| {
        b.iter(|| {
            drop(slices.pop_front());
            let mut s = alloc.alloc_for_overwrite(LEN);
            s[0] = 1;
            slices.push_back(s);
        })
    });
    let mut vecs: VecDeque<Vec<u8>> = (0..WINDOW).map(|_| Vec::with_capacity(LEN)).collect();
    group.bench_function(BenchmarkId::new("vec", "32x1500"), |b| {
        b.iter(|| {
            drop(vecs.pop_front());
            let mut v = Vec::with_capacity(LEN);
            v.push(1);
            vecs.push_back(black_box(v));
        })
    });
    group.finish();
}

criterion_group!(benches, alloc, copy, reader, coalesce_16, cross_thread, window);
criterion_main!(benches);
