//! `Reader`: frames from any `std::io::Read`, as slices of pool memory; and
//! `Frames`, the buffer it shares with the `AsyncReader`.
//!
//! `Frames` holds the bytes read ahead and decides where the next read from
//! the source goes (the growth of a long frame, moving buffered bytes, the
//! budget); the two readers only differ in how they read from their source
//! and how they wait for memory, which a [`Lessor`] supplies.

use core::fmt;
use core::ptr;
use core::task::Poll;
use std::io::{self, Read};

use crate::buf::{Header, Lease};
use crate::error::AllocError;
use crate::pool::{Pool, SizeClass, Ticket, Wait};
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
/// # Looking before taking
///
/// A parser of a line-based protocol needs to see the buffered bytes before
/// it knows how much to take: [`buffer`](Reader::buffer) shows them, and
/// [`fill`](Reader::fill) reads more (growing or compacting the buf as
/// `read` does), so it finds its delimiter and then takes the line with
/// `read`.
///
/// # Blocking
///
/// Every method that reads blocks the thread on the source, and where the
/// pool's budget is used up, on the budget; inside an async runtime, use
/// the `AsyncReader` (feature `tokio`), which waits for neither.
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
    src: R,
    frames: Frames,
}

/// The buffer a reader shares between the bytes read ahead and the frames
/// cut from them.
pub(crate) struct Frames {
    pool: Pool,
    /// The longest frame `read` accepts.
    max_frame_len: usize,
    /// The buf being filled; `None` until the first read.
    lease: Option<Lease>,
    /// Offset of the first buffered byte not yet handed out.
    start: usize,
    /// Offset just past the last buffered byte. Bytes from `start` on belong
    /// to the reader; slices own only bytes before `start`.
    end: usize,
    /// Its place among the pool's async waiters while an async read waits
    /// for the budget; given up when the wait ends, is cancelled, or the
    /// reader goes.
    ticket: Ticket,
}

/// How a reader gets a buf where it needs a new one: blocking, or through a
/// waker.
pub(crate) trait Lessor {
    /// Whether the reader may set a small tail aside on the stack while it
    /// lets its buf go and blocks for a larger one (see [`Reader`]'s docs):
    /// only a blocking reader can keep bytes on its stack across a wait.
    const MAY_STASH: bool;

    /// A buf of `size` from `pool`, waiting as `wait` allows; an async wait
    /// keeps its place among the pool's waiters in `ticket`.
    fn poll_lease(
        &mut self,
        pool: &Pool,
        size: SizeClass,
        wait: Wait,
        ticket: &mut Ticket,
    ) -> Poll<Result<Lease, AllocError>>;
}

/// The blocking reader's way: wait on the pool's condition variable.
struct Blocking;

impl Lessor for Blocking {
    const MAY_STASH: bool = true;

    fn poll_lease(
        &mut self,
        pool: &Pool,
        size: SizeClass,
        wait: Wait,
        _: &mut Ticket,
    ) -> Poll<Result<Lease, AllocError>> {
        Poll::Ready(pool.lease(size, wait))
    }
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
        Reader { src, frames: Frames::new(pool) }
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
        self.frames.set_max_frame_len(max);
        self
    }

    /// The longest frame [`read`](Reader::read) accepts.
    pub fn max_frame_len(&self) -> usize {
        self.frames.max_frame_len()
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
        self.frames.check_open()?;
        // One comparison on the fast path: a frame already buffered, and
        // within the limit.
        if n > self.frames.buffered().min(self.frames.max_frame_len()) {
            self.read_to(n)?;
        }
        Ok(self.frames.cut(n))
    }

    /// The bytes read from the source and not yet handed out, to look at
    /// before deciding how much to [`read`](Reader::read).
    pub fn buffer(&self) -> &[u8] {
        self.frames.buffer()
    }

    /// Reads more from the source into the buffer (once, retrying
    /// `Interrupted`), and returns how many bytes came; `Ok(0)` at the end
    /// of the source. Where the buf is full, the buffered bytes move first,
    /// to its front or to a larger buf, as for a [`read`](Reader::read) of
    /// one byte more than is buffered.
    ///
    /// # Errors
    /// As for [`read`](Reader::read) of `buffered() + 1` bytes, except that
    /// the end of the source is `Ok(0)`.
    ///
    /// # Example
    ///
    /// ```
    /// let pool = refbuf::Pool::builder().buf_size(64).build();
    /// let mut reader = pool.reader(&b"PING\r\nECHO hi\r\n"[..]);
    /// let mut lines = Vec::new();
    /// loop {
    ///     match reader.buffer().windows(2).position(|w| w == b"\r\n") {
    ///         Some(at) => lines.push(reader.read(at + 2)?),
    ///         None if reader.fill()? == 0 => break,
    ///         None => {}
    ///     }
    /// }
    /// assert_eq!(&lines[1][..], b"ECHO hi\r\n");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn fill(&mut self) -> io::Result<usize> {
        self.frames.check_open()?;
        let n = self.frames.buffered().saturating_add(1);
        self.frames.check_frame(n)?;
        self.read_more(n)
    }

    /// Reads from the source until `n` bytes are buffered, after refusing a
    /// frame over the limit or larger than any buf.
    #[inline(never)]
    fn read_to(&mut self, n: usize) -> io::Result<()> {
        self.frames.check_frame(n)?;
        while self.frames.buffered() < n {
            if self.read_more(n)? == 0 {
                return Err(early_eof(self.frames.buffered(), n));
            }
        }
        Ok(())
    }

    /// Reads from the source once (retrying `Interrupted`) into the room
    /// [`Frames::poll_spare`] makes towards a frame of `n > buffered` bytes.
    fn read_more(&mut self, n: usize) -> io::Result<usize> {
        let Poll::Ready(spare) = self.frames.poll_spare(n, &mut Blocking) else {
            unreachable!("internal: a blocking lease is always ready")
        };
        let spare = spare?;
        let spare_len = spare.len();
        let k = loop {
            match self.src.read(spare) {
                Ok(k) => break k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        };
        self.frames.commit(k, spare_len)?;
        Ok(k)
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

impl Frames {
    pub(crate) fn new(pool: Pool) -> Frames {
        Frames {
            pool,
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            lease: None,
            start: 0,
            end: 0,
            ticket: Ticket::default(),
        }
    }

    /// Gives up an async read's place among the pool's waiters, if it has
    /// one.
    pub(crate) fn cancel_wait(&mut self) {
        self.pool.cancel_wait(&mut self.ticket);
    }

    /// The pool the bufs come from.
    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The longest frame accepted.
    pub(crate) fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }

    /// Sets the longest frame accepted.
    pub(crate) fn set_max_frame_len(&mut self, max: usize) {
        self.max_frame_len = max;
    }

    /// Bytes read and not yet handed out.
    #[inline]
    pub(crate) fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// The bytes read and not yet handed out.
    pub(crate) fn buffer(&self) -> &[u8] {
        match &self.lease {
            // SAFETY: the lease holds its buf; the bytes from `start` to
            // `end` are initialised and the reader's, and `&self` keeps
            // them from being handed out while the borrow lasts.
            Some(lease) => unsafe {
                core::slice::from_raw_parts(
                    Header::data(lease.buf()).as_ptr().add(self.start),
                    self.buffered(),
                )
            },
            None => &[],
        }
    }

    /// Refuses every read once the pool is closed.
    #[inline]
    pub(crate) fn check_open(&self) -> io::Result<()> {
        if self.pool.is_closed() { Err(AllocError::Closed.into()) } else { Ok(()) }
    }

    /// Refuses, before anything is read for it, a frame over the limit or
    /// larger than any buf.
    pub(crate) fn check_frame(&self, n: usize) -> io::Result<()> {
        if n > self.max_frame_len {
            return Err(frame_too_long(n, self.max_frame_len));
        }
        self.pool.size_class(n)?;
        Ok(())
    }

    /// Hands out the next `n` buffered bytes as a slice.
    #[inline]
    pub(crate) fn cut(&mut self, n: usize) -> Slice {
        debug_assert!(n <= self.buffered(), "internal: cut {n} of {} buffered", self.buffered());
        let Some(lease) = &mut self.lease else {
            return Slice::new();
        };
        let buf = lease.share();
        // SAFETY: the lease holds `buf`; `start + n <= end <= cap`.
        let ptr = unsafe { Header::data(buf).add(self.start) };
        self.start += n;
        // SAFETY: `buf` is a reference just moved out of the lease, and the
        // `n` initialised bytes at `ptr` belonged to the reader and are now
        // the slice's alone: the reader only uses bytes from `start` on.
        unsafe { Slice::from_raw_parts(buf, ptr, n, 0) }
    }

    /// The room the next read from the source goes into, towards a frame of
    /// `n > buffered` bytes from `start`, made for the next step of the
    /// frame's growth: twice the bytes buffered, at least a standard buf, at
    /// most `n`. `Pending` where `lessor` waits for a buf; nothing is lost
    /// meanwhile.
    pub(crate) fn poll_spare<L: Lessor>(&mut self, n: usize, lessor: &mut L) -> Poll<io::Result<&mut [u8]>> {
        let buffered = self.buffered();
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
        if self.cap() - self.start < want
            && !growing
            && let Err(e) = core::task::ready!(self.poll_make_room(want, lessor))
        {
            return Poll::Ready(Err(e));
        }
        // Either `want > buffered` bytes of room from `start`, or spare after
        // `end`: some spare either way.
        let Some(lease) = &self.lease else {
            unreachable!("internal: make_room leaves a buf of at least {want} > 0 bytes");
        };
        let spare_len = self.cap() - self.end;
        // SAFETY: the lease holds its buf; bytes from `end` to the end of
        // its data area are initialised and belong to the reader alone.
        Poll::Ready(Ok(unsafe {
            core::slice::from_raw_parts_mut(Header::data(lease.buf()).as_ptr().add(self.end), spare_len)
        }))
    }

    /// Takes the `k` bytes the source says it read into the `spare_len`
    /// bytes [`Frames::poll_spare`] handed out.
    pub(crate) fn commit(&mut self, k: usize, spare_len: usize) -> io::Result<()> {
        if k > spare_len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("source claimed {k} bytes read into a {spare_len}-byte buffer"),
            ));
        }
        self.end += k;
        Ok(())
    }

    /// Makes room for `n > buffered` bytes from `start`: moves the buffered
    /// bytes to the front of the current buf if no slice uses it and it is
    /// large enough, or else into a new buf of at least `n` bytes.
    ///
    /// With nothing buffered, the current buf goes before the new one is
    /// taken, as an allocator's does, so that a reader alone under a tight
    /// budget never waits for memory it holds itself. With bytes buffered it
    /// holds both bufs for the copy, where the budget can cover both; see
    /// [`Frames::stash_and_wait`] where it cannot.
    #[cold]
    #[inline(never)]
    fn poll_make_room<L: Lessor>(&mut self, n: usize, lessor: &mut L) -> Poll<io::Result<()>> {
        let buffered = self.buffered();
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
                    Wait::Never if L::MAY_STASH && buffered <= STASHED_TAIL_MAX => {
                        return Poll::Ready(self.stash_and_wait(size));
                    }
                    wait => {
                        Some(core::task::ready!(lessor.poll_lease(&self.pool, size, wait, &mut self.ticket))?)
                    }
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
        Poll::Ready(Ok(()))
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

    /// Bytes in the current buf's data area; 0 without one.
    fn cap(&self) -> usize {
        // SAFETY: the lease holds its buf.
        self.lease.as_ref().map_or(0, |lease| unsafe { Header::cap(lease.buf()) })
    }
}

impl Drop for Frames {
    fn drop(&mut self) {
        self.cancel_wait();
    }
}

/// The error for a source that ends `got` bytes into an `n`-byte frame.
pub(crate) fn early_eof(got: usize, n: usize) -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, format!("source ended {got} bytes into a {n}-byte read"))
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
            .field("buffered", &self.frames.buffered())
            .field("max_frame_len", &self.frames.max_frame_len)
            .finish_non_exhaustive()
    }
}
