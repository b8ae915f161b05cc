//! `Chain`: an ordered run of slices, written with one vectored write.

use core::fmt;
use std::io::{self, IoSlice, Read, Write};
#[cfg(feature = "tokio")]
use std::pin::Pin;
#[cfg(feature = "tokio")]
use std::task::{Context, Poll, ready};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use smallvec::SmallVec;
#[cfg(feature = "tokio")]
use tokio::io::AsyncWrite;

use crate::coalesce::coalesce_stored;
use crate::slice::Slice;

/// Parts a chain keeps inline before it spills to the heap.
const INLINE_PARTS: usize = 4;

/// Most parts offered to one `write_vectored` call, from an array on the
/// stack.
const MAX_IOVECS: usize = 64;

/// An ordered run of [`Slice`]s read and written as one byte sequence: a
/// header and a payload, or the parts of a message, sent with one vectored
/// write and no copy.
///
/// The first four parts are kept inline, so a chain of a header and a payload
/// allocates nothing; the total length is cached. An empty slice pushed on
/// a chain is dropped, so every part holds at least one byte. Reading,
/// writing and [`Buf::advance`] release each slice the moment its last byte
/// is consumed.
///
/// A chain is `Send + Sync`, like its slices.
///
/// # Example
///
/// ```
/// use refbuf::{Chain, Pool};
///
/// let pool = Pool::new();
/// let mut alloc = pool.allocator(0);
/// let mut chain = Chain::from(alloc.copy_from_slice(b"payload"));
/// chain.push_front(alloc.copy_from_slice(&7u32.to_be_bytes()));
///
/// let mut wire = Vec::new();
/// assert_eq!(chain.write_to(&mut wire)?, 11);
/// assert_eq!(wire, b"\0\0\0\x07payload");
/// assert!(chain.is_empty());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Default)]
pub struct Chain {
    /// The slices, in order; none is empty.
    parts: SmallVec<[Slice; INLINE_PARTS]>,
    /// The sum of the parts' lengths.
    len: usize,
}

// ===== impl Chain =====

impl Chain {
    /// An empty chain. Allocates nothing.
    pub fn new() -> Chain {
        Chain::default()
    }

    /// Appends `s` as the last part. An empty `s` is dropped.
    pub fn push_back(&mut self, s: Slice) {
        if !s.is_empty() {
            self.len += s.len();
            self.parts.push(s);
        }
    }

    /// Inserts `s` as the first part, e.g. a header in front of a payload
    /// that has no headroom for it. An empty `s` is dropped.
    pub fn push_front(&mut self, s: Slice) {
        if !s.is_empty() {
            self.len += s.len();
            self.parts.insert(0, s);
        }
    }

    /// Removes and returns the first part.
    pub fn pop_front(&mut self) -> Option<Slice> {
        if self.parts.is_empty() {
            return None;
        }
        let s = self.parts.remove(0);
        self.len -= s.len();
        Some(s)
    }

    /// Total bytes in all parts.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the chain holds no bytes (and so no parts).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The parts, in order.
    pub fn iter(&self) -> core::slice::Iter<'_, Slice> {
        self.parts.iter()
    }

    /// Joins neighbouring parts that touch in memory, without copying, as
    /// [`coalesce`](crate::coalesce) does: a merged part stays at most
    /// `max_len` bytes long.
    pub fn coalesce(&mut self, max_len: usize) {
        coalesce_stored(&mut self.parts, max_len);
    }

    /// Shortens the chain to its first `len` bytes, dropping the rest; no
    /// effect where `len` is not less than [`len`](Chain::len).
    pub fn truncate(&mut self, len: usize) {
        if len >= self.len {
            return;
        }
        let mut kept = 0;
        let mut parts = 0;
        while kept < len {
            let part = &mut self.parts[parts];
            part.truncate(len - kept);
            kept += part.len();
            parts += 1;
        }
        self.parts.truncate(parts);
        self.len = len;
    }

    /// Writes the chain to `w`, one `write_vectored` call per attempt over up
    /// to 64 parts, until it is empty; returns the bytes written.
    ///
    /// What `w` accepts is consumed at once: each slice is released as soon
    /// as it is fully written, and a part written only in part keeps its
    /// unwritten bytes. `Interrupted` is retried. Nothing is allocated.
    ///
    /// A blocking `w` blocks the thread; the async form, for tokio's
    /// `AsyncWrite`, is `Chain::write_all_async` (feature `tokio`).
    ///
    /// # Errors
    /// Any other error from `w` (`WouldBlock` on a non-blocking socket, say)
    /// is returned with the unwritten bytes still in the chain, so calling
    /// again later carries on where this call stopped; [`len`](Chain::len)
    /// tells how much is left. `w` accepting no bytes is a `WriteZero` error,
    /// and `w` claiming more bytes than it was offered is `InvalidData`.
    pub fn write_to<W: Write + ?Sized>(&mut self, w: &mut W) -> io::Result<usize> {
        let mut written = 0;
        while !self.is_empty() {
            let (offered, result) = self.offer_front(|iovecs| w.write_vectored(iovecs));
            if let Some(n) = self.consume_written(offered, result)? {
                written += n;
            }
        }
        Ok(written)
    }

    /// Appends `s`, growing the last part in place where `s` directly
    /// follows it in memory.
    pub(crate) fn push_back_joined(&mut self, s: Slice) {
        let len = s.len();
        let s = match self.parts.last_mut() {
            Some(last) => match last.try_join(s) {
                Ok(()) => {
                    self.len += len;
                    return;
                }
                Err(s) => s,
            },
            None => s,
        };
        self.push_back(s);
    }

    /// The first half of one write attempt, shared by the blocking and async
    /// paths: calls `write` once with up to [`MAX_IOVECS`] parts from the
    /// front (`IoSlice`s in an array on the stack) and returns the bytes
    /// offered with what `write` returned. The chain must not be empty.
    fn offer_front<R>(&self, write: impl FnOnce(&[IoSlice<'_>]) -> R) -> (usize, R) {
        debug_assert!(!self.is_empty(), "internal: offering an empty chain");
        let mut iovecs = [IoSlice::new(&[]); MAX_IOVECS];
        let count = self.chunks_vectored(&mut iovecs);
        let offered = iovecs[..count].iter().map(|iov| iov.len()).sum();
        (offered, write(&iovecs[..count]))
    }

    /// The second half: settles a write of `offered` bytes from the front.
    /// Consumes the `n` bytes the writer accepted and returns `Some(n)`;
    /// returns `None` for `Interrupted`, to be tried again; otherwise fails
    /// (`WriteZero` for no bytes, `InvalidData` for more than offered, or the
    /// writer's own error) and consumes nothing.
    fn consume_written(&mut self, offered: usize, result: io::Result<usize>) -> io::Result<Option<usize>> {
        match result {
            Ok(0) => Err(io::Error::new(io::ErrorKind::WriteZero, "the writer accepted no bytes")),
            Ok(n) if n > offered => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the writer claimed {n} bytes written of the {offered} it was offered"),
            )),
            Ok(n) => {
                self.consume(n);
                Ok(Some(n))
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Drops the first `n <= len` bytes: parts consumed whole are released,
    /// and a part consumed in part loses its front.
    fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.len, "internal: consumed {n} of {} bytes", self.len);
        let mut left = n;
        let mut whole = 0;
        for part in &mut self.parts {
            if left < part.len() {
                part.truncate_front(left);
                break;
            }
            left -= part.len();
            whole += 1;
        }
        self.parts.drain(..whole);
        self.len -= n;
    }
}

// ===== impl Chain: tokio =====

#[cfg(feature = "tokio")]
impl Chain {
    /// Offers the front of the chain to `w` in one `poll_write_vectored` call
    /// over up to 64 parts, and consumes what it accepted: the poll form of
    /// [`write_all_async`](Chain::write_all_async), and the chain's
    /// counterpart of tokio-util's `poll_write_buf`, one write per call.
    ///
    /// - `Ready(Ok(n))` with `n > 0`: `w` accepted `n` bytes, which have left
    ///   the chain; each slice fully written is released at once, and a part
    ///   written in part keeps its unwritten bytes. Call again while the
    ///   chain is not empty.
    /// - `Ready(Ok(0))`: the chain is empty; `w` is not called.
    /// - `Pending`: `w` returned `Pending` and will wake `cx`'s waker;
    ///   nothing was written and the chain is unchanged.
    /// - `Ready(Err(_))`: nothing was written and the chain is unchanged.
    ///
    /// So every outcome says exactly how many bytes this call wrote, and the
    /// chain always holds exactly the bytes not yet written. `Interrupted` is
    /// retried within the call. A write allocates nothing. A `w` that is not
    /// vectored gets tokio's default `poll_write_vectored`, which writes the
    /// first part alone.
    ///
    /// # Errors
    /// Any other error from `w` is returned as it is. `w` accepting no bytes
    /// is a `WriteZero` error, and `w` claiming more bytes than it was
    /// offered is `InvalidData`, as for [`write_to`](Chain::write_to).
    ///
    /// # Cancel safety
    /// There is nothing to cancel between calls: the chain is the only state,
    /// so stopping after any call loses no byte and repeats none.
    pub fn poll_write_to<W: AsyncWrite + ?Sized>(
        &mut self,
        cx: &mut Context<'_>,
        mut w: Pin<&mut W>,
    ) -> Poll<io::Result<usize>> {
        while !self.is_empty() {
            let (offered, result) = self.offer_front(|iovecs| w.as_mut().poll_write_vectored(cx, iovecs));
            let Poll::Ready(result) = result else {
                return Poll::Pending;
            };
            if let Some(n) = self.consume_written(offered, result)? {
                return Poll::Ready(Ok(n));
            }
        }
        Poll::Ready(Ok(0))
    }

    /// Writes the whole chain to `w`: the async form of
    /// [`write_to`](Chain::write_to), a thin loop over
    /// [`poll_write_to`](Chain::poll_write_to) until the chain is empty, so
    /// one `poll_write_vectored` call per attempt over up to 64 parts.
    ///
    /// What `w` accepts is consumed at once: each slice is released as soon
    /// as it is fully written. `Interrupted` is retried. `w` is not flushed.
    /// Once the pool is warm, nothing is allocated.
    ///
    /// # Errors
    /// As for [`poll_write_to`](Chain::poll_write_to): `WriteZero` if `w`
    /// accepts no bytes, `InvalidData` if it claims more than it was
    /// offered, or `w`'s own error. The unwritten bytes are still in the
    /// chain, so calling again carries on where this call stopped;
    /// [`len`](Chain::len) tells how much is left.
    ///
    /// # Cancel safety
    /// This method is cancel safe. If the future is dropped before it
    /// completes (the other branch of a `tokio::select!` won, a timeout
    /// fired), the bytes `w` accepted have left the chain and their slices
    /// have been released, while every byte `w` has not accepted is still in
    /// the chain, in order: none is lost and none will be sent twice.
    /// Calling `write_all_async` again sends exactly the rest. (tokio's
    /// `AsyncWriteExt::write_all`, by contrast, is not cancel safe: it
    /// cannot tell its caller how much was written.)
    ///
    /// # Example
    ///
    /// ```
    /// use refbuf::{Chain, Pool};
    /// use tokio::io::AsyncReadExt;
    ///
    /// let pool = Pool::new();
    /// let mut alloc = pool.allocator(0);
    /// let mut chain = Chain::from(alloc.copy_from_slice(b"payload"));
    /// chain.push_front(alloc.copy_from_slice(&7u32.to_be_bytes()));
    ///
    /// let rt = tokio::runtime::Builder::new_current_thread().build()?;
    /// rt.block_on(async {
    ///     // A small in-memory pipe, as a socket would be.
    ///     let (mut client, mut server) = tokio::io::duplex(64);
    ///     chain.write_all_async(&mut client).await?;
    ///     assert!(chain.is_empty());
    ///
    ///     let mut wire = [0; 11];
    ///     server.read_exact(&mut wire).await?;
    ///     assert_eq!(&wire, b"\0\0\0\x07payload");
    ///     Ok::<(), std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub async fn write_all_async<W: AsyncWrite + Unpin>(&mut self, w: &mut W) -> io::Result<()> {
        core::future::poll_fn(|cx| {
            while !self.is_empty() {
                ready!(self.poll_write_to(cx, Pin::new(&mut *w)))?;
            }
            Poll::Ready(Ok(()))
        })
        .await
    }
}

impl From<Slice> for Chain {
    fn from(s: Slice) -> Chain {
        let mut chain = Chain::new();
        chain.push_back(s);
        chain
    }
}

impl FromIterator<Slice> for Chain {
    fn from_iter<I: IntoIterator<Item = Slice>>(iter: I) -> Chain {
        let mut chain = Chain::new();
        chain.extend(iter);
        chain
    }
}

impl Extend<Slice> for Chain {
    fn extend<I: IntoIterator<Item = Slice>>(&mut self, iter: I) {
        for s in iter {
            self.push_back(s);
        }
    }
}

impl fmt::Debug for Chain {
    /// Shows the length and the number of parts, not the contents, as
    /// [`Slice`]'s `Debug` does.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chain").field("len", &self.len).field("parts", &self.parts.len()).finish()
    }
}

// ===== impl Read =====

impl Read for Chain {
    /// Copies bytes from the front of the chain, across parts, releasing each
    /// slice once it is consumed. Returns 0 only when the chain is empty (or
    /// `dst` is).
    fn read(&mut self, dst: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        for part in &self.parts {
            let k = part.len().min(dst.len() - n);
            dst[n..n + k].copy_from_slice(&part[..k]);
            n += k;
            if n == dst.len() {
                break;
            }
        }
        self.consume(n);
        Ok(n)
    }
}

// ===== impl Buf =====

impl Buf for Chain {
    fn remaining(&self) -> usize {
        self.len
    }

    /// The first part.
    fn chunk(&self) -> &[u8] {
        self.parts.first().map_or(&[], |part| &part[..])
    }

    /// One `IoSlice` per part, as many as fit in `dst`.
    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        dst.iter_mut().zip(&self.parts).map(|(iov, part)| *iov = IoSlice::new(part)).count()
    }

    /// Consumes `cnt` bytes, releasing each slice consumed whole.
    ///
    /// # Panics
    /// Where `cnt > remaining()`, as `bytes` buffers do.
    fn advance(&mut self, cnt: usize) {
        assert!(cnt <= self.len, "cannot advance past `remaining`: {cnt} <= {}", self.len);
        self.consume(cnt);
    }

    /// Zero copy where the `len` bytes lie in the first part (see
    /// [`Slice::into_bytes`]); a copy into a new `Bytes` where they span
    /// parts.
    ///
    /// # Panics
    /// Where `len > remaining()`.
    fn copy_to_bytes(&mut self, len: usize) -> Bytes {
        assert!(len <= self.len, "cannot copy_to_bytes past `remaining`: {len} <= {}", self.len);
        match self.parts.first_mut() {
            Some(front) if len < front.len() => {
                self.len -= len;
                front.split_to(len).into_bytes()
            }
            Some(front) if len == front.len() => self.pop_front().map_or_else(Bytes::new, Slice::into_bytes),
            _ => {
                let mut out = BytesMut::with_capacity(len);
                out.put(Buf::take(&mut *self, len));
                out.freeze()
            }
        }
    }
}
