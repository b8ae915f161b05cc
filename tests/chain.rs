//! `Chain`: building it, `write_to` over partial, interrupted, blocked and
//! failing writers, `io::Read`, and `Buf`.

mod common;

use std::cell::RefCell;
use std::io::{self, IoSlice, Read, Write};

use bytes::Buf;
use refbuf::{Chain, Pool, Slice};

#[path = "common/chains.rs"]
mod chains;

use chains::{ScriptedWriter, Step, chain_of, contents, part_lens, pool64};

// ---------------------------------------------------------------------------
// Building a chain
// ---------------------------------------------------------------------------

/// push_back appends and push_front prepends; len is the total and the parts come out in order.
#[test]
fn push_back_and_front_keep_order_and_len() {
    let pool = pool64();
    let mut alloc = pool.allocator(0);
    let mut chain = Chain::new();
    assert!(chain.is_empty());
    chain.push_back(alloc.copy_from_slice(b"body"));
    chain.push_back(alloc.copy_from_slice(b"-tail"));
    chain.push_front(alloc.copy_from_slice(b"head:"));
    assert_eq!(chain.len(), 14);
    assert!(!chain.is_empty());
    assert_eq!(part_lens(&chain), [5, 4, 5]);
    assert_eq!(contents(&chain), b"head:body-tail");
}

/// Empty slices pushed at either end are dropped (releasing their buf) and add no part.
#[test]
fn empty_slices_are_not_stored() {
    let pool = pool64();
    let mut alloc = pool.allocator(4);
    let mut chain = Chain::new();
    chain.push_back(alloc.alloc(0));
    chain.push_front(alloc.alloc(0));
    chain.push_back(Slice::new());
    assert_eq!(chain.iter().count(), 0);
    assert!(chain.is_empty());
    drop(alloc);
    assert_eq!(pool.stats().bufs_in_use, 0, "the empty slices let go of their buf");
}

/// pop_front hands back the parts in order and keeps len in step; From, FromIterator and Extend build the same chain.
#[test]
fn pop_front_from_and_collect() {
    let pool = pool64();
    let mut alloc = pool.allocator(0);
    let mut chain: Chain = [b"ab".as_slice(), b"", b"cde"].iter().map(|p| alloc.copy_from_slice(p)).collect();
    assert_eq!(part_lens(&chain), [2, 3]);
    chain.extend([alloc.copy_from_slice(b"f")]);
    assert_eq!(chain.len(), 6);
    assert_eq!(&chain.pop_front().expect("a part")[..], b"ab");
    assert_eq!(chain.len(), 4);
    assert_eq!(&chain.pop_front().expect("a part")[..], b"cde");
    assert_eq!(&chain.pop_front().expect("a part")[..], b"f");
    assert!(chain.pop_front().is_none());
    assert_eq!(chain.len(), 0);

    let one = Chain::from(alloc.copy_from_slice(b"x"));
    assert_eq!(contents(&one), b"x");
    assert!(Chain::from(Slice::new()).is_empty());
    assert!(Chain::default().is_empty());
}

/// coalesce joins parts that touch in memory, without copying, up to max_len; len and contents stay the same.
#[test]
fn coalesce_joins_touching_parts() {
    let pool = pool64();
    let mut alloc = pool.allocator(0);
    let mut chain = Chain::new();
    for part in [b"aa", b"bb", b"cc", b"dd"] {
        chain.push_back(alloc.copy_from_slice(part));
    }
    let at = chain.iter().next().expect("a part").as_ptr();
    chain.coalesce(6);
    assert_eq!(part_lens(&chain), [6, 2]);
    assert_eq!(chain.iter().next().expect("a part").as_ptr(), at, "joined in place");
    chain.coalesce(usize::MAX);
    assert_eq!(part_lens(&chain), [8]);
    assert_eq!(chain.len(), 8);
    assert_eq!(contents(&chain), b"aabbccdd");
}

/// coalesce leaves parts that do not touch apart.
#[test]
fn coalesce_keeps_apart_parts_that_do_not_touch() {
    let pool = pool64();
    let (mut chain, all) = chain_of(&pool, &[3, 4, 5]);
    chain.coalesce(usize::MAX);
    assert_eq!(part_lens(&chain), [3, 4, 5]);
    assert_eq!(contents(&chain), all);
}

/// truncate keeps exactly the first len bytes across parts, dropping whole parts past it; a len at or past the end changes nothing.
#[test]
fn truncate_keeps_the_front() {
    let pool = pool64();
    let (mut chain, all) = chain_of(&pool, &[3, 4, 5]);
    chain.truncate(20);
    assert_eq!(part_lens(&chain), [3, 4, 5]);
    chain.truncate(12);
    assert_eq!(part_lens(&chain), [3, 4, 5]);
    chain.truncate(7);
    assert_eq!(part_lens(&chain), [3, 4]);
    chain.truncate(5);
    assert_eq!(part_lens(&chain), [3, 2]);
    assert_eq!(chain.len(), 5);
    assert_eq!(contents(&chain), &all[..5]);
    chain.truncate(0);
    assert!(chain.is_empty());
    assert_eq!(chain.iter().count(), 0);
}

/// Chain is Send and Sync, so it can cross threads like its slices.
#[test]
fn chain_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Chain>();
    let pool = pool64();
    let chain = Chain::from(pool.allocator(0).copy_from_slice(b"sent"));
    let back = std::thread::spawn(move || contents(&chain)).join().expect("thread");
    assert_eq!(back, b"sent");
}

/// Debug shows the length and part count but not the bytes.
#[test]
fn debug_hides_contents() {
    let pool = pool64();
    let chain = Chain::from(pool.allocator(0).copy_from_slice(b"secret"));
    let shown = format!("{chain:?}");
    assert!(shown.contains("len: 6") && shown.contains("parts: 1"), "{shown}");
    assert!(!shown.contains("115"), "{shown}"); // b's'
}

// ---------------------------------------------------------------------------
// write_to
// ---------------------------------------------------------------------------

/// write_to a Vec writes every byte in order with one write_vectored, returns the total, empties the chain and releases the bufs.
#[test]
fn write_to_writes_everything() {
    let pool = pool64();
    let (mut chain, all) = chain_of(&pool, &[10, 40, 1, 20]);
    let mut w = ScriptedWriter::new(&[Step::Accept(usize::MAX)]);
    assert_eq!(chain.write_to(&mut w).expect("write"), all.len());
    assert_eq!(w.received, all);
    assert_eq!(w.calls, 1, "one vectored write for the whole chain");
    assert_eq!(w.iovecs, [4]);
    assert!(chain.is_empty());
    assert_eq!(pool.stats().bufs_in_use, 0);
}

/// A writer that takes 1 byte per call still gets every byte in order, one write_vectored per byte.
#[test]
fn write_to_one_byte_per_call() {
    let pool = pool64();
    let (mut chain, all) = chain_of(&pool, &[3, 1, 5, 2]);
    let mut w = ScriptedWriter::new(&[Step::Accept(1)]);
    assert_eq!(chain.write_to(&mut w).expect("write"), 11);
    assert_eq!(w.received, all);
    assert_eq!(w.calls, 11);
    assert!(chain.is_empty());
}

/// A writer that takes 7 bytes per call (splitting parts mid-way) still gets every byte in order.
#[test]
fn write_to_seven_bytes_per_call() {
    let pool = pool64();
    let (mut chain, all) = chain_of(&pool, &[5, 9, 13, 2, 30]);
    let mut w = ScriptedWriter::new(&[Step::Accept(7)]);
    assert_eq!(chain.write_to(&mut w).expect("write"), all.len());
    assert_eq!(w.received, all);
    assert_eq!(w.calls, all.len().div_ceil(7));
}

/// Each slice is released as soon as it is fully written: after each 64-byte write one fewer buf is in use.
#[test]
fn write_to_releases_each_slice_once_written() {
    let pool = pool64();
    let mut chain = Chain::new();
    {
        let mut alloc = pool.allocator(0);
        for fill in 0..4u8 {
            chain.push_back(alloc.copy_from_slice(&[fill; 64])); // one buf each
        }
    }
    assert_eq!(pool.stats().bufs_in_use, 4);
    let seen = RefCell::new(Vec::new());
    struct Probe<'a> {
        pool: &'a Pool,
        seen: &'a RefCell<Vec<usize>>,
    }
    impl Write for Probe<'_> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.seen.borrow_mut().push(self.pool.stats().bufs_in_use);
            Ok(buf.len().min(64))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    chain.write_to(&mut Probe { pool: &pool, seen: &seen }).expect("write");
    assert_eq!(*seen.borrow(), [4, 3, 2, 1], "bufs in use at each write");
    assert_eq!(pool.stats().bufs_in_use, 0);
}

/// WouldBlock mid-way returns the error with the unwritten part kept; a later call sends exactly the rest.
#[test]
fn write_to_would_block_keeps_the_rest() {
    let pool = pool64();
    let (mut chain, all) = chain_of(&pool, &[6, 6, 6]);
    let mut w =
        ScriptedWriter::new(&[Step::Accept(4), Step::Accept(5), Step::Fail(io::ErrorKind::WouldBlock)]);
    let err = chain.write_to(&mut w).expect_err("blocked");
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    assert_eq!(w.received, &all[..9]);
    assert_eq!(chain.len(), 9);
    assert_eq!(contents(&chain), &all[9..]);
    assert_eq!(part_lens(&chain), [3, 6], "the part written in part lost only its front");

    let mut rest = ScriptedWriter::new(&[Step::Accept(usize::MAX)]);
    assert_eq!(chain.write_to(&mut rest).expect("write"), 9);
    assert_eq!([w.received, rest.received].concat(), all);
}

/// Interrupted is retried: every byte arrives and write_to returns Ok.
#[test]
fn write_to_retries_interrupted() {
    let pool = pool64();
    let (mut chain, all) = chain_of(&pool, &[8, 8]);
    let interrupted = Step::Fail(io::ErrorKind::Interrupted);
    let mut w =
        ScriptedWriter::new(&[interrupted, Step::Accept(5), interrupted, interrupted, Step::Accept(100)]);
    assert_eq!(chain.write_to(&mut w).expect("write"), 16);
    assert_eq!(w.received, all);
    assert_eq!(w.calls, 5);
}

/// A writer that accepts nothing is a WriteZero error, with the chain untouched.
#[test]
fn write_to_write_zero() {
    let pool = pool64();
    let (mut chain, all) = chain_of(&pool, &[4, 4]);
    let mut w = ScriptedWriter::new(&[Step::Accept(3), Step::Accept(0)]);
    assert_eq!(chain.write_to(&mut w).expect_err("no progress").kind(), io::ErrorKind::WriteZero);
    assert_eq!(contents(&chain), &all[3..]);
}

/// Other errors are returned as they are, with the unwritten part kept.
#[test]
fn write_to_passes_other_errors_on() {
    let pool = pool64();
    let (mut chain, all) = chain_of(&pool, &[4, 4]);
    let mut w = ScriptedWriter::new(&[Step::Accept(2), Step::Fail(io::ErrorKind::BrokenPipe)]);
    assert_eq!(chain.write_to(&mut w).expect_err("broken").kind(), io::ErrorKind::BrokenPipe);
    assert_eq!(contents(&chain), &all[2..]);
}

/// A writer claiming more bytes than it was offered is an InvalidData error, consuming nothing.
#[test]
fn write_to_rejects_a_lying_writer() {
    let pool = pool64();
    let (mut chain, all) = chain_of(&pool, &[4, 4]);
    let mut w = ScriptedWriter::new(&[Step::Claim(9)]);
    assert_eq!(chain.write_to(&mut w).expect_err("lying").kind(), io::ErrorKind::InvalidData);
    assert_eq!(contents(&chain), all);
}

/// With more than 64 parts, each write_vectored is offered at most 64 IoSlices and every byte still arrives in order.
#[test]
fn write_to_offers_at_most_64_iovecs() {
    let pool = pool64();
    let (mut chain, all) = chain_of(&pool, &[2; 150]);
    let mut w = ScriptedWriter::new(&[Step::Accept(usize::MAX)]);
    assert_eq!(chain.write_to(&mut w).expect("write"), 300);
    assert_eq!(w.iovecs, [64, 64, 22]);
    assert_eq!(w.received, all);
}

/// write_to on an empty chain writes nothing and makes no call.
#[test]
fn write_to_empty_chain() {
    let mut w = ScriptedWriter::new(&[Step::Accept(0)]);
    assert_eq!(Chain::new().write_to(&mut w).expect("nothing to write"), 0);
    assert_eq!(w.calls, 0);
}

// ---------------------------------------------------------------------------
// io::Read
// ---------------------------------------------------------------------------

/// Reads drain the parts in order across part boundaries, releasing each slice once consumed, and return 0 at the end.
#[test]
fn read_drains_in_order_and_releases() {
    let pool = pool64();
    let mut chain = Chain::new();
    {
        let mut alloc = pool.allocator(0);
        chain.push_back(alloc.copy_from_slice(&[1; 64]));
        chain.push_back(alloc.copy_from_slice(&[2; 10]));
        chain.push_back(alloc.copy_from_slice(&[3; 64]));
    }
    assert_eq!(pool.stats().bufs_in_use, 3);
    let mut dst = [0; 60];
    assert_eq!(chain.read(&mut dst).expect("read"), 60);
    assert_eq!(dst, [1; 60]);
    assert_eq!(pool.stats().bufs_in_use, 3);
    assert_eq!(chain.read(&mut dst[..8]).expect("read"), 8);
    assert_eq!(dst[..8], [1, 1, 1, 1, 2, 2, 2, 2]);
    assert_eq!(pool.stats().bufs_in_use, 2, "the first slice is released once read");
    let mut rest = Vec::new();
    chain.read_to_end(&mut rest).expect("read");
    assert_eq!(rest, [[2; 6].as_slice(), &[3; 64]].concat());
    assert_eq!(pool.stats().bufs_in_use, 0);
    assert_eq!(chain.read(&mut dst).expect("read at end"), 0);
}

/// A read into an empty buffer reads nothing and consumes nothing.
#[test]
fn read_into_empty_buffer() {
    let pool = pool64();
    let (mut chain, all) = chain_of(&pool, &[3]);
    assert_eq!(chain.read(&mut []).expect("read"), 0);
    assert_eq!(contents(&chain), all);
}

// ---------------------------------------------------------------------------
// Buf
// ---------------------------------------------------------------------------

/// Chain passes the generic Buf checks over several parts of different sizes, one part, and none.
#[test]
fn chain_buf_conforms() {
    let pool = pool64();
    let lens = [1, 5, 2, 9, 1, 4];
    let (_, all) = chain_of(&pool, &lens);
    common::assert_buf_conforms(|| chain_of(&pool, &lens).0, &all);
    common::assert_buf_conforms(|| chain_of(&pool, &[7]).0, &all[..7]);
    common::assert_buf_conforms(Chain::new, &[]);
}

/// chunks_vectored fills one IoSlice per part over the parts' own memory, as many as fit.
#[test]
fn chunks_vectored_points_at_the_parts() {
    let pool = pool64();
    let (chain, _) = chain_of(&pool, &[3, 4, 5]);
    let mut dst = [IoSlice::new(&[]); 8];
    assert_eq!(chain.chunks_vectored(&mut dst), 3);
    for (iov, part) in dst.iter().zip(chain.iter()) {
        assert_eq!(iov.as_ptr(), part.as_ptr());
        assert_eq!(iov.len(), part.len());
    }
    assert_eq!(chain.chunks_vectored(&mut dst[..2]), 2);
    assert_eq!(Chain::new().chunks_vectored(&mut dst), 0);
}

/// copy_to_bytes is zero copy where the range lies in the front part (part of it or all of it) and a correct copy where it spans parts.
#[test]
fn copy_to_bytes_zero_copy_in_front_part() {
    let pool = pool64();
    let (mut chain, all) = chain_of(&pool, &[6, 4, 4]);
    let front = chain.iter().next().expect("a part").as_ptr();
    let head = chain.copy_to_bytes(2);
    assert_eq!(head.as_ptr(), front);
    let rest_of_front = chain.copy_to_bytes(4);
    assert_eq!(rest_of_front.as_ptr(), front.wrapping_add(2));
    assert_eq!(part_lens(&chain), [4, 4]);
    let spanning = chain.copy_to_bytes(6);
    assert_eq!(&spanning[..], &all[6..12]);
    assert_eq!(contents(&chain), &all[12..]);
    assert_eq!(chain.len(), 2);
}

/// Buf::advance releases each slice consumed whole and truncates the front of a part consumed in part.
#[test]
fn advance_releases_consumed_slices() {
    let pool = pool64();
    let mut chain = Chain::new();
    {
        let mut alloc = pool.allocator(0);
        chain.push_back(alloc.copy_from_slice(&[1; 64]));
        chain.push_back(alloc.copy_from_slice(&[2; 64]));
    }
    chain.advance(64);
    assert_eq!(pool.stats().bufs_in_use, 1);
    chain.advance(10);
    assert_eq!(part_lens(&chain), [54]);
    assert_eq!(chain.get_u8(), 2);
}
