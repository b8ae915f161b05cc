//! `Slice`: a run of bytes in a buf, owned alone, with headroom in front.

use core::fmt;
use core::hash::{Hash, Hasher};
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;

use crate::buf::{Header, Listed};

/// A run of bytes in a pooled buf that this slice alone may read and write,
/// with optional headroom in front of it.
///
/// A `Slice` derefs to `[u8]`. It holds one reference to its buf, which goes
/// back to its pool when the last slice (and allocator or reader) into it
/// drops. A slice is 32 bytes and owns no heap allocation of its own.
///
/// # Ownership
///
/// No two live slices overlap, which is what makes `DerefMut` sound. A slice
/// also owns its *headroom*: the free bytes right in front of its data, which
/// [`expand_front`](Slice::expand_front) can claim to prepend a header in
/// place, without copying the payload.
///
/// A default (or [`Slice::new`]) slice is empty and belongs to no buf.
pub struct Slice {
    /// The buf this slice holds a reference to; `None` for an empty slice
    /// that belongs to no buf.
    buf: Option<NonNull<Header>>,
    /// Start of the data.
    ptr: NonNull<u8>,
    len: usize,
    /// Start of the headroom: the bytes from here to `ptr` are this slice's
    /// too. Kept rather than the headroom's length, so that a drop names
    /// where its region starts from one field.
    start: NonNull<u8>,
}

const _: () = assert!(size_of::<Slice>() == 32);
const _: () = assert!(size_of::<Option<Slice>>() == 32);

// SAFETY: a slice owns its bytes alone, and its reference to the buf may be
// given up from any thread: the count is atomic.
unsafe impl Send for Slice {}
// SAFETY: `&Slice` only reads the slice's own bytes and fields.
unsafe impl Sync for Slice {}

impl Slice {
    /// An empty slice that belongs to no buf.
    pub const fn new() -> Slice {
        Slice { buf: None, ptr: NonNull::dangling(), len: 0, start: NonNull::dangling() }
    }

    /// Wraps `v` as a slice, without copying and with no headroom (iobuf's
    /// `NewSlice`). Its memory is freed, not pooled, when the last slice into
    /// it drops. This makes one small allocation for the buf's header.
    pub fn from_vec(v: Vec<u8>) -> Slice {
        let len = v.len();
        let buf = Header::from_vec(v);
        // SAFETY: `from_vec` returns a buf with one reference, which this
        // slice takes over, and whose whole data area of `len` bytes is the
        // `Vec`'s initialised contents.
        unsafe { Slice::from_raw_parts(buf, Header::data(buf), len, 0) }
    }

    /// Assembles a slice.
    ///
    /// # Safety
    /// - The caller gives the slice one reference to `buf`.
    /// - `headroom + len` initialised bytes starting `headroom` bytes before
    ///   `ptr` lie in `buf`'s data area, and no other slice, allocator or
    ///   reader uses them while the slice lives.
    #[inline]
    pub(crate) unsafe fn from_raw_parts(
        buf: NonNull<Header>,
        ptr: NonNull<u8>,
        len: usize,
        headroom: usize,
    ) -> Slice {
        // SAFETY: the caller gives the slice a reference to `buf`.
        unsafe { Header::track(buf, 1, (headroom + len) as isize) };
        // SAFETY: the caller guarantees `headroom` bytes in front of `ptr`,
        // in the buf.
        let start = unsafe { ptr.sub(headroom) };
        Slice { buf: Some(buf), ptr, len, start }
    }

    /// Records `holders` slices and `bytes` owned gained or lost in this
    /// slice's buf, for the `diagnostics` feature.
    #[inline(always)]
    fn track(&self, holders: isize, bytes: isize) {
        if let Some(buf) = self.buf {
            // SAFETY: this slice holds a reference to `buf`.
            unsafe { Header::track(buf, holders, bytes) };
        }
    }

    /// Free bytes in front of the data that [`expand_front`](Slice::expand_front)
    /// may claim.
    #[inline]
    pub fn headroom(&self) -> usize {
        // `start` is at or before `ptr`, in the same buf (or both dangle).
        self.ptr.as_ptr().addr() - self.start.as_ptr().addr()
    }

    /// Grows the slice `n` bytes backwards into its headroom. Returns `false`,
    /// changing nothing, where the headroom is less than `n`.
    ///
    /// The new bytes hold whatever the headroom held: zeros for a slice from
    /// [`Allocator::alloc`](crate::Allocator::alloc), the slice's own former
    /// bytes after [`truncate_front`](Slice::truncate_front).
    #[inline]
    pub fn expand_front(&mut self, n: usize) -> bool {
        if n > self.headroom() {
            return false;
        }
        // SAFETY: the `n <= headroom` bytes in front of `ptr` are in the same
        // buf and owned by this slice.
        self.ptr = unsafe { self.ptr.sub(n) };
        self.len += n;
        true
    }

    /// Prepends a copy of `header` in the headroom, without moving the data.
    /// Returns `false`, changing nothing, where the headroom is too small.
    #[inline]
    pub fn prepend(&mut self, header: &[u8]) -> bool {
        if !self.expand_front(header.len()) {
            return false;
        }
        self[..header.len()].copy_from_slice(header);
        true
    }

    /// Drops the first `n` bytes (all of them if `n` is larger than the
    /// slice). They become headroom, so `expand_front` can take them back.
    #[inline]
    pub fn truncate_front(&mut self, n: usize) {
        let n = n.min(self.len);
        // SAFETY: `n <= len`, so the result is within (or one past) the data.
        self.ptr = unsafe { self.ptr.add(n) };
        self.len -= n;
    }

    /// Shortens the slice to `len` bytes, keeping the front. No effect where
    /// `len` is not less than the current length. The bytes cut off belong
    /// to nobody afterwards.
    #[inline]
    pub fn truncate(&mut self, len: usize) {
        self.track(0, -(self.len.saturating_sub(len) as isize));
        self.len = self.len.min(len);
    }

    /// Splits off and returns the first `at` bytes; `self` keeps the rest.
    /// The returned front part keeps the headroom, `self` has none. No copy.
    ///
    /// # Panics
    /// Where `at > len`.
    #[must_use = "the front part is returned; dropping it frees its bytes"]
    pub fn split_to(&mut self, at: usize) -> Slice {
        assert!(at <= self.len, "split_to out of bounds: {at} > {}", self.len);
        self.reshape();
        let front = Slice { buf: self.share_buf(), ptr: self.ptr, len: at, start: self.start };
        self.track(1, 0);
        // SAFETY: `at <= len`, so the result is within (or one past) the data.
        self.ptr = unsafe { self.ptr.add(at) };
        self.len -= at;
        self.start = self.ptr;
        front
    }

    /// Splits off and returns the bytes from `at` on; `self` keeps the first
    /// `at` bytes and its headroom, the returned back part has none. No copy.
    ///
    /// # Panics
    /// Where `at > len`.
    #[must_use = "the back part is returned; dropping it frees its bytes"]
    pub fn split_off(&mut self, at: usize) -> Slice {
        assert!(at <= self.len, "split_off out of bounds: {at} > {}", self.len);
        self.reshape();
        // SAFETY: `at <= len`, so the result is within (or one past) the data.
        let ptr = unsafe { self.ptr.add(at) };
        let back = Slice { buf: self.share_buf(), ptr, len: self.len - at, start: ptr };
        self.track(1, 0);
        self.len = at;
        back
    }

    /// Consumes `prev`, the slice allocated just before this one. Where `prev`
    /// lies in the same buf and ends exactly where this slice's headroom
    /// begins, this slice's headroom grows over `prev`'s headroom and data;
    /// otherwise `prev` is simply dropped.
    ///
    /// This lets a protocol layer that is done with one message reuse its
    /// bytes for a larger header on the next.
    pub fn release_previous(&mut self, prev: Slice) {
        if self.buf.is_some() && prev.buf == self.buf && prev.end() == self.start.as_ptr().cast_const() {
            self.reshape();
            self.start = prev.start;
            // `prev`'s bytes are this slice's now; its drop gives them up.
            self.track(0, (prev.headroom() + prev.len) as isize);
        }
    }

    /// Where this slice is the only holder of its buf (no allocator, reader
    /// or other slice uses it), extends the headroom to the start of the buf
    /// and returns `true`; otherwise returns `false` and changes nothing.
    ///
    /// **The new headroom holds whatever earlier slices of the same buf
    /// held**, which may be another user's data: [`expand_front`](Slice::expand_front)
    /// over it shows those bytes. Overwrite what you expose.
    pub fn free_entire_prefix(&mut self) -> bool {
        let Some(buf) = self.buf else {
            return false;
        };
        // SAFETY: this slice holds one reference.
        if !unsafe { Header::is_held_only_by(buf, 1) } {
            return false;
        }
        // A buf on one of its pool's lists that hold no reference may be
        // leased from there at any moment (`Lease::upgrade`): it must come
        // off first, under the pool's lock, while this slice is still its
        // only holder. One that is not on such a list stays off: only a
        // lease puts a buf there, and there is none. (The `Acquire` load
        // above orders the listing, made before the lease let go, before
        // this read.)
        // SAFETY: as above; this slice holds the buf's only reference.
        if unsafe { Header::listed(buf) } != Listed::No && !unsafe { Header::unlist_sole(buf) } {
            return false;
        }
        // SAFETY: this slice holds a reference, so `buf` is live.
        let start = unsafe { Header::data(buf) };
        self.reshape();
        // The data lies in `buf`'s data area, at or after its start.
        let headroom = self.ptr.as_ptr().addr() - start.as_ptr().addr();
        self.track(0, (headroom - self.headroom()) as isize);
        self.start = start;
        true
    }

    /// Appends `next` to this slice where `next` starts exactly where this
    /// slice ends in the same buf: the two become one, with no copy. Otherwise
    /// hands `next` back unchanged.
    ///
    /// # Errors
    /// Returns `next` where it does not directly follow this slice.
    pub fn try_join(&mut self, next: Slice) -> Result<(), Slice> {
        if !self.is_followed_by(&next) {
            return Err(next);
        }
        self.reshape();
        self.len += next.len;
        // `next`'s bytes are this slice's now; its drop gives them up.
        self.track(0, next.len as isize);
        Ok(())
    }

    /// The buf this slice holds and the size of its data area; `None` for a
    /// slice of no buf.
    pub(crate) fn buf_and_cap(&self) -> Option<(NonNull<Header>, usize)> {
        // SAFETY: this slice holds a reference to `buf`, so it is live.
        self.buf.map(|buf| (buf, unsafe { Header::cap(buf) }))
    }

    /// Whether `next` starts exactly where this slice ends, in the same buf.
    #[inline]
    pub(crate) fn is_followed_by(&self, next: &Slice) -> bool {
        next.buf.is_some_and(|buf| self.ends_at(buf, next.ptr))
    }

    /// Whether this slice's data ends exactly at `at`, in `buf`.
    #[inline]
    pub(crate) fn ends_at(&self, buf: NonNull<Header>, at: NonNull<u8>) -> bool {
        self.buf == Some(buf) && self.end() == at.as_ptr()
    }

    /// Grows this slice over the slices at `rest` that follow it directly,
    /// one after another in its buf, while its length stays at most
    /// `max_len`, and returns how many it took, `k`: it stops at the first
    /// of the `n` that does not follow or does not fit. The `k` slices are
    /// taken over whole, references included: the caller owes `k` releases
    /// of this slice's buf (see [`release_absorbed`](Slice::release_absorbed)),
    /// which `coalesce` gives up once per run rather than per slice.
    ///
    /// The run's end and its room stay in registers: per slice, three
    /// compares and two adds.
    ///
    /// # Safety
    /// `rest` points to `n` initialised slices that the caller owns. The
    /// first `k` are this slice's when this returns: the caller must
    /// neither read nor drop them again.
    #[inline]
    pub(crate) unsafe fn absorb_following(&mut self, rest: *const Slice, n: usize, max_len: usize) -> usize {
        let Some(buf) = self.buf else { return 0 };
        let Some(mut room) = max_len.checked_sub(self.len) else { return 0 };
        let mut end = self.end();
        let mut k = 0;
        while k < n {
            // SAFETY: `k < n`: an initialised slice the caller owns.
            let next = unsafe { &*rest.add(k) };
            if next.buf != Some(buf) || next.ptr.as_ptr().cast_const() != end || next.len > room {
                break;
            }
            // `next`'s bytes are this slice's now, and its headroom (none:
            // it starts where this slice's data ends) is given up, as when
            // a slice joined by `try_join` drops.
            self.track(-1, -(next.headroom() as isize));
            // SAFETY: `next`'s data follows `end` in the same buf.
            end = unsafe { end.add(next.len) };
            room -= next.len;
            k += 1;
        }
        self.len = end.addr() - self.ptr.as_ptr().addr();
        k
    }

    /// Gives up `n` references to this slice's buf, which its owner had
    /// taken over from slices it absorbed, and marks the buf reshaped (see
    /// [`Header::reshape`]) where there were any: once per merged run, not
    /// per slice absorbed, before the run can reach any other thread.
    ///
    /// # Safety
    /// The caller owns `n` references to this slice's buf, taken over by
    /// [`absorb_following`](Slice::absorb_following) and not yet given up.
    #[inline]
    pub(crate) unsafe fn release_absorbed(&self, n: usize) {
        if let (Some(buf), 1..) = (self.buf, n) {
            self.reshape();
            // SAFETY: the caller owns `n` references; this slice's own
            // reference keeps the count above zero, so the buf survives.
            unsafe { Header::release(buf, n) };
        }
    }

    /// Zeroes the headroom, for a slice fresh from recycled memory.
    #[inline]
    pub(crate) fn zero_headroom(&mut self) {
        let headroom = self.headroom();
        if headroom != 0 {
            // SAFETY: the `headroom` bytes in front of `ptr` are in the same
            // buf, initialised, and owned by this slice alone.
            unsafe { core::ptr::write_bytes(self.start.as_ptr(), 0, headroom) };
        }
    }

    /// One past the last byte.
    #[inline]
    fn end(&self) -> *const u8 {
        self.ptr.as_ptr().wrapping_add(self.len)
    }

    /// Tells the buf that this slice is about to be split or joined, or its
    /// region moved; see [`Header::reshape`].
    #[inline]
    fn reshape(&self) {
        if let Some(buf) = self.buf {
            // SAFETY: this slice holds a reference to `buf`.
            unsafe { Header::reshape(buf) };
        }
    }

    /// A new reference to this slice's buf, for a slice split off it.
    #[inline]
    fn share_buf(&self) -> Option<NonNull<Header>> {
        if let Some(buf) = self.buf {
            // SAFETY: this slice holds a reference to `buf`.
            unsafe { Header::retain(buf, 1) };
        }
        self.buf
    }
}

impl Drop for Slice {
    #[inline]
    fn drop(&mut self) {
        self.track(-1, -((self.headroom() + self.len) as isize));
        if let Some(buf) = self.buf {
            // SAFETY: the slice owns one reference and is going away; its
            // region starts at `start`, in the buf.
            unsafe { Header::release_slice(buf, self.start) };
        }
    }
}

impl Default for Slice {
    fn default() -> Slice {
        Slice::new()
    }
}

impl Deref for Slice {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr` is valid for `len` initialised bytes that only this
        // slice uses (or is dangling with `len == 0`).
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl DerefMut for Slice {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as for `deref`; `&mut self` makes the access exclusive, and
        // no other slice overlaps these bytes.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl AsRef<[u8]> for Slice {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl AsMut<[u8]> for Slice {
    fn as_mut(&mut self) -> &mut [u8] {
        self
    }
}

impl PartialEq for Slice {
    /// Compares contents, like `[u8]`.
    fn eq(&self, other: &Slice) -> bool {
        self[..] == other[..]
    }
}

impl Eq for Slice {}

impl PartialEq<[u8]> for Slice {
    fn eq(&self, other: &[u8]) -> bool {
        self[..] == *other
    }
}

impl Hash for Slice {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self[..].hash(state);
    }
}

impl fmt::Debug for Slice {
    /// Shows the length and headroom, not the contents: pooled bytes are
    /// often someone's traffic, and logs are no place for it. Format `&slice[..]`
    /// to see the bytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slice").field("len", &self.len).field("headroom", &self.headroom()).finish()
    }
}
