//! `Reader`: frames from any `std::io::Read`, as slices of pool memory.

use core::fmt;
use core::ptr;
use std::io::{self, Read};

use crate::buf::{Header, Lease};
use crate::error::AllocError;
use crate::pool::{Pool, Wait};
use crate::slice::Slice;

/// Reads from a source into pool memory and hands out exactly the frames
/// asked for, as slices.
///
/// The reader reads ahead: each read from the source asks for as much as fits
/// in the current buf. [`read(n)`](Reader::read) then cuts the next `n`
/// buffered bytes off as a slice with no copy, so consecutive slices from one
/// buf touch and [`coalesce`](crate::coalesce) can join them. A frame larger
/// than what is left of the buf moves the unread bytes into a buf big enough
/// (or to the front of the current one, once no slice uses it).
///
/// # Errors lose nothing
///
/// Whatever the source returns, bytes already read stay buffered and are
/// handed out by a later `read`: a non-blocking source can return
/// `WouldBlock` at any point, and the reader simply picks up where it left
/// off when called again.
///
/// # Example
///
/// ```
/// let pool = refbuf::Pool::new();
/// let mut reader = pool.reader(&b"\x00\x03abc"[..]);
/// let len = reader.read(2)?;
/// let body = reader.read(u16::from_be_bytes([len[0], len[1]]).into())?;
/// assert_eq!(&body[..], b"abc");
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Reader<R> {
    pool: Pool,
    src: R,
    /// The buf being filled; `None` until the first read.
    lease: Option<Lease>,
    /// Offset of the first buffered byte not yet handed out.
    start: usize,
    /// Offset just past the last buffered byte. Bytes from `start` on belong
    /// to the reader; slices own only bytes before `start`.
    end: usize,
}

impl<R: Read> Reader<R> {
    pub(crate) fn new(pool: Pool, src: R) -> Reader<R> {
        Reader { pool, src, lease: None, start: 0, end: 0 }
    }

    /// The next `n` bytes of the source, as one slice with no headroom.
    /// `read(0)` returns an empty slice (on an open pool: once the pool is
    /// closed every read is refused, as below).
    ///
    /// # Errors
    /// - `UnexpectedEof` where the source ends before `n` bytes: the bytes
    ///   read so far stay buffered, so a later, smaller `read` gets them;
    /// - any error from the source other than `Interrupted` (which is
    ///   retried), with every byte read so far kept;
    /// - `InvalidData` where the source claims to have read more bytes than
    ///   it was given room for;
    /// - the pool's [`AllocError`], converted, once the pool is closed
    ///   (`Other`, even with bytes still buffered, as an allocator refuses
    ///   even with room left in its buf) or where no buf of `n` bytes can be
    ///   made (`InvalidInput`). The buffered bytes stay buffered.
    pub fn read(&mut self, n: usize) -> io::Result<Slice> {
        if self.pool.is_closed() {
            return Err(AllocError::Closed.into());
        }
        while self.end - self.start < n {
            self.fill(n)?;
        }
        let Some(lease) = &mut self.lease else {
            return Ok(Slice::new());
        };
        let buf = lease.share();
        // SAFETY: the lease holds `buf`; `start + n <= end <= cap`.
        let ptr = unsafe { Header::data(buf).add(self.start) };
        self.start += n;
        // SAFETY: `buf` is a reference just moved out of the lease, and the
        // `n` initialised bytes at `ptr` belonged to the reader and are now
        // the slice's alone: the reader only uses bytes from `start` on.
        Ok(unsafe { Slice::from_raw_parts(buf, ptr, n, 0) })
    }

    /// Reads from the source once (retrying `Interrupted`), first making
    /// room for a frame of `n` bytes from `start`.
    #[inline(never)]
    fn fill(&mut self, n: usize) -> io::Result<()> {
        if self.start == self.end && self.lease.as_ref().is_some_and(Lease::is_sole_holder) {
            // Everything handed out has been dropped: reuse the buf from the top.
            self.start = 0;
            self.end = 0;
        }
        if self.cap() - self.start < n {
            self.make_room(n)?;
        }
        let Some(lease) = &self.lease else {
            unreachable!("internal: make_room leaves a buf of at least {n} > 0 bytes");
        };
        let buf = lease.buf();
        let spare_len = self.cap() - self.end;
        // SAFETY: the lease holds `buf`; bytes from `end` to the end of its
        // data area are initialised and belong to the reader alone.
        let spare =
            unsafe { core::slice::from_raw_parts_mut(Header::data(buf).as_ptr().add(self.end), spare_len) };
        loop {
            match self.src.read(spare) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("source ended {} bytes into a {n}-byte read", self.end - self.start),
                    ));
                }
                Ok(k) if k > spare_len => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("source claimed {k} bytes read into a {spare_len}-byte buffer"),
                    ));
                }
                Ok(k) => {
                    self.end += k;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Makes room for `n > buffered` bytes from `start`: moves the buffered
    /// bytes to the front of the current buf if no slice uses it and it is
    /// large enough, or else into a new buf of at least `n` bytes.
    ///
    /// With nothing buffered, the current buf goes before the new one is
    /// taken, as an allocator's does, so that a reader alone under a tight
    /// budget never waits for memory it holds itself. With bytes buffered it
    /// holds both bufs for the copy.
    #[cold]
    #[inline(never)]
    fn make_room(&mut self, n: usize) -> io::Result<()> {
        let buffered = self.end - self.start;
        let dst = match &self.lease {
            Some(lease) if self.cap() >= n && lease.is_sole_holder() => None,
            _ => {
                let size = self.pool.size_class(n)?;
                if buffered == 0 {
                    // Gives back the current buf's references.
                    self.lease = None;
                }
                Some(self.pool.take(size, Wait::Forever)?)
            }
        };
        if let Some(old) = &self.lease {
            // SAFETY: both leases are held; the buffered bytes are the
            // reader's, and so is the whole of the destination: a fresh
            // lease's buf, or the current one with no slice alive in it.
            // `ptr::copy` allows the overlap of moving within one buf.
            unsafe {
                let from = Header::data(old.buf()).add(self.start);
                let to = Header::data(dst.as_ref().unwrap_or(old).buf());
                ptr::copy(from.as_ptr(), to.as_ptr(), buffered);
            }
        }
        if let Some(dst) = dst {
            // Drops the old lease, giving back its references.
            self.lease = Some(dst);
        }
        self.start = 0;
        self.end = buffered;
        Ok(())
    }

    /// Bytes read from the source and not yet handed out.
    pub fn buffered(&self) -> usize {
        self.end - self.start
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
        &self.pool
    }

    fn cap(&self) -> usize {
        // SAFETY: the lease holds its buf.
        self.lease.as_ref().map_or(0, |lease| unsafe { Header::cap(lease.buf()) })
    }
}

impl<R> fmt::Debug for Reader<R> {
    /// Shows the source's type and the buffered byte count; `R` need not be
    /// `Debug`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader")
            .field("src", &core::any::type_name::<R>())
            .field("buffered", &(self.end - self.start))
            .finish_non_exhaustive()
    }
}
