//! Model test: random sequences of slice operations, checked after every
//! step against a plain model.
//!
//! The model keeps, for every live slice, its contents (`Vec<u8>`), headroom
//! and position (model buf and offset); for every buf a shadow copy of its
//! whole data area (so bytes exposed by `expand_front`, `free_entire_prefix`
//! or `alloc_for_overwrite` are predicted too); for every allocator its bump
//! position; for the `Reader` (over an endless source) its buffered range,
//! through rewinds and moves to a new buf; and the pool's idle lists and
//! counters. Operations whose outcome depends on memory adjacency
//! (`try_join`, `release_previous`, `coalesce`, `free_entire_prefix`) are
//! decided from those recorded positions, and every slice's `as_ptr()` is
//! checked against its recorded position.
//!
//! # Replaying a failure
//!
//! On failure the test panics with proptest's shrunk input, a (pretty-printed)
//! tuple `((r0, r1), [Alloc(0, 3, Zeroed), ReleasePreviousOfLast(1), ...])`.
//! Paste it as `run((r0, r1), &[...])` into a test of its own (with
//! `use Op::*; use Fill::*;`), as `replay_example` does. `PROPTEST_RNG_SEED=<u64>`
//! makes the generated cases deterministic, and `PROPTEST_CASES=<n>` changes
//! how many run (natively; Miri always runs 4). No failure file is written.

use std::cell::RefCell;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

#[path = "model/world.rs"]
mod world;

use world::{Fill, Op, Tally, run};

fn fill() -> impl Strategy<Value = Fill> {
    prop_oneof![
        Just(Fill::Zeroed),
        any::<u8>().prop_map(Fill::Overwrite),
        any::<u8>().prop_map(Fill::CopyFrom)
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let len = prop_oneof![8 => 0..40usize, 3 => 40..140usize, 1 => 1000..1100usize];
    let i = || 0..16usize;
    prop_oneof![
        48 => (0..2usize, len, fill()).prop_map(|(a, l, f)| Op::Alloc(a, l, f)),
        6 => (0..40usize, any::<u8>()).prop_map(|(l, s)| Op::FromVec(l, s)),
        4 => Just(Op::Empty),
        12 => (i(), 0..12usize).prop_map(|(i, n)| Op::ExpandFront(i, n)),
        12 => (i(), 0..12usize, any::<u8>()).prop_map(|(i, n, s)| Op::Prepend(i, n, s)),
        12 => (i(), 0..24usize).prop_map(|(i, n)| Op::TruncateFront(i, n)),
        8 => (i(), 0..80usize).prop_map(|(i, n)| Op::Truncate(i, n)),
        12 => (i(), 0..200usize).prop_map(|(i, at)| Op::SplitTo(i, at)),
        12 => (i(), 0..200usize).prop_map(|(i, at)| Op::SplitOff(i, at)),
        12 => (0..2usize).prop_map(Op::ReleasePreviousOfLast),
        8 => (i(), i()).prop_map(|(i, j)| Op::ReleasePrevious(i, j)),
        8 => i().prop_map(Op::FreeEntirePrefix),
        8 => (i(), i()).prop_map(|(i, j)| Op::TryJoin(i, j)),
        8 => i().prop_map(Op::TryJoinNext),
        8 => (any::<u16>(), prop_oneof![Just(usize::MAX), 0..150usize]).prop_map(|(m, x)| Op::Coalesce(m, x)),
        8 => (i(), any::<u8>()).prop_map(|(i, s)| Op::Write(i, s)),
        20 => i().prop_map(Op::DropSlice),
        12 => prop_oneof![0..70usize, 120..200usize].prop_map(Op::Read),
        1 => Just(Op::Close),
    ]
}

fn config() -> Config {
    let default = Config::default();
    let cases = if cfg!(miri) {
        4
    } else if std::env::var_os("PROPTEST_CASES").is_some() {
        default.cases
    } else {
        256
    };
    Config { cases, failure_persistence: None, ..default }
}

/// Random slice operations keep every slice's bytes, headroom and position, and the stats, as modelled.
#[test]
fn slices_match_model() {
    let ops_len = if cfg!(miri) { 1..40usize } else { 1..80usize };
    let strategy = ((0..9usize, 0..9usize), prop::collection::vec(op(), ops_len));
    let total = RefCell::new(Tally::default());
    let result = TestRunner::new(config()).run(&strategy, |(reserves, ops)| {
        let t = run(reserves, &ops);
        let mut total = total.borrow_mut();
        total.joins += t.joins;
        total.releases_grew += t.releases_grew;
        total.prefixes_freed += t.prefixes_freed;
        total.coalesce_merges += t.coalesce_merges;
        total.reader_moves += t.reader_moves;
        total.recycled += t.recycled;
        total.spent_reused += t.spent_reused;
        total.spent_pushed_out += t.spent_pushed_out;
        total.closes += t.closes;
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}\nReplay with run((r0, r1), &[...]) as described at the top of tests/model.rs");
    }
    let total = total.into_inner();
    if !cfg!(miri) {
        // The adjacency-dependent outcomes were all reached, so the model's
        // predictions for them were actually exercised.
        assert!(total.joins > 0, "{total:?}");
        assert!(total.releases_grew > 0, "{total:?}");
        assert!(total.prefixes_freed > 0, "{total:?}");
        assert!(total.coalesce_merges > 0, "{total:?}");
        assert!(total.reader_moves > 0, "{total:?}");
        assert!(total.recycled > 0, "{total:?}");
        assert!(total.spent_reused > 0, "{total:?}");
        assert!(total.closes > 0, "{total:?}");
    }
}

/// A fixed sequence (in the replay format) reaches every adjacency-dependent outcome and matches the model.
#[test]
fn replay_example() {
    use Fill::*;
    use Op::*;
    let t = run(
        (0, 4),
        &[
            Alloc(1, 10, CopyFrom(1)),
            Alloc(1, 20, Overwrite(2)),
            ReleasePreviousOfLast(1),
            ExpandFront(0, 12),
            Prepend(0, 3, 9),
            Alloc(0, 5, Zeroed),
            Alloc(0, 7, CopyFrom(3)),
            Alloc(0, 9, CopyFrom(4)),
            TryJoin(1, 2),
            Coalesce(0b110, usize::MAX),
            SplitOff(1, 4),
            SplitTo(2, 2),
            Coalesce(0b1110, 6),
            Alloc(0, 60, Zeroed),
            Alloc(1, 30, Zeroed),
            DropSlice(0),
            Alloc(1, 50, Overwrite(5)),
            FreeEntirePrefix(5),
            TruncateFront(1, 3),
            Truncate(1, 2),
            Write(1, 6),
            FromVec(8, 7),
            FreeEntirePrefix(6),
            Empty,
            TryJoin(7, 0),
            Alloc(0, 60, Zeroed),
            Alloc(0, 60, Zeroed),
            ReleasePreviousOfLast(0),
            Alloc(0, 60, Zeroed),
            Close,
            Alloc(0, 1, Zeroed),
            Alloc(0, 1000, Zeroed),
        ],
    );
    assert!(
        t.joins > 0 && t.releases_grew > 0 && t.coalesce_merges > 0 && t.recycled > 0 && t.spent_reused > 0,
        "{t:?}"
    );
    assert_eq!(t.closes, 1);

    // The allocator moves to a new buf; once the first slice of the old one
    // is dropped, the second can take the whole prefix and show its bytes.
    let t = run(
        (0, 0),
        &[
            Alloc(0, 10, CopyFrom(1)),
            Alloc(0, 20, CopyFrom(2)),
            Alloc(0, 50, Zeroed),
            FreeEntirePrefix(1),
            DropSlice(0),
            FreeEntirePrefix(0),
            ExpandFront(0, 10),
        ],
    );
    assert_eq!(t.prefixes_freed, 1, "{t:?}");
}

/// A `LocalAllocator` whose oldest spent buf stays pinned while it fills
/// more bufs than it keeps: the pinned one is pushed out with the list
/// full, filled bufs are let go for as many refills as the list holds, and
/// then spent bufs are cut from again, every step as modelled.
#[test]
fn spent_bufs_match_model() {
    use Fill::*;
    use Op::*;
    // The first slice is never dropped; each later one lives until the next
    // has filled a buf of its own.
    let mut ops = vec![Alloc(1, 60, Zeroed), Alloc(1, 60, Zeroed)];
    for seed in 0..100u8 {
        ops.extend([Alloc(1, 60, Overwrite(seed)), DropSlice(1)]);
    }
    let t = run((0, 0), &ops);
    assert!(t.spent_pushed_out > 0 && t.spent_reused > 0, "{t:?}");
}

/// Operations that keep slices as carved (no split, join or coalesce) on
/// the `LocalAllocator` alone, with some slices kept long: the allocator
/// starts tracking which parts of its bufs are alive and cuts from the dead
/// parts of bufs that kept slices hold, every step as modelled.
#[test]
fn dead_parts_match_model() {
    let op = prop_oneof![
        24 => (1..24usize, fill()).prop_map(|(l, f)| Op::Alloc(1, l, f)),
        4 => (40..70usize, fill()).prop_map(|(l, f)| Op::Alloc(1, l, f)),
        20 => (1..16usize).prop_map(Op::DropSlice),
        4 => (0..16usize, any::<u8>()).prop_map(|(i, s)| Op::Write(i, s)),
        2 => (0..16usize, 0..8usize).prop_map(|(i, n)| Op::TruncateFront(i, n)),
        2 => (0..16usize, 0..8usize).prop_map(|(i, n)| Op::ExpandFront(i, n)),
        2 => (0..16usize, 0..24usize).prop_map(|(i, n)| Op::Truncate(i, n)),
        1 => (0..16usize, 0..24usize).prop_map(|(i, at)| Op::SplitOff(i, at)),
        1 => (0..16usize, 0..16usize).prop_map(|(i, j)| Op::TryJoin(i, j)),
    ];
    let ops_len = if cfg!(miri) { 1..60usize } else { 1..200usize };
    let strategy = (0..4usize, prop::collection::vec(op, ops_len));
    let total = RefCell::new(Tally::default());
    let result = TestRunner::new(config()).run(&strategy, |(reserve, ops)| {
        let t = run((0, reserve), &ops);
        let mut total = total.borrow_mut();
        total.dead_parts += t.dead_parts;
        total.spent_reused += t.spent_reused;
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}\nReplay with run((r0, r1), &[...]) as described at the top of tests/model.rs");
    }
    let total = total.into_inner();
    if !cfg!(miri) {
        assert!(total.dead_parts > 0 && total.spent_reused > 0, "{total:?}");
    }
}
