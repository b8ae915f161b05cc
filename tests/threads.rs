//! Many threads sharing one pool: slices allocated on one thread, split,
//! joined or coalesced, sent to another and dropped there; simultaneous last
//! releases of one buf; `close` racing with releases.
//!
//! Under Miri the leak checker also proves that dropping the last pool handle
//! frees the idle bufs (they would otherwise form a cycle with the pool);
//! `tests/no_alloc.rs` checks the same natively with a counting allocator.

use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread;

use refbuf::{AllocError, DEFAULT_THREAD_CACHE_BUFS, Pool, Slice, coalesce};

const THREADS: usize = 8;

fn xorshift(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x
}

/// The byte at offset `k` of message `seq` from thread `tid`.
fn pattern(tid: usize, seq: u64, k: usize) -> u8 {
    let x =
        (tid as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seq.wrapping_mul(0xBF58_476D_1CE4_E5B9) ^ k as u64;
    (x.wrapping_mul(0x94D0_49BB_1331_11EB) >> 56) as u8
}

fn fill(parts: &mut [Slice], tid: usize, seq: u64) {
    let mut k = 0;
    for part in parts {
        for b in part.iter_mut() {
            *b = pattern(tid, seq, k);
            k += 1;
        }
    }
}

/// One message: a byte string of `len` bytes in one or more slices.
struct Msg {
    tid: usize,
    seq: u64,
    len: usize,
    parts: Vec<Slice>,
}

impl Msg {
    /// Checks the contents against the pattern; returns the byte count.
    fn verify(&self) -> usize {
        let mut k = 0;
        for part in &self.parts {
            for &b in part.iter() {
                assert_eq!(
                    b,
                    pattern(self.tid, self.seq, k),
                    "thread {} msg {} byte {k}",
                    self.tid,
                    self.seq
                );
                k += 1;
            }
        }
        assert_eq!(k, self.len, "thread {} msg {}: length", self.tid, self.seq);
        k
    }
}

#[derive(Default, Debug)]
struct Tally {
    sent_msgs: u64,
    sent_bytes: usize,
    got_msgs: u64,
    got_bytes: usize,
    joins: u64,
    coalesced: u64,
}

/// Builds message `seq` of thread `tid` in one of several shapes.
fn produce(
    tid: usize,
    seq: u64,
    rng: &mut u64,
    plain: &mut refbuf::Allocator,
    reserved: &mut refbuf::Allocator,
    tally: &mut Tally,
) -> Msg {
    let r = xorshift(rng);
    // Mostly small, sometimes larger than a buf.
    let len = if r.is_multiple_of(16) { 600 + (r >> 8) as usize % 700 } else { (r >> 8) as usize % 200 };
    let parts = match (r >> 32) % 6 {
        0 => {
            let mut s = plain.alloc(len);
            assert!(s.iter().all(|&b| b == 0), "alloc zero-fills");
            fill(std::slice::from_mut(&mut s), tid, seq);
            vec![s]
        }
        1 => {
            // Split into up to three parts.
            let mut s = reserved.alloc_for_overwrite(len);
            assert_eq!(s.headroom(), reserved.reserve());
            fill(std::slice::from_mut(&mut s), tid, seq);
            let a = (xorshift(rng) as usize) % (len + 1);
            let front = s.split_to(a);
            let b = (xorshift(rng) as usize) % (s.len() + 1);
            let back = s.split_off(b);
            vec![front, s, back]
        }
        2 => {
            // Two consecutive slices, joined when they touch.
            let len2 = (xorshift(rng) as usize) % 100;
            let mut parts = vec![plain.alloc(len), plain.alloc(len2)];
            fill(&mut parts, tid, seq);
            let second = parts.pop().unwrap();
            match parts[0].try_join(second) {
                Ok(()) => tally.joins += 1,
                Err(second) => parts.push(second),
            }
            return Msg { tid, seq, len: len + len2, parts };
        }
        3 => {
            // Several small slices, coalesced.
            let n = 2 + (xorshift(rng) as usize) % 6;
            let mut parts: Vec<Slice> = (0..n).map(|i| plain.alloc((len + i) % 40)).collect();
            let total = parts.iter().map(|s| s.len()).sum();
            fill(&mut parts, tid, seq);
            let before = parts.len();
            let max_len = if xorshift(rng).is_multiple_of(2) { usize::MAX } else { 50 };
            coalesce(&mut parts, max_len);
            if parts.len() < before {
                tally.coalesced += 1;
            }
            return Msg { tid, seq, len: total, parts };
        }
        4 => {
            // A header prepended in the reserve.
            let h = reserved.reserve().min(len);
            let body: Vec<u8> = (h..len).map(|k| pattern(tid, seq, k)).collect();
            let mut s = reserved.copy_from_slice(&body);
            let header: Vec<u8> = (0..h).map(|k| pattern(tid, seq, k)).collect();
            assert!(s.prepend(&header));
            vec![s]
        }
        _ => {
            let mut s = reserved.alloc(len);
            fill(std::slice::from_mut(&mut s), tid, seq);
            vec![s]
        }
    };
    Msg { tid, seq, len, parts }
}

/// Verifies a received message, then keeps it in a small backlog dropped in a
/// scrambled order, so releases interleave across threads.
fn receive(msg: Msg, backlog: &mut Vec<Msg>, rng: &mut u64, tally: &mut Tally) {
    tally.got_bytes += msg.verify();
    tally.got_msgs += 1;
    backlog.push(msg);
    if backlog.len() > 4 {
        let i = (xorshift(rng) as usize) % backlog.len();
        let mut m = backlog.swap_remove(i);
        // Drop the parts back to front half the time.
        if xorshift(rng).is_multiple_of(2) {
            while m.parts.pop().is_some() {}
        }
    }
}

/// Slices made, split, joined and coalesced on 8 threads and dropped on others arrive intact; stats balance.
#[test]
fn slices_cross_threads_and_stats_balance() {
    let per_thread: u64 = if cfg!(miri) { 25 } else { 3000 };
    let pool = Pool::builder().buf_size(512).build();
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..THREADS).map(|_| mpsc::channel::<Msg>()).unzip();
    let mut rxs: Vec<Option<mpsc::Receiver<Msg>>> = rxs.into_iter().map(Some).collect();
    let mut handles = Vec::new();
    for tid in 0..THREADS {
        let pool = pool.clone();
        let tx = txs[(tid + 1) % THREADS].clone();
        let rx = rxs[tid].take().unwrap();
        handles.push(thread::spawn(move || {
            let mut rng = 0x2545_F491_4F6C_DD1D ^ (tid as u64 + 1).wrapping_mul(0x9E37_79B9);
            let mut plain = pool.allocator(0);
            let mut reserved = pool.allocator(1 + tid % 5);
            let mut tally = Tally::default();
            let mut backlog = Vec::new();
            for seq in 0..per_thread {
                let msg = produce(tid, seq, &mut rng, &mut plain, &mut reserved, &mut tally);
                tally.sent_msgs += 1;
                tally.sent_bytes += msg.len;
                tx.send(msg).unwrap();
                while let Ok(m) = rx.try_recv() {
                    receive(m, &mut backlog, &mut rng, &mut tally);
                }
            }
            drop((tx, plain, reserved));
            for m in rx {
                receive(m, &mut backlog, &mut rng, &mut tally);
            }
            drop(backlog);
            tally
        }));
    }
    drop(txs);
    let tallies: Vec<Tally> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let sent: u64 = tallies.iter().map(|t| t.sent_msgs).sum();
    let got: u64 = tallies.iter().map(|t| t.got_msgs).sum();
    assert_eq!(sent, per_thread * THREADS as u64);
    assert_eq!(got, sent, "every message verified");
    assert_eq!(
        tallies.iter().map(|t| t.got_bytes).sum::<usize>(),
        tallies.iter().map(|t| t.sent_bytes).sum::<usize>()
    );
    if !cfg!(miri) {
        assert!(tallies.iter().map(|t| t.joins).sum::<u64>() > 0, "some joins happened");
        assert!(tallies.iter().map(|t| t.coalesced).sum::<u64>() > 0, "some coalesces merged");
    }

    let stats = pool.stats();
    assert_eq!(stats.bufs_in_use, 0, "{stats:?}");
    assert_eq!(stats.bytes_in_use, 0, "{stats:?}");
    assert!(stats.bufs_idle as u64 <= stats.bufs_created, "{stats:?}");
    assert!(stats.bufs_idle > 0, "released bufs are kept for reuse: {stats:?}");
    assert!(!pool.is_closed(), "the pool stays open while a handle lives");
    // Dropping the last handle closes the pool and frees its idle bufs (a
    // leak Miri would report otherwise; see tests/no_alloc.rs natively).
    drop(pool);
}

/// Threads dropping a buf's last slices at once recycle it exactly once a round, never handing it out twice; with per-thread caches off, so the buf goes back to the shared list where the next round finds it.
#[test]
fn simultaneous_last_release_recycles_once() {
    simultaneous_last_release(0);
}

/// As above with per-thread caches on: the buf goes to the cache of whichever thread dropped last, where the next round's allocation on the main thread does not look, so the pool makes a new buf until every cache is full; each is still recycled exactly once.
#[test]
fn simultaneous_last_release_recycles_once_into_caches() {
    simultaneous_last_release(DEFAULT_THREAD_CACHE_BUFS);
}

/// Each round the main thread cuts one buf into a slice per thread, and the
/// threads write, check and drop their slices at once.
fn simultaneous_last_release(thread_cache: usize) {
    let rounds = if cfg!(miri) { 8 } else { 400 };
    const CHUNK: usize = 16;
    let pool = Pool::builder().buf_size(THREADS * CHUNK).thread_cache(thread_cache).build();
    let most_bufs = 1 + (THREADS * thread_cache) as u64;
    let start = Arc::new(Barrier::new(THREADS));
    let done = Arc::new(Barrier::new(THREADS + 1));
    let mut txs = Vec::new();
    let mut handles = Vec::new();
    for tid in 0..THREADS {
        let (tx, rx) = mpsc::channel::<(u64, Slice)>();
        txs.push(tx);
        let (start, done) = (Arc::clone(&start), Arc::clone(&done));
        handles.push(thread::spawn(move || {
            for (round, mut s) in rx {
                assert!(s.iter().all(|&b| b == 0), "a fresh slice is zeroed, not shared");
                s.fill(pattern(tid, round, 0));
                start.wait();
                // Everyone writes and drops at once; nobody else may touch our bytes.
                assert!(s.iter().all(|&b| b == pattern(tid, round, 0)), "round {round}: bytes changed");
                drop(s);
                done.wait();
            }
        }));
    }
    let mut base = None;
    for round in 0..rounds {
        let mut alloc = pool.allocator(0);
        let slices: Vec<Slice> = (0..THREADS).map(|_| alloc.alloc(CHUNK)).collect();
        drop(alloc);
        for w in slices.windows(2) {
            assert_eq!(w[1].as_ptr() as usize, w[0].as_ptr() as usize + CHUNK, "one buf, consecutive");
        }
        let ptr = slices[0].as_ptr() as usize;
        if thread_cache == 0 {
            assert_eq!(*base.get_or_insert(ptr), ptr, "round {round}: the one idle buf is reused");
        }
        assert_eq!(pool.stats().bufs_in_use, 1);
        for (tx, s) in txs.iter().zip(slices) {
            tx.send((round, s)).unwrap();
        }
        done.wait();
        let stats = pool.stats();
        assert_eq!(stats.bufs_in_use, 0, "round {round}: {stats:?}");
        assert_eq!(stats.bytes_in_use, 0, "round {round}: {stats:?}");
        assert!(stats.bufs_created <= most_bufs, "round {round}: {stats:?}");
        assert_eq!(
            stats.bufs_idle as u64, stats.bufs_created,
            "round {round}: recycled exactly once: {stats:?}"
        );
    }
    drop(txs);
    for h in handles {
        h.join().unwrap();
    }
    // Two allocators at once get two different bufs: the recycled one was
    // on the free list once, not twice.
    let created = pool.stats().bufs_created;
    let (mut a, mut b) = (pool.allocator(0), pool.allocator(0));
    let (x, y) = (a.alloc(THREADS * CHUNK), b.alloc(THREADS * CHUNK));
    assert_ne!(x.as_ptr(), y.as_ptr());
    assert_eq!(pool.stats().bufs_created, created.max(2));
    assert_eq!(pool.stats().bufs_idle as u64, created.saturating_sub(2));
}

/// `close()` racing with threads releasing and allocating leaves nothing in use and nothing idle.
#[test]
fn close_races_with_releases() {
    let rounds = if cfg!(miri) { 3 } else { 100 };
    let per_thread = if cfg!(miri) { 3 } else { 8 };
    for round in 0..rounds {
        let pool = Pool::builder().buf_size(64).build();
        // Slices over many bufs, plus a few idle bufs.
        let mut alloc = pool.allocator(0);
        let mut slices: Vec<Slice> = (0..THREADS * per_thread).map(|i| alloc.alloc(20 + i % 40)).collect();
        drop(alloc);
        let mut spare = pool.allocator(0);
        for _ in 0..3 {
            drop(spare.alloc(60));
        }
        drop(spare);
        assert!(pool.stats().bufs_idle > 0);
        let barrier = Barrier::new(THREADS + 1);
        thread::scope(|scope| {
            for tid in 0..THREADS {
                let mine: Vec<Slice> = slices.drain(..per_thread).collect();
                let (pool, barrier) = (&pool, &barrier);
                scope.spawn(move || {
                    let mut alloc = pool.allocator(tid % 3);
                    barrier.wait();
                    let mut mine = mine;
                    while let Some(s) = mine.pop() {
                        drop(s);
                    }
                    // Allocate until the close is seen; whatever succeeds is dropped.
                    let mut n = 0usize;
                    loop {
                        match alloc.try_alloc(1 + n % 50) {
                            Ok(s) => drop(s),
                            Err(AllocError::Closed) => break,
                            Err(e) => panic!("round {round}: unexpected {e}"),
                        }
                        n += 1;
                    }
                });
            }
            barrier.wait();
            pool.close();
        });
        assert!(pool.is_closed());
        let stats = pool.stats();
        assert_eq!(stats.bufs_in_use, 0, "round {round}: {stats:?}");
        assert_eq!(stats.bufs_idle, 0, "round {round}: {stats:?}");
        assert_eq!(stats.bytes_in_use, 0, "round {round}: {stats:?}");
        assert_eq!(stats.bytes_idle, 0, "round {round}: {stats:?}");
        assert_eq!(pool.allocator(0).try_alloc(1).unwrap_err(), AllocError::Closed);
    }
}

/// Hostile lengths (near `isize::MAX`) on several threads at once: allocations of that size are refused with
/// `OutOfMemory` by the system (or `TooLarge`, where two reservations in flight would overflow the pool's byte
/// count), reads of frames that long with `InvalidData` by the reader's frame limit; nothing overflows, and
/// the stats stay exact.
#[test]
#[cfg_attr(miri, ignore = "Miri aborts on a 2^63-byte allocation instead of returning null")]
fn concurrent_hostile_reads_keep_stats_exact() {
    let pool = Pool::builder().buf_size(4096).build();
    let mut alloc = pool.allocator(0);
    // 8 KiB in use, and each hostile allocation reserves 2^63 - 4096 bytes:
    // two reservations in flight at once reach 2^64.
    let held = alloc.alloc(8192);
    let hostile = (isize::MAX as usize) - 4095;
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                let mut alloc = pool.allocator(0);
                let mut reader = pool.reader(std::io::repeat(0));
                for _ in 0..5000 {
                    let err = alloc.try_alloc(hostile).unwrap_err();
                    assert!(matches!(err, AllocError::OutOfMemory | AllocError::TooLarge), "{err:?}");
                    let err = reader.read(hostile).unwrap_err();
                    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("no thread panics");
    }
    let stats = pool.stats();
    assert_eq!((stats.bufs_in_use, stats.bytes_in_use, stats.bufs_created), (1, 8192, 1), "{stats:?}");
    drop((held, alloc));
}
