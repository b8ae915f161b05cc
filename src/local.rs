//! `LocalAllocator`: an `Allocator` kept on one thread, whose bufs count
//! the drops made on that thread without an atomic operation.

use core::fmt;
use core::marker::PhantomData;
use std::io;
use std::time::Duration;

use crate::allocator::Allocator;
use crate::error::AllocError;
use crate::pool::Pool;
use crate::slice::Slice;

/// An [`Allocator`] that stays on the thread that made it, and in return
/// makes dropping its slices on that thread cheaper: no atomic operation.
///
/// Every buf it leases gets this thread as its *home*. A slice of it
/// dropped here adds one to a count only this thread touches; a slice
/// dropped on any other thread takes the atomic path, as always. When the
/// allocator lets the buf go (it runs out, or the allocator is dropped),
/// the home count joins the shared one in a single atomic step, and from
/// then on every drop is atomic. Slices are ordinary [`Slice`]s: they may
/// be sent to other threads, outlive the allocator, be split and joined.
///
/// It also keeps the standard-size bufs it has filled, up to
/// [`SPENT_BYTES`](LocalAllocator::SPENT_BYTES) and
/// [`SPENT_BUFS`](LocalAllocator::SPENT_BUFS), and when it needs a new buf
/// it first looks at the oldest of them: where every slice cut from it is
/// gone, it cuts from it again, still at home, with no lock and no atomic
/// read-modify-write, where taking a buf from the pool and giving it back
/// costs both. A buf pushed out by newer ones goes back to the pool once
/// its slices are gone, and dropping the allocator lets them all go. Kept
/// bufs count as in use. An allocator from a pool with a memory budget
/// ([`PoolBuilder::max_bytes`](crate::PoolBuilder::max_bytes)) keeps none,
/// so that no request waits for a buf that an idle allocator sits on.
///
/// # Long-lived slices
///
/// One slice kept alive would keep its whole buf alive, however little of
/// it the slice uses. Where the allocator finds a kept buf *mostly dead*
/// (its live slices, were each as large as the one asked for, would fill at
/// most a quarter of it), it starts keeping a record of which parts of its
/// bufs hold live slices, and cuts new slices from the dead parts of bufs
/// that a few long-lived slices keep alive; it then keeps up to
/// [`TRACKED_BUFS`](LocalAllocator::TRACKED_BUFS) bufs. The record counts
/// slices dropped on this thread; a slice dropped on another thread leaves
/// its part counted as live until its whole buf is free, and a buf in
/// which a slice was split or joined ([`Slice::split_off`],
/// [`Slice::try_join`], [`coalesce`](crate::coalesce), ...) is cut from
/// again only once all of its slices are gone. Once a few hundred bufs in
/// a row are found free, it stops keeping records, which cost a few
/// instructions per slice. The room for the records and the longer list
/// (a few KiB) is allocated the first time it starts, and kept: making a
/// `LocalAllocator` allocates only its short list. With default settings,
/// 1,500-byte slices of which 1 in 20 lives for 20,000 allocations hold
/// under 2x the live bytes (`cargo run --release --example retention`).
///
/// It is neither `Send` nor `Sync`, which is what makes the plain count
/// sound: its bufs' home can never change under the slices' feet. Use it
/// for a thread that allocates and mostly drops its own slices, such as
/// one thread per core or a `current_thread` runtime; use [`Allocator`]
/// where the allocator moves between threads, as in a task of a
/// multi-threaded runtime. Its methods are [`Allocator`]'s and behave the
/// same; it has no `writer` or `ready`, whose borrows of the allocator
/// could be sent to another thread: use an [`Allocator`] for those.
///
/// # Example
///
/// ```
/// let pool = refbuf::Pool::new();
/// let mut alloc = pool.local_allocator(4);
/// for i in 0..1000u32 {
///     let mut frame = alloc.copy_from_slice(b"payload");
///     assert!(frame.prepend(&i.to_be_bytes()));
///     // dropped here, on its home thread: no atomic operation
/// }
/// let kept = alloc.copy_from_slice(b"kept");
/// std::thread::spawn(move || assert_eq!(&kept[..], b"kept")).join().unwrap();
/// ```
///
/// The allocator itself cannot leave its thread:
///
/// ```compile_fail
/// let mut alloc = refbuf::Pool::new().local_allocator(0);
/// std::thread::spawn(move || drop(alloc.alloc(1)));
/// ```
pub struct LocalAllocator {
    inner: Allocator,
    /// Neither `Send` nor `Sync`.
    _here: PhantomData<*const ()>,
}

impl LocalAllocator {
    /// The most bytes of filled standard-size bufs kept for reuse while no
    /// slice is seen to live long: two default bufs.
    pub const SPENT_BYTES: usize = crate::allocator::SPENT_BYTES;

    /// The most filled bufs kept for reuse, whatever their size: with bufs
    /// of 4 KiB, a window of 32 slices of 1500 bytes alive at once.
    pub const SPENT_BUFS: usize = crate::allocator::SPENT_BUFS;

    /// The most filled bufs kept while slices are seen to live long (see
    /// "Long-lived slices" above), free ones at most
    /// [`SPENT_BYTES`](LocalAllocator::SPENT_BYTES) of them as found.
    pub const TRACKED_BUFS: usize = crate::allocator::TRACKED_BUFS;

    pub(crate) fn new(pool: Pool, reserve: usize) -> LocalAllocator {
        // SAFETY: the allocator lives inside this value, which cannot leave
        // the thread, and no method hands it out.
        let inner = unsafe { Allocator::new_at_home(pool, reserve) };
        LocalAllocator { inner, _here: PhantomData }
    }

    /// The headroom, in bytes, in front of every slice this allocator
    /// makes; as [`Allocator::reserve`].
    pub fn reserve(&self) -> usize {
        self.inner.reserve()
    }

    /// The pool this allocator takes bufs from.
    pub fn pool(&self) -> &Pool {
        self.inner.pool()
    }

    /// A slice of `len` zero bytes; as [`Allocator::alloc`], which it
    /// blocks and panics like.
    #[inline]
    #[track_caller]
    pub fn alloc(&mut self, len: usize) -> Slice {
        self.inner.alloc(len)
    }

    /// As [`Allocator::alloc_timeout`].
    ///
    /// # Errors
    /// As for [`Allocator::alloc_timeout`].
    pub fn alloc_timeout(&mut self, len: usize, wait: Duration) -> Result<Slice, AllocError> {
        self.inner.alloc_timeout(len, wait)
    }

    /// As [`Allocator::try_alloc`].
    ///
    /// # Errors
    /// As for [`Allocator::try_alloc`].
    #[inline]
    pub fn try_alloc(&mut self, len: usize) -> Result<Slice, AllocError> {
        self.inner.try_alloc(len)
    }

    /// A slice of `len` bytes as found, **possibly another user's data**;
    /// as [`Allocator::alloc_for_overwrite`].
    #[inline]
    #[track_caller]
    pub fn alloc_for_overwrite(&mut self, len: usize) -> Slice {
        self.inner.alloc_for_overwrite(len)
    }

    /// As [`Allocator::try_alloc_for_overwrite`].
    ///
    /// # Errors
    /// As for [`Allocator::try_alloc`].
    #[inline]
    pub fn try_alloc_for_overwrite(&mut self, len: usize) -> Result<Slice, AllocError> {
        self.inner.try_alloc_for_overwrite(len)
    }

    /// A slice holding a copy of `data`; as [`Allocator::copy_from_slice`].
    #[inline]
    #[track_caller]
    pub fn copy_from_slice(&mut self, data: &[u8]) -> Slice {
        self.inner.copy_from_slice(data)
    }

    /// As [`Allocator::try_copy_from_slice`].
    ///
    /// # Errors
    /// As for [`Allocator::try_alloc`].
    #[inline]
    pub fn try_copy_from_slice(&mut self, data: &[u8]) -> Result<Slice, AllocError> {
        self.inner.try_copy_from_slice(data)
    }

    /// Receives straight into pool memory; as [`Allocator::fill_with`].
    ///
    /// # Errors
    /// As for [`Allocator::fill_with`].
    pub fn fill_with<F>(&mut self, max: usize, f: F) -> io::Result<Slice>
    where
        F: FnOnce(&mut [u8]) -> io::Result<usize>,
    {
        self.inner.fill_with(max, f)
    }

    /// As [`Allocator::try_fill_with`].
    ///
    /// # Errors
    /// As for [`Allocator::try_fill_with`].
    pub fn try_fill_with<F>(&mut self, max: usize, f: F) -> io::Result<Slice>
    where
        F: FnOnce(&mut [u8]) -> io::Result<usize>,
    {
        self.inner.try_fill_with(max, f)
    }
}

impl fmt::Debug for LocalAllocator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("LocalAllocator").field(&self.inner).finish()
    }
}
