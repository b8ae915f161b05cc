//! `Slice` in the `bytes` world: `into_bytes` is zero copy
//! and recycles the buf when the last clone drops; `impl Buf for Slice`
//! meets the `bytes` crate's expectations.

mod common;

use std::io::IoSlice;
use std::thread;

use bytes::{Buf, Bytes};
use refbuf::{Pool, Slice};

fn pool64() -> Pool {
    Pool::builder().buf_size(64).build()
}

/// `(bufs_in_use, bufs_idle)`.
fn in_use_idle(pool: &Pool) -> (usize, usize) {
    let s = pool.stats();
    (s.bufs_in_use, s.bufs_idle)
}

/// into_bytes points the Bytes at the slice's own memory: same pointer, same length, same contents.
#[test]
fn into_bytes_is_zero_copy() {
    let pool = pool64();
    let mut alloc = pool.allocator(4);
    let slice = alloc.copy_from_slice(b"pooled bytes");
    let (at, len) = (slice.as_ptr(), slice.len());
    let bytes = slice.into_bytes();
    assert_eq!(bytes.as_ptr(), at);
    assert_eq!(bytes.len(), len);
    assert_eq!(&bytes[..], b"pooled bytes");
}

/// Clones and sub-slices of the Bytes share the memory, and the buf goes back to the pool only when the last of them drops.
#[test]
fn buf_recycled_when_last_clone_drops() {
    let pool = pool64();
    let mut alloc = pool.allocator(0);
    let bytes = alloc.copy_from_slice(b"0123456789").into_bytes();
    drop(alloc);
    let clone = bytes.clone();
    let middle = bytes.slice(3..6);
    assert_eq!(clone.as_ptr(), bytes.as_ptr());
    assert_eq!(middle.as_ptr(), bytes.as_ptr().wrapping_add(3));
    assert_eq!(&middle[..], b"345");

    drop(bytes);
    assert_eq!(in_use_idle(&pool), (1, 0));
    drop(clone);
    assert_eq!(in_use_idle(&pool), (1, 0), "a sub-slice still holds the buf");
    drop(middle);
    assert_eq!(in_use_idle(&pool), (0, 1), "the last clone gave the buf back");
}

/// The last clone may drop on another thread; the buf still goes back to the pool.
#[test]
fn last_clone_dropped_on_another_thread_recycles() {
    let pool = pool64();
    let bytes = pool.allocator(0).copy_from_slice(b"cross-thread");
    let bytes = bytes.into_bytes();
    let clone = bytes.clone();
    thread::spawn(move || assert_eq!(&clone[..], b"cross-thread")).join().expect("reader thread");
    assert_eq!(in_use_idle(&pool), (1, 0));
    thread::spawn(move || drop(bytes)).join().expect("dropping thread");
    assert_eq!(in_use_idle(&pool), (0, 1));
}

/// An empty slice becomes an empty Bytes and lets go of its buf at once.
#[test]
fn empty_slice_becomes_empty_bytes_and_releases() {
    let pool = pool64();
    let mut alloc = pool.allocator(8);
    let empty = alloc.alloc(0);
    drop(alloc);
    assert_eq!(in_use_idle(&pool), (1, 0));
    let bytes = empty.into_bytes();
    assert!(bytes.is_empty());
    assert_eq!(in_use_idle(&pool), (0, 1));
    assert!(Slice::new().into_bytes().is_empty());
}

/// A Bytes from a slice works where Bytes is expected: equality, conversion to Vec, and slicing keep the contents.
#[test]
fn bytes_from_slice_behaves_like_bytes() {
    let pool = pool64();
    let bytes = pool.allocator(0).copy_from_slice(b"hello world").into_bytes();
    assert_eq!(bytes, Bytes::from_static(b"hello world"));
    assert_eq!(Vec::from(bytes.slice(6..)), b"world");
}

/// Slice passes the generic Buf checks: remaining, chunk, advance, chunks_vectored, copy_to_bytes, reader, panics past the end.
#[test]
fn slice_buf_conforms() {
    let pool = pool64();
    let data: Vec<u8> = (0..40).collect();
    common::assert_buf_conforms(|| pool.allocator(3).copy_from_slice(&data), &data);
    common::assert_buf_conforms(|| pool.allocator(0).alloc(0), &[]);
    common::assert_buf_conforms(Slice::new, &[]);
}

/// advance is truncate_front: the consumed bytes become headroom that expand_front can take back.
#[test]
fn advance_moves_bytes_into_headroom() {
    let pool = pool64();
    let mut s = pool.allocator(2).copy_from_slice(b"abcdef");
    Buf::advance(&mut s, 4);
    assert_eq!(&s[..], b"ef");
    assert_eq!(s.headroom(), 6);
    assert!(s.expand_front(2));
    assert_eq!(&s[..], b"cdef");
}

/// Buf's typed getters read big-endian integers from a slice and consume them.
#[test]
fn typed_getters_read_and_consume() {
    let pool = pool64();
    let mut s = pool.allocator(0).copy_from_slice(b"\x00\x00\x01\x02\xffrest");
    assert_eq!(s.get_u32(), 0x0102);
    assert_eq!(s.get_u8(), 0xff);
    assert_eq!(&s[..], b"rest");
}

/// copy_to_bytes on a slice is zero copy: the Bytes points into the slice's memory, and the slice keeps the rest.
#[test]
fn slice_copy_to_bytes_is_zero_copy() {
    let pool = pool64();
    let mut s = pool.allocator(0).copy_from_slice(b"headbody");
    let at = s.as_ptr();
    let head = s.copy_to_bytes(4);
    assert_eq!(head.as_ptr(), at);
    assert_eq!(&head[..], b"head");
    assert_eq!(&s[..], b"body");
    assert_eq!(s.as_ptr(), at.wrapping_add(4));
}

/// chunks_vectored on a slice fills exactly one IoSlice over the slice's memory, none when empty or given no room.
#[test]
fn slice_chunks_vectored_is_one_slice() {
    let pool = pool64();
    let s = pool.allocator(0).copy_from_slice(b"abc");
    let mut dst = [IoSlice::new(&[]); 4];
    assert_eq!(s.chunks_vectored(&mut dst), 1);
    assert_eq!(dst[0].as_ptr(), s.as_ptr());
    assert_eq!(&*dst[0], b"abc");
    assert_eq!(s.chunks_vectored(&mut []), 0);
    assert_eq!(Slice::new().chunks_vectored(&mut dst), 0);
}
