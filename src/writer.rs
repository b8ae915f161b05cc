//! `Writer`: a growable byte sequence over pool memory, written like a stream.

use core::fmt;
use std::io::{self, Write};

use bytes::BufMut;
use bytes::buf::UninitSlice;

use crate::allocator::Allocator;
use crate::chain::Chain;
use crate::pool::Wait;

/// Appends bytes into pool memory from an [`Allocator`], as
/// [`io::Write`] and [`BufMut`]; [`finish`](Writer::finish) hands them over
/// as a [`Chain`]. Made by [`Allocator::writer`].
///
/// The bytes go into one slice that grows in place while its buf has room,
/// so the only copy is of the caller's bytes. When the buf is full the writer
/// takes another and starts a new part. Each new part (the first, and each
/// one after a full buf) gets the allocator's `reserve` of zeroed headroom. This is the Go `bytespool`
/// design: a sequence of pooled blocks written like a stream, optionally
/// capped at a maximum length.
///
/// Where the pool's budget is used up, a write blocks the thread for memory as
/// [`Allocator::alloc`] does, except where the memory the writer itself
/// holds leaves no room: then no release by anyone else could end the wait,
/// and the write fails at once instead. [`try_write`](Writer::try_write)
/// never waits.
///
/// Dropping an unfinished writer releases everything it wrote.
///
/// # Example
///
/// ```
/// use std::io::Write;
///
/// let pool = refbuf::Pool::builder().buf_size(64).build();
/// let mut alloc = pool.allocator(0);
/// let mut w = alloc.writer().with_max_len(100);
/// w.write_all(&[7; 80])?;                      // 64 bytes in one buf, 16 in the next
/// assert!(w.write_all(&[7; 21]).is_err());     // past the cap: refused, nothing kept
/// let chain = w.finish();
/// assert_eq!(chain.len(), 80);
/// assert_eq!(chain.iter().map(|part| part.len()).collect::<Vec<_>>(), [64, 16]);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Writer<'a> {
    alloc: &'a mut Allocator,
    /// What has been written; its last part ends at the allocator's cursor
    /// while the buf has room.
    written: Chain,
    max_len: usize,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(alloc: &'a mut Allocator) -> Writer<'a> {
        Writer { alloc, written: Chain::new(), max_len: usize::MAX }
    }

    /// Caps the total length at `max` bytes: a write that would go past it
    /// fails and keeps none of its bytes. There is no cap by default.
    pub fn with_max_len(mut self, max: usize) -> Writer<'a> {
        self.max_len = max;
        self
    }

    /// The cap set by [`with_max_len`](Writer::with_max_len), or `usize::MAX`.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.written.len()
    }

    /// Whether nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.written.is_empty()
    }

    /// Everything written, as a chain of slices: one per buf written into,
    /// touching parts joined.
    pub fn finish(self) -> Chain {
        self.written
    }

    /// Appends all of `data`, or none of it, without waiting for memory:
    /// where a new buf is needed and the pool's budget is used up, it fails
    /// at once. For callers under a budget that must not block.
    ///
    /// # Errors
    /// As for [`write`](Writer::write), and an error of kind `OutOfMemory`
    /// wrapping [`AllocError::Exhausted`](crate::AllocError::Exhausted)
    /// (counted in [`PoolStats::exhausted`](crate::PoolStats::exhausted))
    /// where the budget is used up. Nothing of `data` is kept, and the
    /// writer stays usable.
    ///
    /// # Example
    ///
    /// ```
    /// use std::io::ErrorKind;
    ///
    /// let pool = refbuf::Pool::builder().buf_size(64).max_bytes(64).build();
    /// let mut alloc = pool.allocator(0);
    /// let mut w = alloc.writer();
    /// w.try_write(&[1; 60])?;
    /// let err = w.try_write(&[2; 10]).unwrap_err(); // needs a second buf
    /// assert_eq!(err.kind(), ErrorKind::OutOfMemory);
    /// w.try_write(&[3; 4])?; // still fits the first
    /// assert_eq!(w.len(), 64);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn try_write(&mut self, data: &[u8]) -> io::Result<()> {
        self.append(data, Wait::Never)
    }

    /// Appends all of `data`, or none of it with an error: `InvalidInput`
    /// past the cap, or the pool's [`AllocError`](crate::AllocError) once no
    /// buf is to be had, waiting for the budget as `wait` allows.
    fn append(&mut self, data: &[u8], wait: Wait) -> io::Result<()> {
        let room_left = self.max_len.saturating_sub(self.written.len());
        if data.len() > room_left {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a write of {} bytes would take the writer past its max_len of {} bytes",
                    data.len(),
                    self.max_len
                ),
            ));
        }
        let before = self.written.len();
        let mark = self.alloc.mark();
        let mut rest = data;
        while !rest.is_empty() {
            let written = &self.written;
            let room = match self.alloc.append_room(written.iter().next_back(), wait, || held(written)) {
                Ok(room) => room,
                Err(e) => {
                    self.written.truncate(before);
                    if let Some(mark) = mark {
                        // SAFETY: every byte carved since `mark` went to this
                        // write's parts, which `truncate` just dropped or cut
                        // back to what they held before it, and the writer
                        // holds the allocator, so nothing else carved meanwhile.
                        unsafe { self.alloc.rewind_to(mark) };
                    }
                    return Err(e.into());
                }
            };
            let n = room.len().min(rest.len());
            room[..n].copy_from_slice(&rest[..n]);
            self.commit(n);
            rest = &rest[n..];
        }
        Ok(())
    }

    /// Takes the first `n` bytes of the room `append_room` hands out.
    fn commit(&mut self, n: usize) {
        let part = self.alloc.append_commit(self.written.iter().next_back(), n);
        self.written.push_back_joined(part);
    }
}

/// Data bytes of the bufs `written`'s parts keep alive: memory a writer
/// holds while it waits for another buf, which nobody else can give back.
fn held(written: &Chain) -> usize {
    let mut last = None;
    let mut bytes = 0;
    // Parts come in buf order (one buf after another), so a buf's parts are
    // consecutive.
    for (buf, cap) in written.iter().filter_map(|part| part.buf_and_cap()) {
        if last != Some(buf) {
            last = Some(buf);
            bytes += cap;
        }
    }
    bytes
}

impl Write for Writer<'_> {
    /// Appends all of `buf` and returns its length, or fails and appends
    /// nothing.
    ///
    /// Waits for the budget as [`Allocator::alloc`] does, but only where
    /// other holders' releases can make room.
    ///
    /// # Errors
    /// - `InvalidInput` where `buf` would take the writer past its
    ///   [`max_len`](Writer::max_len);
    /// - `OutOfMemory` wrapping [`AllocError::Exhausted`](crate::AllocError::Exhausted)
    ///   where a new buf is needed and the bufs this writer already holds
    ///   leave no room for it within the pool's whole budget, so that the
    ///   wait could never end;
    /// - the pool's error otherwise, converted, where it has no buf to give
    ///   (it is closed, say, or the system refuses memory).
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.append(buf, Wait::Forever).map(|()| buf.len())
    }

    /// Nothing to flush: the bytes are in pool memory as soon as written.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

// SAFETY: `chunk_mut` hands out only bytes that belong to the allocator and
// that no slice owns (the room after the writer's last part, or after a new
// part's headroom); they are initialised memory, so exposing them through
// `UninitSlice` can never show uninitialised bytes. `advance_mut` commits
// only bytes of that room (it panics otherwise) and never more than
// `remaining_mut`.
unsafe impl BufMut for Writer<'_> {
    /// Bytes that may still be written: up to the cap, if any.
    fn remaining_mut(&self) -> usize {
        self.max_len.saturating_sub(self.written.len())
    }

    /// The room left in the current buf (after the last part, or after a new
    /// part's headroom), taking a new buf where the current one is full.
    /// The bytes are initialised, with contents left over from earlier use.
    ///
    /// # Panics
    /// Where a buf is needed and the pool has none to give (it is closed,
    /// the reserve is too large for any buf, or the bufs the writer holds
    /// leave no room for another within the budget), as other `BufMut`s
    /// abort when out of memory.
    fn chunk_mut(&mut self) -> &mut UninitSlice {
        let cap = self.remaining_mut();
        if cap == 0 {
            return UninitSlice::new(&mut []);
        }
        let written = &self.written;
        match self.alloc.append_room(written.iter().next_back(), Wait::Forever, || held(written)) {
            Ok(room) => {
                let n = room.len().min(cap);
                UninitSlice::new(&mut room[..n])
            }
            Err(e) => panic!("refbuf: Writer::chunk_mut found no room: {e}"),
        }
    }

    /// Commits the first `cnt` bytes of [`chunk_mut`](BufMut::chunk_mut).
    /// They are committed as they are, so the caller must have written
    /// them, as `BufMut` requires; otherwise they hold leftover bytes.
    ///
    /// # Panics
    /// Where `cnt` is more than the room `chunk_mut` returns. `cnt == 0`
    /// does nothing.
    unsafe fn advance_mut(&mut self, cnt: usize) {
        if cnt == 0 {
            return;
        }
        assert!(
            cnt <= self.remaining_mut(),
            "cannot advance_mut past the cap: {cnt} > {}",
            self.remaining_mut()
        );
        self.commit(cnt);
    }

    /// Appends all of `src`.
    ///
    /// # Panics
    /// Where `src` would take the writer past its cap, or the pool has no
    /// buf to give.
    fn put_slice(&mut self, src: &[u8]) {
        if let Err(e) = self.append(src, Wait::Forever) {
            panic!("refbuf: Writer::put_slice: {e}");
        }
    }
}

impl fmt::Debug for Writer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writer").field("written", &self.written).field("max_len", &self.max_len).finish()
    }
}
