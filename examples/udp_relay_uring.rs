//! The UDP relay of `udp_relay` on io_uring: one multishot `RecvMsgMulti`
//! keeps receiving into a `BufRing` of pool memory, the kernel picking the
//! region; each datagram grows its 8-byte relay header in place with
//! `expand_front` and goes out with `WriteFixed` from the region it arrived
//! in (the ring's memory is the instance's fixed buffer), all the sends of
//! a batch in one submission; `--send-zc` sends with `SendZc` instead. A region goes back to the kernel once its
//! send completes and the slice drops.
//!
//! ```sh
//! cargo run --release --features io-uring --example udp_relay_uring -- --datagrams 100000
//! ```
//!
//! The same options, demo and last line as `udp_relay`, so a script can
//! race the two; it also prints the relay's `io_uring_enter` calls and its
//! `ENOBUFS` completions (receives that found every region held).

mod common;

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use common::args;
use common::relay::{self, MAX_SENT, RELAY_HEADER_LEN, RelayOpts};
use io_uring::types::{Fd, RecvMsgOut, SubmitArgs, Timespec};
use io_uring::{IoUring, cqueue, opcode, squeue};
use refbuf::{BufRing, Pool, Slice};

/// The io_uring UDP relay on loopback, driven by the same source and sink
/// as `udp_relay`.
// Public, as are its fields, for `tests/examples.rs`, which checks it.
#[derive(Debug, Parser)]
#[command(name = "udp_relay_uring")]
pub struct Args {
    #[command(flatten)]
    pub relay: RelayOpts,
    /// Send with `SendZc` (zero-copy, from the fixed buffer) in place of
    /// `WriteFixed`.
    #[arg(long)]
    pub send_zc: bool,
}

/// The buffer group of the relay's ring.
const GROUP: u16 = 0;
/// Regions in the ring: more than a window of datagrams in flight.
const REGIONS: u16 = 512;
/// Bytes of each region the kernel fills: the `recvmsg` header the kernel
/// writes first, then the largest datagram the demo sends.
const REGION_LEN: usize = 2048;
/// The receive's `user_data`; a send's is its slot in `sending`.
const RECV: u64 = u64::MAX;
/// Submission queue entries: a send per region, and the receive.
const QUEUE: u32 = 1024;
/// How long one wait for completions lasts, so that the loop sees `stop`.
const WAIT: Duration = Duration::from_millis(20);
/// How long the relay waits for its requests to end once stopped.
const DRAIN_BOUND: Duration = Duration::from_secs(5);

/// Bytes of the kernel's `struct io_uring_recvmsg_out`, in front of each
/// payload.
const RECVMSG_HEADER: usize = 16;

const _: () = assert!(REGION_LEN >= RECVMSG_HEADER + MAX_SENT, "a region holds a datagram");

/// `io_uring_enter` calls made by the relay (reported after the run).
static ENTERS: AtomicU64 = AtomicU64::new(0);
/// Receive completions that found no region.
static ENOBUFS: AtomicU64 = AtomicU64::new(0);

fn main() -> ExitCode {
    args::run_main("udp_relay_uring", |args: Args| {
        let send = if args.send_zc { SendOp::ZeroCopy } else { SendOp::WriteFixed };
        let report =
            relay::run_and_report("udp_relay_uring", &args.relay.config(), move |socket, to, stop| {
                relay_uring(socket, to, stop, send)
            })?;
        println!(
            "io_uring: {} enter calls, {:.3} a datagram; {} receives found no region",
            ENTERS.load(Ordering::Relaxed),
            ENTERS.load(Ordering::Relaxed) as f64 / report.forwarded.max(1) as f64,
            ENOBUFS.load(Ordering::Relaxed)
        );
        Ok(())
    })
}

/// How the relay sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendOp {
    /// `WriteFixed`: one completion, the payload copied into the socket.
    WriteFixed,
    /// `SendZc` from the fixed buffer: the kernel sends from the region
    /// itself and posts a second completion, a notification, once it is
    /// done with it; the slice lives until then.
    ZeroCopy,
}

/// Relays datagrams arriving at `socket` to `to` through io_uring until
/// `stop` is set; returns how many it forwarded. (Public for `tests/ring.rs`,
/// which runs the demo through it.)
pub fn relay_uring(socket: &UdpSocket, to: SocketAddr, stop: &AtomicBool, send: SendOp) -> io::Result<u64> {
    let mut uring = IoUring::new(QUEUE)?;
    let pool = Pool::new();
    let ring = BufRing::new(&pool, &uring, GROUP, REGIONS, REGION_LEN, RELAY_HEADER_LEN)?;
    ring.register_fixed()?;
    // Sends go out through a socket of their own, connected to the sink:
    // connecting the receiving one would filter what it receives.
    let out = UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    out.connect(to)?;
    // No name or control data: the kernel writes the 16-byte header of
    // `io_uring_recvmsg_out` and then the payload.
    // SAFETY: an all-zero `msghdr` is valid (null pointers, zero lengths).
    let msghdr: libc::msghdr = unsafe { std::mem::zeroed() };
    let mut relay = Relay {
        ring,
        sending: (0..REGIONS).map(|_| None).collect(),
        free: (0..usize::from(REGIONS)).rev().collect(),
        forwarded: 0,
        prepared: 0,
        send,
        receiving: false,
        out: Fd(out.as_raw_fd()),
        socket: Fd(socket.as_raw_fd()),
    };
    let result = relay.run(&mut uring, &msghdr, stop);
    // The ring must outlive every request that uses it: end them first.
    if let Err(e) = relay.drain(&mut uring) {
        // A request may still use the ring: it must not be freed.
        std::mem::forget(relay);
        return Err(e);
    }
    result?;
    Ok(relay.forwarded)
}

/// The relay's state between completions.
struct Relay {
    ring: BufRing,
    /// Slices being sent, by slot; a send's `user_data` is its slot.
    sending: Vec<Option<Slice>>,
    /// Free slots of `sending`.
    free: Vec<usize>,
    forwarded: u64,
    /// Datagrams turned into sends: the next one's relay sequence number.
    prepared: u64,
    send: SendOp,
    /// Whether the multishot receive is armed.
    receiving: bool,
    out: Fd,
    socket: Fd,
}

impl Relay {
    /// Waits for completions and answers them until `stop` is set.
    fn run(&mut self, uring: &mut IoUring, msghdr: &libc::msghdr, stop: &AtomicBool) -> io::Result<()> {
        let ts = Timespec::from(WAIT);
        let wait = SubmitArgs::new().timespec(&ts);
        while !stop.load(Ordering::Relaxed) {
            // After `ENOBUFS`, once a region is back.
            if !self.receiving && self.ring.with_kernel() > 0 {
                self.arm(uring, msghdr)?;
            }
            enter(uring, &wait)?;
            self.complete(uring, msghdr)?;
        }
        Ok(())
    }

    /// Submits the multishot receive.
    fn arm(&mut self, uring: &mut IoUring, msghdr: &libc::msghdr) -> io::Result<()> {
        let sqe = opcode::RecvMsgMulti::new(self.socket, msghdr, GROUP).build().user_data(RECV);
        push(uring, &sqe)?;
        self.receiving = true;
        Ok(())
    }

    /// Answers every completion ready: a datagram becomes a send from the
    /// region it arrived in; a finished send drops its slice. Then the
    /// regions whose slices are gone go back to the kernel.
    fn complete(&mut self, uring: &mut IoUring, msghdr: &libc::msghdr) -> io::Result<()> {
        let (_, mut submissions, completions) = uring.split();
        for cqe in completions {
            if cqe.user_data() != RECV {
                self.sent(cqe.user_data() as usize, cqe.result(), cqe.flags())?;
                continue;
            }
            if !cqueue::more(cqe.flags()) {
                self.receiving = false;
            }
            // SAFETY: a completion of the receive, which selects from the
            // ring's group, on the ring's instance; passed once.
            match unsafe { self.ring.completion(cqe.result(), cqe.flags()) } {
                Ok(datagram) => {
                    let sqe = self.prepare(datagram, msghdr)?;
                    // SAFETY: see `push`.
                    unsafe { submissions.push(&sqe) }.map_err(|_| queue_full())?;
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    ENOBUFS.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => return Err(e),
            }
        }
        drop(submissions);
        self.ring.replenish();
        Ok(())
    }

    /// Takes a send's completion: its result, its notification, or both
    /// in one. The slice goes once the kernel is done with it.
    fn sent(&mut self, slot: usize, result: i32, flags: u32) -> io::Result<()> {
        // A zero-copy send's first completion says more is coming (the
        // notification) while the kernel still reads the region.
        if !cqueue::more(flags) {
            drop(self.sending[slot].take());
            self.free.push(slot);
        }
        if cqueue::notif(flags) {
            return Ok(());
        }
        if result < 0 {
            return Err(io::Error::from_raw_os_error(-result));
        }
        self.forwarded += 1;
        Ok(())
    }

    /// Turns a received region into a send of the relay header and the
    /// payload, in place.
    fn prepare(&mut self, mut datagram: Slice, msghdr: &libc::msghdr) -> io::Result<squeue::Entry> {
        let out = RecvMsgOut::parse(&datagram, msghdr)
            .map_err(|()| io::Error::new(io::ErrorKind::InvalidData, "a receive shorter than its header"))?;
        if out.is_payload_truncated() {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "a datagram larger than a region"));
        }
        let len = out.payload_data().len();
        // The kernel's header becomes headroom, in front of which the
        // relay header goes.
        datagram.truncate_front(datagram.len() - len);
        assert!(datagram.expand_front(RELAY_HEADER_LEN), "the reserve and the kernel's header are headroom");
        datagram[..4].copy_from_slice(&(self.prepared as u32).to_be_bytes());
        self.prepared += 1;
        datagram[4..RELAY_HEADER_LEN].copy_from_slice(&(len as u32).to_be_bytes());
        let slot = self.free.pop().expect("a slot for each region");
        let (ptr, len) = (datagram.as_ptr(), datagram.len() as u32);
        let sqe = match self.send {
            SendOp::WriteFixed => opcode::WriteFixed::new(self.out, ptr, len, 0).offset(u64::MAX).build(),
            SendOp::ZeroCopy => opcode::SendZc::new(self.out, ptr, len).buf_index(Some(0)).build(),
        }
        .user_data(slot as u64);
        self.sending[slot] = Some(datagram);
        Ok(sqe)
    }

    /// Cancels the receive and waits, within a bound, for it and every send
    /// to end, so that no request uses the ring when it drops.
    fn drain(&mut self, uring: &mut IoUring) -> io::Result<()> {
        if self.receiving {
            push(uring, &opcode::AsyncCancel::new(RECV).build().user_data(RECV - 1))?;
        }
        let start = Instant::now();
        let ts = Timespec::from(WAIT);
        let wait = SubmitArgs::new().timespec(&ts);
        while self.receiving || self.free.len() < self.sending.len() {
            if start.elapsed() > DRAIN_BOUND {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "the relay's requests did not end"));
            }
            enter(uring, &wait)?;
            for cqe in uring.completion() {
                match cqe.user_data() {
                    RECV => {
                        if !cqueue::more(cqe.flags()) {
                            self.receiving = false;
                        }
                        // A datagram still arriving is dropped: the demo
                        // is over.
                        // SAFETY: as in `complete`.
                        drop(unsafe { self.ring.completion(cqe.result(), cqe.flags()) });
                    }
                    cancel if cancel == RECV - 1 => {}
                    slot => {
                        if !cqueue::more(cqe.flags()) {
                            drop(self.sending[slot as usize].take());
                            self.free.push(slot as usize);
                        }
                    }
                }
            }
            self.ring.replenish();
        }
        Ok(())
    }
}

/// Pushes `sqe`; the queue has room for every request the relay has.
fn push(uring: &mut IoUring, sqe: &squeue::Entry) -> io::Result<()> {
    // SAFETY: the receive's `msghdr` and the ring it selects from outlive
    // it (`relay_uring` drains every request before either goes), and a
    // send's slice stays in `sending` until its completion.
    unsafe { uring.submission().push(sqe) }.map_err(|_| queue_full())
}

/// The error for a full submission queue, which `QUEUE` rules out.
fn queue_full() -> io::Error {
    io::Error::other("the submission queue is full")
}

/// Submits what is queued and waits for a completion, at most one `WAIT`.
fn enter(uring: &IoUring, wait: &SubmitArgs<'_, '_>) -> io::Result<()> {
    ENTERS.fetch_add(1, Ordering::Relaxed);
    match uring.submitter().submit_with_args(1, wait) {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR | libc::EBUSY)) => Ok(()),
        Err(e) => Err(e),
    }
}
