//! `Pool::close` racing the release of a buf's last slice.
#![cfg(loom)]

use loom_tests::thread;
use loom_tests::{assert_stats, run_model, write_and_drop_on_thread};
use refbuf::{AllocError, Pool};

/// One thread closes the pool while another drops the buf's last slice.
/// Either the release comes first and `close` frees the idle buf, or `close`
/// comes first and the release frees it: exactly once either way, which
/// loom's allocation tracking checks (a leak fails the execution, and so does
/// a second `dealloc` of the same pointer).
#[test]
fn close_races_last_release() {
    run_model("close: close racing the last release", || {
        let pool = Pool::builder().buf_size(64).build();
        let mut alloc = pool.allocator(0);
        let slice = alloc.alloc_for_overwrite(4);
        drop(alloc);

        let closer = pool.clone();
        let tclose = thread::spawn(move || closer.close());
        let tdrop = write_and_drop_on_thread(slice, b"data");
        tclose.join().unwrap();
        tdrop.join().unwrap();

        assert!(pool.is_closed());
        assert_stats(&pool, 1, 0, 0);
        let mut alloc = pool.allocator(0);
        assert_eq!(alloc.try_alloc(1).unwrap_err(), AllocError::Closed);
        assert_stats(&pool, 1, 0, 0);
    });
}

/// The pool is closed on the main thread while an allocator is dropped on
/// one thread, giving back its whole batch of references at once, and its
/// slice is written and dropped on another: whichever holder goes last
/// finds the pool open or closed, and the buf is kept then freed by the
/// close, or freed at once.
#[test]
fn close_races_allocator_and_slice_drops() {
    run_model("close: close racing an allocator's and a slice's drop", || {
        let pool = Pool::builder().buf_size(64).build();
        let mut alloc = pool.allocator(0);
        let slice = alloc.alloc_for_overwrite(4);

        let talloc = thread::spawn(move || drop(alloc));
        let tslice = write_and_drop_on_thread(slice, b"data");
        pool.close();
        talloc.join().unwrap();
        tslice.join().unwrap();

        assert_stats(&pool, 1, 0, 0);
    });
}
