//! Async waiters for the budget: a request that waits through its task's
//! waker (`Allocator::ready`), woken by a release on another thread, given
//! up while a release races it, and woken by `close`. Driven by loom's
//! `future::block_on`, whose waker parks the thread until woken, so a lost
//! wakeup shows up as loom's deadlock report.
#![cfg(loom)]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll};

use loom_tests::thread;
use loom_tests::{assert_stats, run_model};
use refbuf::{AllocError, Pool};

/// A pool of 64-byte bufs with room for one.
fn one_buf_pool() -> Pool {
    Pool::builder().buf_size(64).max_bytes(64).build()
}

/// A task waits in `ready` while the only buf is held; another thread drops
/// the slice holding it. In every interleaving the waiter is woken and gets
/// the buf.
#[test]
fn release_wakes_async_waiter() {
    run_model("async: a release on another thread wakes a waiting task", || {
        let pool = one_buf_pool();
        let held = pool.allocator(0).alloc(1);
        let waiter_pool = pool.clone();
        let waiter = thread::spawn(move || {
            let mut alloc = waiter_pool.allocator(0);
            loom::future::block_on(alloc.ready(1)).expect("the buf comes back");
            assert_eq!(alloc.try_alloc(1).expect("ready made room").len(), 1);
        });
        let releaser = thread::spawn(move || drop(held));
        waiter.join().unwrap();
        releaser.join().unwrap();
        assert_stats(&pool, 1, 0, 1);
    });
}

/// Two tasks wait for the one buf; one gives up (its future is dropped after
/// one poll) while the release races it. The other is still served: the
/// wakeup is not spent on the task that left.
#[test]
fn cancelled_waiter_passes_the_wakeup_on() {
    run_model("async: a cancelled waiter does not take the wakeup", || {
        let pool = one_buf_pool();
        let held = pool.allocator(0).alloc(1);
        let quitter_pool = pool.clone();
        let quitter = thread::spawn(move || {
            let mut alloc = quitter_pool.allocator(0);
            let waker = std::task::Waker::noop();
            let mut cx = Context::from_waker(waker);
            let mut ready = pin!(alloc.ready(1));
            // One poll, then the future is dropped, ready or not.
            if let Poll::Ready(result) = ready.as_mut().poll(&mut cx) {
                result.expect("the pool is open");
            }
        });
        let waiter_pool = pool.clone();
        let waiter = thread::spawn(move || {
            let mut alloc = waiter_pool.allocator(0);
            loom::future::block_on(alloc.ready(1)).expect("the buf comes back");
            drop(alloc.try_alloc(1).expect("ready made room"));
        });
        drop(held);
        quitter.join().unwrap();
        waiter.join().unwrap();
        let stats = pool.stats();
        assert_eq!((stats.bufs_in_use, stats.bufs_created), (0, 1), "{stats:?}");
    });
}

/// A task waits for the budget while the main thread closes the pool: it
/// always ends with `Closed`, whether it saw the close before it began to
/// wait or was woken by it.
#[test]
fn close_wakes_async_waiter() {
    run_model("async: close wakes a waiting task", || {
        let pool = one_buf_pool();
        let held = pool.allocator(0).alloc(1);
        let waiter_pool = pool.clone();
        let waiter = thread::spawn(move || {
            let mut alloc = waiter_pool.allocator(0);
            loom::future::block_on(alloc.ready(1))
        });
        pool.close();
        assert_eq!(waiter.join().unwrap(), Err(AllocError::Closed));
        drop(held);
        assert_eq!(pool.stats().bufs_in_use, 0);
    });
}
