//! [`BufRing`]: regions of pool memory as an io_uring provided buffer ring.
//!
//! The kernel picks a region for each receive from the ring, in the order
//! the ring publishes them, and reports its id in the completion. The
//! program turns that completion into a [`Slice`] with
//! [`BufRing::completion`] (or [`BufRing::take`]); when the
//! region's last slice drops, on any thread, the region goes onto the
//! lock-free return list of `regions.rs`, and [`BufRing::replenish`]
//! publishes it to the kernel again. So a region is handed to the kernel
//! at most once at a time, and never while a slice of it lives.

use core::cell::Cell;
use core::mem::ManuallyDrop;
use core::ptr::NonNull;
use std::alloc::Layout;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use io_uring::IoUring;
use io_uring::types::BufRingEntry;

use crate::pool::Pool;
use crate::regions::Regions;
use crate::slice::Slice;
use crate::sync::publish_u16;

/// `io_uring_register` opcodes the `io-uring` crate does not wrap for a
/// ring it does not hold (from the kernel's `io_uring.h`).
const IORING_REGISTER_BUFFERS: libc::c_uint = 0;
const IORING_UNREGISTER_BUFFERS: libc::c_uint = 1;
const IORING_UNREGISTER_PBUF_RING: libc::c_uint = 23;
#[cfg(debug_assertions)]
const IORING_REGISTER_PBUF_STATUS: libc::c_uint = 26;

/// The kernel's `struct io_uring_buf_reg`.
#[repr(C)]
#[derive(Default)]
struct BufReg {
    ring_addr: u64,
    ring_entries: u32,
    bgid: u16,
    flags: u16,
    resv: [u64; 3],
}

/// The kernel's `struct io_uring_buf_status`.
#[cfg(debug_assertions)]
#[repr(C)]
#[derive(Default)]
struct BufStatus {
    buf_group: u32,
    head: u32,
    resv: [u32; 8],
}

/// A region's state, as the ring's thread knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Published to the kernel at this position of the ring's tail.
    WithKernel(u16),
    /// Taken as a slice, not yet back on the return list.
    Out,
}

/// A provided buffer ring of `entries` regions of pool memory, registered
/// with an io_uring instance as buffer group `group`.
///
/// Each region is `reserve` bytes of headroom and then `len` bytes handed
/// to the kernel, so a received datagram can grow a header in place with
/// [`Slice::expand_front`]. The regions are cut from one buf of the pool:
/// they count against its budget and show in [`Pool::stats`] as bytes in
/// use, for as long as the ring or any slice of it lives.
///
/// A `BufRing` is `Send` but not `Sync`: its methods run on the thread that
/// drives the io_uring instance. Its slices go anywhere.
///
/// # Requests in flight
///
/// Pushing a request that selects buffers from the group is `unsafe` in the
/// `io-uring` crate: its buffers must stay valid while it runs. Here that
/// means the `BufRing` must outlive every such request: finish or cancel
/// them before dropping it. Slices taken from the ring may outlive it.
///
/// The kernel may advance the ring's head when it picks a region, before
/// it writes into it (for requests it runs on its worker threads), so
/// nothing the program can read tells a region it has finished writing
/// from one it is still writing, except the completion. That is why
/// [`completion`](BufRing::completion) and [`take`](BufRing::take) are
/// `unsafe`: the caller vouches that the id comes from a completion.
///
/// The ring is registered, read and unregistered through the io_uring
/// instance's file: an instance set up with `IORING_SETUP_SINGLE_ISSUER`
/// must make, use and drop the ring on its submitting thread.
///
/// # Example
///
/// A multishot receive on a UDP socket, each datagram growing an 8-byte
/// header in front of it (`examples/udp_relay_uring.rs` is a whole relay):
///
/// ```no_run
/// use std::os::fd::AsRawFd;
/// use io_uring::{IoUring, opcode, types};
///
/// let pool = refbuf::Pool::new();
/// let mut uring = IoUring::new(64)?;
/// let ring = refbuf::BufRing::new(&pool, &uring, 0, 256, 1500, 8)?;
/// let socket = std::net::UdpSocket::bind("127.0.0.1:9000")?;
/// let recv = opcode::RecvMulti::new(types::Fd(socket.as_raw_fd()), 0).build().user_data(1);
/// // SAFETY: `ring` outlives the receive: the loop never ends.
/// unsafe { uring.submission().push(&recv) }.expect("room in the queue");
/// loop {
///     uring.submit_and_wait(1)?;
///     for cqe in uring.completion() {
///         // SAFETY: a completion of the receive, on `ring`'s group.
///         let mut datagram = unsafe { ring.completion(cqe.result(), cqe.flags()) }?;
///         assert!(datagram.prepend(b"8 bytes!"));
///         // ... send it, keep it, or drop it: its region comes back.
///         // (A completion without `cqueue::more` in its flags, such as
///         // `ENOBUFS`, ends the receive: a real loop submits it again.)
///     }
///     ring.replenish();
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct BufRing {
    /// Dropped by hand: closed in `drop` once the kernel has let go of the
    /// ring, and leaked if it does not.
    regions: ManuallyDrop<Regions>,
    /// The ring of entries shared with the kernel; `entries` of them.
    ring: NonNull<BufRingEntry>,
    /// Our own handle on the io_uring instance, for the calls made after
    /// `new` returns (status and unregistering).
    fd: OwnedFd,
    group: u16,
    entries: u16,
    /// The next entry to fill, as a position that wraps at 2^16.
    tail: Cell<u16>,
    /// The kernel's head as last read: entries before it are consumed.
    /// Read only to check `take`'s contract in debug builds.
    #[cfg(debug_assertions)]
    head: Cell<u16>,
    states: Box<[Cell<State>]>,
    /// Regions in the `WithKernel` state.
    with_kernel: Cell<usize>,
    enobufs: Cell<u64>,
    /// Whether the regions are the instance's fixed buffers.
    fixed: Cell<bool>,
    /// Keeps the type `!Sync`.
    _not_sync: core::marker::PhantomData<Cell<()>>,
}

// SAFETY: the ring's memory and regions are the `BufRing`'s alone (the
// kernel reads the entries; the regions come back through the atomic
// return list), so it may move to another thread. `Cell`s make it `!Sync`.
unsafe impl Send for BufRing {}

impl BufRing {
    /// Makes a ring of `entries` regions from one buf of `pool` (taken
    /// without waiting for its budget), registers it with `ring` as buffer
    /// group `group`, and hands every region to the kernel.
    ///
    /// # Errors
    /// - `InvalidInput` where `entries` is not a power of two from 1 to
    ///   32,768, `len` is 0 or over `u32::MAX`, or the regions do not fit in
    ///   one buf;
    /// - `OutOfMemory` where the pool's budget has no room for the buf;
    /// - the kernel's error where it refuses the ring (`EEXIST` for a group
    ///   already in use, `EINVAL` on a kernel without provided buffer rings).
    pub fn new(
        pool: &Pool,
        ring: &IoUring,
        group: u16,
        entries: u16,
        len: usize,
        reserve: usize,
    ) -> io::Result<BufRing> {
        if !entries.is_power_of_two() || entries > 1 << 15 {
            return Err(invalid(format!(
                "a buffer ring has a power of two from 1 to 32768 entries, not {entries}"
            )));
        }
        if len == 0 || u32::try_from(len).is_err() {
            return Err(invalid(format!("a region hands the kernel 1 to {} bytes, not {len}", u32::MAX)));
        }
        let regions = Regions::new(pool, usize::from(entries), reserve, len)?;
        let layout = ring_layout(entries);
        // SAFETY: the layout has a non-zero size (at least one entry).
        let mem = unsafe { std::alloc::alloc_zeroed(layout) };
        let Some(mem) = NonNull::new(mem.cast::<BufRingEntry>()) else {
            std::alloc::handle_alloc_error(layout);
        };
        // SAFETY: `ring` owns the fd and keeps it open while it is borrowed.
        let borrowed = unsafe { BorrowedFd::borrow_raw(ring.as_raw_fd()) };
        let fd = match borrowed.try_clone_to_owned() {
            Ok(fd) => fd,
            Err(e) => {
                // SAFETY: allocated above with this layout, never shared.
                unsafe { std::alloc::dealloc(mem.as_ptr().cast(), layout) };
                return Err(e);
            }
        };
        // SAFETY: the entries stay valid, and at this address, until `drop`
        // unregisters the group: the `BufRing` owns them.
        let registered = unsafe {
            ring.submitter().register_buf_ring_with_flags(mem.addr().get() as u64, entries, group, 0)
        };
        if let Err(e) = registered {
            // SAFETY: as above; the kernel never saw the memory.
            unsafe { std::alloc::dealloc(mem.as_ptr().cast(), layout) };
            return Err(e);
        }
        let ring = BufRing {
            regions: ManuallyDrop::new(regions),
            ring: mem,
            fd,
            group,
            entries,
            tail: Cell::new(0),
            #[cfg(debug_assertions)]
            head: Cell::new(0),
            states: (0..entries).map(|_| Cell::new(State::Out)).collect(),
            with_kernel: Cell::new(0),
            enobufs: Cell::new(0),
            fixed: Cell::new(false),
            _not_sync: core::marker::PhantomData,
        };
        for id in 0..usize::from(entries) {
            ring.push(id);
        }
        ring.publish();
        Ok(ring)
    }

    /// The received bytes of region `buf_id`, after a completion that
    /// reported it: a slice of `len` bytes with `reserve` bytes of zeroed
    /// headroom. The region is the slice's (and its clones' and parts')
    /// until the last of them drops.
    ///
    /// # Safety
    /// `buf_id` and `len` come from a completion, on this ring's io_uring
    /// instance, of a request that selected from this ring's group, and
    /// that region has not been taken since: the kernel is done writing
    /// it. (In debug builds, `take` checks that the kernel's head is past
    /// the region, on kernels that report it.)
    ///
    /// # Panics
    /// Where `buf_id` is not a region of the ring, the region is out (taken
    /// already), or `len` is over [`region_len`](BufRing::region_len);
    /// nothing changes then.
    pub unsafe fn take(&self, buf_id: u16, len: usize) -> Slice {
        let id = usize::from(buf_id);
        assert!(id < self.states.len(), "buffer id {buf_id} in a ring of {} entries", self.entries);
        assert!(len <= self.region_len(), "{len} bytes received into a region of {}", self.region_len());
        let State::WithKernel(_at) = self.states[id].get() else {
            panic!("buffer id {buf_id} taken while a slice of it is out");
        };
        #[cfg(debug_assertions)]
        self.debug_check_consumed(buf_id, _at);
        self.states[id].set(State::Out);
        self.with_kernel.set(self.with_kernel.get() - 1);
        // SAFETY: the region was handed to the kernel, and the caller vouches
        // that a completion reported it: the kernel is done with it, so it
        // is the ring's again, with its first `len` bytes written.
        unsafe { self.regions.take(id, len) }
    }

    /// The slice a receive completion carries, from its `result` and
    /// `flags` (`io_uring::cqueue::Entry::{result, flags}`).
    ///
    /// # Safety
    /// `result` and `flags` are those of a completion, on this ring's
    /// io_uring instance, of a request that selects from this ring's group;
    /// each completion is passed once. See [`take`](BufRing::take).
    ///
    /// # Errors
    /// - `ENOBUFS` where the kernel found no region: every region is held by
    ///   the program. Counted in [`enobufs`](BufRing::enobufs). A multishot
    ///   receive ends with it; drop slices, [`replenish`](BufRing::replenish)
    ///   and submit it again.
    /// - Any other negative `result`, as the `io::Error` of that errno. A
    ///   failed receive that still used a region gives it back.
    /// - `UnexpectedEof` for a completion of 0 bytes with no buffer: the
    ///   end of a stream.
    /// - `InvalidData` where a completion with data carries no buffer id.
    pub unsafe fn completion(&self, result: i32, flags: u32) -> io::Result<Slice> {
        if result < 0 {
            if result == -libc::ENOBUFS {
                self.enobufs.set(self.enobufs.get() + 1);
            }
            if let Some(id) = io_uring::cqueue::buffer_select(flags) {
                // SAFETY: the caller's promise: a completion that carries
                // the region.
                drop(unsafe { self.take(id, 0) });
            }
            return Err(io::Error::from_raw_os_error(-result));
        }
        let Some(id) = io_uring::cqueue::buffer_select(flags) else {
            return Err(if result == 0 {
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the peer closed: a receive of 0 bytes, with no buffer",
                )
            } else {
                io::Error::new(io::ErrorKind::InvalidData, "a receive completion with data but no buffer id")
            });
        };
        // SAFETY: the caller's promise, as for `take`.
        Ok(unsafe { self.take(id, result as usize) })
    }

    /// Hands back to the kernel every region whose slices are all gone;
    /// returns how many. Call it on the ring's thread, once per submit loop.
    pub fn replenish(&self) -> usize {
        let n = self.regions.take_returned(|id| {
            debug_assert!(self.states[id].get() == State::Out, "internal: region {id} back twice");
            self.push(id);
        });
        if n > 0 {
            self.publish();
        }
        n
    }

    /// Registers the memory of every region as the io_uring instance's
    /// table of fixed buffers, with one buffer, index 0: a slice of this
    /// ring, headroom included, can then go out with `WriteFixed` or
    /// `SendZc` (`buf_index` 0) from where it was received, without the
    /// kernel mapping its pages for each send. The table is unregistered
    /// when the ring drops, on the instance the ring was made with.
    ///
    /// # Errors
    /// The kernel's: `EBUSY` where the instance has a table already (this
    /// ring's too, if called twice), `ENOMEM` where the memory cannot be
    /// pinned (`RLIMIT_MEMLOCK`).
    pub fn register_fixed(&self) -> io::Result<()> {
        let (base, len) = self.regions.memory();
        let mut iov = libc::iovec { iov_base: base.as_ptr().cast(), iov_len: len };
        // SAFETY: one valid `iovec` for the call. The kernel pins the pages
        // it names, which stay allocated while the ring lives (it holds the
        // regions); the ring unregisters the table when it drops, and a send
        // that reads a slice outliving the ring reads memory the slice keeps.
        unsafe { register(&self.fd, IORING_REGISTER_BUFFERS, (&raw mut iov).cast(), 1) }?;
        self.fixed.set(true);
        Ok(())
    }

    /// Receives that found no region, as counted by
    /// [`completion`](BufRing::completion).
    pub fn enobufs(&self) -> u64 {
        self.enobufs.get()
    }

    /// Regions handed to the kernel and not yet taken. After `ENOBUFS`, a
    /// receive loop resubmits once this is above zero again.
    pub fn with_kernel(&self) -> usize {
        self.with_kernel.get()
    }

    /// The buffer group the ring is registered as.
    pub fn group(&self) -> u16 {
        self.group
    }

    /// How many regions the ring has.
    pub fn entries(&self) -> u16 {
        self.entries
    }

    /// Bytes of each region handed to the kernel.
    pub fn region_len(&self) -> usize {
        self.regions.len()
    }

    /// Headroom in front of each region's received bytes.
    pub fn reserve(&self) -> usize {
        self.regions.reserve()
    }

    /// Fills the entry at the tail with region `id`; visible to the kernel
    /// at the next [`publish`](BufRing::publish).
    fn push(&self, id: usize) {
        let at = self.tail.get();
        let slot = usize::from(at & (self.entries - 1));
        // SAFETY: `slot` is below `entries`; the kernel reads only entries
        // between its head and the published tail, and this one is past
        // the tail, so the ring's thread is its only user.
        let entry = unsafe { &mut *self.ring.as_ptr().add(slot) };
        entry.set_addr(self.regions.fill_start(id).addr().get() as u64);
        entry.set_len(self.regions.len() as u32);
        entry.set_bid(id as u16);
        self.states[id].set(State::WithKernel(at));
        self.with_kernel.set(self.with_kernel.get() + 1);
        self.tail.set(at.wrapping_add(1));
    }

    /// Makes the entries filled since the last call visible to the kernel.
    fn publish(&self) {
        // SAFETY: the tail lives in the first entry, inside the ring's
        // memory; the kernel only reads it.
        unsafe { publish_u16(BufRingEntry::tail(self.ring.as_ptr()).cast_mut(), self.tail.get()) };
    }

    /// Checks, in debug builds, that the kernel's head is past the entry
    /// published at position `at`: that it has consumed the region. Skipped
    /// on kernels that do not report the head (before Linux 6.8).
    #[cfg(debug_assertions)]
    fn debug_check_consumed(&self, buf_id: u16, at: u16) {
        // Positions count up to the tail; at most `entries` (2^15) lie
        // between the head and the tail, so the distances do not wrap.
        let tail = self.tail.get();
        let consumed = |head: u16| tail.wrapping_sub(at) > tail.wrapping_sub(head);
        if consumed(self.head.get()) {
            return;
        }
        let mut status = BufStatus { buf_group: u32::from(self.group), ..BufStatus::default() };
        // SAFETY: a valid `io_uring_buf_status` for the one call, which the
        // kernel fills.
        if unsafe { register(&self.fd, IORING_REGISTER_PBUF_STATUS, (&raw mut status).cast(), 1) }.is_err() {
            return;
        }
        self.head.set(status.head as u16);
        assert!(consumed(self.head.get()), "buffer id {buf_id} taken before the kernel used it");
    }
}

impl Drop for BufRing {
    /// Unregisters the group and frees the entries; the regions go back to
    /// the pool once no slice of them is alive.
    fn drop(&mut self) {
        if self.fixed.get() {
            // SAFETY: the call takes no argument. A refusal leaves the
            // pages pinned by the kernel, which holds its own references.
            let _ = unsafe { register(&self.fd, IORING_UNREGISTER_BUFFERS, core::ptr::null_mut(), 0) };
        }
        let mut reg = BufReg { bgid: self.group, ..BufReg::default() };
        // SAFETY: a valid `io_uring_buf_reg` for the one call.
        let r = unsafe { register(&self.fd, IORING_UNREGISTER_PBUF_RING, (&raw mut reg).cast(), 1) };
        if r.is_ok() {
            // SAFETY: allocated in `new` with this layout; the kernel let go.
            unsafe { std::alloc::dealloc(self.ring.as_ptr().cast(), ring_layout(self.entries)) };
            // SAFETY: dropped once, here; the field is not used again.
            // Closing the return list: the regions go back to the pool
            // with their last slice.
            unsafe { ManuallyDrop::drop(&mut self.regions) };
        }
        // Where the kernel refuses (a single-issuer instance, dropped off
        // its thread), it still holds the ring: the entries and the regions
        // they name are leaked rather than freed under it.
    }
}

impl core::fmt::Debug for BufRing {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BufRing")
            .field("group", &self.group)
            .field("entries", &self.entries)
            .field("region_len", &self.region_len())
            .field("reserve", &self.reserve())
            .field("with_kernel", &self.with_kernel())
            .field("enobufs", &self.enobufs())
            .finish_non_exhaustive()
    }
}

/// The entries' memory: 16 bytes each, page-aligned as the kernel asks.
fn ring_layout(entries: u16) -> Layout {
    // SAFETY: `sysconf` with a valid name has no preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    Layout::from_size_align(usize::from(entries) * size_of::<BufRingEntry>(), page)
        .expect("at most 2^15 entries of 16 bytes, on a power-of-two page")
}

/// `io_uring_register(fd, op, arg, nr_args)`.
///
/// # Safety
/// `arg` points to the `nr_args` arguments `op` takes, valid for the call.
unsafe fn register(
    fd: &OwnedFd,
    op: libc::c_uint,
    arg: *mut libc::c_void,
    nr_args: libc::c_uint,
) -> io::Result<()> {
    // SAFETY: the caller guarantees `arg`; the fd is open.
    let r = unsafe { libc::syscall(libc::SYS_io_uring_register, fd.as_raw_fd(), op, arg, nr_args) };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}
