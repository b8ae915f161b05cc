//! The UDP relay: each datagram is received straight into pool memory with
//! `fill_with`, which leaves the allocator's reserve free in front of it;
//! `expand_front` then claims that room for a relay header, so the payload
//! is never copied, and the result is forwarded to another port.
//!
//! The relay header is 8 bytes: the datagram's sequence number at the relay
//! and its payload length, both 32-bit big-endian.
//!
//! # Loss and corruption
//!
//! UDP may drop a datagram, and on loopback it does exactly when a receive
//! buffer is full: the kernel counts it in `RcvbufErrors` and the next
//! datagram arrives in its place. The demo sizes the receive buffers for its
//! window, reads back what the kernel granted and says so where that is less
//! than the window needs. The sink tells the two failures apart by content:
//! a datagram that is, header and payload, one sent after the one expected
//! means those between were lost, and they are counted; a datagram that is
//! none of those in flight is corrupted, and the demo fails. Loss is a
//! property of UDP, not of the pool; corruption would be a bug.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use refbuf::Pool;
use socket2::SockRef;

/// Bytes the relay puts in front of each datagram.
pub const RELAY_HEADER_LEN: usize = 8;

/// The largest UDP payload over IPv4.
pub const MAX_DATAGRAM: usize = 65_507;

/// Pool buf size for the relay: room for several maximal receives per buf.
const RELAY_BUF_SIZE: usize = 256 * 1024;

/// How long the sink waits for a datagram before calling every datagram in
/// flight lost.
const LOSS_TIMEOUT: Duration = Duration::from_secs(5);

/// Receive buffer bytes to allow for each datagram of the window. The kernel
/// charges a queued datagram the memory that holds it, not its payload: on
/// loopback under Linux 6.18, 832 bytes for a payload of up to 100 bytes
/// and 2,304 for one of 1,000 to 1,480 (its data in a 2 KiB slab, plus the
/// `sk_buff`). 4 KiB covers the demo's largest datagram with room for a
/// kernel that rounds up further.
pub const BUFFER_PER_DATAGRAM: usize = 4096;

/// Relays datagrams arriving at `socket` to `to` until `stop` is set;
/// returns how many it forwarded.
pub fn relay(socket: &UdpSocket, to: SocketAddr, stop: &AtomicBool) -> io::Result<u64> {
    let pool = Pool::builder().buf_size(RELAY_BUF_SIZE).build();
    let mut alloc = pool.allocator(RELAY_HEADER_LEN);
    // A short timeout, so that the loop sees `stop` soon.
    socket.set_read_timeout(Some(Duration::from_millis(20)))?;
    let mut forwarded: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let mut datagram = match alloc.fill_with(MAX_DATAGRAM, |buf| socket.recv(buf)) {
            Ok(datagram) => datagram,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let len = u32::try_from(datagram.len()).expect("a datagram is below 64 KiB");
        assert!(datagram.expand_front(RELAY_HEADER_LEN), "fill_with leaves the reserve as headroom");
        datagram[..4].copy_from_slice(&(forwarded as u32).to_be_bytes());
        datagram[4..RELAY_HEADER_LEN].copy_from_slice(&len.to_be_bytes());
        socket.send_to(&datagram, to)?;
        forwarded += 1;
    }
    Ok(forwarded)
}

/// How many datagrams the demo sends, and for how long at most.
#[derive(Clone, Debug)]
pub struct DemoConfig {
    pub datagrams: u64,
    pub duration: Duration,
    /// Datagrams in flight at once; the receive buffers are sized for them.
    pub window: u64,
    /// A receive buffer size to ask for instead of the window's
    /// ([`BUFFER_PER_DATAGRAM`] each), to see what loss looks like.
    pub recv_buffer: Option<usize>,
    /// One payload size for every datagram, in place of the mixed sizes
    /// of [`datagram_size`].
    pub size: Option<usize>,
}

impl DemoConfig {
    /// Checks what the sink relies on: payloads of at most [`MAX_SENT`]
    /// bytes, and, with one size for all, fewer datagrams in flight than
    /// there are distinct payloads of that size (see [`Payloads`]).
    ///
    /// # Errors
    /// `InvalidInput`, saying which option to change.
    pub fn check(&self) -> io::Result<()> {
        let invalid = |msg: String| Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
        match self.size {
            Some(size) if size > MAX_SENT => invalid(format!("--size {size} is over {MAX_SENT}")),
            Some(_) if self.window >= PATTERN_STARTS as u64 => {
                invalid(format!("--size needs a --window below {PATTERN_STARTS}, not {}", self.window))
            }
            None if self.window > MAX_SENT as u64 => {
                invalid(format!("--window {} is over {MAX_SENT}", self.window))
            }
            _ => Ok(()),
        }
    }
}

/// A relay: forwards what arrives at its socket to an address until told
/// to stop, and returns how many datagrams it forwarded. Runs on a thread
/// of its own.
pub trait RelayFn: FnOnce(&UdpSocket, SocketAddr, &AtomicBool) -> io::Result<u64> + Send + 'static {}

impl<F: FnOnce(&UdpSocket, SocketAddr, &AtomicBool) -> io::Result<u64> + Send + 'static> RelayFn for F {}

/// The socket buffers the kernel granted, as read back, against what the
/// window needs.
#[derive(Clone, Copy, Debug)]
pub struct Buffers {
    /// Bytes a receive buffer needs to queue a whole window.
    pub needed: usize,
    /// The smaller `SO_RCVBUF` of the relay's socket and the sink's, the two
    /// that queue datagrams. Linux grants twice what is asked, up to twice
    /// `net.core.rmem_max`, and reports the doubled size, which is what it
    /// checks the queue against.
    pub recv: usize,
    /// The smaller `SO_SNDBUF` of the source's socket and the relay's. A
    /// full send buffer makes `send` wait; it loses nothing.
    pub send: usize,
}

impl Buffers {
    /// Whether a receive buffer is smaller than the window needs, so that
    /// datagrams may be dropped.
    pub fn short(&self) -> bool {
        self.recv < self.needed
    }
}

/// The options of both relay examples (`udp_relay` and
/// `udp_relay_uring`), so one script can race them.
#[derive(Debug, clap::Args)]
pub struct RelayOpts {
    /// Datagrams to send.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub datagrams: u64,
    /// Stop after this many seconds (fractions allowed).
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = super::args::seconds, allow_negative_numbers = true)]
    pub duration: Duration,
    /// Datagrams in flight at once.
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub window: u64,
    /// A receive buffer size to ask for instead of the one the window needs
    /// (4 KiB a datagram); 0 asks for the window's.
    #[arg(long, value_name = "BYTES", default_value_t = 0)]
    pub rcvbuf: usize,
    /// Send every datagram with this many payload bytes (at most 1472), in
    /// place of mixed sizes from 0 to 1472.
    #[arg(long, value_name = "N")]
    pub size: Option<usize>,
}

impl RelayOpts {
    /// The demo's configuration.
    pub fn config(self) -> DemoConfig {
        DemoConfig {
            datagrams: self.datagrams,
            duration: self.duration,
            window: self.window,
            recv_buffer: (self.rcvbuf > 0).then_some(self.rcvbuf),
            size: self.size,
        }
    }
}

/// Runs the demo through `relay` and prints what the kernel granted and
/// what arrived; the last line is the same for both relay examples.
///
/// # Errors
/// As for [`run_demo`].
pub fn run_and_report(name: &str, config: &DemoConfig, relay: impl RelayFn) -> io::Result<DemoReport> {
    let report = run_demo(config, relay)?;
    let buffers = report.buffers;
    println!(
        "socket buffers granted: receive {} bytes, send {} bytes; a window of {} needs {} bytes",
        buffers.recv, buffers.send, config.window, buffers.needed
    );
    if buffers.short() {
        eprintln!(
            "{name}: warning: the kernel granted receive buffers of {} bytes, less than the {} a window \
             of {} needs, so UDP may drop datagrams (raise net.core.rmem_max, or lower --window)",
            buffers.recv, buffers.needed, config.window
        );
    }
    println!(
        "relay thread: {:.2?} of CPU, {:.2} us a datagram forwarded",
        report.relay_cpu,
        report.relay_cpu.as_secs_f64() * 1e6 / report.forwarded.max(1) as f64
    );
    println!(
        "{} of {} datagrams relayed intact, {} lost ({} of them after the relay); {} forwarded, \
         {:.1} MB of payload in {:.2?}: {:.0} datagrams/s",
        report.delivered,
        report.sent,
        report.lost,
        report.lost_after_relay,
        report.forwarded,
        report.payload_bytes as f64 / 1e6,
        report.elapsed,
        report.delivered as f64 / report.elapsed.as_secs_f64()
    );
    Ok(report)
}

/// What the demo saw.
#[derive(Clone, Copy, Debug)]
pub struct DemoReport {
    pub sent: u64,
    /// Datagrams that reached the sink intact and in order.
    pub delivered: u64,
    /// Datagrams that never reached the sink: `sent - delivered`.
    pub lost: u64,
    /// Of those, the ones the relay had forwarded, so dropped at the sink's
    /// socket rather than the relay's: `forwarded - delivered`.
    pub lost_after_relay: u64,
    /// Datagrams the relay forwarded.
    pub forwarded: u64,
    pub payload_bytes: u64,
    pub elapsed: Duration,
    /// CPU time, user and system, the relay's thread used.
    pub relay_cpu: Duration,
    pub buffers: Buffers,
}

/// The largest payload the demo sends: what fits an Ethernet MTU.
pub const MAX_SENT: usize = 1472;

/// The payload size of datagram `i` in the demo: 0 to `MAX_SENT` bytes.
/// Sizes step by 37 modulo 1473, which is prime to 37, so any 1473
/// consecutive datagrams differ in size.
pub fn datagram_size(i: u64) -> usize {
    (i * 37 % (MAX_SENT as u64 + 1)) as usize
}

/// Where a payload may start in the pattern: datagrams this far apart or
/// less have different payloads even at one size.
const PATTERN_STARTS: usize = 251;

/// The payloads of the demo: datagram `i` is `datagram_size(i)` bytes (or
/// the one size asked for) of a pattern, starting at `i % 251`.
#[derive(Debug)]
pub struct Payloads {
    pattern: Vec<u8>,
    size: Option<usize>,
}

impl Default for Payloads {
    fn default() -> Payloads {
        Payloads::new(None)
    }
}

impl Payloads {
    /// Payloads of mixed sizes, or all of `size` bytes.
    pub fn new(size: Option<usize>) -> Payloads {
        let pattern = (0..MAX_SENT + PATTERN_STARTS).map(|j| (j * 13 + j / PATTERN_STARTS) as u8).collect();
        Payloads { pattern, size }
    }

    /// The payload of datagram `i`.
    pub fn get(&self, i: u64) -> &[u8] {
        let size = self.size.unwrap_or_else(|| datagram_size(i));
        &self.pattern[(i % PATTERN_STARTS as u64) as usize..][..size]
    }
}

/// The sink's account of the datagrams that reach it; see the module docs.
#[derive(Clone, Copy, Debug, Default)]
pub struct SinkCheck {
    pub delivered: u64,
    pub lost: u64,
    /// Relay sequence numbers skipped: datagrams lost after the relay
    /// forwarded them, among those before the last one delivered.
    pub relay_skipped: u64,
    pub payload_bytes: u64,
    /// The relay sequence number the next datagram carries unless the
    /// relay's datagrams were lost before it.
    next_relay_seq: u32,
}

impl SinkCheck {
    /// Datagrams delivered or counted lost: the number of the next one
    /// expected.
    pub fn accounted(&self) -> u64 {
        self.delivered + self.lost
    }

    /// Checks a datagram that reached the sink while `sent` had been sent:
    /// it must be the relay header and payload of one not yet accounted for,
    /// whose relay sequence number skips no more datagrams than are lost.
    /// Those before it are counted lost. For a window below 1473 the match
    /// is unambiguous: no two datagrams in flight have the same size.
    ///
    /// # Errors
    /// `InvalidData` ("arrived corrupted") for anything else.
    pub fn arrived(&mut self, payloads: &Payloads, datagram: &[u8], sent: u64) -> io::Result<()> {
        let next = self.accounted();
        let corrupted = |why: String| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "a datagram arrived corrupted: {} bytes, {why} (datagram {next} was next, of {} + \
                     {RELAY_HEADER_LEN} bytes)",
                    datagram.len(),
                    datagram_size(next)
                ),
            )
        };
        let Some((header, payload)) = datagram.split_first_chunk::<RELAY_HEADER_LEN>() else {
            return Err(corrupted(format!("shorter than the {RELAY_HEADER_LEN}-byte relay header")));
        };
        let relay_seq = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
        if len as usize != payload.len() {
            return Err(corrupted(format!("a relay header that says {len} payload bytes")));
        }
        // Almost always the one expected; after a loss, a later one.
        let Some(i) = (next..sent).find(|&i| payloads.get(i) == payload) else {
            return Err(corrupted(format!("none of the {} datagrams in flight", sent - next)));
        };
        let relay_gap = u64::from(relay_seq.wrapping_sub(self.next_relay_seq));
        if self.relay_skipped + relay_gap > self.lost + (i - next) {
            return Err(corrupted(format!(
                "relay sequence number {relay_seq} where {} was next, after {} datagrams lost",
                self.next_relay_seq,
                self.lost + (i - next)
            )));
        }
        self.lost += i - next;
        self.relay_skipped += relay_gap;
        self.next_relay_seq = relay_seq.wrapping_add(1);
        self.delivered += 1;
        self.payload_bytes += payload.len() as u64;
        Ok(())
    }

    /// Counts every datagram still in flight lost, for when nothing has
    /// arrived for a long time.
    pub fn lose_in_flight(&mut self, sent: u64) {
        self.lost = sent - self.delivered;
    }
}

/// Sends datagrams from a source socket through `relay` on a second
/// loopback port to a sink on a third, and checks that each arrives whole,
/// in order, with the right relay header, or counts it lost.
///
/// # Errors
/// `InvalidInput` for a configuration the sink cannot check,
/// `InvalidData` for a corrupted datagram, or any socket error.
pub fn run_demo(config: &DemoConfig, relay: impl RelayFn) -> io::Result<DemoReport> {
    config.check()?;
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let (relay_socket, source, sink) =
        (UdpSocket::bind(loopback)?, UdpSocket::bind(loopback)?, UdpSocket::bind(loopback)?);
    let buffers = size_buffers(config, &relay_socket, &source, &sink)?;
    let (relay_addr, sink_addr) = (relay_socket.local_addr()?, sink.local_addr()?);
    let stop = Arc::new(AtomicBool::new(false));
    let relay_thread = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            let forwarded = relay(&relay_socket, sink_addr, &stop)?;
            Ok::<_, io::Error>((forwarded, thread_cpu_time()?))
        })
    };
    let exchanged = exchange(&source, relay_addr, &sink, config);
    stop.store(true, Ordering::Relaxed);
    let (forwarded, relay_cpu) = relay_thread.join().expect("the relay thread panicked")?;
    let (sent, check, elapsed) = exchanged?;
    Ok(DemoReport {
        sent,
        delivered: check.delivered,
        lost: check.lost,
        lost_after_relay: forwarded.saturating_sub(check.delivered),
        forwarded,
        payload_bytes: check.payload_bytes,
        elapsed,
        relay_cpu,
        buffers,
    })
}

/// The CPU time, user and system, the calling thread has used.
fn thread_cpu_time() -> io::Result<Duration> {
    // SAFETY: an all-zero `rusage` is valid, and `getrusage` fills it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is writable for the call.
    if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Ok(time(usage.ru_utime) + time(usage.ru_stime))
}

/// Grows the receive buffers of the relay's and the sink's sockets and the
/// send buffers of the source's and the relay's to what the window needs
/// (or the receive buffers to `config.recv_buffer`), and reads back what the
/// kernel granted.
fn size_buffers(
    config: &DemoConfig,
    relay: &UdpSocket,
    source: &UdpSocket,
    sink: &UdpSocket,
) -> io::Result<Buffers> {
    // The kernel takes an `int`.
    let needed = usize::try_from(config.window)
        .unwrap_or(usize::MAX)
        .saturating_mul(BUFFER_PER_DATAGRAM)
        .min(i32::MAX as usize);
    let mut recv = usize::MAX;
    for socket in [relay, sink].map(SockRef::from) {
        match config.recv_buffer {
            Some(size) => socket.set_recv_buffer_size(size.min(i32::MAX as usize))?,
            None if socket.recv_buffer_size()? < needed => socket.set_recv_buffer_size(needed)?,
            None => {}
        }
        recv = recv.min(socket.recv_buffer_size()?);
    }
    let mut send = usize::MAX;
    for socket in [source, relay].map(SockRef::from) {
        if socket.send_buffer_size()? < needed {
            socket.set_send_buffer_size(needed)?;
        }
        send = send.min(socket.send_buffer_size()?);
    }
    Ok(Buffers { needed, recv, send })
}

/// The source and sink sides of the demo; returns how many datagrams were
/// sent, the sink's account of them, and how long it took.
///
/// Both sides batch their system calls (`sendmmsg`, `recvmmsg`) up to the
/// window, so that the relay, which handles one datagram at a time, is
/// what limits the rate.
fn exchange(
    source: &UdpSocket,
    relay: SocketAddr,
    sink: &UdpSocket,
    config: &DemoConfig,
) -> io::Result<(u64, SinkCheck, Duration)> {
    let payloads = Payloads::new(config.size);
    sink.set_read_timeout(Some(LOSS_TIMEOUT))?;
    let batch = usize::try_from(config.window).unwrap_or(usize::MAX).clamp(1, MAX_BATCH);
    let mut received = vec![0; batch * RECEIVE_SLOT];
    let mut lens = [0; MAX_BATCH];
    let relay = socket2::SockAddr::from(relay);
    let mut check = SinkCheck::default();
    let mut sent = 0;
    let start = Instant::now();
    loop {
        let room = (config.datagrams - sent).min(config.window - (sent - check.accounted()));
        if room > 0 && start.elapsed() < config.duration {
            let n = room.min(batch as u64);
            sent += mmsg::send(source, &relay, (sent..sent + n).map(|i| payloads.get(i)))? as u64;
        }
        if check.accounted() == sent {
            if sent == config.datagrams || start.elapsed() >= config.duration {
                break;
            }
            continue;
        }
        match mmsg::recv(sink, &mut received, &mut lens[..batch]) {
            Ok(k) => {
                for (slot, &len) in received.chunks(RECEIVE_SLOT).zip(&lens[..k]) {
                    check.arrived(&payloads, &slot[..len], sent)?;
                }
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                check.lose_in_flight(sent);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok((sent, check, start.elapsed()))
}

/// The most datagrams the source sends, or the sink receives, in one call.
const MAX_BATCH: usize = 64;

/// Room for one datagram at the sink: the largest the demo sends, with the
/// relay header. A larger one arrives truncated, and fails the check.
const RECEIVE_SLOT: usize = MAX_SENT + RELAY_HEADER_LEN;

/// `sendmmsg` and `recvmmsg`, for a batch of datagrams in one call.
mod mmsg {
    use std::io;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;

    use super::MAX_BATCH;

    /// Sends each payload as a datagram to `to`, as many as one `sendmmsg`
    /// takes; returns how many went.
    pub fn send<'a>(
        socket: &UdpSocket,
        to: &socket2::SockAddr,
        payloads: impl Iterator<Item = &'a [u8]>,
    ) -> io::Result<usize> {
        // SAFETY: all-zero `iovec`s and `mmsghdr`s are valid (null
        // pointers, zero lengths).
        let mut iovs: [libc::iovec; MAX_BATCH] = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut msgs: [libc::mmsghdr; MAX_BATCH] = unsafe { std::mem::zeroed() };
        let mut n = 0;
        for (payload, (iov, msg)) in payloads.zip(iovs.iter_mut().zip(&mut msgs)) {
            *iov = libc::iovec { iov_base: payload.as_ptr().cast_mut().cast(), iov_len: payload.len() };
            msg.msg_hdr.msg_iov = iov;
            msg.msg_hdr.msg_iovlen = 1;
            msg.msg_hdr.msg_name = to.as_ptr().cast_mut().cast();
            msg.msg_hdr.msg_namelen = to.len();
            n += 1;
        }
        // SAFETY: the first `n` headers point to live payloads (only read)
        // and to `to`, for the call.
        let sent = unsafe { libc::sendmmsg(socket.as_raw_fd(), msgs.as_mut_ptr(), n as u32, 0) };
        if sent < 0 { Err(io::Error::last_os_error()) } else { Ok(sent as usize) }
    }

    /// Waits for a datagram, then takes as many as are queued, up to one
    /// per `lens` entry, into consecutive `slot`-byte parts of `buf`;
    /// returns how many, with each one's length in `lens`.
    pub fn recv(socket: &UdpSocket, buf: &mut [u8], lens: &mut [usize]) -> io::Result<usize> {
        let slot = buf.len() / lens.len();
        // SAFETY: as in `send`.
        let mut iovs: [libc::iovec; MAX_BATCH] = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut msgs: [libc::mmsghdr; MAX_BATCH] = unsafe { std::mem::zeroed() };
        for ((part, iov), msg) in buf.chunks_mut(slot).zip(&mut iovs).zip(&mut msgs).take(lens.len()) {
            *iov = libc::iovec { iov_base: part.as_mut_ptr().cast(), iov_len: part.len() };
            msg.msg_hdr.msg_iov = iov;
            msg.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: the first `lens.len()` headers point to distinct parts of
        // `buf`, writable for the call; no timeout argument (the socket's
        // receive timeout applies to the wait for the first).
        let got = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                msgs.as_mut_ptr(),
                lens.len() as u32,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if got < 0 {
            return Err(io::Error::last_os_error());
        }
        for (len, msg) in lens.iter_mut().zip(&msgs[..got as usize]) {
            *len = msg.msg_len as usize;
        }
        Ok(got as usize)
    }
}
