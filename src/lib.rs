//! Pooled, ref-counted IO buffers for network protocol code.
//!
//! refbuf hands out byte slices carved from large pooled bufs, so framing,
//! proxying and packet code stops paying `malloc`, `free` and a copy on every
//! frame. It follows the design of Vanadium's Go package `iobuf`, without its
//! per-slice heap object.
//!
//! # The pieces
//!
//! - A [`Pool`] supplies large bufs. Each buf counts its holders and goes
//!   back to the pool the moment the last one lets go.
//! - An [`Allocator`] bump-allocates consecutive [`Slice`]s out of its
//!   current buf, leaving `reserve` bytes of headroom in front of each, so a
//!   protocol header can later be prepended in place with
//!   [`Slice::expand_front`], with no copy of the payload.
//! - [`coalesce`] joins slices that touch in memory, without copying.
//! - A [`Reader`] fills slices from any [`std::io::Read`], reading ahead.
//! - The pool's memory policy ([`PoolBuilder`]): bufs come in size classes
//!   (`buf_size` × 2^k); a budget (`max_bytes`) makes allocations wait, or
//!   fail with [`AllocError::Exhausted`], instead of growing; idle memory is
//!   capped (`max_idle_bytes`), freed after a timeout (`idle_timeout`) or on
//!   demand ([`Pool::trim`]). [`Pool::stats`] says where the memory is, and
//!   the `diagnostics` feature adds `Pool::report`, which lists bufs in use
//!   and flags those pinned by a few small slices.
//!
//! For IO:
//!
//! - [`Slice::into_bytes`] hands a slice to anything that takes
//!   [`bytes::Bytes`], with no copy, and `Slice` is a [`bytes::Buf`].
//! - A [`Chain`] is an ordered run of slices (a header and a payload, say)
//!   written with one vectored write by [`Chain::write_to`]; it is also an
//!   [`std::io::Read`] and a [`bytes::Buf`].
//! - [`Allocator::fill_with`] receives straight into pool memory, leaving
//!   the reserve as headroom for encapsulation.
//! - A [`Writer`] from [`Allocator::writer`] appends into pool memory as an
//!   [`std::io::Write`] and a [`bytes::BufMut`], optionally capped.
//!
//! # Async (feature `tokio`)
//!
//! The blocking calls block the thread, on the source and on the budget.
//! For tokio, `Pool::async_reader` makes an `AsyncReader` (the `Reader` on
//! `AsyncRead`, cancel safe), [`Allocator::ready`] waits for the budget
//! through the task's waker (then the `try_` forms succeed), and
//! `Chain::write_all_async` writes a chain with vectored writes; a release
//! on any thread, sync or async, wakes an async waiter.
//!
//! # Example
//!
//! ```
//! use refbuf::Pool;
//!
//! let pool = Pool::builder().buf_size(16 * 1024).build();
//!
//! // Payloads with 4 bytes of headroom for a length prefix.
//! let mut alloc = pool.allocator(4);
//! let mut frame = alloc.copy_from_slice(b"hello");
//! let len = u32::try_from(frame.len()).unwrap().to_be_bytes();
//! assert!(frame.prepend(&len)); // in place: the payload does not move
//! assert_eq!(&frame[..], b"\0\0\0\x05hello");
//!
//! // Read the frame back through a Reader.
//! let mut reader = pool.reader(&frame[..]);
//! let header = reader.read(4)?;
//! let body = reader.read(u32::from_be_bytes(header[..].try_into().unwrap()) as usize)?;
//! assert_eq!(&body[..], b"hello");
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Safety and correctness
//!
//! - A slice owns its bytes and its headroom alone: no two live slices ever
//!   overlap, which is what makes `DerefMut` sound.
//! - Memory from [`Allocator::alloc`] is zero-filled, headroom included, so a
//!   recycled buf never shows one user's bytes to another by accident. The
//!   calls that can expose earlier contents say so in their docs:
//!   [`Allocator::alloc_for_overwrite`] and [`Slice::free_entire_prefix`]
//!   directly; [`Allocator::fill_with`] and the [`Writer`]'s `BufMut` side
//!   hand such memory to the caller to write into, and the [`Reader`] to
//!   its source, trusting the count each reports written, as std's
//!   `BufReader` trusts `Read::read`.
//! - The reference count follows std `Arc`'s protocol; the loom models in
//!   `loom-tests/` check it, and the test suite runs under Miri.
//!
//! # Compared with
//!
//! - **`Vec<u8>` per frame**: one `malloc` and `free` per frame, and a copy
//!   to put a header in front. refbuf bump-allocates from pooled bufs and
//!   prepends into headroom.
//! - **`bytes::BytesMut`**: a growable buffer that owns its allocation and
//!   can split off frozen `Bytes`. refbuf's slices have a fixed size once
//!   made, but come from shared pooled memory, carry headroom, and coalesce
//!   when they touch; [`Slice::into_bytes`] crosses over when a `bytes` API
//!   wants one.
//! - **Vanadium's `iobuf` (Go)**: the same five pieces, but a heap object per
//!   slice and no memory limits; a `Slice` here is four words on the stack.
//!
//! # Performance
//!
//! Handing out a slice takes no lock, no heap allocation and no atomic
//! read-modify-write; dropping one is a single `Release` decrement. The
//! pool's lock is taken only when a buf changes hands. The README's
//! Performance section has measured ratios against `Vec` and `BytesMut`
//! and the commands that reproduce them.
//!
//! `ARCHITECTURE.md` in the repository describes the design in full.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub, clippy::undocumented_unsafe_blocks)]

mod allocator;
#[cfg(feature = "tokio")]
mod async_reader;
mod buf;
mod bytes_interop;
mod cache;
mod chain;
mod coalesce;
mod diagnostics;
mod error;
mod free_list;
mod local;
mod pool;
mod reader;
#[cfg(any(all(feature = "io-uring", target_os = "linux"), loom))]
mod regions;
#[cfg(all(feature = "io-uring", target_os = "linux", not(loom)))]
mod ring;
mod segments;
mod slice;
mod spent;
mod sync;
mod writer;

pub use allocator::Allocator;
#[cfg(feature = "tokio")]
pub use async_reader::AsyncReader;
pub use chain::Chain;
pub use coalesce::coalesce;
#[cfg(feature = "diagnostics")]
pub use diagnostics::{BufReport, PoolReport};
pub use error::AllocError;
pub use local::LocalAllocator;
pub use pool::{
    DEFAULT_BUF_SIZE, DEFAULT_MAX_POOLED_MULTIPLE, DEFAULT_THREAD_CACHE_BUFS, MAX_SIZE_CLASSES, Pool,
    PoolBuilder, PoolStats,
};
pub use reader::{DEFAULT_MAX_FRAME_LEN, Reader, STASHED_TAIL_MAX};
#[cfg(all(feature = "io-uring", target_os = "linux", not(loom)))]
pub use ring::BufRing;
pub use slice::Slice;
pub use writer::Writer;

/// Under `--cfg loom` only: flushes the current thread's per-thread caches
/// and gives up its cache slot, as the thread's exit does. Loom's `join` can
/// return before the joined thread's locals are destroyed, so the models in
/// `loom-tests` call this at the end of every thread they spawn.
#[cfg(loom)]
#[doc(hidden)]
pub fn loom_thread_exit() {
    cache::leave_thread();
}

#[cfg(loom)]
#[doc(hidden)]
pub use regions::loom_model::ModelRegions;

/// Compiles and runs the README's Rust examples as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
