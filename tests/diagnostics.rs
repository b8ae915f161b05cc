//! `Pool::report`: bufs in use with their live bytes,
//! holders and age, and the pinned ones flagged. Only with the
//! `diagnostics` feature: `cargo test --features diagnostics`.
#![cfg(feature = "diagnostics")]

use refbuf::{BufReport, Pool, coalesce};

/// The report's one buf.
fn only(pool: &Pool) -> BufReport {
    let report = pool.report();
    assert_eq!(report.bufs.len(), 1, "{report}");
    report.bufs[0]
}

/// A buf in use shows its size, live slice bytes (headroom included), holder count and whether an allocator holds it.
#[test]
fn report_lists_bufs_in_use() {
    let pool = Pool::builder().buf_size(1024).build();
    assert!(pool.report().bufs.is_empty());
    let mut alloc = pool.allocator(4);
    let a = alloc.alloc(10);
    let b = alloc.alloc(20);
    let buf = only(&pool);
    assert_eq!((buf.size, buf.live_bytes, buf.holders, buf.leased), (1024, 14 + 24, 2, true));
    assert!(!buf.is_pinned(), "an allocator is still filling it");
    drop((a, b, alloc));
    assert!(pool.report().bufs.is_empty(), "an idle buf is not in use");
}

/// Splits, truncation, joins and coalesce keep the live bytes and holder counts exact.
#[test]
fn slice_operations_keep_counts_exact() {
    let pool = Pool::builder().buf_size(1024).build();
    let mut alloc = pool.allocator(0);
    let mut s = alloc.alloc(100);
    let front = s.split_to(30);
    let back = s.split_off(50);
    assert_eq!((only(&pool).live_bytes, only(&pool).holders), (100, 3));
    let mut parts = vec![front, s, back];
    coalesce(&mut parts, usize::MAX);
    assert_eq!((only(&pool).live_bytes, only(&pool).holders), (100, 1));
    parts[0].truncate(40);
    assert_eq!(only(&pool).live_bytes, 40);
    let mut tail = parts[0].split_off(10);
    tail.truncate_front(5);
    assert_eq!(
        (only(&pool).live_bytes, only(&pool).holders),
        (40, 2),
        "truncate_front keeps bytes as headroom"
    );
    let next = alloc.alloc(8);
    tail.truncate(30);
    drop(parts);
    assert_eq!((only(&pool).live_bytes, only(&pool).holders), (30 + 8, 2));
    drop((tail, next));
    assert_eq!((only(&pool).live_bytes, only(&pool).holders), (0, 0));
}

/// A buf held only by small slices (under a quarter of it, no allocator) is flagged pinned, and the table says so; copying the data out with a separate allocator frees it.
#[test]
fn small_long_lived_slice_pins_its_buf_until_copied_out() {
    let pool = Pool::builder().buf_size(1024).build();
    let mut alloc = pool.allocator(0);
    let small = alloc.copy_from_slice(b"session key");
    let big = alloc.alloc(900);
    drop(alloc);
    assert!(!only(&pool).is_pinned(), "the big slice still uses most of the buf");
    drop(big);
    let report = pool.report();
    assert_eq!(report.pinned().count(), 1);
    let table = report.to_string();
    assert!(table.contains("PINNED"), "{table}");
    assert!(table.contains("1 pinned"), "{table}");

    // The fix: copy the long-lived bytes out, and drop the original.
    let mut long_lived = pool.allocator(0);
    let kept = long_lived.copy_from_slice(&small);
    drop(small);
    let report = pool.report();
    assert_eq!(report.pinned().count(), 0, "{report}");
    assert_eq!(report.bufs.len(), 1, "only the long-lived allocator's buf is in use: {report}");
    assert_eq!(pool.stats().bufs_idle, 1, "the big buf went back to the pool");
    assert_eq!(&kept[..], b"session key");
}

/// Bufs are listed oldest first, with an age that grows.
#[test]
fn report_lists_oldest_first_with_ages() {
    let pool = Pool::builder().buf_size(64).build();
    let old = pool.allocator(0).alloc(64);
    std::thread::sleep(std::time::Duration::from_millis(5));
    let young = pool.allocator(0).alloc(64);
    let report = pool.report();
    assert_eq!(report.bufs.len(), 2);
    assert!(report.bufs[0].age >= report.bufs[1].age, "{report}");
    drop((old, young));
}

/// An absorbed slice's headroom leaves the count when `coalesce` merges it: a slice whose headroom grew by
/// `release_previous`, absorbed into an empty slice that ends where it starts, leaves no byte counted once
/// every slice is gone, and the buf's next user starts from zero.
#[test]
fn coalesce_gives_up_an_absorbed_slice_headroom() {
    let pool = Pool::builder().buf_size(1024).build();
    let mut alloc = pool.allocator(4);
    let mut n = alloc.alloc(10);
    let mut f = n.split_to(0);
    let z = f.split_off(0);
    n.release_previous(f);
    assert_eq!(n.headroom(), 4);
    let mut parts = vec![z, n];
    coalesce(&mut parts, usize::MAX);
    assert_eq!(parts.len(), 1);
    let buf = only(&pool);
    assert_eq!((buf.live_bytes, buf.holders), (10, 1), "the merged slice owns its 10 bytes, no headroom");
    drop(parts);
    assert_eq!((only(&pool).live_bytes, only(&pool).holders), (0, 0));
    drop(alloc);
    // The buf goes idle, and its next user sees only its own slice.
    let mut alloc = pool.allocator(0);
    let s = alloc.alloc(3);
    assert_eq!((only(&pool).live_bytes, only(&pool).holders), (3, 1));
    drop((s, alloc));
}
