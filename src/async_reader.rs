//! `AsyncReader`: the `Reader` on tokio's `AsyncRead`, waiting for the
//! source and for the budget without blocking a thread (feature `tokio`).

use core::fmt;
use core::future::poll_fn;
use core::pin::Pin;
use core::task::{Context, Poll, ready};
use std::io;

use tokio::io::{AsyncRead, ReadBuf};

use crate::buf::Lease;
use crate::error::AllocError;
use crate::pool::{Pool, SizeClass, Ticket, Wait};
use crate::reader::{Frames, Lessor, early_eof};
use crate::slice::Slice;

/// Reads from an [`AsyncRead`] into pool memory and hands out exactly the
/// frames asked for, as slices: the [`Reader`](crate::Reader), for async
/// code. Made by [`Pool::async_reader`].
///
/// Everything the `Reader`'s docs say holds here too: it reads ahead, so
/// consecutive frames from one buf touch; a frame longer than a standard
/// buf takes memory as its bytes arrive, up to
/// [`max_frame_len`](AsyncReader::max_frame_len); errors lose nothing; and
/// [`buffer`](AsyncReader::buffer) and [`fill`](AsyncReader::fill) let a
/// parser look at the buffered bytes before it takes them.
///
/// Where the pool's budget is used up, a read waits for memory through its
/// task's waker, and the release that makes room wakes it, on whatever
/// thread, sync or async, it happens; nothing blocks the runtime's thread.
/// One difference from the `Reader`: where a frame would need the reader to
/// give back its own buf and wait for a larger one, the `AsyncReader`
/// cannot set the buffered tail aside across the wait, so the read fails at
/// once with an error of kind `OutOfMemory` wrapping
/// [`AllocError::Exhausted`], every byte still buffered.
///
/// # Example
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let pool = refbuf::Pool::new();
/// let mut reader = pool.async_reader(&b"\x00\x03abc"[..]);
/// let len = reader.read(2).await?;
/// let body = reader.read(u16::from_be_bytes([len[0], len[1]]).into()).await?;
/// assert_eq!(&body[..], b"abc");
/// # Ok::<(), std::io::Error>(())
/// # }).unwrap();
/// ```
pub struct AsyncReader<R> {
    src: R,
    frames: Frames,
}

impl Pool {
    /// An [`AsyncReader`] that fills slices from `src`, reading ahead into
    /// pool memory; with the feature `tokio`.
    ///
    /// The reader takes no memory until its first read, and keeps the pool
    /// open while it lives.
    pub fn async_reader<R: AsyncRead + Unpin>(&self, src: R) -> AsyncReader<R> {
        AsyncReader { src, frames: Frames::new(self.clone()) }
    }
}

/// The async reader's way of getting a buf: through the task's waker.
struct Waiting<'a, 'b> {
    cx: &'a mut Context<'b>,
}

impl Lessor for Waiting<'_, '_> {
    const MAY_STASH: bool = false;

    fn poll_lease(
        &mut self,
        pool: &Pool,
        size: SizeClass,
        wait: Wait,
        ticket: &mut Ticket,
    ) -> Poll<Result<Lease, AllocError>> {
        match wait {
            Wait::Never => Poll::Ready(pool.lease(size, Wait::Never)),
            Wait::Forever | Wait::For(_) => pool.poll_lease(size, self.cx, ticket),
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncReader<R> {
    /// Sets the longest frame [`read`](AsyncReader::read) accepts; a longer
    /// one is refused at once with `InvalidData`, and nothing is read or
    /// lost. [`DEFAULT_MAX_FRAME_LEN`](crate::DEFAULT_MAX_FRAME_LEN) by
    /// default.
    pub fn with_max_frame_len(mut self, max: usize) -> AsyncReader<R> {
        self.frames.set_max_frame_len(max);
        self
    }

    /// The longest frame [`read`](AsyncReader::read) accepts.
    pub fn max_frame_len(&self) -> usize {
        self.frames.max_frame_len()
    }

    /// The next `n` bytes of the source, as one slice with no headroom.
    ///
    /// # Errors
    /// As for [`Reader::read`](crate::Reader::read), with the difference the
    /// type's docs give.
    ///
    /// # Cancel safety
    ///
    /// This method is cancel safe. If the future is dropped before it
    /// completes, every byte already read from the source stays buffered for
    /// the next call (a frame that had partly arrived is not lost), no
    /// memory is lost, and its place among the pool's waiters, if it was
    /// waiting for the budget, is given up.
    pub async fn read(&mut self, n: usize) -> io::Result<Slice> {
        self.frames.check_open()?;
        if n > self.frames.buffered().min(self.frames.max_frame_len()) {
            self.frames.check_frame(n)?;
            let guard = CancelOnDrop(self);
            poll_fn(|cx| guard.0.poll_read_to(cx, n)).await?;
        }
        Ok(self.frames.cut(n))
    }

    /// Reads more from the source into the buffer and returns how many bytes
    /// came; `Ok(0)` at the end of the source. Where the buf is full, the
    /// buffered bytes move first, as for a [`read`](AsyncReader::read) of
    /// one byte more than is buffered.
    ///
    /// # Errors
    /// As for [`read`](AsyncReader::read) of `buffered() + 1` bytes, except
    /// that the end of the source is `Ok(0)`.
    ///
    /// # Cancel safety
    ///
    /// This method is cancel safe: a dropped future has read nothing, or
    /// left what it read buffered, and gives up its place among the pool's
    /// waiters.
    pub async fn fill(&mut self) -> io::Result<usize> {
        self.frames.check_open()?;
        let n = self.frames.buffered().saturating_add(1);
        self.frames.check_frame(n)?;
        let guard = CancelOnDrop(self);
        poll_fn(|cx| guard.0.poll_read_more(cx, n)).await
    }

    /// Reads until `n` bytes are buffered.
    fn poll_read_to(&mut self, cx: &mut Context<'_>, n: usize) -> Poll<io::Result<()>> {
        while self.frames.buffered() < n {
            if ready!(self.poll_read_more(cx, n))? == 0 {
                return Poll::Ready(Err(early_eof(self.frames.buffered(), n)));
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Reads from the source once into the room the frames make towards a
    /// frame of `n > buffered` bytes.
    fn poll_read_more(&mut self, cx: &mut Context<'_>, n: usize) -> Poll<io::Result<usize>> {
        let mut lessor = Waiting { cx };
        let spare = ready!(self.frames.poll_spare(n, &mut lessor))?;
        let spare_len = spare.len();
        let mut buf = ReadBuf::new(spare);
        ready!(Pin::new(&mut self.src).poll_read(cx, &mut buf))?;
        let k = buf.filled().len();
        self.frames.commit(k, spare_len)?;
        Poll::Ready(Ok(k))
    }

    /// The bytes read from the source and not yet handed out.
    pub fn buffer(&self) -> &[u8] {
        self.frames.buffer()
    }

    /// Bytes read from the source and not yet handed out.
    pub fn buffered(&self) -> usize {
        self.frames.buffered()
    }

    /// The source.
    pub fn get_ref(&self) -> &R {
        &self.src
    }

    /// The source. Reading from it directly skips the buffered bytes.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.src
    }

    /// The source; the buffered bytes are dropped with the reader.
    pub fn into_inner(self) -> R {
        self.src
    }

    /// The pool this reader takes bufs from.
    pub fn pool(&self) -> &Pool {
        self.frames.pool()
    }
}

/// Gives up the reader's place among the pool's waiters when a read's
/// future is dropped, or completes.
struct CancelOnDrop<'a, R>(&'a mut AsyncReader<R>);

impl<R> Drop for CancelOnDrop<'_, R> {
    fn drop(&mut self) {
        self.0.frames.cancel_wait();
    }
}

impl<R> fmt::Debug for AsyncReader<R> {
    /// Shows the source's type and the buffered byte count; `R` need not be
    /// `Debug`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncReader")
            .field("src", &core::any::type_name::<R>())
            .field("buffered", &self.frames.buffered())
            .field("max_frame_len", &self.frames.max_frame_len())
            .finish_non_exhaustive()
    }
}
