//! The bump allocator: consecutive slices out of one buf at a time.

use core::fmt;
use core::ptr::{self, NonNull};
use std::time::Duration;

use crate::buf::{Header, Lease};
use crate::error::AllocError;
use crate::pool::{Pool, Wait};
use crate::slice::Slice;

/// Bump-allocates consecutive [`Slice`]s out of its current buf, each with
/// `reserve` bytes of headroom in front.
///
/// Each allocation of `len` bytes takes `reserve + len` bytes from the
/// current buf: the slice's headroom, then its data. The next slice starts
/// right after, so with a reserve of 0 consecutive slices touch and
/// [`coalesce`](crate::coalesce) can join them; with a reserve of `r` they are
/// exactly `r` bytes apart. When the current buf has too little left, the
/// allocator lets go of it and takes another from the pool. Handing out a
/// slice takes no lock, no heap allocation and no atomic operation.
///
/// The allocator takes no buf until its first allocation. Dropping it lets go
/// of its buf; slices it made keep that buf alive on their own.
///
/// # Example
///
/// ```
/// let pool = refbuf::Pool::new();
/// let mut alloc = pool.allocator(4);
/// let mut frame = alloc.copy_from_slice(b"payload");
/// assert!(frame.prepend(&7u32.to_be_bytes()));
/// assert_eq!(&frame[..], b"\0\0\0\x07payload");
/// ```
pub struct Allocator {
    pool: Pool,
    reserve: usize,
    current: Option<Bump>,
}

/// The buf an allocator is cutting slices from.
struct Bump {
    lease: Lease,
    /// The first byte no slice has been given.
    next: NonNull<u8>,
    /// Bytes from `next` to the end of the data area.
    remaining: usize,
}

// SAFETY: `next` points into the buf the lease holds, at bytes no slice owns:
// they belong to the allocator, wherever it moves.
unsafe impl Send for Bump {}

impl Allocator {
    pub(crate) fn new(pool: Pool, reserve: usize) -> Allocator {
        Allocator { pool, reserve, current: None }
    }

    /// The headroom, in bytes, in front of every slice this allocator makes.
    pub fn reserve(&self) -> usize {
        self.reserve
    }

    /// The pool this allocator takes bufs from.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// A slice of `len` zero bytes, with `reserve` zeroed bytes of headroom.
    ///
    /// Where the pool's budget ([`PoolBuilder::max_bytes`]) is used up, this
    /// waits until enough memory is released.
    ///
    /// # Panics
    /// Where [`try_alloc`](Allocator::try_alloc) returns an error other
    /// than `Exhausted`: the pool is closed (also while waiting), or `len` is
    /// too large.
    ///
    /// [`PoolBuilder::max_bytes`]: crate::PoolBuilder::max_bytes
    #[inline]
    #[track_caller]
    pub fn alloc(&mut self, len: usize) -> Slice {
        self.zeroed(len, Wait::Forever).unwrap_or_else(|e| alloc_failed(e, len, self.reserve))
    }

    /// [`alloc`](Allocator::alloc), waiting at most `wait` for the budget.
    ///
    /// # Errors
    /// As for [`try_alloc`](Allocator::try_alloc), with `Exhausted` only
    /// once `wait` has passed with the budget still used up.
    pub fn alloc_timeout(&mut self, len: usize, wait: Duration) -> Result<Slice, AllocError> {
        self.zeroed(len, Wait::For(wait))
    }

    /// A slice of `len` zero bytes, with `reserve` zeroed bytes of headroom,
    /// or why there is none.
    ///
    /// Recycled memory holds whatever an earlier user wrote, perhaps another
    /// connection's data, so the slice and its headroom are zero-filled, like
    /// `vec![0; len]`. Use [`alloc_for_overwrite`](Allocator::alloc_for_overwrite)
    /// to skip that when every byte will be written anyway.
    ///
    /// # Errors
    /// - [`AllocError::Closed`] once the pool is closed;
    /// - [`AllocError::Exhausted`] where a new buf is needed and the pool's
    ///   budget is used up (it never waits);
    /// - [`AllocError::TooLarge`] where `reserve + len` overflows, exceeds
    ///   the pool's whole budget, or no buf that large can be made.
    ///
    /// The allocator stays usable after an error.
    #[inline]
    pub fn try_alloc(&mut self, len: usize) -> Result<Slice, AllocError> {
        self.zeroed(len, Wait::Never)
    }

    /// A zero-filled slice, waiting for the budget as `wait` allows.
    #[inline]
    fn zeroed(&mut self, len: usize, wait: Wait) -> Result<Slice, AllocError> {
        let (region, slice) = self.bump(len, wait)?;
        // SAFETY: `region` is the slice's headroom and data, `reserve + len`
        // bytes that the new slice owns alone.
        unsafe { ptr::write_bytes(region.as_ptr(), 0, self.reserve + len) };
        Ok(slice)
    }

    /// A slice of `len` bytes whose contents, headroom included, are whatever
    /// the memory last held.
    ///
    /// **The bytes may be another user's data**: a recycled buf is not
    /// cleared. Use this only where every byte will be written before it is
    /// read or sent, such as a receive buffer that is then truncated to the
    /// length received. The memory is always initialised, so reading it is
    /// safe, just not private.
    ///
    /// Waits for the budget as [`alloc`](Allocator::alloc) does.
    ///
    /// # Panics
    /// As for [`alloc`](Allocator::alloc).
    #[inline]
    #[track_caller]
    pub fn alloc_for_overwrite(&mut self, len: usize) -> Slice {
        self.bump(len, Wait::Forever)
            .map(|(_, slice)| slice)
            .unwrap_or_else(|e| alloc_failed(e, len, self.reserve))
    }

    /// [`alloc_for_overwrite`](Allocator::alloc_for_overwrite), returning
    /// errors instead of panicking or waiting; see
    /// [`try_alloc`](Allocator::try_alloc).
    #[inline]
    pub fn try_alloc_for_overwrite(&mut self, len: usize) -> Result<Slice, AllocError> {
        self.bump(len, Wait::Never).map(|(_, slice)| slice)
    }

    /// A slice holding a copy of `data`, with `reserve` zeroed bytes of
    /// headroom (iobuf's `Copy`). Waits for the budget as
    /// [`alloc`](Allocator::alloc) does.
    ///
    /// # Panics
    /// As for [`alloc`](Allocator::alloc).
    #[inline]
    #[track_caller]
    pub fn copy_from_slice(&mut self, data: &[u8]) -> Slice {
        self.copied(data, Wait::Forever).unwrap_or_else(|e| alloc_failed(e, data.len(), self.reserve))
    }

    /// [`copy_from_slice`](Allocator::copy_from_slice), returning errors
    /// instead of panicking or waiting; see [`try_alloc`](Allocator::try_alloc).
    #[inline]
    pub fn try_copy_from_slice(&mut self, data: &[u8]) -> Result<Slice, AllocError> {
        self.copied(data, Wait::Never)
    }

    /// A copy of `data`, waiting for the budget as `wait` allows.
    #[inline]
    fn copied(&mut self, data: &[u8], wait: Wait) -> Result<Slice, AllocError> {
        let (region, mut slice) = self.bump(data.len(), wait)?;
        // SAFETY: the first `reserve` bytes of `region` are the new slice's
        // headroom, which it owns alone.
        unsafe { ptr::write_bytes(region.as_ptr(), 0, self.reserve) };
        slice.copy_from_slice(data);
        Ok(slice)
    }

    /// Carves `reserve + len` bytes off the current buf (or a new one) and
    /// returns their start and a slice over the last `len` of them, with the
    /// first `reserve` as headroom. The bytes are as found.
    #[inline]
    fn bump(&mut self, len: usize, wait: Wait) -> Result<(NonNull<u8>, Slice), AllocError> {
        let need = self.reserve.checked_add(len).ok_or(AllocError::TooLarge)?;
        if self.pool.is_closed_hint() {
            return Err(AllocError::Closed);
        }
        let bump = match &mut self.current {
            Some(bump) if need <= bump.remaining => bump,
            _ => self.refill(need, wait)?,
        };
        let region = bump.next;
        // SAFETY: `need <= remaining`, so `region + need` stays within the
        // data area (or is one past its end).
        bump.next = unsafe { region.add(need) };
        bump.remaining -= need;
        let buf = bump.lease.share();
        // SAFETY: `region + reserve` is within the region just carved.
        let data = unsafe { region.add(self.reserve) };
        // SAFETY: `buf` is a reference just moved out of the lease, and the
        // `reserve + len` bytes at `region` were the allocator's alone and are
        // now the slice's: headroom then data.
        let slice = unsafe { Slice::from_raw_parts(buf, data, len, self.reserve) };
        Ok((region, slice))
    }

    /// Lets go of the current buf and takes one with at least `need` bytes.
    ///
    /// The current buf goes first, so that when none of its slices is alive
    /// it is the idle buf taken straight back. A request too large for any
    /// buf fails before that, and keeps the current buf.
    #[cold]
    #[inline(never)]
    fn refill(&mut self, need: usize, wait: Wait) -> Result<&mut Bump, AllocError> {
        let size = self.pool.size_class(need)?;
        // Dropping the old `Bump` drops its lease, giving back its references.
        self.current = None;
        let lease = self.pool.take(size, wait)?;
        let buf = lease.buf();
        // SAFETY: the lease holds `buf`.
        let (next, remaining) = unsafe { (Header::data(buf), Header::cap(buf)) };
        Ok(self.current.insert(Bump { lease, next, remaining }))
    }
}

impl fmt::Debug for Allocator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Allocator")
            .field("reserve", &self.reserve)
            .field("remaining", &self.current.as_ref().map_or(0, |b| b.remaining))
            .finish_non_exhaustive()
    }
}

#[cold]
#[inline(never)]
#[track_caller]
fn alloc_failed(e: AllocError, len: usize, reserve: usize) -> ! {
    panic!("refbuf: cannot allocate a slice of {len} bytes with {reserve} bytes of reserve: {e}")
}
