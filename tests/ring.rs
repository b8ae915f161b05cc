//! `BufRing` against the kernel: multishot receives over loopback UDP land
//! in regions of pool memory, and every region goes back to the ring once
//! its slices are gone, whichever thread drops them.
//!
//! These tests need io_uring. On a kernel that refuses it (or in a
//! container whose seccomp profile does) they fail, saying so.
#![cfg(all(feature = "io-uring", target_os = "linux"))]
// The relay example mounts `examples/common/`, as does this test.
#![allow(clippy::duplicate_mod, reason = "the example's source is mounted whole, with its shared modules")]

#[path = "../examples/common/mod.rs"]
mod examples;
#[allow(dead_code, reason = "only the example's relay is used here, not its `main`")]
#[path = "../examples/udp_relay_uring.rs"]
mod udp_relay_uring;

use std::collections::HashSet;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use io_uring::{IoUring, opcode, types};
use refbuf::{BufRing, Pool, Slice};

const GROUP: u16 = 7;
const RESERVE: usize = 8;
const BOUND: Duration = Duration::from_secs(30);

/// An io_uring instance, or a failure that says why there is none.
fn uring() -> IoUring {
    IoUring::new(64).unwrap_or_else(|e| {
        panic!("io_uring_setup failed ({e}): these tests need a kernel (and a seccomp profile) that allows io_uring")
    })
}

/// A receiving socket and a sender connected to it, on loopback.
fn sockets() -> (UdpSocket, UdpSocket) {
    let rx = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let tx = UdpSocket::bind("127.0.0.1:0").expect("bind");
    tx.connect(rx.local_addr().expect("addr")).expect("connect");
    (rx, tx)
}

/// The receive's `user_data`.
const RECV: u64 = 1;
/// The cancel's.
const CANCEL: u64 = 2;

/// Submits a multishot receive on `rx` selecting from `GROUP`.
fn submit_recv(uring: &mut IoUring, rx: &UdpSocket) {
    let sqe = opcode::RecvMulti::new(types::Fd(rx.as_raw_fd()), GROUP).build().user_data(RECV);
    // SAFETY: the receive selects its buffers from the test's `BufRing`,
    // which every test keeps alive until the request is over: it ends with
    // `ENOBUFS`, or `stop_recv` ends it.
    unsafe { uring.submission().push(&sqe) }.expect("room in the submission queue");
    uring.submit().expect("submit");
}

/// Cancels the multishot receive and waits for its last completion, so
/// that no request uses `ring` when it drops; any datagram still arriving
/// is dropped.
fn stop_recv(uring: &mut IoUring, ring: &BufRing) {
    let sqe = opcode::AsyncCancel::new(RECV).build().user_data(CANCEL);
    // SAFETY: a cancel uses no buffer.
    unsafe { uring.submission().push(&sqe) }.expect("room in the submission queue");
    let start = Instant::now();
    loop {
        assert!(start.elapsed() < BOUND, "the receive did not end within {BOUND:?}");
        uring.submit_and_wait(1).expect("wait");
        let done: Vec<_> =
            uring.completion().map(|cqe| (cqe.user_data(), cqe.result(), cqe.flags())).collect();
        let mut ended = false;
        for (user_data, result, flags) in done {
            if user_data == RECV {
                // SAFETY: a completion of the receive on `ring`'s group.
                drop(unsafe { ring.completion(result, flags) });
                ended |= !io_uring::cqueue::more(flags);
            }
        }
        if ended {
            return;
        }
    }
}

/// The datagram a receive completion carries.
fn datagram(ring: &BufRing, (result, flags): (i32, u32)) -> std::io::Result<Slice> {
    // SAFETY: every completion the tests pass here is the receive's, on
    // `ring`'s group, passed once.
    unsafe { ring.completion(result, flags) }
}

/// A completion's `(result, flags)`, waiting for one within the bound.
fn next_completion(uring: &mut IoUring) -> (i32, u32) {
    let start = Instant::now();
    loop {
        if let Some(cqe) = uring.completion().next() {
            return (cqe.result(), cqe.flags());
        }
        assert!(start.elapsed() < BOUND, "no completion within {BOUND:?}");
        uring.submit_and_wait(1).expect("wait");
    }
}

fn payload(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i * 31 + j * 7) as u8).collect()
}

/// Every datagram arrives intact, with zeroed headroom a header can grow
/// into; every region comes back exactly once per time it was taken, and
/// the ring keeps receiving as regions come back.
#[test]
fn datagrams_arrive_intact_and_every_region_comes_back_once() {
    let pool = Pool::new();
    let mut uring = uring();
    let ring = BufRing::new(&pool, &uring, GROUP, 8, 1500, RESERVE).expect("ring");
    assert_eq!(ring.with_kernel(), 8);
    let (rx, tx) = sockets();
    submit_recv(&mut uring, &rx);
    let mut taken = Vec::new();
    for i in 0..100 {
        let sent = payload(i, 1 + i * 13 % 1500);
        tx.send(&sent).expect("send");
        let (result, flags) = next_completion(&mut uring);
        assert!(io_uring::cqueue::more(flags), "the multishot receive ended: {result}");
        let id = io_uring::cqueue::buffer_select(flags).expect("a buffer id");
        let mut slice = datagram(&ring, (result, flags)).expect("a datagram");
        assert!(slice[..] == sent[..], "datagram {i} changed");
        assert_eq!(slice.headroom(), RESERVE);
        assert!(slice.expand_front(RESERVE));
        assert!(slice[..RESERVE].iter().all(|&b| b == 0), "headroom not zeroed");
        slice[..RESERVE].copy_from_slice(b"HEADER!!");
        taken.push(id);
        drop(slice);
        assert_eq!(ring.replenish(), 1, "region {id} came back once");
        assert_eq!(ring.replenish(), 0, "and only once");
    }
    // The kernel takes regions in the order they were handed over.
    let distinct: HashSet<_> = taken.iter().collect();
    assert_eq!(distinct.len(), 8, "every region was used: {taken:?}");
    assert_eq!(ring.enobufs(), 0);
    stop_recv(&mut uring, &ring);
    drop(ring);
    assert_eq!(pool.stats().bytes_in_use, 0, "the regions' buf went back");
}

/// Slices dropped on other threads come back to the ring, and the ring
/// counts against the pool's budget while it lives.
#[test]
fn slices_dropped_on_other_threads_are_replenished() {
    let pool = Pool::new();
    let mut uring = uring();
    // Twice the regions the test holds at once: a multishot receive that
    // finds no region left ends (see `enobufs_recovers_once_slices_drop`).
    let ring = BufRing::new(&pool, &uring, GROUP, 32, 1000, RESERVE).expect("ring");
    assert!(pool.stats().bytes_in_use >= 16 * 1000, "the ring's memory is in use");
    let (rx, tx) = sockets();
    submit_recv(&mut uring, &rx);
    let mut slices: Vec<Slice> = Vec::new();
    for i in 0..16 {
        tx.send(&payload(i, 1000)).expect("send");
        let (result, flags) = next_completion(&mut uring);
        slices.push(datagram(&ring, (result, flags)).expect("a datagram"));
    }
    assert_eq!(ring.with_kernel(), 16);
    let mut parts = Vec::new();
    for mut slice in slices {
        parts.push(slice.split_off(500));
        parts.push(slice);
    }
    let mut threads = Vec::new();
    while !parts.is_empty() {
        let chunk: Vec<Slice> = parts.drain(..8).collect();
        threads.push(std::thread::spawn(move || drop(chunk)));
    }
    for t in threads {
        t.join().expect("dropper");
    }
    assert_eq!(ring.replenish(), 16);
    assert_eq!(ring.with_kernel(), 32);
    for i in 0..16 {
        let sent = payload(i + 100, 999);
        tx.send(&sent).expect("send");
        let (result, flags) = next_completion(&mut uring);
        assert!(datagram(&ring, (result, flags)).expect("a datagram")[..] == sent[..]);
    }
    stop_recv(&mut uring, &ring);
}

/// With every region held, the receive fails with `ENOBUFS`, counted; once
/// slices drop and the ring is replenished, a new receive gets the next
/// datagram.
#[test]
fn enobufs_recovers_once_slices_drop() {
    let pool = Pool::new();
    let mut uring = uring();
    let ring = BufRing::new(&pool, &uring, GROUP, 2, 100, 0).expect("ring");
    let (rx, tx) = sockets();
    submit_recv(&mut uring, &rx);
    let mut held = Vec::new();
    for i in 0..2 {
        tx.send(&payload(i, 100)).expect("send");
        let (result, flags) = next_completion(&mut uring);
        held.push(datagram(&ring, (result, flags)).expect("a datagram"));
    }
    tx.send(b"third").expect("send");
    let (result, flags) = next_completion(&mut uring);
    let err = datagram(&ring, (result, flags)).expect_err("no region left");
    assert_eq!(err.raw_os_error(), Some(libc::ENOBUFS), "{err}");
    assert!(!io_uring::cqueue::more(flags), "ENOBUFS ends a multishot receive");
    assert_eq!(ring.enobufs(), 1);
    drop(held);
    assert_eq!(ring.replenish(), 2);
    submit_recv(&mut uring, &rx);
    let (result, flags) = next_completion(&mut uring);
    assert!(datagram(&ring, (result, flags)).expect("the queued datagram")[..] == b"third"[..]);
    stop_recv(&mut uring, &ring);
}

/// The ring may go first: its slices stay readable and writable, and the
/// regions' buf goes back to the pool with the last of them, on whichever
/// thread drops it.
#[test]
fn slices_outlive_the_ring() {
    let pool = Pool::new();
    let mut uring = uring();
    let ring = BufRing::new(&pool, &uring, GROUP, 4, 64, RESERVE).expect("ring");
    let (rx, tx) = sockets();
    submit_recv(&mut uring, &rx);
    let mut slices = Vec::new();
    for i in 0..3 {
        tx.send(&payload(i, 64)).expect("send");
        let (result, flags) = next_completion(&mut uring);
        slices.push(datagram(&ring, (result, flags)).expect("a datagram"));
    }
    drop(slices.pop());
    stop_recv(&mut uring, &ring);
    drop(ring);
    drop(uring);
    assert!(pool.stats().bytes_in_use > 0, "two slices still hold the regions");
    for (i, slice) in slices.iter().enumerate() {
        assert!(slice[..] == payload(i, 64)[..]);
    }
    let last = slices.pop().expect("a slice");
    drop(slices);
    std::thread::spawn(move || drop(last)).join().expect("dropper");
    assert_eq!(pool.stats().bytes_in_use, 0, "the last slice gave the buf back");
}

/// Bad arguments are refused with a clear error, and a taken id cannot be
/// taken again.
#[test]
fn bad_arguments_are_refused() {
    let pool = Pool::new();
    let uring = uring();
    for (entries, len) in [(3, 100), (0, 100), (4, 0)] {
        let err = BufRing::new(&pool, &uring, GROUP, entries, len, 0).expect_err("refused");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    }
    let tight = Pool::builder().buf_size(64 << 10).max_bytes(256 << 10).build();
    let err = BufRing::new(&tight, &uring, GROUP, 256, 1500, 0).expect_err("larger than the budget");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    let held = tight.allocator(0).try_alloc(200_000).expect("the whole budget");
    let err = BufRing::new(&tight, &uring, GROUP, 64, 1500, 0).expect_err("no room left in the budget");
    assert_eq!(err.kind(), std::io::ErrorKind::OutOfMemory, "{err}");
    drop(held);
    drop(BufRing::new(&tight, &uring, GROUP, 64, 1500, 0).expect("room again"));
    assert_eq!(tight.stats().bytes_in_use, 0, "nothing left in use");
    let ring = BufRing::new(&pool, &uring, GROUP, 4, 100, 0).expect("ring");
    let again = BufRing::new(&pool, &uring, GROUP, 4, 100, 0).expect_err("the group is taken");
    assert_eq!(again.raw_os_error(), Some(libc::EEXIST), "{again}");
    // A misuse `take`'s contract forbids, which debug builds catch.
    if cfg!(debug_assertions) {
        // SAFETY: not met, on purpose: the kernel has not used region 0,
        // and the call panics before making a slice.
        let taken_early =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe { ring.take(0, 10) }));
        let message = taken_early.expect_err("a region the kernel has not used is refused");
        let message = message.downcast_ref::<String>().expect("a formatted panic message");
        assert!(message.contains("taken before the kernel used it"), "{message}");
    }
    // SAFETY: not met either; the length check panics first.
    let too_long = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe { ring.take(0, 101) }));
    assert!(too_long.is_err(), "more bytes than a region holds");
    assert_eq!(ring.with_kernel(), 4, "and the refusals changed nothing");
    ring.register_fixed().expect("the regions as the fixed buffer");
    let twice = ring.register_fixed().expect_err("the instance has a table");
    assert_eq!(twice.raw_os_error(), Some(libc::EBUSY), "{twice}");
    drop(ring);
    let ring = BufRing::new(&pool, &uring, GROUP, 4, 100, 0).expect("the group is free again");
    ring.register_fixed().expect("the dropped ring unregistered its table");
}

/// The `udp_relay_uring` example's relay, in the loopback demo: every
/// datagram intact and in order, mixed sizes and one size, sent with
/// `WriteFixed` and with `SendZc`, and no request left using the ring when
/// it returns.
#[test]
fn the_uring_relay_delivers_every_datagram() {
    use examples::relay::{self, DemoConfig};
    use udp_relay_uring::SendOp;
    for (size, send) in
        [(None, SendOp::WriteFixed), (Some(1400), SendOp::WriteFixed), (Some(64), SendOp::ZeroCopy)]
    {
        let config = DemoConfig { datagrams: 3_000, duration: BOUND, window: 32, recv_buffer: None, size };
        let relay_uring =
            move |socket: &_, to, stop: &_| udp_relay_uring::relay_uring(socket, to, stop, send);
        let report = relay::run_demo(&config, relay_uring).expect("no datagram corrupted");
        assert!(!report.buffers.short(), "{report:?}");
        assert_eq!((report.sent, report.delivered, report.forwarded), (3_000, 3_000, 3_000), "{size:?}");
        let expected: u64 = match size {
            Some(size) => 3_000 * size as u64,
            None => (0..3_000).map(|i| relay::datagram_size(i) as u64).sum(),
        };
        assert_eq!(report.payload_bytes, expected);
    }
}
