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
/// A merged slice is read once and forgotten, so merging costs a few loads
/// and an add per slice, and the emptied slots need no drop.
///
/// # Safety
/// `parts` points to `len` initialised slices that the caller owns; when
/// this returns, the caller owns the first `kept` of them and must neither
/// read nor drop the rest. The caller must not drop any of them if this
/// panics (a leak, not a double drop).
pub(crate) unsafe fn coalesce_in_place(parts: *mut Slice, len: usize, max_len: usize) -> usize {
    if len == 0 {
        return 0;
    }
    // `run` is the run being built, moved out of its slot, `head`; the
    // slots after it up to `i` are moved out too. `owed` references of the
    // run's buf were taken over from the slices merged into it. Kept in a
    // local, the run's fields stay in registers.
    //
    // Each access to `parts` below is at an index below `len`, to an
    // initialised slice the caller owns: `head < i < len`. Each slice is
    // read once, then either merged into the run (its reference kept by
    // the run) or made the next run, and a slot is written only once its
    // own slice has been read out of it.
    //
    // SAFETY: slot 0 is read once, as the first run.
    let mut run = unsafe { parts.read() };
    let mut head = 0;
    let mut owed = 0;
    for i in 1..len {
        // SAFETY: slot `i` is read here, and moved out of in either branch.
        let next = unsafe { &*parts.add(i) };
        if run.is_followed_by(next) && run.len().checked_add(next.len()).is_some_and(|n| n <= max_len) {
            // SAFETY: slot `i`'s slice is merged, and the slot never read
            // again.
            run.absorb_keeping_ref(unsafe { parts.add(i).read() });
            owed += 1;
        } else {
            // SAFETY: `owed` counts the slices absorbed into this run, whose
            // references the run took over and has not given up.
            unsafe { run.release_absorbed(owed) };
            owed = 0;
            // SAFETY: slot `head` is below `i`, so its slice was read out
            // already; slot `i`'s slice becomes the next run, to be written
            // back to slot `head + 1 <= i`.
            unsafe {
                parts.add(head).write(run);
                run = parts.add(i).read();
            }
            head += 1;
        }
    }
    // SAFETY: as above, for the last run: slot `head < len` was read out
    // of already.
    unsafe {
        run.release_absorbed(owed);
        parts.add(head).write(run);
    }
    head + 1
}
