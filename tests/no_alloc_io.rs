//! Heap allocations on the IO paths, counted by a `#[global_allocator]`:
//! once the pool is warm, `Chain::write_to`, `fill_with` and `Writer`
//! allocate nothing, nor (feature `tokio`) `Chain::write_all_async`,
//! `AsyncReader::read` and `Allocator::ready` with the `try_` forms; and
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

/// Polls `f` to completion with a waker that does nothing (the source and
/// the pool here are always ready within a few polls), counting the polls.
#[cfg(feature = "tokio")]
fn block_on_noop<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(out) = f.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

/// A tokio source of length-prefixed frames, forever, that hands out at
/// most 1000 bytes a call and returns `Pending` before every other call.
#[cfg(feature = "tokio")]
struct FrameSource {
    frame: [u8; 104],
    at: usize,
    pend_next: bool,
}

#[cfg(feature = "tokio")]
impl tokio::io::AsyncRead for FrameSource {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        let this = self.get_mut();
        this.pend_next = !this.pend_next;
        if !this.pend_next {
            cx.waker().wake_by_ref();
            return std::task::Poll::Pending;
        }
        let mut left = buf.remaining().min(1000);
        while left > 0 {
            let n = left.min(this.frame.len() - this.at);
            buf.put_slice(&this.frame[this.at..this.at + n]);
            this.at = (this.at + n) % this.frame.len();
            left -= n;
        }
        std::task::Poll::Ready(Ok(()))
    }
}

/// Reading frames (a 4-byte length, then the payload) with AsyncReader::read over a source that pends
/// between reads, polled by hand, allocates nothing once the pool is warm. The bufs are small enough
/// that even Miri's short warm-up sees a frame straddle the end of one (the header still alive, so a
/// second buf is taken), which steady state then reuses.
#[cfg(feature = "tokio")]
#[test]
fn async_reader_read_allocates_nothing() {
    let pool = Pool::builder().buf_size(1024).build();
    let mut frame = [7u8; 104];
    frame[..4].copy_from_slice(&100u32.to_be_bytes());
    let mut reader = pool.async_reader(FrameSource { frame, at: 0, pend_next: false });
    let round = |reader: &mut refbuf::AsyncReader<FrameSource>| {
        block_on_noop(async {
            let len = reader.read(4).await.expect("header");
            let n = u32::from_be_bytes(len[..].try_into().expect("4 bytes")) as usize;
            let body = reader.read(n).await.expect("body");
            assert!(body.iter().all(|&b| b == 7));
        });
    };
    assert_eq!(steady_state_allocations(|| round(&mut reader)), 0);
}

/// Allocator::ready and then the try_ forms allocate nothing once the pool is warm.
#[cfg(feature = "tokio")]
#[test]
fn ready_then_try_allocates_nothing() {
    let pool = Pool::builder().buf_size(4096).build();
    let mut alloc = pool.allocator(8);
    let data = [3u8; 300];
    let round = |alloc: &mut refbuf::Allocator| {
        block_on_noop(alloc.ready(300)).expect("room");
        let a = alloc.try_copy_from_slice(&data).expect("ready made room");
        block_on_noop(alloc.ready(300)).expect("room");
        let b = alloc.try_alloc(300).expect("ready made room");
        assert_eq!((a.len(), b.len()), (300, 300));
    };
    assert_eq!(steady_state_allocations(|| round(&mut alloc)), 0);
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
