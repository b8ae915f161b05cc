//! Fault injection: the system refuses the memory for a buf.
//!
//! Each scenario runs once to count the bufs it asks the system for, then
//! once more for each of them, with that one refused (the global allocator
//! returns null, as the system does when out of memory). Every call must
//! then return its documented error, `AllocError::OutOfMemory` or an
//! `io::Error` of kind `OutOfMemory` wrapping it; every object must stay
//! usable, which each scenario shows by making the same call again and
//! getting what it asked for; and at the end the pool's stats must balance
//! and no heap byte the scenario allocated may remain.
//!
//! Only bufs are refused: refbuf asks for them with `alloc_zeroed`, while the
//! boxes and vectors of Rust's std (an `io::Error`'s payload, a `Bytes`
//! owner) abort the process when refused, as std documents.

#[path = "common/counting.rs"]
mod counting;

use std::io::{self, Read, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use bytes::Buf;
use refbuf::{AllocError, Allocator, Chain, Pool, PoolBuilder, Slice, coalesce};

#[global_allocator]
static COUNTING: counting::Counting = counting::Counting;

/// Runs `scenario` on a fresh pool from `builder`, and checks the end state:
/// nothing in use, every buf made idle or trimmed, and once the pool is
/// dropped, every heap byte the run allocated on this thread freed.
fn run(builder: &impl Fn() -> PoolBuilder, scenario: &impl Fn(&Pool), what: &str) {
    let live = counting::thread_live();
    let pool = builder().build();
    scenario(&pool);
    let stats = pool.stats();
    assert_eq!((stats.bufs_in_use, stats.bytes_in_use), (0, 0), "{what}: nothing in use: {stats:?}");
    assert_eq!(stats.bufs_created, stats.bufs_idle as u64 + stats.bufs_trimmed, "{what}: {stats:?}");
    assert!(stats.high_water_bytes >= stats.bytes_idle, "{what}: {stats:?}");
    drop(pool);
    assert_eq!(counting::thread_live(), live, "{what}: every heap byte freed");
}

/// Runs `scenario` without a refusal, then once with each buf it asks for
/// refused in turn; returns how many bufs that was.
fn with_each_refusal(name: &str, builder: impl Fn() -> PoolBuilder, scenario: impl Fn(&Pool)) -> u64 {
    // A first run warms up what a thread sets up once (its cache slot,
    // std's thread-local bookkeeping), so that later runs count only
    // themselves.
    run(&builder, &scenario, name);
    let before = counting::zeroed_allocations();
    run(&builder, &scenario, name);
    let bufs = counting::zeroed_allocations() - before;
    assert!(bufs > 0, "{name}: the scenario takes fresh bufs");
    for n in 1..=bufs {
        let start = counting::zeroed_allocations();
        counting::refuse_zeroed(Some(n));
        run(&builder, &scenario, &format!("{name}, buf {n} of {bufs} refused"));
        counting::refuse_zeroed(None);
        assert!(counting::zeroed_allocations() - start >= n, "{name}: buf {n} was asked for, and refused");
    }
    bufs
}

/// `call()`, which may meet the one refusal: then its error must be the
/// system's, and the same call made again must succeed.
fn retried<T>(what: &str, mut call: impl FnMut() -> Result<T, AllocError>) -> T {
    call().unwrap_or_else(|e| {
        assert_eq!(e, AllocError::OutOfMemory, "{what}: only the system refuses");
        call().unwrap_or_else(|e| panic!("{what}: unusable after a refusal: {e}"))
    })
}

/// [`retried`] for calls that return `io::Error`s.
fn retried_io<T>(what: &str, mut call: impl FnMut() -> io::Result<T>) -> T {
    call().unwrap_or_else(|e| {
        assert_eq!(e.kind(), io::ErrorKind::OutOfMemory, "{what}: {e}");
        assert_eq!(system_refusal(&e), Some(AllocError::OutOfMemory), "{what}: only the system refuses");
        call().unwrap_or_else(|e| panic!("{what}: unusable after a refusal: {e}"))
    })
}

fn system_refusal(e: &io::Error) -> Option<AllocError> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<AllocError>()).copied()
}

fn small_bufs() -> PoolBuilder {
    Pool::builder().buf_size(64)
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|k| (k as u8).wrapping_mul(31) ^ seed).collect()
}

/// Every fallible entry point of the allocator, each needing a fresh buf
/// (the slices are kept, so no buf is reused).
#[test]
fn allocator_entry_points() {
    let bufs = with_each_refusal("allocator", small_bufs, |pool| {
        let mut alloc = pool.allocator(4);
        let mut kept = Vec::new();
        for round in 0..2u8 {
            let s = retried("try_alloc", || alloc.try_alloc(40));
            assert!(s.iter().all(|&b| b == 0));
            kept.push(s);
            kept.push(retried("try_alloc_for_overwrite", || alloc.try_alloc_for_overwrite(40)));
            let data = pattern(40, round);
            let s = retried("try_copy_from_slice", || alloc.try_copy_from_slice(&data));
            assert_eq!(&s[..], &data[..]);
            kept.push(s);
            let s = retried("alloc_timeout", || alloc.alloc_timeout(40, Duration::from_secs(3600)));
            assert!(s.iter().all(|&b| b == 0));
            kept.push(s);
            for blocking in [false, true] {
                let mut calls = 0;
                let mut fill = |buf: &mut [u8]| {
                    calls += 1;
                    buf[..data.len()].copy_from_slice(&data);
                    Ok(data.len())
                };
                let s = retried_io("fill_with", || {
                    if blocking { alloc.fill_with(40, &mut fill) } else { alloc.try_fill_with(40, &mut fill) }
                });
                assert_eq!(calls, 1, "the closure runs only once a buf is in hand");
                assert_eq!(&s[..], &data[..]);
                kept.push(s);
            }
        }
        let mut parts = kept;
        coalesce(&mut parts, usize::MAX);
        assert!(parts.iter().all(|s| s.headroom() == 4 || s.is_empty()));
    });
    assert!(bufs >= 12, "one buf per call: {bufs}");
}

/// The allocator's blocking calls panic where the system refuses, as their
/// docs say, and the allocator carries on afterwards.
#[test]
#[cfg_attr(miri, ignore = "a panic's message under Miri is slow; the error path is the same as try_alloc's")]
fn blocking_calls_panic_on_a_refusal_and_the_allocator_carries_on() {
    let pool = small_bufs().build();
    let mut alloc = pool.allocator(0);
    let data = pattern(50, 9);
    type Call<'a> = &'a dyn Fn(&mut Allocator) -> Slice;
    let calls: [(&str, Call<'_>); 3] = [
        ("alloc", &|a| a.alloc(50)),
        ("alloc_for_overwrite", &|a| a.alloc_for_overwrite(50)),
        ("copy_from_slice", &|a| a.copy_from_slice(&data)),
    ];
    // Kept, so that no idle buf can serve a call and each needs a fresh one.
    let mut kept = Vec::new();
    for (name, call) in calls {
        kept.push(alloc.alloc(50));
        counting::refuse_zeroed(Some(1));
        let err = catch_unwind(AssertUnwindSafe(|| call(&mut alloc))).expect_err("a refusal panics");
        counting::refuse_zeroed(None);
        let message = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(message.contains(&AllocError::OutOfMemory.to_string()), "{name}: {message}");
        let again = call(&mut alloc);
        assert_eq!(again.len(), 50, "{name}");
        kept.push(again);
    }
    drop((kept, alloc));
    assert_eq!(pool.stats().bufs_in_use, 0);
}

/// The reader: frames within one buf, across bufs, and frames that grow; a
/// refusal loses no byte, and the same read made again gets the frame. One
/// read needs a new buf just after the reader handed out every byte of its
/// last one, which once left it with the old offsets and no buf.
#[test]
fn reader() {
    let data = pattern(1200, 3);
    let bufs = with_each_refusal("reader", small_bufs, |pool| {
        let mut reader = pool.reader(Chunked { data: &data, pos: 0 });
        let mut at = 0;
        let mut kept = Vec::new();
        for n in [64, 1, 10, 60, 5, 200, 64, 1, 300, 30, 7, 400] {
            let buffered = reader.buffered();
            let frame = reader.read(n).or_else(|e| {
                assert_eq!(e.kind(), io::ErrorKind::OutOfMemory, "read({n}): {e}");
                assert_eq!(system_refusal(&e), Some(AllocError::OutOfMemory));
                assert!(reader.buffered() >= buffered, "read({n}): no byte lost");
                reader.read(n)
            });
            let frame = frame.unwrap_or_else(|e| panic!("read({n}) after a refusal: {e}"));
            assert_eq!(&frame[..], &data[at..at + n], "read({n})");
            at += n;
            kept.push(frame);
        }
        let rest = reader.buffered();
        assert_eq!(&retried_io("the rest", || reader.read(rest))[..], &data[at..at + rest]);
    });
    assert!(bufs >= 8, "{bufs}");
}

/// A source that hands out at most 50 bytes a call.
struct Chunked<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(50).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The writer, blocking and not: a refused write keeps none of its bytes,
/// and the same write made again appends them.
#[test]
fn writer() {
    let data = pattern(600, 5);
    with_each_refusal("writer", small_bufs, |pool| {
        let mut alloc = pool.allocator(2);
        let mut w = alloc.writer();
        for (k, chunk) in data.chunks(30).enumerate() {
            let before = w.len();
            retried_io("write", || {
                let result = if k % 2 == 0 { w.write_all(chunk) } else { w.try_write(chunk) };
                if result.is_err() {
                    assert_eq!(w.len(), before, "a refused write keeps nothing");
                }
                result
            });
        }
        let mut chain = w.finish();
        assert_eq!(chain.len(), data.len());
        let mut out = Vec::new();
        chain.write_to(&mut out).expect("a Vec takes everything");
        assert_eq!(out, data);
    });
}

/// Chains and `bytes` hand-offs over slices some of whose bufs were refused
/// on the way.
#[test]
fn chain_and_into_bytes() {
    with_each_refusal("chain and into_bytes", small_bufs, |pool| {
        let mut alloc = pool.allocator(8);
        let mut chain = Chain::new();
        let mut expected = Vec::new();
        for k in 0..6u8 {
            let data = pattern(40, k);
            let part = retried("try_copy_from_slice", || alloc.try_copy_from_slice(&data));
            expected.extend_from_slice(&data);
            chain.push_back(part);
        }
        let header = retried("header", || alloc.try_copy_from_slice(b"hdr:"));
        chain.push_front(header);
        let mut wire = Vec::new();
        chain.write_to(&mut wire).expect("a Vec takes everything");
        assert_eq!(&wire[..4], b"hdr:");
        assert_eq!(&wire[4..], &expected[..]);

        let slice = retried("try_copy_from_slice", || alloc.try_copy_from_slice(&expected[..50]));
        let mut bytes = slice.into_bytes();
        let clone = bytes.clone();
        assert_eq!(bytes.get_u8(), expected[0]);
        assert_eq!(&clone[..], &expected[..50]);
    });
}

/// The per-thread caches: bufs go back to this thread's cache and come out
/// again without the system; a trim sends them away, and the next fresh one
/// may be refused.
#[test]
fn caches() {
    with_each_refusal(
        "caches",
        || small_bufs().thread_cache(2),
        |pool| {
            for _ in 0..3 {
                let mut alloc = pool.allocator(0);
                let a = retried("first", || alloc.try_alloc(64));
                let b = retried("second", || alloc.try_alloc(64));
                drop((a, b, alloc));
                assert_eq!(pool.stats().bufs_cached, 2);
                let mut alloc = pool.allocator(0);
                let c = retried("from the cache", || alloc.try_alloc(64));
                assert_eq!(pool.stats().bufs_cached, 1);
                drop((c, alloc));
                pool.trim();
                assert_eq!(pool.stats().bufs_cached, 0);
            }
        },
    );
}

/// The budget: a refused buf gives its reservation back, so the whole
/// budget can still be used, and only then does a request find it
/// exhausted.
#[test]
fn budget() {
    with_each_refusal(
        "budget",
        || small_bufs().max_bytes(4 * 64),
        |pool| {
            let mut alloc = pool.allocator(0);
            let held: Vec<Slice> =
                (0..4).map(|_| retried("within the budget", || alloc.try_alloc(64))).collect();
            assert_eq!(alloc.try_alloc(64).unwrap_err(), AllocError::Exhausted);
            let stats = pool.stats();
            assert_eq!((stats.bytes_in_use, stats.high_water_bytes), (4 * 64, 4 * 64), "{stats:?}");
            drop(held);
            let mut w = alloc.writer();
            retried_io("write under the budget", || w.write_all(&[1; 200]));
            assert_eq!(w.finish().len(), 200);
        },
    );
}
