//! Checks shared by `tests/bytes_interop.rs` and `tests/chain.rs`: a `Buf`
//! must meet the `bytes` crate's own expectations.

use std::io::{IoSlice, Read};
use std::panic::{AssertUnwindSafe, catch_unwind};

use bytes::Buf;

/// Checks every `Buf` method against `expected`, the bytes the buffer holds,
/// on fresh buffers from `make`: `remaining`, `chunk`, `advance` in steps of
/// 1 to 9 bytes, `chunks_vectored` with 0 to 3 and 64 slots, `copy_to_bytes`
/// at every split point, `copy_to_slice`, `reader`, and the panic on
/// advancing or copying past the end.
pub fn assert_buf_conforms<B: Buf>(make: impl Fn() -> B, expected: &[u8]) {
    let buf = make();
    assert_eq!(buf.remaining(), expected.len());
    assert_eq!(buf.has_remaining(), !expected.is_empty());
    assert!(expected.starts_with(buf.chunk()), "chunk is not a prefix");
    assert_eq!(buf.chunk().is_empty(), expected.is_empty(), "chunk is empty iff nothing remains");

    for step in 1..=9 {
        let mut buf = make();
        let mut seen = Vec::new();
        while buf.has_remaining() {
            let take = step.min(buf.chunk().len());
            seen.extend_from_slice(&buf.chunk()[..take]);
            buf.advance(take);
            assert_eq!(buf.remaining(), expected.len() - seen.len(), "remaining after advance");
        }
        assert_eq!(seen, expected, "walked in steps of {step}");
        assert!(buf.chunk().is_empty());
    }

    for slots in [0, 1, 2, 3, 64] {
        let buf = make();
        let mut dst = vec![IoSlice::new(&[]); slots];
        let n = buf.chunks_vectored(&mut dst);
        assert!(n <= slots);
        let joined: Vec<u8> = dst[..n].iter().flat_map(|s| s.iter().copied()).collect();
        assert!(expected.starts_with(&joined), "chunks_vectored is not a prefix with {slots} slots");
        if slots > 0 && !expected.is_empty() {
            assert!(dst[..n].iter().any(|s| !s.is_empty()), "no non-empty slice with {slots} slots");
        }
        if slots == 64 {
            assert_eq!(joined, expected, "64 slots hold every part");
        }
    }

    for at in 0..=expected.len() {
        let mut buf = make();
        let front = buf.copy_to_bytes(at);
        assert_eq!(&front[..], &expected[..at]);
        assert_eq!(buf.remaining(), expected.len() - at);
        let mut rest = vec![0; buf.remaining()];
        buf.copy_to_slice(&mut rest);
        assert_eq!(rest, &expected[at..]);
    }

    let mut read = Vec::new();
    make().reader().read_to_end(&mut read).expect("reading a Buf cannot fail");
    assert_eq!(read, expected);

    let past = expected.len() + 1;
    assert!(catch_unwind(AssertUnwindSafe(|| make().advance(past))).is_err(), "advance past the end");
    assert!(
        catch_unwind(AssertUnwindSafe(|| make().copy_to_bytes(past))).is_err(),
        "copy_to_bytes past the end"
    );
}
