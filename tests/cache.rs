//! Per-thread caches: a thread takes back what it released without the
//! pool's lock, and the caches stay within every memory policy: the stats,
//! `trim`, the idle timeout, the idle cap, the budget, `close`, a thread's
//! exit, and the pool's own end.
//!
//! A counting global allocator shows that a pool whose handles and slices
//! are all gone frees everything, cached bufs included, while a thread that
//! used it lives on. It counts only the test's own threads (see
//! `tests/common/counting.rs`), so the test harness's allocations do not
//! interfere; the tests here also run one at a time (`ONE_AT_A_TIME`), as
//! some start many threads.

use std::sync::{Arc, Barrier, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

use refbuf::{AllocError, DEFAULT_THREAD_CACHE_BUFS, Pool, PoolStats, Slice};

#[path = "common/counting.rs"]
mod counting;

#[global_allocator]
static GLOBAL: counting::Counting = counting::Counting;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A pool of 64-byte bufs.
fn small_pool() -> Pool {
    Pool::builder().buf_size(64).build()
}

/// A slice filling a whole 64-byte buf, so that dropping it releases the buf.
fn whole_buf(pool: &Pool) -> Slice {
    pool.allocator(0).alloc(64)
}

/// (bufs_created, bufs_in_use, bufs_idle, bufs_cached).
fn counts(pool: &Pool) -> (u64, usize, usize, usize) {
    let PoolStats { bufs_created, bufs_in_use, bufs_idle, bufs_cached, .. } = pool.stats();
    (bufs_created, bufs_in_use, bufs_idle, bufs_cached)
}

/// Runs `f` on a new thread, which exits (flushing its cache) before this
/// returns.
fn on_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    thread::spawn(f).join().expect("the thread panicked")
}

/// A buf released on a thread is cached there, counted as idle and cached,
/// and the same thread takes it back without making another.
#[test]
fn a_thread_takes_back_the_buf_it_released() {
    let _one = one_at_a_time();
    let pool = small_pool();
    on_thread(move || {
        drop(whole_buf(&pool));
        assert_eq!(counts(&pool), (1, 0, 1, 1));
        assert_eq!(pool.stats().bytes_idle, 64);
        let again = whole_buf(&pool);
        assert_eq!(counts(&pool), (1, 1, 0, 0), "reused from the cache");
        assert_eq!(pool.stats().bytes_in_use, 64);
        drop(again);
    });
}

/// A take looks in the thread's cache before the shared list, and a full
/// cache makes room by moving its older half there: with two bufs released
/// more than the cache holds, the cache keeps the newest, and the next take
/// gets the buf released last. Once the cache is empty, a take gets the
/// newest buf of the shared list and the cache fills up from the rest,
/// which the next takes get without another buf made. The fuzzed model test
/// found its own prediction of this order out of date when the caches came
/// in.
#[test]
fn a_full_cache_spills_and_an_empty_one_fills() {
    let _one = one_at_a_time();
    const CACHED: usize = DEFAULT_THREAD_CACHE_BUFS;
    let pool = small_pool();
    on_thread(move || {
        let held: Vec<Slice> = (0..CACHED + 2).map(|_| whole_buf(&pool)).collect();
        let addrs: Vec<usize> = held.iter().map(|s| s.as_ptr() as usize).collect();
        drop(held);
        assert_eq!(counts(&pool), (CACHED as u64 + 2, 0, CACHED + 2, CACHED));
        let from_cache: Vec<Slice> = (0..CACHED).map(|_| whole_buf(&pool)).collect();
        let taken: Vec<usize> = from_cache.iter().map(|s| s.as_ptr() as usize).collect();
        let newest_first: Vec<usize> = addrs[2..].iter().rev().copied().collect();
        assert_eq!(taken, newest_first, "the cache kept the newest, and gives them back newest first");
        assert_eq!(counts(&pool), (CACHED as u64 + 2, CACHED, 2, 0));
        // The older half, spilled when the cache was first full.
        let shared = whole_buf(&pool);
        assert_eq!(shared.as_ptr() as usize, addrs[1], "the newest in the shared list");
        assert_eq!(counts(&pool), (CACHED as u64 + 2, CACHED + 1, 1, 1), "the rest moved to the cache");
        let last = whole_buf(&pool);
        assert_eq!(last.as_ptr() as usize, addrs[0]);
        assert_eq!(counts(&pool), (CACHED as u64 + 2, CACHED + 2, 0, 0), "no buf made");
    });
}

/// A thread whose slices another thread drops never gets a buf back in its
/// own cache: the other thread's full cache spills them to the shared list,
/// and a take that finds the cache empty moves a cacheful over with the buf
/// it takes. Every buf is counted once throughout, and none is made anew.
#[test]
fn bufs_dropped_on_another_thread_come_back_a_cacheful_at_a_time() {
    let _one = one_at_a_time();
    const CACHED: usize = DEFAULT_THREAD_CACHE_BUFS;
    let pool = small_pool();
    let made = 3 * CACHED;
    let slices: Vec<Slice> = (0..made).map(|_| whole_buf(&pool)).collect();
    let dropper = pool.clone();
    let (step, parked) = {
        let step = Arc::new(Barrier::new(2));
        let thread_step = Arc::clone(&step);
        let parked = thread::spawn(move || {
            drop(slices);
            assert_eq!(counts(&dropper), (made as u64, 0, made, CACHED), "the rest spilled");
            drop(dropper);
            thread_step.wait();
            thread_step.wait();
        });
        step.wait();
        (step, parked)
    };
    on_thread(move || {
        let first = whole_buf(&pool);
        assert_eq!(counts(&pool), (made as u64, 1, made - 1, 2 * CACHED), "a cacheful moved over");
        let rest: Vec<Slice> = (0..CACHED).map(|_| whole_buf(&pool)).collect();
        assert_eq!(
            counts(&pool),
            (made as u64, CACHED + 1, made - CACHED - 1, CACHED),
            "taken from the cache"
        );
        drop((first, rest));
    });
    step.wait();
    parked.join().unwrap();
}

/// An allocator that moves on from a buf its slices still use turns over
/// through the thread's cache: the buf it let go, once its slices are gone,
/// is the next one it cuts from, with no other buf made; and with the cache
/// empty it takes one from the pool as before.
#[test]
fn an_allocator_turns_over_through_the_cache() {
    let _one = one_at_a_time();
    let pool = small_pool();
    on_thread(move || {
        let mut alloc = pool.allocator(0);
        let first = alloc.alloc(40);
        let first_at = first.as_ptr() as usize;
        let mut second = alloc.alloc(40);
        assert_eq!(counts(&pool), (2, 2, 0, 0), "the cache empty: a fresh buf");
        drop(first);
        assert_eq!(counts(&pool), (2, 1, 1, 1), "the first buf cached once its slice is gone");
        second.copy_from_slice(&[2; 40]);
        let third = alloc.copy_from_slice(&[3; 40]);
        assert_eq!(third.as_ptr() as usize, first_at, "cut from the cached buf");
        assert_eq!(counts(&pool), (2, 2, 0, 0));
        assert_eq!((&second[..], &third[..]), (&[2; 40][..], &[3; 40][..]));
        drop((second, third));
        let fourth = alloc.alloc(40);
        assert_eq!(fourth.as_ptr() as usize, first_at, "rewound: every slice of it is gone");
        assert_eq!(counts(&pool).0, 2, "no buf made after the first two");
    });
}

/// A cache keeps at most `thread_cache` bufs; the rest go to the shared
/// lists, and every one is still counted once.
#[test]
fn a_cache_is_bounded() {
    let _one = one_at_a_time();
    for (limit, bufs) in [(DEFAULT_THREAD_CACHE_BUFS, 10), (1, 3), (0, 3)] {
        let pool = Pool::builder().buf_size(64).thread_cache(limit).build();
        let pool2 = pool.clone();
        on_thread(move || {
            let held: Vec<Slice> = (0..bufs).map(|_| whole_buf(&pool2)).collect();
            drop(held);
            assert_eq!(counts(&pool2), (bufs as u64, 0, bufs, limit.min(bufs)), "limit {limit}");
        });
        assert_eq!(counts(&pool), (bufs as u64, 0, bufs, 0), "flushed at exit");
    }
}

/// When a thread exits, its cache goes to the pool's shared lists, where
/// any thread takes it.
#[test]
fn a_threads_exit_flushes_its_cache() {
    let _one = one_at_a_time();
    let pool = small_pool();
    let user = pool.clone();
    on_thread(move || drop(whole_buf(&user)));
    assert_eq!(counts(&pool), (1, 0, 1, 0));
    let reused = whole_buf(&pool);
    assert_eq!(counts(&pool), (1, 1, 0, 0), "the flushed buf is reused, not a fresh one");
    drop(reused);
}

/// A thread's exit flushes its cache in every open pool, and a pool closed
/// before that (unlinked from the middle of the open pools) is skipped.
#[test]
fn a_threads_exit_flushes_every_pool() {
    let _one = one_at_a_time();
    let pools: Vec<Pool> = (0..3).map(|_| small_pool()).collect();
    let (users, step) = (pools.clone(), Arc::new(Barrier::new(2)));
    let worker = {
        let step = Arc::clone(&step);
        thread::spawn(move || {
            for pool in &users {
                drop(whole_buf(pool));
                assert_eq!(counts(pool), (1, 0, 1, 1));
            }
            drop(users);
            step.wait();
            step.wait();
        })
    };
    step.wait();
    pools[1].close();
    step.wait();
    worker.join().unwrap();
    assert_eq!(counts(&pools[0]), (1, 0, 1, 0));
    assert_eq!(counts(&pools[1]), (1, 0, 0, 0), "closed: its cache was emptied and freed");
    assert_eq!(counts(&pools[2]), (1, 0, 1, 0));
}

/// Once every handle and slice of a pool is gone, all of its memory is
/// freed, cached bufs and the pool's state included, while the thread
/// whose cache held them is still alive.
#[test]
fn caches_never_outlive_their_pool() {
    let _one = one_at_a_time();
    let handoff: Arc<Mutex<Option<Pool>>> = Arc::new(Mutex::new(None));
    let step = Arc::new(Barrier::new(2));
    let worker = {
        let (handoff, step) = (Arc::clone(&handoff), Arc::clone(&step));
        thread::spawn(move || {
            // Claims this thread's cache slot (and whatever std allocates
            // for the thread's destructors) before the count starts.
            drop(whole_buf(&small_pool()));
            counting::count_this_thread(true);
            step.wait();
            step.wait();
            let pool = handoff.lock().unwrap().take().expect("a pool");
            let held: Vec<Slice> = (0..3).map(|_| whole_buf(&pool)).collect();
            drop(held);
            assert_eq!(counts(&pool).3, 3, "this thread's cache holds the bufs");
            drop(pool);
            step.wait();
            counting::count_this_thread(false);
            // Alive, with its cache slot, until the main thread has counted.
            step.wait();
        })
    };
    step.wait();
    // The pool is made on this thread and freed on the other: both count.
    counting::count_this_thread(true);
    let before = counting::live();
    *handoff.lock().unwrap() = Some(small_pool());
    step.wait();
    step.wait();
    let after = counting::live();
    counting::count_this_thread(false);
    assert_eq!(after, before, "heap bytes left once the pool is gone");
    step.wait();
    worker.join().unwrap();
}

/// A thread that used a pool's cache and exited leaves no heap byte behind
/// once the pool is gone, counted from the thread's first heap access to its
/// end: the claim on a cache slot, std's bookkeeping of thread-local
/// destructors and the flush at exit included.
#[test]
fn an_exited_thread_leaves_nothing_behind() {
    let _one = one_at_a_time();
    counting::count_this_thread(true);
    let before = counting::live();
    let pool = small_pool();
    let user = pool.clone();
    thread::spawn(move || {
        counting::count_from_birth();
        drop(whole_buf(&user));
        assert_eq!(counts(&user).3, 1, "this thread's cache holds the buf");
    })
    .join()
    .expect("the thread panicked");
    assert_eq!(counts(&pool), (1, 0, 1, 0), "the exit flushed the cache");
    drop(pool);
    let after = counting::live();
    counting::count_this_thread(false);
    assert_eq!(after, before, "heap bytes left once the thread and the pool are gone");
}

/// `trim` frees cached bufs, on any thread's cache, and counts them.
#[test]
fn trim_frees_cached_bufs() {
    let _one = one_at_a_time();
    let pool = small_pool();
    let (step, parked) = park_with_cache(&pool, 2);
    assert_eq!(counts(&pool), (2, 0, 2, 2));
    assert_eq!(pool.trim(), 128);
    assert_eq!(counts(&pool), (2, 0, 0, 0));
    assert_eq!(pool.stats().bufs_trimmed, 2);
    step.wait();
    parked.join().unwrap();
}

/// Starts a thread that releases `bufs` whole bufs into its cache and then
/// stays alive, cache unflushed, until the returned barrier is waited on.
fn park_with_cache(pool: &Pool, bufs: usize) -> (Arc<Barrier>, thread::JoinHandle<()>) {
    let step = Arc::new(Barrier::new(2));
    let parked = {
        let (pool, step) = (pool.clone(), Arc::clone(&step));
        thread::spawn(move || {
            let held: Vec<Slice> = (0..bufs).map(|_| whole_buf(&pool)).collect();
            drop(held);
            drop(pool);
            step.wait();
            step.wait();
        })
    };
    step.wait();
    (step, parked)
}

/// The idle timeout frees cached bufs during later pool operations on
/// other threads, as it does idle bufs in the shared lists.
#[test]
fn idle_timeout_frees_cached_bufs() {
    let _one = one_at_a_time();
    // Long enough that the release below, soon after the pool is built,
    // comes before the first cache sweep is due even under Miri or valgrind
    // (a release after that goes through the pool's lock, to sweep).
    let timeout = Duration::from_millis(200);
    let pool = Pool::builder().buf_size(64).idle_timeout(timeout).build();
    let (step, parked) = park_with_cache(&pool, 1);
    assert_eq!(counts(&pool), (1, 0, 1, 1));
    thread::sleep(timeout * 3);
    // A larger class goes through the pool's lock, where expiry runs.
    let other = pool.allocator(0).alloc(100);
    assert_eq!(counts(&pool), (2, 1, 0, 0), "the cached buf expired");
    assert_eq!(pool.stats().bufs_trimmed, 1);
    drop(other);
    step.wait();
    parked.join().unwrap();
}

/// A buf cached by another live thread counts against the budget, and a
/// request that needs it takes it out of that cache rather than failing:
/// `try_alloc` included.
#[test]
fn the_budget_reaches_other_threads_caches() {
    let _one = one_at_a_time();
    let pool = Pool::builder().buf_size(64).max_bytes(128).build();
    let (step, parked) = park_with_cache(&pool, 2);
    assert_eq!(counts(&pool), (2, 0, 2, 2));
    let mut alloc = pool.allocator(0);
    let a = alloc.try_alloc(64).expect("a cached buf");
    let b = alloc.try_alloc(64).expect("the other cached buf");
    assert_eq!(alloc.try_alloc(64).unwrap_err(), AllocError::Exhausted);
    let stats = pool.stats();
    assert_eq!((stats.bufs_created, stats.bufs_in_use, stats.bufs_cached), (2, 2, 0), "{stats:?}");
    assert!(stats.high_water_bytes <= 128, "{stats:?}");
    // A larger request frees the cached standard bufs to make room.
    drop((a, b));
    let large = alloc.try_alloc(128).expect("room made by freeing idle bufs");
    assert_eq!(pool.stats().bufs_trimmed, 2);
    drop(large);
    step.wait();
    parked.join().unwrap();
}

/// A request waiting for the budget is woken by a release on a thread with
/// a cache: the release sees the waiter and goes to the shared lists.
#[test]
fn a_release_on_a_caching_thread_wakes_a_waiter() {
    let _one = one_at_a_time();
    let pool = Pool::builder().buf_size(64).max_bytes(64).build();
    let held = whole_buf(&pool);
    let waiter = {
        let pool = pool.clone();
        // Long enough for any machine, short enough that a lost wakeup
        // fails rather than hangs.
        thread::spawn(move || pool.allocator(0).alloc_timeout(64, Duration::from_secs(60)).map(drop))
    };
    while pool.stats().waits == 0 {
        thread::yield_now();
    }
    // A thread with a cache slot, where the release could otherwise stay.
    on_thread(move || drop(held));
    assert_eq!(waiter.join().unwrap(), Ok(()));
    assert_eq!(pool.stats().bufs_created, 1);
}

/// With `max_idle_bytes`, caches and shared lists together keep at most the
/// cap, however many threads release; a cap too small to share out turns
/// the caches off.
#[test]
fn the_idle_cap_covers_caches() {
    let _one = one_at_a_time();
    let buf = 64;
    for cap in [buf * 4, 64 * buf * 2, 64 * buf * 8] {
        let pool = Pool::builder().buf_size(buf).max_idle_bytes(cap).build();
        let threads = 8;
        let step = Arc::new(Barrier::new(threads + 1));
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let (pool, step) = (pool.clone(), Arc::clone(&step));
                thread::spawn(move || {
                    let held: Vec<Slice> = (0..24).map(|_| whole_buf(&pool)).collect();
                    step.wait();
                    drop(held);
                    step.wait();
                    step.wait();
                })
            })
            .collect();
        step.wait();
        step.wait();
        let stats = pool.stats();
        assert!(stats.bytes_idle <= cap, "cap {cap}: {stats:?}");
        assert_eq!(stats.bufs_in_use, 0);
        assert_eq!(stats.bufs_idle as u64 + stats.bufs_trimmed, stats.bufs_created, "{stats:?}");
        if cap == buf * 4 {
            assert_eq!(stats.bufs_cached, 0, "too small a cap for caches");
        } else {
            assert!(stats.bufs_cached > 0, "cap {cap}: {stats:?}");
        }
        step.wait();
        for w in workers {
            w.join().unwrap();
        }
        assert!(pool.stats().bytes_idle <= cap);
    }
}

/// `close` frees cached bufs too.
#[test]
fn close_frees_cached_bufs() {
    let _one = one_at_a_time();
    let pool = small_pool();
    let (step, parked) = park_with_cache(&pool, 2);
    pool.close();
    assert_eq!(counts(&pool), (2, 0, 0, 0));
    step.wait();
    parked.join().unwrap();
}

/// More threads than there are cache slots: the extra threads work without
/// a cache, and everything balances at the end.
#[test]
fn more_threads_than_cache_slots() {
    let _one = one_at_a_time();
    let pool = small_pool();
    let threads = 80;
    let step = Arc::new(Barrier::new(threads));
    let workers: Vec<_> = (0..threads)
        .map(|i| {
            let (pool, step) = (pool.clone(), Arc::clone(&step));
            thread::spawn(move || {
                let mut alloc = pool.allocator(0);
                step.wait();
                for k in 0..50u8 {
                    let s = alloc.copy_from_slice(&[i as u8, k]);
                    assert_eq!(&s[..], &[i as u8, k]);
                }
                drop(alloc);
                step.wait();
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let stats = pool.stats();
    assert_eq!((stats.bufs_in_use, stats.bufs_cached), (0, 0), "{stats:?}");
    assert_eq!(stats.bufs_idle as u64, stats.bufs_created, "{stats:?}");
}
