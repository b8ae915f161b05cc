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

/// A buf moves from one thread's cache to another's while a third thread
/// takes a snapshot of the stats: one thread takes it out of its cache and
/// sends a slice of it over, and the other drops the slice, caching the buf
/// in its own slot, neither under the pool's lock. While a buf of the main
/// thread is held, every snapshot counts that one in use and the moving buf
/// once: in use or cached, never in two slots at once (which would make
/// `bufs_in_use` negative, or hide the held buf).
#[test]
fn stats_count_a_buf_moving_between_caches_once() {
    run_model("cache: stats while a buf moves between caches", || {
        let pool = Pool::builder().buf_size(64).build();
        let held = pool.allocator(0).alloc(64);
        let owner = pool.clone();
        let (to_other, from_owner) = loom::sync::mpsc::channel();
        let (cached_tx, cached_rx) = loom::sync::mpsc::channel::<()>();
        let (moved_tx, moved_rx) = loom::sync::mpsc::channel::<()>();
        let (done_tx, done_rx) = loom::sync::mpsc::channel::<()>();
        let first = thread::spawn(move || {
            drop(owner.allocator(0).alloc(64));
            cached_tx.send(()).unwrap();
            to_other.send(owner.allocator(0).alloc(64)).unwrap();
            // Alive, its cache slot claimed, until the buf has moved.
            moved_rx.recv().unwrap();
        });
        let second = thread::spawn(move || {
            drop(from_owner.recv().unwrap());
            moved_tx.send(()).unwrap();
            // Alive, its cache unflushed, until the snapshot is taken.
            done_rx.recv().unwrap();
        });
        cached_rx.recv().unwrap();
        let stats = pool.stats();
        assert_eq!(stats.bufs_created, 2, "{stats:?}");
        assert_eq!(stats.bufs_in_use + stats.bufs_idle, 2, "{stats:?}");
        assert!(stats.bufs_in_use >= 1 && stats.bufs_cached <= 1, "{stats:?}");
        done_tx.send(()).unwrap();
        first.join().unwrap();
        second.join().unwrap();
        drop(held);
    });
}

/// A full cache spills its older half into the shared list while another
/// thread, its own cache empty, takes a buf there and moves the rest into
/// its cache: each cache under its own lock, the shared list under the
/// pool's. With one buf to a cache, one thread drops three slices, each of
/// a buf of its own: the first is cached, and each later one spills the one
/// before. Whatever the interleaving, the taker gets a spilled buf or a
/// fresh one, no buf is in two places at once (the taker's snapshot counts
/// each once), and once all is dropped every buf is idle, none lost.
#[test]
fn a_spill_races_a_fill() {
    run_model("cache: a full cache spilling while an empty one fills", || {
        let pool = Pool::builder().buf_size(64).thread_cache(1).build();
        let slices: Vec<_> = (0..3).map(|_| pool.allocator(0).alloc(64)).collect();
        let spiller = thread::spawn(move || drop(slices));
        let taker = {
            let pool = pool.clone();
            thread::spawn(move || {
                let taken = pool.allocator(0).alloc(64);
                let stats = pool.stats();
                assert_eq!(stats.bufs_in_use + stats.bufs_idle, stats.bufs_created as usize, "{stats:?}");
                assert!(stats.bufs_in_use >= 1 && stats.bufs_cached <= stats.bufs_idle, "{stats:?}");
                drop(taken);
            })
        };
        spiller.join().unwrap();
        taker.join().unwrap();
        let created = pool.stats().bufs_created;
        assert!(created == 3 || created == 4, "a spilled buf or a fresh one: {created}");
        assert_stats(&pool, created, 0, created as usize);
    });
}
