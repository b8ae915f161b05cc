//! `Chain::poll_write_to` and `Chain::write_all_async` (feature `tokio`):
//! one `poll_write_vectored` per attempt over partial, pending, interrupted
//! and failing writers, slices released as they are written, cancel safety,
//! and a real `tokio::io::duplex` pipe.
//!
//! Most tests drive the futures by hand with `Waker::noop()` against a
//! scripted `AsyncWrite`, so they say exactly how many polls and writes
//! happened; two run on a `current_thread` tokio runtime over
//! `tokio::io::duplex`. All of them run under Miri (about 25 s).
#![cfg(feature = "tokio")]

use std::cell::RefCell;
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};

use refbuf::{Chain, Pool};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};

#[path = "common/chains.rs"]
mod chains;

use chains::{ScriptedWriter, Step, chain_of, contents, part_lens, pool64};

/// Polls `f` once with a waker that does nothing.
fn poll_once<F: Future + ?Sized>(f: Pin<&mut F>) -> Poll<F::Output> {
    f.poll(&mut Context::from_waker(Waker::noop()))
}

/// Runs `f` to completion by polling it with a waker that does nothing, for
/// writers that return `Pending` only a few times; panics after 10,000 polls.
fn run<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    for _ in 0..10_000 {
        if let Poll::Ready(out) = poll_once(f.as_mut()) {
            return out;
        }
    }
    panic!("the future is still pending after 10,000 polls");
}

/// `chain.poll_write_to(w)` polled once with a noop waker.
fn poll_write_to(chain: &mut Chain, w: &mut ScriptedWriter) -> Poll<io::Result<usize>> {
    chain.poll_write_to(&mut Context::from_waker(Waker::noop()), Pin::new(w))
}

// ---------------------------------------------------------------------------
// write_all_async
// ---------------------------------------------------------------------------

/// write_all_async writes every byte in order with one poll_write_vectored for the whole chain, empties it and releases the bufs.
#[test]
fn write_all_async_writes_everything() {
    let pool = pool64();
    let (mut chain, all) = chain_of(&pool, &[10, 40, 1, 20]);
    let mut w = ScriptedWriter::new(&[Step::Accept(usize::MAX)]);
    run(chain.write_all_async(&mut w)).expect("write");
    assert_eq!(w.received, all);
    assert_eq!(w.calls, 1, "one vectored write for the whole chain");
    assert_eq!(w.iovecs, [4]);
    assert!(chain.is_empty());
    assert_eq!(pool.stats().bufs_in_use, 0);
}

/// A writer that takes 1 byte per call still gets every byte in order, one poll_write_vectored per byte.
#[test]
fn write_all_async_one_byte_per_call() {
    let pool = pool64();
    let (mut chain, all) = chain_of(&pool, &[3, 1, 5, 2]);
    let mut w = ScriptedWriter::new(&[Step::Accept(1)]);
    run(chain.write_all_async(&mut w)).expect("write");
    assert_eq!(w.received, all);
    assert_eq!(w.calls, 11);
    assert!(chain.is_empty());
}

/// A writer that takes 7 bytes per call (splitting parts mid-way), returning Pending between writes, still gets every byte in order.
#[test]
fn write_all_async_seven_bytes_per_call_with_pending_between() {
    let pool = pool64();
    let (mut chain, all) = chain_of(&pool, &[5, 9, 13, 2, 30]);
    let mut w = ScriptedWriter::new(&[Step::Accept(7), Step::Pending].repeat(all.len()));
    run(chain.write_all_async(&mut w)).expect("write");
    assert_eq!(w.received, all);
    let writes = all.len().div_ceil(7);
    assert_eq!(w.calls, 2 * writes - 1, "a Pending after every write but the last");
    assert!(chain.is_empty());
}

/// Each slice is released as soon as it is fully written: at each 64-byte write one fewer buf is in use.
#[test]
fn write_all_async_releases_each_slice_once_written() {
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
    impl AsyncWrite for Probe<'_> {
        fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            self.seen.borrow_mut().push(self.pool.stats().bufs_in_use);
            Poll::Ready(Ok(buf.len().min(64)))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }
    run(chain.write_all_async(&mut Probe { pool: &pool, seen: &seen })).expect("write");
    assert_eq!(*seen.borrow(), [4, 3, 2, 1], "bufs in use at each write");
    assert_eq!(pool.stats().bufs_in_use, 0);
}

/// Interrupted is retried: every byte arrives and write_all_async returns Ok.
#[test]
fn write_all_async_retries_interrupted() {
    let pool = pool64();
    let (mut chain, all) = chain_of(&pool, &[8, 8]);
    let interrupted = Step::Fail(io::ErrorKind::Interrupted);
    let mut w =
        ScriptedWriter::new(&[interrupted, Step::Accept(5), interrupted, interrupted, Step::Accept(100)]);
    run(chain.write_all_async(&mut w)).expect("write");
    assert_eq!(w.received, all);
    assert_eq!(w.calls, 5);
}

/// A writer that accepts nothing is a WriteZero error, with the unwritten bytes kept.
#[test]
fn write_all_async_write_zero() {
    let pool = pool64();
    let (mut chain, all) = chain_of(&pool, &[4, 4]);
    let mut w = ScriptedWriter::new(&[Step::Accept(3), Step::Accept(0)]);
    let err = run(chain.write_all_async(&mut w)).expect_err("no progress");
    assert_eq!(err.kind(), io::ErrorKind::WriteZero);
    assert_eq!(contents(&chain), &all[3..]);
}

/// A writer claiming more bytes than it was offered is an InvalidData error, consuming nothing.
#[test]
fn write_all_async_rejects_a_lying_writer() {
    let pool = pool64();
    let (mut chain, all) = chain_of(&pool, &[4, 4]);
    let mut w = ScriptedWriter::new(&[Step::Claim(9)]);
    let err = run(chain.write_all_async(&mut w)).expect_err("lying");
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    assert_eq!(contents(&chain), all);
}

/// Other errors are returned as they are, with the unwritten part kept; a later call sends exactly the rest.
#[test]
fn write_all_async_passes_other_errors_on() {
    let pool = pool64();
    let (mut chain, all) = chain_of(&pool, &[4, 4]);
    let mut w = ScriptedWriter::new(&[Step::Accept(2), Step::Fail(io::ErrorKind::BrokenPipe)]);
    let err = run(chain.write_all_async(&mut w)).expect_err("broken");
    assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    assert_eq!(contents(&chain), &all[2..]);
    let mut rest = ScriptedWriter::new(&[Step::Accept(usize::MAX)]);
    run(chain.write_all_async(&mut rest)).expect("write");
    assert_eq!([w.received, rest.received].concat(), all);
}

/// With more than 64 parts, each poll_write_vectored is offered at most 64 IoSlices and every byte still arrives in order.
#[test]
fn write_all_async_offers_at_most_64_iovecs() {
    let pool = pool64();
    let (mut chain, all) = chain_of(&pool, &[2; 150]);
    let mut w = ScriptedWriter::new(&[Step::Accept(usize::MAX)]);
    run(chain.write_all_async(&mut w)).expect("write");
    assert_eq!(w.iovecs, [64, 64, 22]);
    assert_eq!(w.received, all);
}

/// write_all_async on an empty chain is ready at once and makes no call.
#[test]
fn write_all_async_empty_chain() {
    let mut w = ScriptedWriter::new(&[Step::Fail(io::ErrorKind::BrokenPipe)]);
    let mut chain = Chain::new();
    {
        let f = pin!(chain.write_all_async(&mut w));
        assert!(matches!(poll_once(f), Poll::Ready(Ok(()))));
    }
    assert_eq!(w.calls, 0);
}

// ---------------------------------------------------------------------------
// poll_write_to
// ---------------------------------------------------------------------------

/// poll_write_to makes one write per call and returns its count; Pending writes nothing and leaves the chain as it was; an empty chain is Ready(Ok(0)) without a call.
#[test]
fn poll_write_to_one_write_per_call() {
    let pool = pool64();
    let (mut chain, all) = chain_of(&pool, &[6, 6, 6]);
    let mut w =
        ScriptedWriter::new(&[Step::Accept(4), Step::Accept(5), Step::Pending, Step::Accept(usize::MAX)]);
    assert!(matches!(poll_write_to(&mut chain, &mut w), Poll::Ready(Ok(4))));
    assert_eq!((w.calls, contents(&chain)), (1, all[4..].to_vec()));
    assert!(matches!(poll_write_to(&mut chain, &mut w), Poll::Ready(Ok(5))));
    assert_eq!((w.calls, contents(&chain)), (2, all[9..].to_vec()));
    assert_eq!(part_lens(&chain), [3, 6], "the part written in part lost only its front");
    assert!(poll_write_to(&mut chain, &mut w).is_pending());
    assert_eq!((w.calls, contents(&chain)), (3, all[9..].to_vec()), "Pending consumes nothing");
    assert!(matches!(poll_write_to(&mut chain, &mut w), Poll::Ready(Ok(9))));
    assert!(chain.is_empty());
    assert!(matches!(poll_write_to(&mut chain, &mut w), Poll::Ready(Ok(0))));
    assert_eq!(w.calls, 4, "no call for an empty chain");
    assert_eq!(w.received, all);
}

/// poll_write_to retries Interrupted within the call, returning the count of the write that followed.
#[test]
fn poll_write_to_retries_interrupted_within_the_call() {
    let pool = pool64();
    let (mut chain, all) = chain_of(&pool, &[8, 8]);
    let interrupted = Step::Fail(io::ErrorKind::Interrupted);
    let mut w =
        ScriptedWriter::new(&[interrupted, Step::Accept(5), interrupted, interrupted, Step::Accept(100)]);
    assert!(matches!(poll_write_to(&mut chain, &mut w), Poll::Ready(Ok(5))));
    assert_eq!(w.calls, 2);
    assert!(matches!(poll_write_to(&mut chain, &mut w), Poll::Ready(Ok(11))));
    assert_eq!(w.calls, 5);
    assert_eq!(w.received, all);
}

/// An error from poll_write_to writes nothing: the chain is exactly as it was before the call.
#[test]
fn poll_write_to_error_consumes_nothing() {
    let pool = pool64();
    let (mut chain, all) = chain_of(&pool, &[4, 4]);
    let mut w = ScriptedWriter::new(&[Step::Accept(3), Step::Fail(io::ErrorKind::ConnectionReset)]);
    assert!(matches!(poll_write_to(&mut chain, &mut w), Poll::Ready(Ok(3))));
    match poll_write_to(&mut chain, &mut w) {
        Poll::Ready(Err(e)) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset),
        other => panic!("expected the reset, got {other:?}"),
    }
    assert_eq!(contents(&chain), &all[3..]);
    assert_eq!(part_lens(&chain), [1, 4]);
}

// ---------------------------------------------------------------------------
// Cancel safety
// ---------------------------------------------------------------------------

/// A write_all_async future dropped while Pending, after the writer took 4 then 5 bytes, leaves exactly the 9 unwritten bytes in the chain; writing again sends exactly those.
#[test]
fn dropped_future_leaves_exactly_the_unwritten_bytes() {
    let pool = pool64();
    let (mut chain, all) = chain_of(&pool, &[6, 6, 6]);
    let mut w = ScriptedWriter::new(&[Step::Accept(4), Step::Accept(5), Step::Pending]);
    {
        let mut f = pin!(chain.write_all_async(&mut w));
        assert!(poll_once(f.as_mut()).is_pending());
        assert!(poll_once(f.as_mut()).is_pending());
    }
    assert_eq!(w.calls, 4, "4 bytes, 5 bytes, Pending, Pending");
    assert_eq!(w.received, &all[..9]);
    assert_eq!(chain.len(), 9);
    assert_eq!(contents(&chain), &all[9..]);
    assert_eq!(part_lens(&chain), [3, 6]);

    let mut rest = ScriptedWriter::new(&[Step::Accept(usize::MAX)]);
    run(chain.write_all_async(&mut rest)).expect("write");
    assert_eq!(rest.received, &all[9..]);
    assert_eq!([w.received, rest.received].concat(), all);
    assert_eq!(pool.stats().bufs_in_use, 0);
}

/// A write_all_async future dropped before its first poll writes nothing and leaves the chain whole.
#[test]
fn future_dropped_unpolled_writes_nothing() {
    let pool = pool64();
    let (mut chain, all) = chain_of(&pool, &[6, 6]);
    let mut w = ScriptedWriter::new(&[Step::Accept(usize::MAX)]);
    drop(chain.write_all_async(&mut w));
    assert_eq!(w.calls, 0);
    assert_eq!(contents(&chain), all);
}

/// Slices fully written before the future was dropped have already gone back to the pool; the rest stay held by the chain.
#[test]
fn dropped_future_has_released_the_written_slices() {
    let pool = pool64();
    let mut chain = Chain::new();
    {
        let mut alloc = pool.allocator(0);
        for fill in 0..3u8 {
            chain.push_back(alloc.copy_from_slice(&[fill; 64])); // one buf each
        }
    }
    let mut w = ScriptedWriter::new(&[Step::Accept(70), Step::Pending]);
    {
        let mut f = pin!(chain.write_all_async(&mut w));
        assert!(poll_once(f.as_mut()).is_pending());
    }
    assert_eq!(pool.stats().bufs_in_use, 2, "the first slice went back when written");
    assert_eq!(part_lens(&chain), [58, 64]);
    assert_eq!(contents(&chain), [[1; 58].as_slice(), &[2; 64]].concat());
}

// ---------------------------------------------------------------------------
// On a tokio runtime
// ---------------------------------------------------------------------------

/// An AsyncWrite that forwards to `inner` and counts the writes that made progress and the Pendings.
struct Counted<W> {
    inner: W,
    writes: usize,
    pendings: usize,
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Counted<W> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        match poll {
            Poll::Ready(Ok(_)) => this.writes += 1,
            Poll::Pending => this.pendings += 1,
            Poll::Ready(Err(_)) => {}
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Over a tokio duplex pipe with a 16-byte buffer, read concurrently on the other side, write_all_async delivers every byte of a 60-part chain in order through many partial writes and Pendings, and releases every buf.
#[tokio::test]
async fn duplex_with_a_small_buffer() {
    let pool = Pool::builder().buf_size(256).build();
    let lens: Vec<usize> = (0..60).map(|i| 1 + (i * 37) % 53).collect();
    let (mut chain, all) = chain_of(&pool, &lens);
    let (client, mut server) = tokio::io::duplex(16);
    let mut client = Counted { inner: client, writes: 0, pendings: 0 };

    let write = async {
        chain.write_all_async(&mut client).await.expect("write");
        client.shutdown().await.expect("shutdown"); // the reader then sees the end
    };
    let read = async {
        let mut got = Vec::new();
        let mut buf = [0; 5];
        loop {
            let n = server.read(&mut buf).await.expect("read");
            if n == 0 {
                break got;
            }
            got.extend_from_slice(&buf[..n]);
        }
    };
    let (got, ()) = tokio::join!(read, write);

    assert_eq!(got.len(), all.len());
    assert_eq!(got, all);
    assert!(chain.is_empty());
    assert!(client.writes >= all.len() / 16, "partial writes: {} for {} bytes", client.writes, all.len());
    assert!(client.pendings > 0, "the full pipe made the writer wait");
    assert_eq!(pool.stats().bufs_in_use, 0);
}

/// write_all_async losing a tokio::select! to another branch while the pipe is full leaves exactly the bytes the pipe did not take; a second write_all_async sends exactly the rest.
#[tokio::test]
async fn cancelled_by_select_then_resumed() {
    let pool = pool64();
    let (mut chain, all) = chain_of(&pool, &[10, 20, 30, 40]);
    let (mut client, mut server) = tokio::io::duplex(16);

    tokio::select! {
        biased;
        _ = chain.write_all_async(&mut client) => panic!("a 16-byte pipe cannot take 100 bytes"),
        () = std::future::ready(()) => {}
    }
    assert_eq!(chain.len(), 100 - 16);
    assert_eq!(contents(&chain), &all[16..]);

    let mut got = vec![0; all.len()];
    let (written, read) = tokio::join!(chain.write_all_async(&mut client), server.read_exact(&mut got));
    written.expect("write");
    read.expect("read");
    assert_eq!(got, all);
    assert!(chain.is_empty());
}
