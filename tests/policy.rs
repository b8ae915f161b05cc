//! The pool's memory policy: the budget (`max_bytes`) and waiting for it,
//! size classes (each with its own free list) and the trimming of idle bufs
//! (`trim`, `max_idle_bytes`, `idle_timeout`).

use std::io::{self, Read, Write};
use std::thread;
use std::time::{Duration, Instant};

use refbuf::{AllocError, Pool, PoolStats, Slice};

/// `(bufs_created, bufs_in_use, bufs_idle, bytes_in_use, bytes_idle)`.
fn counts(pool: &Pool) -> (u64, usize, usize, usize, usize) {
    let s = pool.stats();
    (s.bufs_created, s.bufs_in_use, s.bufs_idle, s.bytes_in_use, s.bytes_idle)
}

/// Long enough that a test waiting this long has certainly hung.
const HOUR: Duration = Duration::from_secs(3600);

/// Polls the pool's stats until `ready` holds.
fn wait_for(pool: &Pool, ready: impl Fn(&PoolStats) -> bool) {
    while !ready(&pool.stats()) {
        thread::sleep(Duration::from_millis(1));
    }
}

/// A slice holding one fresh buf of `len` bytes, from an allocator that is
/// dropped at once so the slice alone holds the buf.
fn hold(pool: &Pool, len: usize) -> Slice {
    pool.allocator(0).alloc(len)
}

// ---------------------------------------------------------------------------
// 1. Budget
// ---------------------------------------------------------------------------

/// With the budget used up, try_alloc fails at once with Exhausted, counts it, and takes nothing; after a release it succeeds.
#[test]
fn try_alloc_is_exhausted_at_the_budget() {
    let pool = Pool::builder().buf_size(64).max_bytes(128).build();
    let a = hold(&pool, 1);
    let b = hold(&pool, 1);
    let mut alloc = pool.allocator(0);
    assert_eq!(alloc.try_alloc(1).unwrap_err(), AllocError::Exhausted);
    assert_eq!(alloc.try_alloc_for_overwrite(1).unwrap_err(), AllocError::Exhausted);
    assert_eq!(alloc.try_copy_from_slice(b"x").unwrap_err(), AllocError::Exhausted);
    let stats = pool.stats();
    assert_eq!((stats.exhausted, stats.waits), (3, 0));
    assert_eq!(counts(&pool), (2, 2, 0, 128, 0));
    drop(a);
    let c = alloc.try_alloc(1).expect("the released buf is reused");
    assert_eq!(counts(&pool), (2, 2, 0, 128, 0));
    drop((b, c));
}

/// A request larger than the whole budget fails with TooLarge at once, from every entry point, without waiting or counting as exhausted.
#[test]
fn request_above_the_budget_is_too_large() {
    let pool = Pool::builder().buf_size(64).max_bytes(100).build();
    let mut alloc = pool.allocator(0);
    assert_eq!(alloc.try_alloc(65).unwrap_err(), AllocError::TooLarge);
    assert_eq!(alloc.alloc_timeout(65, HOUR).unwrap_err(), AllocError::TooLarge);
    let mut reader = pool.reader(&[0u8; 100][..]);
    assert_eq!(reader.read(65).unwrap_err().kind(), io::ErrorKind::InvalidInput);
    let stats = pool.stats();
    assert_eq!((stats.waits, stats.exhausted, stats.bufs_created), (0, 0, 0));
    assert!(alloc.try_alloc(64).is_ok(), "a request within the budget still works");
}

/// alloc_timeout gives up with Exhausted after at least the given time, counting one wait and one exhaustion.
#[test]
fn alloc_timeout_waits_then_is_exhausted() {
    let pool = Pool::builder().buf_size(64).max_bytes(64).build();
    let held = hold(&pool, 1);
    let mut alloc = pool.allocator(0);
    let wait = Duration::from_millis(30);
    let start = Instant::now();
    assert_eq!(alloc.alloc_timeout(1, wait).unwrap_err(), AllocError::Exhausted);
    assert!(start.elapsed() >= wait, "returned after {:?}, before the timeout", start.elapsed());
    let stats = pool.stats();
    assert_eq!((stats.waits, stats.exhausted), (1, 1));
    drop(held);
    assert!(alloc.alloc_timeout(1, wait).is_ok(), "succeeds at once once memory is free");
    assert_eq!(pool.stats().waits, 1, "no wait when the budget has room");
}

/// A blocked alloc wakes when another thread releases memory, and takes the released buf; the wait is counted once.
#[test]
fn alloc_blocks_until_another_thread_releases() {
    let pool = Pool::builder().buf_size(64).max_bytes(64).build();
    let held = hold(&pool, 1);
    let at = held.as_ptr();
    let waiter = {
        let pool = pool.clone();
        thread::spawn(move || pool.allocator(0).alloc(8).as_ptr() as usize)
    };
    wait_for(&pool, |s| s.waits == 1);
    drop(held);
    assert_eq!(waiter.join().unwrap(), at as usize, "the waiter got the released buf");
    let stats = pool.stats();
    assert_eq!((stats.waits, stats.exhausted, stats.bufs_created), (1, 0, 1));
}

/// close() wakes every waiter with Closed: allocators waiting with and without a timeout, and a reader (whose io::Error wraps Closed).
#[test]
fn close_wakes_every_waiter_with_closed() {
    let pool = Pool::builder().buf_size(64).max_bytes(64).build();
    let held = hold(&pool, 1);
    let timed = {
        let pool = pool.clone();
        thread::spawn(move || pool.allocator(0).alloc_timeout(1, HOUR))
    };
    let blocking = {
        let pool = pool.clone();
        thread::spawn(move || std::panic::catch_unwind(move || drop(pool.allocator(0).alloc(1))).is_err())
    };
    let reader = {
        let pool = pool.clone();
        thread::spawn(move || pool.reader(&[7u8; 8][..]).read(8).unwrap_err())
    };
    wait_for(&pool, |s| s.waits == 3);
    pool.close();
    assert_eq!(timed.join().unwrap().unwrap_err(), AllocError::Closed);
    assert!(blocking.join().unwrap(), "a blocking alloc panics with Closed, as on any closed pool");
    let err = reader.join().unwrap();
    assert_eq!(err.kind(), io::ErrorKind::Other);
    assert_eq!(err.get_ref().and_then(|e| e.downcast_ref::<AllocError>()), Some(&AllocError::Closed));
    assert_eq!(held.len(), 1, "slices alive at close stay valid");
}

/// The Reader waits for the budget like alloc, and reads its frame once memory is released.
#[test]
fn reader_waits_for_the_budget() {
    let pool = Pool::builder().buf_size(64).max_bytes(64).build();
    let held = hold(&pool, 1);
    let reader = {
        let pool = pool.clone();
        thread::spawn(move || pool.reader(&b"frame"[..]).read(5).map(|s| s.to_vec()))
    };
    wait_for(&pool, |s| s.waits == 1);
    drop(held);
    assert_eq!(reader.join().unwrap().unwrap(), b"frame");
}

/// fill_with and a Writer's write wait for the budget like alloc, and finish once memory is released.
#[test]
fn fill_with_and_writer_wait_for_the_budget() {
    use std::io::Write;

    let pool = Pool::builder().buf_size(64).max_bytes(64).build();
    let held = hold(&pool, 1);
    let filler = {
        let pool = pool.clone();
        thread::spawn(move || {
            let mut alloc = pool.allocator(0);
            alloc.fill_with(5, |buf| (&b"fill!"[..]).read(buf)).map(|s| s.to_vec())
        })
    };
    wait_for(&pool, |s| s.waits == 1);
    drop(held);
    assert_eq!(filler.join().unwrap().unwrap(), b"fill!");

    let held = hold(&pool, 1);
    let writer = {
        let pool = pool.clone();
        thread::spawn(move || {
            let mut alloc = pool.allocator(0);
            let mut w = alloc.writer();
            w.write_all(b"written").map(|()| w.finish().len())
        })
    };
    wait_for(&pool, |s| s.waits == 2);
    drop(held);
    assert_eq!(writer.join().unwrap().unwrap(), 7);
    assert_eq!(pool.stats().exhausted, 0, "nothing was refused, only delayed");
}

/// try_fill_with under a used-up budget fails at once with OutOfMemory wrapping Exhausted, counted, without calling the closure or waiting; once memory is released it receives into it.
#[test]
fn try_fill_with_refuses_at_once_under_the_budget() {
    let pool = Pool::builder().buf_size(64).max_bytes(64).build();
    let held = hold(&pool, 1);
    let mut alloc = pool.allocator(4);
    let err = alloc.try_fill_with(5, |_| unreachable!("no memory, so nothing is received")).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::OutOfMemory);
    assert_eq!(err.get_ref().and_then(|e| e.downcast_ref::<AllocError>()), Some(&AllocError::Exhausted));
    let stats = pool.stats();
    assert_eq!((stats.waits, stats.exhausted, stats.bufs_created), (0, 1, 1), "{stats:?}");
    drop(held);
    let s = alloc.try_fill_with(5, |buf| (&b"fill!"[..]).read(buf)).expect("memory was released");
    assert_eq!(&s[..], b"fill!");
    assert_eq!(s.headroom(), 4);
    assert_eq!(pool.stats().bufs_created, 1, "the released buf was reused");
    let err = alloc.try_fill_with(usize::MAX, |_| unreachable!("reserve + max overflows")).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    pool.close();
    let err = alloc.try_fill_with(1, |_| unreachable!("the pool is closed")).unwrap_err();
    assert_eq!(err.get_ref().and_then(|e| e.downcast_ref::<AllocError>()), Some(&AllocError::Closed));
}

/// A reader alone under a budget with room for one larger buf lets its current buf go before taking the larger one, rather than waiting on itself.
#[test]
fn reader_alone_under_a_tight_budget_does_not_wait_on_itself() {
    let pool = Pool::builder().buf_size(64).max_bytes(128).build();
    let src: Vec<u8> = (0..164u8).collect();
    let mut reader = pool.reader(&src[..]);
    assert_eq!(&reader.read(64).unwrap()[..], &src[..64]);
    assert_eq!(&reader.read(100).unwrap()[..], &src[64..]);
    assert_eq!(pool.stats().waits, 0);
}

/// Idle bufs of other classes are freed (oldest first) to make room under the budget, and counted as trimmed.
#[test]
fn idle_bufs_of_other_classes_make_room() {
    let pool = Pool::builder().buf_size(64).max_bytes(256).build();
    drop((hold(&pool, 128), hold(&pool, 128)));
    assert_eq!(counts(&pool), (2, 0, 2, 0, 256));
    let small = hold(&pool, 1);
    assert_eq!(counts(&pool), (3, 1, 1, 64, 128), "one idle 128-byte buf was freed for the 64-byte one");
    assert_eq!(pool.stats().bufs_trimmed, 1);
    let big = hold(&pool, 100);
    assert_eq!(counts(&pool), (3, 2, 0, 192, 0), "the remaining idle buf is reused");
    drop((small, big));
}

/// An unpooled buf (above the largest class) counts against the budget while alive and is freed on its last drop.
#[test]
fn unpooled_bufs_count_against_the_budget() {
    let pool = Pool::builder().buf_size(64).max_pooled_size(128).max_bytes(400).build();
    let huge = hold(&pool, 300);
    assert_eq!(counts(&pool), (1, 1, 0, 320, 0), "an unpooled multiple of buf_size");
    let mut alloc = pool.allocator(0);
    assert_eq!(alloc.try_alloc(100).unwrap_err(), AllocError::Exhausted, "320 + 128 > 400");
    drop(huge);
    assert_eq!(counts(&pool), (1, 0, 0, 0, 0), "freed, not kept");
    assert!(alloc.try_alloc(100).is_ok());
}

/// high_water_bytes records the most bytes held at once, in use and idle.
#[test]
fn high_water_bytes_tracks_the_peak() {
    let pool = Pool::builder().buf_size(64).build();
    let slices: Vec<Slice> = (0..4).map(|_| hold(&pool, 64)).collect();
    drop(slices);
    assert_eq!(pool.stats().high_water_bytes, 256);
    pool.trim();
    let again = hold(&pool, 64);
    assert_eq!(pool.stats().high_water_bytes, 256, "the peak stays");
    drop(again);
}

/// Many threads allocating and dropping under a budget never push the pool over it, and the counters balance at the end.
#[test]
fn threads_under_a_budget_stay_within_it() {
    const BUDGET: usize = 4 * 1024;
    let rounds = if cfg!(miri) { 20 } else { 2000 };
    let pool = Pool::builder().buf_size(256).max_bytes(BUDGET).build();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let pool = pool.clone();
            thread::spawn(move || {
                let mut alloc = pool.allocator(8);
                let mut kept = Vec::new();
                for i in 0..rounds {
                    let len = 1 + (i * 37 + t * 101) % 700;
                    match alloc.alloc_timeout(len, Duration::from_millis(1)) {
                        Ok(s) => kept.push(s),
                        Err(e) => assert_eq!(e, AllocError::Exhausted),
                    }
                    if kept.len() > 3 {
                        kept.remove(0);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let stats = pool.stats();
    assert!(stats.high_water_bytes <= BUDGET, "{stats:?}");
    assert_eq!((stats.bufs_in_use, stats.bytes_in_use), (0, 0));
    assert!(stats.bytes_idle <= BUDGET);
}

// ---------------------------------------------------------------------------
// 2. Size classes
// ---------------------------------------------------------------------------

/// max_pooled_size rounds up to a class: with 3 x buf_size, classes 64, 128 and 256 are pooled and a 257-byte request gets an unpooled 320-byte buf.
#[test]
fn max_pooled_size_rounds_up_to_a_class() {
    let pool = Pool::builder().buf_size(64).max_pooled_size(3 * 64).build();
    drop(hold(&pool, 129));
    assert_eq!(counts(&pool), (1, 0, 1, 0, 256), "256 is the largest class, and pooled");
    drop(hold(&pool, 257));
    assert_eq!(counts(&pool), (2, 0, 1, 0, 256), "320 is unpooled and freed");
    let only_standard = Pool::builder().buf_size(64).max_pooled_size(0).build();
    drop((hold(&only_standard, 64), hold(&only_standard, 65)));
    assert_eq!(counts(&only_standard), (2, 0, 1, 0, 64), "the standard size is always pooled");
}

/// Each class has its own free list: bufs of 64, 128 and 256 bytes released together are each reused by a request of their own class.
#[test]
fn each_class_has_its_own_free_list() {
    let pool = Pool::builder().buf_size(64).build();
    let bufs: Vec<Slice> = [64, 128, 256].iter().map(|&n| hold(&pool, n)).collect();
    let addrs: Vec<*const u8> = bufs.iter().map(|s| s.as_ptr()).collect();
    drop(bufs);
    for (&n, &at) in [200usize, 1, 65].iter().zip([addrs[2], addrs[0], addrs[1]].iter()) {
        let s = hold(&pool, n);
        assert_eq!(s.as_ptr(), at, "request of {n} bytes");
    }
    assert_eq!(pool.stats().bufs_created, 3);
}

// ---------------------------------------------------------------------------
// 3. Trimming
// ---------------------------------------------------------------------------

/// trim() frees every idle buf of every class, returns their bytes, counts them, and leaves bufs in use alone.
#[test]
fn trim_frees_every_idle_buf() {
    let pool = Pool::builder().buf_size(64).build();
    let in_use = hold(&pool, 1);
    drop((hold(&pool, 1), hold(&pool, 100), hold(&pool, 1000)));
    assert_eq!(counts(&pool), (4, 1, 3, 64, 64 + 128 + 1024));
    assert_eq!(pool.trim(), 64 + 128 + 1024);
    assert_eq!(counts(&pool), (4, 1, 0, 64, 0));
    assert_eq!(pool.stats().bufs_trimmed, 3);
    assert_eq!(pool.trim(), 0, "nothing left to trim");
    drop(in_use);
    assert_eq!(counts(&pool), (4, 0, 1, 0, 64));
}

/// With max_idle_bytes, a release that would keep more idle bytes than the cap frees the buf at once.
#[test]
fn max_idle_bytes_caps_idle_memory() {
    let pool = Pool::builder().buf_size(64).max_idle_bytes(128).build();
    let slices: Vec<Slice> = (0..4).map(|_| hold(&pool, 1)).collect();
    drop(slices);
    assert_eq!(counts(&pool), (4, 0, 2, 0, 128));
    assert_eq!(pool.stats().bufs_trimmed, 2);
}

/// With idle_timeout, bufs idle longer than the timeout are freed by a later take or release, with no background thread.
#[test]
fn idle_timeout_frees_bufs_during_later_operations() {
    // Long enough that the two releases below are well within it even
    // under Miri or valgrind.
    let timeout = Duration::from_millis(200);
    let pool = Pool::builder().buf_size(64).idle_timeout(timeout).build();
    drop((hold(&pool, 1), hold(&pool, 100)));
    assert_eq!(counts(&pool), (2, 0, 2, 0, 192));
    thread::sleep(timeout * 3);
    assert_eq!(counts(&pool), (2, 0, 2, 0, 192), "nothing happens until the pool is used");
    let fresh = hold(&pool, 600);
    assert_eq!(counts(&pool), (3, 1, 0, 1024, 0), "the take freed both expired bufs");
    assert_eq!(pool.stats().bufs_trimmed, 2);
    drop(fresh);
    assert_eq!(counts(&pool), (3, 0, 1, 0, 1024), "a buf just released is not expired");
}

/// Resident memory falls after a burst of large bufs is trimmed (Linux: /proc/self/statm).
#[cfg(target_os = "linux")]
#[test]
#[cfg_attr(miri, ignore = "Miri cannot read /proc")]
#[cfg_attr(
    refbuf_sanitizer,
    ignore = "measures the system allocator, which a sanitizer replaces with its own (ASan keeps freed memory in a quarantine)"
)]
fn rss_falls_after_trim() {
    /// Resident bytes of this process.
    fn rss() -> usize {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
        pages * 4096
    }
    const BUF: usize = 256 * 1024;
    const BUFS: usize = 64;
    let pool = Pool::builder().buf_size(BUF).build();
    let burst: Vec<Slice> = (0..BUFS).map(|_| hold(&pool, BUF)).collect();
    drop(burst);
    assert_eq!(pool.stats().bytes_idle, BUF * BUFS);
    let before = rss();
    assert_eq!(pool.trim(), BUF * BUFS);
    let after = rss();
    assert!(
        before.saturating_sub(after) >= BUF * BUFS / 2,
        "RSS went from {before} to {after} bytes after trimming {} bytes",
        BUF * BUFS
    );
}

/// A budget smaller than one buf refuses every request at once with TooLarge, through every entry point (the
/// blocking ones included: none waits for memory that can never fit), and leaves the pool usable and empty.
#[test]
fn budget_smaller_than_a_buf_refuses_everything_at_once() {
    use std::io::Write;

    let pool = Pool::builder().buf_size(4096).max_bytes(1000).build();
    let mut alloc = pool.allocator(0);
    assert_eq!(alloc.try_alloc(1).unwrap_err(), AllocError::TooLarge);
    assert_eq!(alloc.try_alloc_for_overwrite(1).unwrap_err(), AllocError::TooLarge);
    assert_eq!(alloc.try_copy_from_slice(b"x").unwrap_err(), AllocError::TooLarge);
    assert_eq!(alloc.alloc_timeout(1, HOUR).unwrap_err(), AllocError::TooLarge);
    let blocking = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| alloc.alloc(1)));
    assert!(blocking.is_err(), "alloc panics with TooLarge rather than waiting forever");
    let err = alloc.fill_with(1, |_| Ok(1)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    let err = alloc.writer().write(b"x").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    let err = pool.reader(&b"frame"[..]).read(1).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    let stats = pool.stats();
    assert_eq!(
        (stats.bufs_created, stats.bufs_in_use, stats.waits, stats.exhausted),
        (0, 0, 0, 0),
        "{stats:?}"
    );
    assert!(!pool.is_closed());
}

/// Runs `f` on a thread of its own and fails the test if it has not returned within `limit`: a wait that
/// only its own thread could end would otherwise hang the suite rather than fail it.
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, finished) = std::sync::mpsc::channel();
    let worker = thread::spawn(move || done.send(f()).expect("the test waits for the result"));
    let out =
        finished.recv_timeout(limit).expect("the call returned in time, without waiting on its own memory");
    worker.join().expect("no panic");
    out
}

/// A reader that needs a larger buf for a frame, and whose own buf leaves no room for it within the whole
/// budget, sets its small buffered tail aside, lets its buf go and takes the larger one, instead of waiting
/// forever for memory it holds itself; every byte arrives in order.
#[test]
fn reader_never_waits_on_its_own_buf() {
    within(Duration::from_secs(20), || {
        let pool = Pool::builder().buf_size(64).max_bytes(128).build();
        let data: Vec<u8> = (0..300u32).map(|k| (k * 7) as u8).collect();
        let mut reader = pool.reader(io::Cursor::new(data.clone()));
        drop(reader.read(10).expect("the first frame"));
        assert_eq!(reader.buffered(), 54);
        let frame = reader.read(100).expect("a frame twice the buf, within the budget");
        assert_eq!(&frame[..], &data[10..110]);
        let stats = pool.stats();
        assert!(stats.high_water_bytes <= 128, "{stats:?}");
        assert_eq!(stats.exhausted, 0, "the tail was small enough to set aside: {stats:?}");
        drop(frame);
        for range in [110..210, 210..300] {
            let frame = reader.read(range.len()).expect("the rest");
            assert_eq!(&frame[..], &data[range]);
        }
    });
}

/// Where the reader's buffered tail is too long to set aside, the read fails at once with OutOfMemory
/// wrapping Exhausted (counted), every byte stays buffered, and the frame is read once memory allows: here,
/// once the slice pinning the first buf is gone, so the bytes move to the front of that buf.
#[test]
fn reader_with_a_long_tail_fails_at_once_and_loses_nothing() {
    within(Duration::from_secs(20), || {
        const BS: usize = 8192;
        let pool = Pool::builder().buf_size(BS).max_bytes(2 * BS).build();
        let data: Vec<u8> = (0..2 * BS as u32).map(|k| (k * 13 + k / 256) as u8).collect();
        let mut reader = pool.reader(io::Cursor::new(data.clone()));
        let head = reader.read(BS / 2 - 1000).expect("the first frame");
        let buffered = reader.buffered();
        assert!(buffered > refbuf::STASHED_TAIL_MAX);
        // Needs 2 × BS + 2000 bytes of buf: with the current buf that is over the whole budget.
        let want = BS + 1000;
        let e = reader.read(want).expect_err("the wait could only end by the reader's own release");
        assert_eq!(e.kind(), io::ErrorKind::OutOfMemory);
        assert_eq!(e.get_ref().and_then(|e| e.downcast_ref::<AllocError>()), Some(&AllocError::Exhausted));
        assert_eq!(reader.buffered(), buffered, "nothing lost");
        assert_eq!(pool.stats().exhausted, 1);
        drop(head);
        let frame = reader.read(BS - (BS / 2 - 1000)).expect("the rest of the first buf, moved to its front");
        assert_eq!(&frame[..], &data[BS / 2 - 1000..BS]);
        let frame = reader.read(BS).expect("the next buf's worth");
        assert_eq!(&frame[..], &data[BS..]);
    });
}

/// A writer whose own parts hold the whole budget fails a write that needs another buf at once, with
/// OutOfMemory wrapping Exhausted, keeping none of its bytes and the room it had; try_write never waits; both
/// go on once memory is released.
#[test]
fn writer_never_waits_on_its_own_parts() {
    within(Duration::from_secs(20), || {
        let pool = Pool::builder().buf_size(64).max_bytes(64).build();
        let mut alloc = pool.allocator(0);
        let mut w = alloc.writer();
        let e =
            w.write_all(&[7; 80]).expect_err("80 bytes need a second buf, which only the writer could free");
        assert_eq!(e.kind(), io::ErrorKind::OutOfMemory);
        assert_eq!(e.get_ref().and_then(|e| e.downcast_ref::<AllocError>()), Some(&AllocError::Exhausted));
        assert!(w.is_empty(), "a failed write keeps nothing");
        w.write_all(&[1; 64]).expect("the whole first buf is still the writer's");
        let e = w.try_write(&[2; 1]).expect_err("a full buf and no budget left");
        assert_eq!(e.kind(), io::ErrorKind::OutOfMemory);
        assert_eq!(w.len(), 64);
        let chain = w.finish();
        assert_eq!(pool.stats().exhausted, 2);
        drop(chain);
        let mut w = alloc.writer();
        w.try_write(&[3; 64]).expect("memory released");
        assert_eq!(w.finish().len(), 64);
    });
}

/// Under a budget other holders can free, a writer still waits for them rather than failing.
#[test]
fn writer_waits_for_memory_others_hold() {
    within(Duration::from_secs(20), || {
        let pool = Pool::builder().buf_size(64).max_bytes(128).build();
        let other = hold(&pool, 64);
        let releaser = thread::spawn(move || {
            thread::sleep(Duration::from_millis(50));
            drop(other);
        });
        let mut alloc = pool.allocator(0);
        let mut w = alloc.writer();
        w.write_all(&[9; 100]).expect("waits for the other holder's release");
        assert_eq!(w.finish().len(), 100);
        releaser.join().expect("no panic");
        assert_eq!(pool.stats().waits, 1);
    });
}
