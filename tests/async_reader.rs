//! The async layer (feature `tokio`): `AsyncReader` with the `Reader`'s
//! semantics, its peek (`buffer`/`fill`), cancel safety, and budget waits
//! through wakers (`AsyncReader` and `Allocator::ready`) that never block a
//! runtime thread, even on a `current_thread` runtime.
#![cfg(feature = "tokio")]

use std::future::Future;
use std::io;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use refbuf::{AllocError, Pool, coalesce};
use tokio::io::AsyncWriteExt;

const BS: usize = 64;

fn pool() -> Pool {
    Pool::builder().buf_size(BS).build()
}

fn stream(n: usize) -> Vec<u8> {
    (0..n).map(|k| (k as u8).wrapping_mul(37) ^ (k >> 8) as u8).collect()
}

/// Polls `f` once with a waker that does nothing.
fn poll_once<F: Future>(f: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    f.poll(&mut Context::from_waker(Waker::noop()))
}

/// Exact frames, in order, from a source that hands out 7 bytes a call;
/// frames from one buf touch, so they coalesce; a frame larger than the rest
/// of the buf moves the unread bytes; early EOF keeps them.
#[tokio::test]
async fn reads_exact_frames_like_the_reader() {
    let data = stream(500);
    let pool = pool();
    let (mut tx, rx) = tokio::io::duplex(7);
    let feeder = {
        let data = data.clone();
        tokio::spawn(async move {
            tx.write_all(&data).await.unwrap();
        })
    };
    let mut reader = pool.async_reader(rx);
    let a = reader.read(10).await.unwrap();
    let b = reader.read(20).await.unwrap();
    let big = reader.read(3 * BS).await.unwrap();
    assert_eq!(&a[..], &data[..10]);
    assert_eq!(&b[..], &data[10..30]);
    assert_eq!(&big[..], &data[30..30 + 3 * BS]);
    let mut parts = vec![a, b];
    coalesce(&mut parts, usize::MAX);
    assert_eq!(parts.len(), 1, "consecutive frames from one buf touch");
    // The feeder ends the stream once the reader has taken everything.
    let rest = data.len() - 30 - 3 * BS;
    let e = reader.read(rest + 1).await.unwrap_err();
    feeder.await.unwrap();
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    assert_eq!(reader.buffered(), rest, "early EOF keeps the bytes");
    assert_eq!(&reader.read(rest).await.unwrap()[..], &data[30 + 3 * BS..]);
}

/// `buffer` and `fill` are the peek of a line parser: it finds its delimiter
/// in what is buffered, fills when it needs more (growing past a buf), and
/// takes each line with `read`; `fill` returns 0 at the end.
#[tokio::test]
async fn buffer_and_fill_let_a_parser_look_first() {
    let mut text = Vec::new();
    for k in 0..40 {
        text.extend_from_slice(format!("line {k} {}\r\n", "x".repeat(k * 5)).as_bytes());
    }
    let pool = pool();
    let mut reader = pool.async_reader(&text[..]);
    let mut lines = Vec::new();
    loop {
        match reader.buffer().windows(2).position(|w| w == b"\r\n") {
            Some(at) => lines.push(reader.read(at + 2).await.unwrap()),
            None if reader.fill().await.unwrap() == 0 => break,
            None => {}
        }
    }
    assert_eq!(reader.buffered(), 0);
    let joined: Vec<u8> = lines.iter().flat_map(|l| l.iter().copied()).collect();
    assert_eq!(joined, text);
    assert_eq!(&lines[39][..8], b"line 39 ");
    assert_eq!(reader.fill().await.unwrap(), 0, "the end of the source");
}

/// A frame over max_frame_len is refused at once with InvalidData, and
/// `fill` stops there too.
#[tokio::test]
async fn frames_over_the_limit_are_refused() {
    let data = stream(300);
    let pool = pool();
    let mut reader = pool.async_reader(&data[..]).with_max_frame_len(100);
    assert_eq!(reader.max_frame_len(), 100);
    assert_eq!(reader.read(101).await.unwrap_err().kind(), io::ErrorKind::InvalidData);
    assert_eq!(reader.buffered(), 0, "nothing read");
    while reader.buffered() < 100 {
        assert!(reader.fill().await.unwrap() > 0);
    }
    assert_eq!(reader.fill().await.unwrap_err().kind(), io::ErrorKind::InvalidData);
    assert_eq!(&reader.read(100).await.unwrap()[..], &data[..100]);
}

/// A read dropped after part of its frame arrived leaves that part
/// buffered, and the next read returns the whole frame.
#[tokio::test]
async fn a_dropped_read_keeps_what_arrived() {
    let data = stream(200);
    let pool = pool();
    let (mut tx, rx) = tokio::io::duplex(1024);
    let mut reader = pool.async_reader(rx);
    tx.write_all(&data[..50]).await.unwrap();
    {
        let mut read = pin!(reader.read(120));
        assert!(poll_once(read.as_mut()).is_pending(), "70 bytes are missing");
    }
    assert_eq!(reader.buffered(), 50);
    let cancelled = tokio::time::timeout(Duration::from_millis(20), reader.read(120)).await;
    assert!(cancelled.is_err(), "still 70 bytes short");
    tx.write_all(&data[50..]).await.unwrap();
    let frame = reader.read(120).await.unwrap();
    assert_eq!(&frame[..], &data[..120]);
    assert_eq!(&reader.read(80).await.unwrap()[..], &data[120..]);
    drop((frame, reader));
    assert_eq!(pool.stats().bufs_in_use, 0, "no memory lost");
}

/// On a `current_thread` runtime, a task waiting for the budget in
/// `AsyncReader::read` and one in `Allocator::ready` both complete once
/// another task on the same thread releases the memory; a blocking wait
/// would deadlock the thread.
#[test]
fn budget_waits_do_not_block_a_current_thread_runtime() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    rt.block_on(async {
        let pool = Pool::builder().buf_size(BS).max_bytes(BS).build();
        let held = pool.allocator(0).alloc(BS);
        let data = stream(30);
        let mut reader = pool.async_reader(&data[..]);
        let release = async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            drop(held);
        };
        let (frame, ()) = tokio::join!(reader.read(30), release);
        assert_eq!(&frame.unwrap()[..], &data[..]);
        assert_eq!(pool.stats().waits, 1);

        // The reader's buf is the whole budget now; `ready` waits for it.
        let mut alloc = pool.allocator(0);
        let done = async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            drop(reader);
        };
        let (ready, ()) = tokio::join!(alloc.ready(BS), done);
        ready.unwrap();
        assert_eq!(alloc.try_alloc(BS).unwrap().len(), BS);
    });
}

/// A release on another (blocking) thread wakes an async waiter, and
/// `close` wakes one with `Closed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releases_on_other_threads_and_close_wake_async_waiters() {
    let pool = Pool::builder().buf_size(BS).max_bytes(BS).build();
    let held = pool.allocator(0).alloc(1);
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(10));
        drop(held);
    });
    let mut alloc = pool.allocator(0);
    alloc.ready(1).await.unwrap();
    releaser.join().unwrap();
    let kept = alloc.try_alloc(BS).unwrap();

    let mut other = pool.allocator(0);
    let closer = {
        let pool = pool.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(10));
            pool.close();
        })
    };
    assert_eq!(other.ready(1).await, Err(AllocError::Closed));
    closer.join().unwrap();
    drop(kept);
}

/// A dropped `ready` gives up its place: with two waiters and one of them
/// cancelled, the release serves the other, and nothing is left registered
/// (releases go back to using the thread's cache).
#[tokio::test]
async fn a_cancelled_ready_passes_its_turn() {
    let pool = Pool::builder().buf_size(BS).max_bytes(BS).build();
    let held = pool.allocator(0).alloc(1);
    let mut quitter = pool.allocator(0);
    let mut waiter = pool.allocator(0);
    {
        let mut ready = pin!(quitter.ready(1));
        assert!(poll_once(ready.as_mut()).is_pending());
    }
    let release = async {
        tokio::task::yield_now().await;
        drop(held);
    };
    let (ready, ()) = tokio::join!(waiter.ready(1), release);
    ready.unwrap();
    drop(waiter);
    drop(quitter);
    let stats = pool.stats();
    assert_eq!((stats.bufs_in_use, stats.bufs_idle), (0, 1), "{stats:?}");
    assert_eq!(stats.bufs_cached, 1, "no waiter left registered: the release went to the cache");
}

/// `ready` on room already there completes at once, and the `try_` forms
/// then succeed; a request no buf can hold is `TooLarge`, and a closed pool
/// `Closed`.
#[tokio::test]
async fn ready_errors_and_the_fast_path() {
    let pool = Pool::builder().buf_size(BS).max_bytes(4 * BS).build();
    let mut alloc = pool.allocator(4);
    alloc.ready(10).await.unwrap();
    let mut src = &b"0123456789"[..];
    let slices = [
        alloc.try_alloc(10).unwrap(),
        alloc.try_alloc_for_overwrite(10).unwrap(),
        alloc.try_copy_from_slice(b"0123456789").unwrap(),
        alloc.try_fill_with(10, |buf| io::Read::read(&mut src, buf)).unwrap(),
    ];
    assert!(slices.iter().all(|s| s.len() == 10 && s.headroom() == 4));
    assert_eq!(alloc.ready(4 * BS).await, Err(AllocError::TooLarge), "reserve + len over the budget");
    assert_eq!(alloc.ready(usize::MAX).await, Err(AllocError::TooLarge));
    pool.close();
    assert_eq!(alloc.ready(1).await, Err(AllocError::Closed));
}

/// A `fill` dropped while the source has nothing loses nothing: the bytes
/// already buffered stay, and the next `fill` reads on.
#[tokio::test]
async fn a_dropped_fill_loses_nothing() {
    let data = stream(40);
    let pool = pool();
    let (mut tx, rx) = tokio::io::duplex(1024);
    let mut reader = pool.async_reader(rx);
    tx.write_all(&data[..10]).await.unwrap();
    assert_eq!(reader.fill().await.unwrap(), 10);
    {
        let mut fill = pin!(reader.fill());
        assert!(poll_once(fill.as_mut()).is_pending(), "nothing more has arrived");
    }
    assert_eq!(reader.buffer(), &data[..10]);
    tx.write_all(&data[10..]).await.unwrap();
    drop(tx);
    while reader.fill().await.unwrap() > 0 {}
    assert_eq!(reader.buffer(), &data[..]);
}

/// An `AsyncReader` moves between a runtime's threads with its source, and
/// shows its state in `Debug` without requiring `R: Debug`.
#[test]
fn async_reader_is_send_and_debug() {
    fn assert_send<T: Send>(_: &T) {}
    struct Opaque;
    impl tokio::io::AsyncRead for Opaque {
        fn poll_read(
            self: std::pin::Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }
    let pool = pool();
    let reader = pool.async_reader(Opaque);
    assert_send(&reader);
    let shown = format!("{reader:?}");
    assert!(shown.contains("AsyncReader") && shown.contains("buffered: 0"), "{shown}");
}
