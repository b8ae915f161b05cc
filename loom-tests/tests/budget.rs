//! The budget's waiting protocol: a request waiting for memory, woken by a
//! release or by `close` on another thread, and the byte accounting under
//! concurrent takes and releases.
#![cfg(loom)]

use loom_tests::thread;
use loom_tests::{assert_stats, run_model};
use refbuf::{AllocError, Pool};

/// A pool of 64-byte bufs with room for one.
fn one_buf_pool() -> Pool {
    Pool::builder().buf_size(64).max_bytes(64).build()
}

/// A thread blocks in `alloc` while the only buf is held; another thread
/// drops the slice holding it. In every interleaving the waiter gets the
/// buf: a wakeup lost between its check and its wait would leave it asleep
/// for good, which loom reports as a deadlock.
#[test]
fn release_wakes_waiter() {
    run_model("budget: a release on another thread wakes a waiter", || {
        let pool = one_buf_pool();
        let held = pool.allocator(0).alloc(1);
        let waiter_pool = pool.clone();
        let waiter = thread::spawn(move || {
            let slice = waiter_pool.allocator(0).alloc(1);
            assert_eq!(slice.len(), 1);
        });
        let releaser = thread::spawn(move || drop(held));
        waiter.join().unwrap();
        releaser.join().unwrap();
        assert_stats(&pool, 1, 0, 1);
        assert!(pool.stats().waits <= 1, "one wait at most, counted once");
    });
}

/// Two threads wait for the one buf the budget allows, each dropping its
/// slice once it has one, while a third releases the buf they wait for:
/// every waiter gets the buf in turn, so no waiter sleeps while the buf is
/// free (loom would report that as a deadlock).
#[test]
fn releases_wake_waiters_in_turn() {
    run_model("budget: two waiters served in turn", || {
        let pool = one_buf_pool();
        let held = pool.allocator(0).alloc(1);
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let pool = pool.clone();
                thread::spawn(move || drop(pool.allocator(0).alloc(1)))
            })
            .collect();
        drop(held);
        for w in waiters {
            w.join().unwrap();
        }
        assert_stats(&pool, 1, 0, 1);
    });
}

/// `trim` races the release of the last slice: the buf is freed exactly
/// once, by `trim` if it went idle first, else kept idle.
#[test]
fn trim_races_release() {
    run_model("budget: trim racing a release", || {
        let pool = one_buf_pool();
        let slice = pool.allocator(0).alloc(1);
        let trimmer = pool.clone();
        let t = thread::spawn(move || trimmer.trim());
        drop(slice);
        let freed = t.join().unwrap();
        let stats = pool.stats();
        assert_eq!((stats.bufs_in_use, stats.bytes_in_use), (0, 0));
        assert_eq!(freed + stats.bytes_idle, 64, "{stats:?}");
        assert_eq!(stats.bufs_trimmed, u64::from(freed == 64));
    });
}

/// A thread waits for the budget while the main thread closes the pool:
/// the waiter always returns `Closed`, whether it saw the close before it
/// began to wait or was woken by it.
#[test]
fn close_wakes_waiter() {
    run_model("budget: close wakes a waiter", || {
        let pool = one_buf_pool();
        let held = pool.allocator(0).alloc(1);
        let waiter_pool = pool.clone();
        // Under loom a timed wait is an untimed one, so this waits until
        // it is woken.
        let waiter = thread::spawn(move || {
            waiter_pool.allocator(0).alloc_timeout(1, std::time::Duration::from_secs(3600)).unwrap_err()
        });
        pool.close();
        assert_eq!(waiter.join().unwrap(), AllocError::Closed);
        drop(held);
        assert_stats(&pool, 1, 0, 0);
    });
}

/// Two threads each take a buf of a two-buf budget and give it back, while
/// the main thread holds a third request's worth with `try_alloc`: the
/// pool never holds more than its budget, never counts below zero (the
/// counters would underflow and panic), and balances at the end.
#[test]
fn accounting_under_concurrent_take_and_release() {
    run_model("budget: accounting under concurrent takes and releases", || {
        let pool = Pool::builder().buf_size(64).max_bytes(128).build();
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let pool = pool.clone();
                thread::spawn(move || match pool.allocator(0).try_alloc(1) {
                    Ok(slice) => drop(slice),
                    Err(e) => assert_eq!(e, AllocError::Exhausted),
                })
            })
            .collect();
        let mine = pool.allocator(0).try_alloc(1);
        let stats = pool.stats();
        assert!(stats.bytes_in_use + stats.bytes_idle <= 128, "{stats:?}");
        drop(mine);
        for w in workers {
            w.join().unwrap();
        }
        let stats = pool.stats();
        assert!(stats.high_water_bytes <= 128, "{stats:?}");
        assert_eq!((stats.bufs_in_use, stats.bytes_in_use), (0, 0));
        assert_eq!(stats.bytes_idle, 64 * stats.bufs_idle);
        assert_eq!(stats.bufs_created, stats.bufs_idle as u64);
    });
}
