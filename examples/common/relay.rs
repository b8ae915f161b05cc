//! The UDP relay: each datagram is received straight into pool memory with
//! `fill_with`, which leaves the allocator's reserve free in front of it;
//! `expand_front` then claims that room for a relay header, so the payload
//! is never copied, and the result is forwarded to another port.
//!
//! The relay header is 8 bytes: the datagram's sequence number at the relay
//! and its payload length, both 32-bit big-endian.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use refbuf::Pool;

/// Bytes the relay puts in front of each datagram.
pub const RELAY_HEADER_LEN: usize = 8;

/// The largest UDP payload over IPv4.
pub const MAX_DATAGRAM: usize = 65_507;

/// Pool buf size for the relay: room for several maximal receives per buf.
const RELAY_BUF_SIZE: usize = 256 * 1024;

/// How long the sink waits for a datagram before calling it lost.
const LOSS_TIMEOUT: Duration = Duration::from_secs(5);

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
    /// Datagrams in flight at once; small enough that no socket buffer on
    /// the way overflows.
    pub window: u64,
}

/// What the demo saw.
#[derive(Clone, Copy, Debug)]
pub struct DemoReport {
    pub sent: u64,
    /// Datagrams that reached the sink intact and in order.
    pub delivered: u64,
    /// Datagrams the relay forwarded.
    pub forwarded: u64,
    pub payload_bytes: u64,
    pub elapsed: Duration,
}

/// The largest payload the demo sends: what fits an Ethernet MTU.
pub const MAX_SENT: usize = 1472;

/// The payload size of datagram `i` in the demo: 0 to `MAX_SENT` bytes.
pub fn datagram_size(i: u64) -> usize {
    (i * 37 % (MAX_SENT as u64 + 1)) as usize
}

/// Sends datagrams from a source socket through a relay on a second
/// loopback port to a sink on a third, and checks that each arrives whole,
/// in order, with the right relay header.
///
/// # Errors
/// `TimedOut` for a lost datagram, `InvalidData` for a corrupted one, or
/// any socket error.
pub fn run_demo(config: &DemoConfig) -> io::Result<DemoReport> {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let (relay_socket, source, sink) =
        (UdpSocket::bind(loopback)?, UdpSocket::bind(loopback)?, UdpSocket::bind(loopback)?);
    let (relay_addr, sink_addr) = (relay_socket.local_addr()?, sink.local_addr()?);
    let stop = Arc::new(AtomicBool::new(false));
    let relay_thread = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || relay(&relay_socket, sink_addr, &stop))
    };
    let exchanged = exchange(&source, relay_addr, &sink, config);
    stop.store(true, Ordering::Relaxed);
    let forwarded = relay_thread.join().expect("the relay thread panicked")?;
    exchanged.map(|report| DemoReport { forwarded, ..report })
}

/// The source and sink sides of the demo.
fn exchange(
    source: &UdpSocket,
    relay: SocketAddr,
    sink: &UdpSocket,
    config: &DemoConfig,
) -> io::Result<DemoReport> {
    let pattern: Vec<u8> = (0..MAX_SENT + 251).map(|j| (j * 13 + j / 251) as u8).collect();
    let expected = |i: u64| &pattern[(i % 251) as usize..][..datagram_size(i)];
    sink.set_read_timeout(Some(LOSS_TIMEOUT))?;
    let mut received = vec![0; MAX_DATAGRAM + RELAY_HEADER_LEN];
    let mut report =
        DemoReport { sent: 0, delivered: 0, forwarded: 0, payload_bytes: 0, elapsed: Duration::ZERO };
    let start = Instant::now();
    loop {
        while report.sent < config.datagrams
            && report.sent - report.delivered < config.window
            && start.elapsed() < config.duration
        {
            source.send_to(expected(report.sent), relay)?;
            report.sent += 1;
        }
        if report.delivered == report.sent {
            break;
        }
        let i = report.delivered;
        let n = match sink.recv(&mut received) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("datagram {i} was lost: nothing arrived for {LOSS_TIMEOUT:?}"),
                ));
            }
            Err(e) => return Err(e),
        };
        let datagram = &received[..n];
        let want = expected(i);
        let header_ok = n >= RELAY_HEADER_LEN
            && datagram[..4] == (i as u32).to_be_bytes()
            && datagram[4..RELAY_HEADER_LEN] == (want.len() as u32).to_be_bytes();
        if !header_ok || &datagram[RELAY_HEADER_LEN.min(n)..] != want {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "datagram {i} arrived corrupted: {n} bytes, expected {} + {RELAY_HEADER_LEN}",
                    want.len()
                ),
            ));
        }
        report.delivered += 1;
        report.payload_bytes += want.len() as u64;
    }
    report.elapsed = start.elapsed();
    Ok(report)
}
