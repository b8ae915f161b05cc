//! Per-thread caches: the flush a thread runs as it exits, racing the pool's
//! own use and its teardown.
#![cfg(loom)]

use loom_tests::{assert_stats, run_model, thread};
use refbuf::{AllocError, Pool};

/// A thread releases a buf into its cache and exits, flushing the cache into
/// the pool's shared lists, while another thread reads the stats: every
/// snapshot accounts for the one buf exactly once (cached, idle or in use),
/// and after the exit it is idle in the shared lists, no longer cached.
#[test]
fn exit_flush_moves_the_cache_to_the_pool() {
    run_model("cache: a thread's exit flushes its cache", || {
        let pool = Pool::builder().buf_size(64).build();
        let user = pool.clone();
        let t = thread::spawn(move || {
            drop(user.allocator(0).alloc(1));
            assert_eq!(user.stats().bufs_cached, 1, "a release on this thread keeps the buf here");
        });
        let stats = pool.stats();
        assert_eq!(stats.bufs_in_use + stats.bufs_idle, stats.bufs_created as usize, "{stats:?}");
        assert!(stats.bufs_cached <= stats.bufs_idle, "{stats:?}");
        t.join().unwrap();
        assert_stats(&pool, 1, 0, 1);
        assert_eq!(pool.stats().bufs_cached, 0, "the exit flushed the cache");
    });
}

/// A thread caches a buf and exits, flushing, while the last handle of the
/// pool goes on another thread, closing the pool and emptying every cache.
/// Whichever comes first, the buf is freed once and the pool's state goes
/// with it: loom fails the execution on a leak, a double free or a
/// deadlock between the registry's lock and the pool's.
#[test]
fn exit_flush_races_the_last_handle() {
    run_model("cache: a thread's exit flush racing the pool's close", || {
        let pool = Pool::builder().buf_size(64).build();
        let mut alloc = pool.allocator(0);
        let t = thread::spawn(move || {
            drop(alloc.alloc(1));
            drop(alloc);
        });
        drop(pool);
        t.join().unwrap();
    });
}

/// The budget allows one buf, which sits in another live thread's cache: a
/// request on this thread finds it (a waiter empties every cache before it
/// gives up or sleeps) instead of failing or waiting for good. Whether the
/// other thread's release comes before the request or after, the request
/// gets the buf.
#[test]
fn request_takes_a_buf_from_another_threads_cache() {
    run_model("cache: the budget reaches another thread's cache", || {
        let pool = Pool::builder().buf_size(64).max_bytes(64).build();
        let held = pool.allocator(0).alloc(1);
        let (tx, rx) = loom::sync::mpsc::channel();
        let t = thread::spawn(move || {
            drop(held);
            // Stays alive, its cache unflushed, until the request is done.
            rx.recv().unwrap();
        });
        let got = pool.allocator(0).alloc(1);
        assert_eq!(got.len(), 1);
        tx.send(()).unwrap();
        t.join().unwrap();
        drop(got);
        let stats = pool.stats();
        assert_eq!(stats.bufs_created, 1, "{stats:?}");
        assert!(stats.high_water_bytes <= 64, "{stats:?}");
        assert_eq!(pool.allocator(0).try_alloc(65).unwrap_err(), AllocError::TooLarge);
    });
}
