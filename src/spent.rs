//! `SpentList`: the leases an allocator keeps of the bufs it has filled,
//! oldest first, in a ring of its own.
//!
//! A `VecDeque` did the job, but its `push_back` and `pop_front` are left
//! out of line or inlined depending on how the compiler splits the crate
//! into codegen units: the same turnover of a buf (one of each) took 117
//! instructions in one build and 160 in another with an unrelated function
//! added (callgrind). Here every operation is a few lines marked for
//! inlining, so the turnover costs the same in every build.

use crate::buf::Lease;

/// Leases in a ring of a power-of-two number of places: `len` of them,
/// from place `head` on, wrapping.
pub(crate) struct SpentList {
    /// Every place; `None` outside the `len` from `head`.
    places: Box<[Option<Lease>]>,
    /// The place of the oldest lease.
    head: usize,
    len: usize,
}

impl SpentList {
    /// A list with room for `n` leases before it allocates again (more
    /// where `n` is not a power of two; none is allocated for 0).
    pub(crate) fn with_capacity(n: usize) -> SpentList {
        let places = if n == 0 { Box::default() } else { (0..n.next_power_of_two()).map(|_| None).collect() };
        SpentList { places, head: 0, len: 0 }
    }

    /// How many leases it holds.
    #[inline(always)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The place `i` leases after the oldest.
    #[inline(always)]
    fn place(&self, i: usize) -> usize {
        // The number of places is a power of two, and not zero where this
        // is called with a lease in the list or room for one.
        (self.head + i) & (self.places.len() - 1)
    }

    /// The oldest lease.
    #[inline(always)]
    pub(crate) fn front(&self) -> Option<&Lease> {
        if self.len == 0 { None } else { self.places[self.head].as_ref() }
    }

    /// Takes the oldest lease out.
    #[inline(always)]
    pub(crate) fn pop_front(&mut self) -> Option<Lease> {
        if self.len == 0 {
            return None;
        }
        let oldest = self.places[self.head].take();
        self.head = self.place(1);
        self.len -= 1;
        oldest
    }

    /// Adds a lease as the newest.
    #[inline(always)]
    pub(crate) fn push_back(&mut self, lease: Lease) {
        self.make_room_for_one();
        let at = self.place(self.len);
        put(&mut self.places[at], lease);
        self.len += 1;
    }

    /// Turns the list over by one: `lease` and the oldest lease change
    /// places, and the one `lease` held becomes the newest; `pop_front` and
    /// `push_back` in one step that needs no room. Says whether it did:
    /// not where the list is empty.
    #[inline(always)]
    #[must_use]
    pub(crate) fn swap_oldest(&mut self, lease: &mut Lease) -> bool {
        let Some(oldest) = self.places.get_mut(self.head).and_then(Option::as_mut) else { return false };
        core::mem::swap(lease, oldest);
        let tail = self.place(self.len);
        if tail != self.head {
            // The list has room past its newest: move the lease there.
            if let Some(newest) = self.places[self.head].take() {
                put(&mut self.places[tail], newest);
            }
        }
        self.head = self.place(1);
        true
    }

    /// Puts a lease back as the oldest.
    #[inline]
    pub(crate) fn push_front(&mut self, lease: Lease) {
        self.make_room_for_one();
        self.head = self.place(self.places.len() - 1);
        put(&mut self.places[self.head], lease);
        self.len += 1;
    }

    /// Makes room for one more lease, where every place is taken.
    #[inline(always)]
    fn make_room_for_one(&mut self) {
        if self.len == self.places.len() {
            self.grow(self.len + 1);
        }
    }

    /// Makes room for `n` leases in all, so that adding up to that many
    /// allocates nothing.
    pub(crate) fn reserve(&mut self, n: usize) {
        if n > self.places.len() {
            self.grow(n);
        }
    }

    /// Moves the leases, oldest first, to a ring of at least `n` places.
    #[cold]
    fn grow(&mut self, n: usize) {
        let mut wider = SpentList::with_capacity(n.max(2 * self.places.len()));
        while let Some(lease) = self.pop_front() {
            wider.push_back(lease);
        }
        *self = wider;
    }
}

/// Puts `lease` in an empty place. (Assigning would drop the `None` there,
/// which the compiler does through a call.)
#[inline(always)]
fn put(place: &mut Option<Lease>, lease: Lease) {
    let none = place.replace(lease);
    debug_assert!(none.is_none(), "internal: a spent list's place was taken");
    core::mem::forget(none);
}

impl Drop for SpentList {
    /// Lets the leases go oldest first, as they were kept.
    fn drop(&mut self) {
        while let Some(lease) = self.pop_front() {
            drop(lease);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::Pool;

    /// Leases of `n` distinct bufs of `pool`.
    fn leases(pool: &Pool, n: usize) -> Vec<Lease> {
        let size = pool.size_class(1).expect("a standard buf");
        (0..n).map(|_| pool.lease(size, crate::pool::Wait::Never).expect("no budget")).collect()
    }

    /// The order a `VecDeque` keeps, through wrapping and growth from no
    /// room at all, pushed at either end.
    #[test]
    fn keeps_the_order_of_a_deque() {
        let pool = Pool::builder().buf_size(64).build();
        let mut list = SpentList::with_capacity(0);
        let mut model = std::collections::VecDeque::new();
        for (step, lease) in leases(&pool, 40).into_iter().enumerate() {
            model.push_back(lease.buf());
            list.push_back(lease);
            if step % 3 == 2 {
                let oldest = list.pop_front().expect("not empty");
                assert_eq!(Some(oldest.buf()), model.pop_front());
                if step % 2 == 0 {
                    model.push_front(oldest.buf());
                    list.push_front(oldest);
                }
            }
            assert_eq!(list.len(), model.len());
            assert_eq!(list.front().map(Lease::buf), model.front().copied());
        }
        list.reserve(100);
        assert!(list.places.len() >= 100);
        while let Some(lease) = list.pop_front() {
            assert_eq!(Some(lease.buf()), model.pop_front());
        }
        assert!(model.is_empty() && list.front().is_none() && list.pop_front().is_none());
    }

    /// `swap_oldest` is `pop_front` then `push_back`, the popped lease
    /// handed out, whether the ring is full or has room; on an empty list
    /// it leaves the lease alone.
    #[test]
    fn swap_oldest_turns_the_list_over_by_one() {
        let pool = Pool::builder().buf_size(64).build();
        let mut empty = SpentList::with_capacity(4);
        let mut spare = leases(&pool, 1).pop().expect("one lease");
        let spare_buf = spare.buf();
        assert!(!empty.swap_oldest(&mut spare));
        assert_eq!((spare.buf(), empty.len()), (spare_buf, 0));
        for (kept, capacity) in [(4, 4), (3, 4), (1, 1), (5, 8)] {
            let mut list = SpentList::with_capacity(capacity);
            let mut model = std::collections::VecDeque::new();
            for lease in leases(&pool, kept) {
                model.push_back(lease.buf());
                list.push_back(lease);
            }
            for _ in 0..2 * kept + 1 {
                let mut lease = leases(&pool, 1).pop().expect("one lease");
                model.push_back(lease.buf());
                assert!(list.swap_oldest(&mut lease));
                assert_eq!(Some(lease.buf()), model.pop_front(), "kept {kept} in {capacity}");
                assert_eq!(list.len(), kept);
                assert_eq!(list.front().map(Lease::buf), model.front().copied());
            }
            while let Some(lease) = list.pop_front() {
                assert_eq!(Some(lease.buf()), model.pop_front());
            }
        }
    }

    /// Dropping the list lets every lease go, and with it every buf back
    /// to the pool.
    #[test]
    fn dropping_lets_every_lease_go() {
        let pool = Pool::builder().buf_size(64).thread_cache(0).build();
        let mut list = SpentList::with_capacity(2);
        for lease in leases(&pool, 5) {
            list.push_back(lease);
        }
        assert_eq!(pool.stats().bufs_in_use, 5);
        drop(list);
        assert_eq!((pool.stats().bufs_in_use, pool.stats().bufs_idle), (0, 5));
    }
}
