//! Heap allocations on the IO paths, counted by a `#[global_allocator]`:
//! once the pool is warm, `Chain::write_to`, `Chain::write_all_async`
//! (feature `tokio`), `fill_with` and `Writer` allocate nothing, and
//! `into_bytes` allocates once (the owner record).
//!
//! Counts are per thread (`tests/common/counting.rs`), so tests running in
//! parallel do not disturb each other.

use std::io::{self, IoSlice, Read, Write};

use refbuf::{Chain, Pool};

#[path = "common/counting.rs"]
mod counting;

use counting::allocations_in;

#[global_allocator]
static GLOBAL: counting::Counting = counting::Counting;

/// Heap allocations made by `rounds` runs of `round`, after as many runs to
/// warm the pool up (it needs a second buf once a round straddles the end
/// of the first).
fn steady_state_allocations(mut round: impl FnMut()) -> u64 {
    let rounds = if cfg!(miri) { 20 } else { 2_000 };
    for _ in 0..rounds {
        round();
    }
    allocations_in(|| {
        for _ in 0..rounds {
            round();
        }
    })
}

/// A writer into a fixed array that takes at most 7 bytes per call.
struct Trickle {
    sink: [u8; 4096],
    at: usize,
}

impl Write for Trickle {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut n = 0;
        for buf in bufs {
            let k = buf.len().min(7 - n).min(self.sink.len() - self.at);
            self.sink[self.at..self.at + k].copy_from_slice(&buf[..k]);
            self.at += k;
            n += k;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Building a header + payload chain and writing it with write_to (in 7-byte partial writes) allocates nothing once the pool is warm.
#[test]
fn chain_write_to_allocates_nothing() {
    let pool = Pool::builder().buf_size(1024).build();
    let mut alloc = pool.allocator(0);
    let mut out = Trickle { sink: [0; 4096], at: 0 };
    let round = |alloc: &mut refbuf::Allocator, out: &mut Trickle| {
        out.at = 0;
        let mut chain = Chain::from(alloc.copy_from_slice(b"payload bytes"));
        chain.push_front(alloc.copy_from_slice(&13u32.to_be_bytes()));
        chain.push_back(alloc.copy_from_slice(b"trailer"));
        assert_eq!(chain.write_to(out).expect("write"), 24);
        assert_eq!(&out.sink[..24], b"\0\0\0\x0dpayload bytestrailer");
    };
    assert_eq!(steady_state_allocations(|| round(&mut alloc, &mut out)), 0);
}

/// `Trickle` as a tokio `AsyncWrite` that returns `Pending` before every
/// write, so the future is polled twice per write.
#[cfg(feature = "tokio")]
struct PendingTrickle {
    trickle: Trickle,
    /// Whether the next call returns `Pending`.
    pend_next: bool,
}

#[cfg(feature = "tokio")]
impl tokio::io::AsyncWrite for PendingTrickle {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> std::task::Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.pend_next {
            this.pend_next = false;
            cx.waker().wake_by_ref();
            return std::task::Poll::Pending;
        }
        this.pend_next = true;
        std::task::Poll::Ready(this.trickle.write_vectored(bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// Building a header + payload chain and writing it with write_all_async (7-byte partial writes, a Pending before each), polled by hand with a noop waker, allocates nothing once the pool is warm.
#[cfg(feature = "tokio")]
#[test]
fn chain_write_all_async_allocates_nothing() {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};

    let pool = Pool::builder().buf_size(1024).build();
    let mut alloc = pool.allocator(0);
    let mut out = PendingTrickle { trickle: Trickle { sink: [0; 4096], at: 0 }, pend_next: true };
    let round = |alloc: &mut refbuf::Allocator, out: &mut PendingTrickle| {
        out.trickle.at = 0;
        let mut chain = Chain::from(alloc.copy_from_slice(b"payload bytes"));
        chain.push_front(alloc.copy_from_slice(&13u32.to_be_bytes()));
        chain.push_back(alloc.copy_from_slice(b"trailer"));
        let mut polls = 1;
        {
            let mut write = std::pin::pin!(chain.write_all_async(&mut *out));
            let mut cx = Context::from_waker(Waker::noop());
            let written = loop {
                match write.as_mut().poll(&mut cx) {
                    Poll::Ready(written) => break written,
                    Poll::Pending => polls += 1,
                }
            };
            written.expect("write");
        }
        assert_eq!(polls, 5, "a Pending before each of the 4 writes, then done");
        assert!(chain.is_empty());
        assert_eq!(&out.trickle.sink[..24], b"\0\0\0\x0dpayload bytestrailer");
    };
    assert_eq!(steady_state_allocations(|| round(&mut alloc, &mut out)), 0);
}

/// Receiving with fill_with and dropping the slice allocates nothing once the pool is warm.
#[test]
fn fill_with_allocates_nothing() {
    let pool = Pool::builder().buf_size(1024).build();
    let mut alloc = pool.allocator(8);
    let datagram = [0x5A; 300];
    let round = |alloc: &mut refbuf::Allocator| {
        let mut src = &datagram[..];
        let mut s = alloc.fill_with(1500, |buf| src.read(buf)).expect("fill");
        assert!(s.prepend(&[1; 8]));
        assert_eq!(s.len(), 308);
    };
    assert_eq!(steady_state_allocations(|| round(&mut alloc)), 0);
}

/// Writing through a Writer (up to four parts) and finishing it allocates nothing once the pool is warm.
#[test]
fn writer_allocates_nothing() {
    let pool = Pool::builder().buf_size(256).build();
    let mut alloc = pool.allocator(4);
    let round = |alloc: &mut refbuf::Allocator| {
        let mut w = alloc.writer();
        for _ in 0..20 {
            w.write_all(b"twenty bytes of data").expect("write");
        }
        let chain = w.finish();
        assert_eq!(chain.len(), 400);
        assert!(chain.iter().count() <= 3);
    };
    assert_eq!(steady_state_allocations(|| round(&mut alloc)), 0);
}

/// into_bytes makes exactly one allocation for a non-empty slice and none for an empty one; cloning the Bytes makes none.
#[test]
fn into_bytes_allocates_once() {
    let pool = Pool::builder().buf_size(1024).build();
    let mut alloc = pool.allocator(0);
    drop(alloc.copy_from_slice(b"warm"));
    let s = alloc.copy_from_slice(b"frame");
    let mut bytes = None;
    assert_eq!(allocations_in(|| bytes = Some(s.into_bytes())), 1);
    let bytes = bytes.expect("set");
    assert_eq!(allocations_in(|| drop(bytes.clone())), 0);
    let empty = alloc.alloc(0);
    assert_eq!(allocations_in(|| assert!(empty.into_bytes().is_empty())), 0);
}
