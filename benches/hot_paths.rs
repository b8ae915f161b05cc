//! Criterion benches of refbuf's hot paths, each beside the baseline a
//! network program would otherwise use.
//!
//! `cargo bench --bench hot_paths` runs them all; add a filter such as
//! `-- alloc/` for one group. Compare ratios within one run: absolute times on
//! a shared machine drift.

use std::hint::black_box;
use std::io::{BufReader, Read};

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

criterion_group!(benches, alloc, copy, reader, coalesce_16);
criterion_main!(benches);
