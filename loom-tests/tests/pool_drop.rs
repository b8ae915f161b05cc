//! The last handle of a pool dropped while a slice of it is dropped.
#![cfg(loom)]

use loom_tests::thread;
use loom_tests::{run_model, write_and_drop_on_thread};
use refbuf::Pool;

/// The last `Pool` goes on one thread, closing the pool, while the buf's two
/// slices go on two others. The buf is freed (by the close if it was idle by
/// then, else by the release) and the pool's shared state goes with the last
/// `Arc` to it; loom fails the execution if either leaks.
#[test]
fn last_pool_dropped_while_slice_dropped() {
    run_model("pool_drop: last Pool racing the slices' drops", || {
        let pool = Pool::builder().buf_size(64).build();
        let mut alloc = pool.allocator(0);
        let a = alloc.alloc_for_overwrite(4);
        let mut b = alloc.alloc_for_overwrite(4);
        drop(alloc);

        let tpool = thread::spawn(move || drop(pool));
        let ta = write_and_drop_on_thread(a, b"aaaa");
        b.copy_from_slice(b"bbbb");
        drop(b);
        tpool.join().unwrap();
        ta.join().unwrap();
    });
}

/// The last handle is an allocator, which closes the pool and gives back its
/// buf in the same drop, racing the last slice's drop. Meanwhile a second
/// buf already sits idle in the pool and must be freed by the close.
#[test]
fn last_allocator_dropped_while_slice_dropped() {
    run_model("pool_drop: last Allocator racing the last slice", || {
        let pool = Pool::builder().buf_size(64).build();
        let mut idle = pool.allocator(0);
        let idle_slice = idle.alloc(1);
        let mut alloc = pool.allocator(0);
        let slice = alloc.copy_from_slice(b"data");
        // Leaves the first buf idle in the pool, and the allocator as the
        // last handle.
        drop((idle_slice, idle, pool));

        let talloc = thread::spawn(move || drop(alloc));
        let tslice = thread::spawn(move || drop(slice));
        talloc.join().unwrap();
        tslice.join().unwrap();
    });
}
