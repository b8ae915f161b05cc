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
    let len = coalesce_in_place(slices, max_len);
    slices.truncate(len);
}

/// The work of [`coalesce`] on any slice of slices: merges runs into the
/// front of `slices` and returns how many are left there; the rest are
/// empty slices that belong to no buf.
pub(crate) fn coalesce_in_place(slices: &mut [Slice], max_len: usize) -> usize {
    if slices.is_empty() {
        return 0;
    }
    // `slices[head]` is the run being built. The slots after it up to the
    // cursor have been taken (left empty); `owed` references of the head's
    // buf were taken over from the slices merged into it.
    let mut head = 0;
    let mut owed = 0;
    for i in 1..slices.len() {
        let next = core::mem::take(&mut slices[i]);
        let run = &mut slices[head];
        if run.is_followed_by(&next) && run.len().checked_add(next.len()).is_some_and(|n| n <= max_len) {
            run.absorb_keeping_ref(next);
            owed += 1;
        } else {
            // SAFETY: `owed` counts the slices absorbed into this run, whose
            // references the run took over and has not given up.
            unsafe { run.release_absorbed(owed) };
            owed = 0;
            head += 1;
            slices[head] = next;
        }
    }
    // SAFETY: as above, for the last run.
    unsafe { slices[head].release_absorbed(owed) };
    head + 1
}
