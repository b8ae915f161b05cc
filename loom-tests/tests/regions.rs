//! Regions of one buf coming back through the lock-free return list of a
//! `BufRing` (here without a kernel): remote drops racing the owner taking
//! the list, and racing the owner closing it.
#![cfg(loom)]

use loom_tests::{run_model, thread, write_and_drop_on_thread};
use refbuf::{ModelRegions, Pool};

/// Two regions' last slices dropped on two threads while the owner takes
/// the return list: each region comes back exactly once, in that take or
/// the next, and a region taken again shows what its last holder wrote.
#[test]
fn remote_drops_race_the_owner_taking_the_list() {
    run_model("regions: remote drops racing take_returned", || {
        let pool = Pool::builder().buf_size(64).build();
        let mut regions = ModelRegions::new(&pool, 2, 2);
        let ta = write_and_drop_on_thread(regions.take(0), b"aa");
        let tb = write_and_drop_on_thread(regions.take(1), b"bb");
        // Spins on the list rather than joining first, so that only the
        // list orders the droppers' writes before the reads below.
        let mut back = Vec::new();
        while back.len() < 2 {
            back.extend(regions.take_returned());
            loom::thread::yield_now();
        }
        back.sort_unstable();
        assert_eq!(back, [0, 1], "each region back once");
        assert_eq!(&regions.take(0)[..], b"aa");
        assert_eq!(&regions.take(1)[..], b"bb");
        ta.join().unwrap();
        tb.join().unwrap();
    });
}

/// The owner closes the list while one region's last slice is dropped on
/// another thread and the other's at home: whoever goes last gives the buf
/// back to the pool, exactly once (twice or never shows as loom's leak or
/// double-free report, or in the stats).
#[test]
fn close_races_a_remote_drop() {
    run_model("regions: close racing a remote drop", || {
        let pool = Pool::builder().buf_size(64).build();
        let mut regions = ModelRegions::new(&pool, 2, 2);
        let remote = write_and_drop_on_thread(regions.take(0), b"aa");
        let home = regions.take(1);
        drop(home);
        drop(regions);
        remote.join().unwrap();
        assert_eq!(pool.stats().bytes_in_use, 0, "the buf went back");
        assert_eq!(pool.stats().bufs_in_use, 0);
    });
}

/// Both regions' last slices dropped on other threads while the owner
/// closes: one of the three frees, once.
#[test]
fn close_races_two_remote_drops() {
    run_model("regions: close racing two remote drops", || {
        let pool = Pool::builder().buf_size(64).build();
        let mut regions = ModelRegions::new(&pool, 2, 2);
        let a = regions.take(0);
        let b = regions.take(1);
        let ta = thread::spawn(move || drop(a));
        let tb = thread::spawn(move || drop(b));
        drop(regions);
        ta.join().unwrap();
        tb.join().unwrap();
        assert_eq!(pool.stats().bufs_in_use, 0, "the buf went back");
    });
}

/// A region goes round twice while another region's push races it: the
/// stack's head may return to a value a stalled push read (the ABA case),
/// which is harmless because a push links to the head it read and only the
/// owner, taking the whole stack, ever pops.
#[test]
fn a_region_goes_round_twice_while_a_push_races() {
    run_model("regions: a region round twice racing another's push", || {
        let pool = Pool::builder().buf_size(64).build();
        let mut regions = ModelRegions::new(&pool, 2, 2);
        let stalled = write_and_drop_on_thread(regions.take(1), b"11");
        drop(regions.take(0));
        let mut back = Vec::new();
        while !back.contains(&0) {
            back.extend(regions.take_returned());
            loom::thread::yield_now();
        }
        drop(regions.take(0));
        while back.len() < 3 {
            back.extend(regions.take_returned());
            loom::thread::yield_now();
        }
        back.sort_unstable();
        assert_eq!(back, [0, 0, 1], "region 0 back twice, region 1 once");
        assert_eq!(&regions.take(1)[..], b"11");
        stalled.join().unwrap();
    });
}

/// The owner's handle moves to another thread, which takes the list and
/// closes it there while this thread drops the last slice: the buf goes
/// back once.
#[test]
fn the_owner_moves_to_another_thread() {
    run_model("regions: the owner on another thread", || {
        let pool = Pool::builder().buf_size(64).build();
        let mut regions = ModelRegions::new(&pool, 2, 2);
        let a = regions.take(0);
        let b = regions.take(1);
        drop(a);
        let owner = thread::spawn(move || {
            let mut back = regions.take_returned();
            back.sort_unstable();
            assert!(back == [0] || back == [0, 1], "region 0 is back, region 1 may be: {back:?}");
            drop(regions);
        });
        drop(b);
        owner.join().unwrap();
        assert_eq!(pool.stats().bufs_in_use, 0, "the buf went back");
    });
}
