//! `Slice` in the `bytes` world: `into_bytes` and `impl Buf for Slice`.

use bytes::{Buf, Bytes};

use crate::slice::Slice;

// ===== impl Slice =====

impl Slice {
    /// Turns the slice into a [`Bytes`] over the same memory, with no copy.
    ///
    /// The `Bytes` and its clones share the slice's bytes; the buf goes back
    /// to its pool when the last clone drops, on whatever thread. This makes
    /// one small heap allocation (the owner record `bytes` keeps for
    /// [`Bytes::from_owner`]); an empty slice becomes [`Bytes::new`] with
    /// none. The headroom is given up.
    ///
    /// # Example
    ///
    /// ```
    /// let pool = refbuf::Pool::new();
    /// let slice = pool.allocator(0).copy_from_slice(b"frame");
    /// let at = slice.as_ptr();
    /// let bytes = slice.into_bytes();
    /// assert_eq!(bytes.as_ptr(), at); // same memory
    /// assert_eq!(&bytes[..], b"frame");
    /// drop(bytes);
    /// assert_eq!(pool.stats().bufs_in_use, 0); // the buf went back
    /// ```
    pub fn into_bytes(self) -> Bytes {
        if self.is_empty() {
            return Bytes::new();
        }
        Bytes::from_owner(self)
    }
}

// ===== impl Buf =====

impl Buf for Slice {
    fn remaining(&self) -> usize {
        self.len()
    }

    fn chunk(&self) -> &[u8] {
        self
    }

    /// [`truncate_front`](Slice::truncate_front): the bytes consumed become
    /// headroom.
    ///
    /// # Panics
    /// Where `cnt > remaining()`, as `bytes` buffers do.
    fn advance(&mut self, cnt: usize) {
        assert!(cnt <= self.len(), "cannot advance past `remaining`: {cnt} <= {}", self.len());
        self.truncate_front(cnt);
    }

    /// [`split_to`](Slice::split_to) then [`into_bytes`](Slice::into_bytes):
    /// zero copy.
    ///
    /// # Panics
    /// Where `len > remaining()`.
    fn copy_to_bytes(&mut self, len: usize) -> Bytes {
        self.split_to(len).into_bytes()
    }
}
