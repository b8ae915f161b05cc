//! `coalesce`: joining slices that touch in memory, without copying.

use crate::slice::Slice;

/// Joins runs of slices that touch in memory, in place and without copying.
///
/// Walking left to right, each slice that starts exactly where the one before
/// it ends, in the same buf, is merged into it, as long as the merged length
/// stays at most `max_len`. Order is kept and nothing is split: a slice longer
/// than `max_len` passes through unchanged, and touching zero-length slices
/// merge too. Headroom is kept by the first slice of each run.
///
/// `coalesce` never allocates, and gives up the references of each merged run
/// with a single atomic operation.
///
/// # Example
///
/// ```
/// let pool = refbuf::Pool::new();
/// let mut alloc = pool.allocator(0);
/// let mut parts = vec![alloc.copy_from_slice(b"ab"), alloc.copy_from_slice(b"cd")];
/// refbuf::coalesce(&mut parts, usize::MAX);
/// assert_eq!(parts.len(), 1);
/// assert_eq!(&parts[0][..], b"abcd");
/// ```
pub fn coalesce(slices: &mut Vec<Slice>, max_len: usize) {
    coalesce_stored(slices, max_len);
}

/// A vector of slices whose length can be set, for [`coalesce_stored`]:
/// `Vec` for [`coalesce`], the `SmallVec` of a [`Chain`](crate::Chain).
pub(crate) trait SliceVec {
    /// The slices held.
    fn len(&self) -> usize;

    /// Where the first is stored.
    fn as_mut_ptr(&mut self) -> *mut Slice;

    /// Sets how many slices are held, as `Vec::set_len` does.
    ///
    /// # Safety
    /// As for `Vec::set_len`: the first `len` slots hold initialised
    /// slices, which the vector then owns.
    unsafe fn set_len(&mut self, len: usize);
}

impl SliceVec for Vec<Slice> {
    fn len(&self) -> usize {
        Vec::len(self)
    }

    fn as_mut_ptr(&mut self) -> *mut Slice {
        Vec::as_mut_ptr(self)
    }

    unsafe fn set_len(&mut self, len: usize) {
        // SAFETY: the caller's guarantee.
        unsafe { Vec::set_len(self, len) }
    }
}

impl<A: smallvec::Array<Item = Slice>> SliceVec for smallvec::SmallVec<A> {
    fn len(&self) -> usize {
        smallvec::SmallVec::len(self)
    }

    fn as_mut_ptr(&mut self) -> *mut Slice {
        smallvec::SmallVec::as_mut_ptr(self)
    }

    unsafe fn set_len(&mut self, len: usize) {
        // SAFETY: the caller's guarantee.
        unsafe { smallvec::SmallVec::set_len(self, len) }
    }
}

/// [`coalesce`] on any vector of slices: merges runs into its front and
/// drops its length to the slices left.
pub(crate) fn coalesce_stored(slices: &mut impl SliceVec, max_len: usize) {
    let len = slices.len();
    // SAFETY: the vector owns `len` slices at `as_mut_ptr`. Its length is
    // zero while they are merged, so a panic leaks them rather than dropping
    // one twice, and afterwards it owns the `kept` slices left in front, as
    // `coalesce_in_place` requires.
    unsafe {
        slices.set_len(0);
        let kept = coalesce_in_place(slices.as_mut_ptr(), len, max_len);
        slices.set_len(kept);
    }
}

/// The work of [`coalesce`] on `len` slices at `parts`: merges runs into
/// the front and returns how many slices are left there, `kept`. The slots
/// from `kept` to `len` are moved out: each slice that was there has been
/// merged into a kept one or moved to a lower slot.
///
/// A merged slice is only looked at, never moved, so merging costs a few
/// loads, compares and adds per slice, and the emptied slots need no drop.
///
/// # Safety
/// `parts` points to `len` initialised slices that the caller owns; when
/// this returns, the caller owns the first `kept` of them and must neither
/// read nor drop the rest. The caller must not drop any of them if this
/// panics (a leak, not a double drop).
unsafe fn coalesce_in_place(parts: *mut Slice, len: usize, max_len: usize) -> usize {
    if len == 0 {
        return 0;
    }
    // `run` is the run being built, moved out of its slot, `head`. Every
    // slot up to `i` has been read: its slice merged into a run, or moved
    // out as one. A slot is written only once it has been read.
    //
    // SAFETY: slot 0 is read once, as the first run.
    let mut run = unsafe { parts.read() };
    let mut head = 0;
    let mut i = 1;
    loop {
        // SAFETY: slots `i..len` are initialised and not yet read; the run
        // takes over the first `absorbed` of them, which are not read again.
        let absorbed = unsafe { run.absorb_following(parts.add(i), len - i, max_len) };
        // SAFETY: the run took over the references of the `absorbed` slices
        // and has not given them up.
        unsafe { run.release_absorbed(absorbed) };
        i += absorbed;
        if i == len {
            break;
        }
        // SAFETY: slot `head` is below `i`, so its slice was read out
        // already; slot `i`'s slice becomes the next run, to be written
        // back to slot `head + 1 <= i`.
        unsafe {
            parts.add(head).write(run);
            run = parts.add(i).read();
        }
        head += 1;
        i += 1;
    }
    // SAFETY: as above, for the last run: slot `head < len` was read out
    // of already.
    unsafe { parts.add(head).write(run) };
    head + 1
}
