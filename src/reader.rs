//! `Reader`: frames from any `std::io::Read`, as slices of pool memory.

use core::fmt;
use core::ptr;
use std::io::{self, Read};

use crate::buf::{Header, Lease};
use crate::error::AllocError;
use crate::pool::{Pool, SizeClass, Wait};
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
/// # Memory grows with the bytes received
///
/// A length prefix is a claim, and a hostile peer can claim anything. So a
/// frame longer than a standard buf does not get a buf of its claimed length
/// up front: the reader takes a buf of twice the bytes it has buffered (at
/// least a standard buf, at most the frame), fills it, and moves to one
/// twice as large only when that is full. The memory a frame takes is
/// therefore at most about twice the bytes that actually arrived, and a
/// claim of gigabytes followed by one byte costs one standard buf. The
/// moves copy each byte about once more on average, for frames larger than
/// a standard buf only.
///
/// A frame longer than the reader's maximum ([`DEFAULT_MAX_FRAME_LEN`] by
/// default; see [`with_max_frame_len`](Reader::with_max_frame_len)) is
/// refused before anything is read, as tokio-util's `LengthDelimitedCodec`
/// refuses frames over its `max_frame_length`.
///
/// # Under a budget
///
/// A reader waits for the pool's budget ([`PoolBuilder::max_bytes`]) as
/// [`Allocator::alloc`](crate::Allocator::alloc) does, except where it
/// would wait for its own memory: moving buffered bytes to a larger buf
/// holds the current one meanwhile, and where the two together exceed the
/// whole budget no release by anyone else could end the wait. Then a tail
/// of at most [`STASHED_TAIL_MAX`] bytes is set aside on the stack while
/// the reader lets its buf go and waits; a longer one makes the read fail
/// at once with an error of kind `OutOfMemory` (wrapping
/// [`AllocError::Exhausted`]), with every byte still buffered.
///
/// [`PoolBuilder::max_bytes`]: crate::PoolBuilder::max_bytes
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
    /// The longest frame `read` accepts.
    max_frame_len: usize,
    /// The buf being filled; `None` until the first read.
    lease: Option<Lease>,
    /// Offset of the first buffered byte not yet handed out.
    start: usize,
    /// Offset just past the last buffered byte. Bytes from `start` on belong
    /// to the reader; slices own only bytes before `start`.
    end: usize,
}

/// The longest frame a [`Reader`] accepts unless told otherwise: 8 MiB, as
/// tokio-util's `LengthDelimitedCodec`.
pub const DEFAULT_MAX_FRAME_LEN: usize = 8 << 20;

/// The most buffered bytes a [`Reader`] sets aside on the stack while it
/// gives back its buf to wait for a larger one under a budget; see
/// [`Reader`]'s docs.
pub const STASHED_TAIL_MAX: usize = 4096;

impl<R: Read> Reader<R> {
    pub(crate) fn new(pool: Pool, src: R) -> Reader<R> {
        Reader { pool, src, max_frame_len: DEFAULT_MAX_FRAME_LEN, lease: None, start: 0, end: 0 }
    }

    /// Sets the longest frame [`read`](Reader::read) accepts; a longer one
    /// is refused at once with `InvalidData`, and nothing is read or lost.
    /// [`DEFAULT_MAX_FRAME_LEN`] by default; `usize::MAX` lifts the limit
    /// (the memory a frame takes still grows only with the bytes received).
    ///
    /// # Example
    ///
    /// ```
    /// use std::io::ErrorKind;
    ///
    /// let pool = refbuf::Pool::new();
    /// let mut reader = pool.reader(&b"\xff\xff\xff\xff..."[..]).with_max_frame_len(1 << 20);
    /// let len = reader.read(4)?;
    /// let claimed = u32::from_be_bytes(len[..].try_into().unwrap()) as usize;
    /// let err = reader.read(claimed).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::InvalidData);
    /// assert_eq!(reader.buffered(), 3); // nothing lost
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn with_max_frame_len(mut self, max: usize) -> Reader<R> {
        self.max_frame_len = max;
        self
    }

    /// The longest frame [`read`](Reader::read) accepts.
    pub fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }

    /// The next `n` bytes of the source, as one slice with no headroom.
    /// `read(0)` returns an empty slice (on an open pool: once the pool is
    /// closed every read is refused, as below).
    ///
    /// # Errors
    /// - `InvalidData` where `n` is over [`max_frame_len`](Reader::max_frame_len),
    ///   before anything is read;
    /// - `UnexpectedEof` where the source ends before `n` bytes: the bytes
    ///   read so far stay buffered, so a later, smaller `read` gets them;
    /// - any error from the source other than `Interrupted` (which is
    ///   retried), with every byte read so far kept;
    /// - `InvalidData` where the source claims to have read more bytes than
    ///   it was given room for;
    /// - the pool's [`AllocError`], converted, once the pool is closed
    ///   (`Other`, even with bytes still buffered, as an allocator refuses
    ///   even with room left in its buf), where no buf of `n` bytes can be
    ///   made (`InvalidInput`), or where the system refuses memory
    ///   (`OutOfMemory`). The buffered bytes stay buffered;
    /// - `OutOfMemory` wrapping [`AllocError::Exhausted`] where the reader
    ///   would wait for its own memory (see [`Reader`]'s docs), with every
    ///   byte still buffered.
    ///
    /// The one exception to "nothing is lost": a tail set aside while the
    /// reader waits for a larger buf is dropped where that buf never comes,
    /// because the pool closed meanwhile (a closed pool refuses every later
    /// read anyway) or the system refused it and then refused a buf to put
    /// the tail back in.
    pub fn read(&mut self, n: usize) -> io::Result<Slice> {
        if self.pool.is_closed() {
            return Err(AllocError::Closed.into());
        }
        // One comparison on the fast path: a frame already buffered, and
        // within the limit.
        if n > (self.end - self.start).min(self.max_frame_len) {
            self.read_to(n)?;
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

    /// Reads from the source until `n` bytes are buffered, after refusing a
    /// frame over the limit or larger than any buf.
    #[inline(never)]
    fn read_to(&mut self, n: usize) -> io::Result<()> {
        if n > self.max_frame_len {
            return Err(frame_too_long(n, self.max_frame_len));
        }
        // A frame no buf could ever hold is refused before anything is read
        // for it.
        self.pool.size_class(n)?;
        while self.end - self.start < n {
            self.read_more(n)?;
        }
        Ok(())
    }

    /// Reads from the source once (retrying `Interrupted`), first making
    /// room, towards a frame of `n > buffered` bytes from `start`, for the
    /// next step of its growth: twice the bytes buffered, at least a
    /// standard buf, at most `n`.
    fn read_more(&mut self, n: usize) -> io::Result<()> {
        let buffered = self.end - self.start;
        debug_assert!(buffered < n, "internal: read more for a frame already buffered");
        if buffered == 0 && self.lease.as_ref().is_some_and(Lease::is_sole_holder) {
            // Everything handed out has been dropped: reuse the buf from the top.
            self.start = 0;
            self.end = 0;
        }
        let want = n.min(self.pool.buf_size().max(buffered.saturating_mul(2)));
        // A frame that will fit in `want` moves there at once; one that is
        // still growing fills its current buf first, so that memory follows
        // the bytes that arrive.
        let growing = want < n && self.end < self.cap();
        if self.cap() - self.start < want && !growing {
            self.make_room(want)?;
        }
        // Either `want > buffered` bytes of room from `start`, or spare after
        // `end`: some spare either way.
        let Some(lease) = &self.lease else {
            unreachable!("internal: make_room leaves a buf of at least {want} > 0 bytes");
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
    /// holds both bufs for the copy, where the budget can cover both; see
    /// [`Reader::stash_and_wait`] where it cannot.
    #[cold]
    #[inline(never)]
    fn make_room(&mut self, n: usize) -> io::Result<()> {
        let buffered = self.end - self.start;
        let dst = match &self.lease {
            Some(lease) if self.cap() >= n && lease.is_sole_holder() => None,
            _ => {
                let size = self.pool.size_class(n)?;
                if buffered == 0 {
                    // Gives back the current buf's references; nothing of it
                    // is the reader's any more.
                    self.lease = None;
                    self.start = 0;
                    self.end = 0;
                }
                match self.pool.useful_wait(size, Wait::Forever, self.cap()) {
                    Wait::Never if buffered <= STASHED_TAIL_MAX => return self.stash_and_wait(size),
                    wait => Some(self.pool.lease(size, wait)?),
                }
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

    /// Moves the buffered bytes into a new buf of `size` where the current
    /// buf and the new one together exceed the pool's budget: the reader
    /// sets them aside on the stack, lets its buf go and waits for the new
    /// one, so the wait ends once everyone else has let go too.
    #[cold]
    #[inline(never)]
    fn stash_and_wait(&mut self, size: SizeClass) -> io::Result<()> {
        let buffered = self.end - self.start;
        let mut stash = [0u8; STASHED_TAIL_MAX];
        let stash = &mut stash[..buffered];
        if let Some(lease) = self.lease.take() {
            // SAFETY: the lease holds its buf, whose bytes from `start` to
            // `end` are initialised and the reader's.
            let tail = unsafe {
                core::slice::from_raw_parts(Header::data(lease.buf()).as_ptr().add(self.start), buffered)
            };
            stash.copy_from_slice(tail);
            // Dropping the lease gives back the buf's references.
        }
        self.start = 0;
        self.end = 0;
        let lease = match self.pool.lease(size, Wait::Forever) {
            Ok(lease) => lease,
            // Somewhere to put the tail back, if the pool has room for it.
            Err(e) => {
                match self.pool.size_class(buffered).and_then(|small| self.pool.lease(small, Wait::Never)) {
                    Ok(lease) => {
                        self.lease = Some(lease);
                        self.fill_front(stash);
                        return Err(e.into());
                    }
                    Err(_) => return Err(e.into()),
                }
            }
        };
        self.lease = Some(lease);
        self.fill_front(stash);
        Ok(())
    }

    /// Puts `bytes` at the front of the current buf as the buffered bytes.
    fn fill_front(&mut self, bytes: &[u8]) {
        debug_assert!(self.start == self.end, "internal: buffered bytes overwritten");
        let Some(lease) = &self.lease else { unreachable!("internal: no buf to fill") };
        debug_assert!(bytes.len() <= self.cap(), "internal: {} bytes over the buf", bytes.len());
        // SAFETY: the lease holds its buf, no byte of which belongs to a
        // slice (the reader just took it, or rewound it), and `bytes` fits.
        unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), Header::data(lease.buf()).as_ptr(), bytes.len()) };
        self.start = 0;
        self.end = bytes.len();
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

/// The error for a frame over the reader's maximum.
#[cold]
#[inline(never)]
fn frame_too_long(n: usize, max: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("a frame of {n} bytes is longer than the reader's max_frame_len of {max}"),
    )
}

impl<R> fmt::Debug for Reader<R> {
    /// Shows the source's type and the buffered byte count; `R` need not be
    /// `Debug`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader")
            .field("src", &core::any::type_name::<R>())
            .field("buffered", &(self.end - self.start))
            .field("max_frame_len", &self.max_frame_len)
            .finish_non_exhaustive()
    }
}
