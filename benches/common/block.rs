//! `Block`: a buffer asked of a chosen allocator through its `GlobalAlloc`
//! methods, as a `Vec<u8>` would ask, for the baselines of
//! `benches/hot_paths.rs` and `examples/bench_report.rs`, which both mount
//! this file.

use std::alloc::{GlobalAlloc, Layout, handle_alloc_error};
use std::ptr::{self, NonNull};

/// A block of memory from allocator `G`, asked for through its `GlobalAlloc`
/// methods directly, as a `Vec<u8>` of the same capacity would ask, and
/// given back when dropped.
pub struct Block<G: GlobalAlloc + 'static> {
    allocator: &'static G,
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: a `Block` owns its memory as a `Box<[u8]>` does, and `G: Sync`
// lets the thread it is sent to free it through the shared `&'static G`.
unsafe impl<G: GlobalAlloc + Sync> Send for Block<G> {}

impl<G: GlobalAlloc> Block<G> {
    /// `len` bytes left uninitialised, as `Vec::with_capacity(len)`.
    pub fn uninit(allocator: &'static G, len: usize) -> Self {
        let layout = Self::layout(len);
        // SAFETY: `layout` has a non-zero size, as `Self::layout` checks.
        Self::from_raw(allocator, layout, unsafe { allocator.alloc(layout) })
    }

    /// `len` zero bytes, asked for zeroed as `vec![0; len]` does.
    pub fn zeroed(allocator: &'static G, len: usize) -> Self {
        let layout = Self::layout(len);
        // SAFETY: `layout` has a non-zero size, as `Self::layout` checks.
        Self::from_raw(allocator, layout, unsafe { allocator.alloc_zeroed(layout) })
    }

    /// A copy of `src`, as `src.to_vec()`.
    pub fn copy_of(allocator: &'static G, src: &[u8]) -> Self {
        let block = Self::uninit(allocator, src.len());
        // SAFETY:
        // - the block is `src.len()` bytes, writable, and owned by us;
        // - it is fresh memory, so it does not overlap `src`.
        unsafe { ptr::copy_nonoverlapping(src.as_ptr(), block.ptr.as_ptr(), src.len()) };
        block
    }

    /// Writes `byte` into the first byte, as `push` into an empty `Vec`.
    pub fn write_first(&mut self, byte: u8) {
        // SAFETY: the block has at least one byte (`Self::layout` checks it)
        // and owns it.
        unsafe { self.ptr.as_ptr().write(byte) };
    }

    /// The layout of a block of `len` bytes: `Vec<u8>`'s, alignment 1.
    fn layout(len: usize) -> Layout {
        assert!(len > 0, "`GlobalAlloc` takes no zero-sized layouts");
        Layout::from_size_align(len, 1).expect("a buffer's length fits a layout")
    }

    /// The block at `ptr`, just allocated with `layout`; aborts as std's
    /// collections do if the allocator failed (`ptr` is null).
    fn from_raw(allocator: &'static G, layout: Layout, ptr: *mut u8) -> Self {
        let ptr = NonNull::new(ptr).unwrap_or_else(|| handle_alloc_error(layout));
        Block { allocator, ptr, layout }
    }
}

impl<G: GlobalAlloc> Drop for Block<G> {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `allocator` with `layout`, and is freed
        // only here, once.
        unsafe { self.allocator.dealloc(self.ptr.as_ptr(), self.layout) };
    }
}
