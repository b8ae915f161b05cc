//! The tokio examples over real loopback sockets: `tokio_echo`'s server in
//! both modes, driven by `tokio_load`'s client and by raw connections that
//! misbehave. The server and client are the examples' own code, run
//! in-process, so the refbuf mode's pool can be read: after every scenario
//! nothing may be left in use. Each test is bounded in connections, frames
//! and time.

#![cfg(feature = "tokio")]

#[path = "../examples/tokio_common/mod.rs"]
mod tokio_common;

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::thread;
use std::time::Duration;

use refbuf::Pool;
use socket2::SockRef;
use tokio_common::frame::{self, DEFAULT_MAX_FRAME};
use tokio_common::load::{self, Report};
use tokio_common::server::{self, Config, ConnEnd, Server};

/// Bound on every wait in these tests.
const BOUND: Duration = Duration::from_secs(30);

fn config(max_frame: usize, baseline: bool) -> Config {
    let addr = SocketAddr::from(([127, 0, 0, 1], 0));
    Config { addr, max_frame, max_bytes: None, baseline, threads: 2, frames: u64::MAX, duration: BOUND }
}

fn start_server(max_frame: usize, baseline: bool) -> Server {
    Server::start(config(max_frame, baseline)).expect("server starts")
}

/// Runs the load client against `addr`: `connections` connections sending
/// `frames` frames each, `in_flight` at a time, of `min` to `max` bytes.
fn load(
    addr: SocketAddr,
    connections: usize,
    in_flight: usize,
    frames: u64,
    (min, max): (usize, usize),
) -> Report {
    let config = load::Config { addr, connections, in_flight, min, max, duration: BOUND, frames };
    let report =
        server::runtime(2).expect("runtime").block_on(load::run(&config)).expect("every echo intact");
    assert_eq!(report.frames, connections as u64 * frames, "frames lost");
    report
}

/// The next connection end the server reports.
fn next_end(server: &Server) -> ConnEnd {
    server.events().recv_timeout(BOUND).expect("a connection ended within the bound")
}

/// Asserts that the refbuf mode's pool has nothing in use.
fn assert_nothing_in_use(pool: &Pool, when: &str) {
    let stats = pool.stats();
    assert_eq!((stats.bufs_in_use, stats.bytes_in_use), (0, 0), "{when}: {stats}");
}

/// Many connections with frames pipelined, sizes from empty to larger than
/// a pool buf: every frame comes back intact in both modes, and the refbuf
/// mode answers both with the header joined to the payload and with a
/// header slice in front.
#[test]
#[cfg_attr(miri, ignore = "uses real sockets")]
fn pipelined_frames_intact_in_both_modes() {
    for baseline in [false, true] {
        let server = start_server(DEFAULT_MAX_FRAME, baseline);
        let (connections, frames) = (12, 100);
        load(server.addr(), connections, 8, frames, (0, 70_000));
        for _ in 0..connections {
            let end = next_end(&server);
            assert!(end.result.is_ok(), "a clean close: {:?}", end.result);
            assert_eq!(end.frames, frames);
        }
        let pool = server.pool().clone();
        assert_nothing_in_use(&pool, "every connection closed");
        let summary = server.stop().expect("server stops");
        assert_eq!((summary.connections, summary.frames), (connections as u64, connections as u64 * frames));
        assert!(summary.writes <= summary.frames, "{summary:?}");
        if baseline {
            assert_eq!(summary.in_place + summary.header_slices, 0, "the baseline uses neither");
        } else {
            assert!(summary.in_place > 0 && summary.header_slices > 0, "{summary:?}");
            assert_eq!(summary.in_place + summary.header_slices, summary.frames);
        }
        assert_nothing_in_use(&pool, "the server stopped");
    }
}

/// Opens a raw connection, writes `bytes`, shuts down writing, and returns
/// the connection's local address and everything the server sends back
/// before closing (an error counts as closed).
fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> (SocketAddr, Vec<u8>) {
    let mut stream = frame::connect(addr).expect("connect");
    stream.set_read_timeout(Some(BOUND)).expect("timeout");
    let local = stream.local_addr().expect("local address");
    // The server may already have closed after refusing a header.
    let _ = stream.write_all(bytes);
    let _ = stream.shutdown(Shutdown::Write);
    let mut back = Vec::new();
    if let Err(e) = stream.read_to_end(&mut back) {
        assert_ne!(e.kind(), io::ErrorKind::WouldBlock, "the server never closed the connection");
    }
    (local, back)
}

/// A frame over the maximum closes its own connection with `InvalidData`
/// and nothing echoed, while other connections are served throughout and
/// new ones after.
#[test]
#[cfg_attr(miri, ignore = "uses real sockets")]
fn oversize_frame_closes_only_its_connection() {
    for baseline in [false, true] {
        let max = 100_000;
        let server = start_server(max, baseline);
        let addr = server.addr();
        let steady = thread::spawn(move || load(addr, 4, 4, 300, (0, max)));

        let mut oversize = frame::header(max + 1).to_vec();
        oversize.extend_from_slice(&[0; 64]);
        let (local, back) = raw_exchange(addr, &oversize);
        assert!(back.is_empty(), "nothing is echoed for a refused frame");
        let mut ends = HashMap::new();
        while !ends.contains_key(&local) {
            let end = next_end(&server);
            ends.insert(end.peer, end);
        }
        let refused = ends.remove(&local).expect("found above");
        assert_eq!(refused.frames, 0);
        let err = refused.result.expect_err("the oversize frame is refused");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        if !baseline {
            assert!(err.to_string().contains("100001 bytes") && err.to_string().contains("exceeds"), "{err}");
        }

        steady.join().expect("the steady client");
        load(addr, 2, 4, 20, (0, max));
        // The steady client's 4 connections and the later 2, all clean.
        while ends.len() < 6 {
            let end = next_end(&server);
            ends.insert(end.peer, end);
        }
        for end in ends.values() {
            assert!(end.result.is_ok(), "{end:?}");
        }
        let pool = server.pool().clone();
        server.stop().expect("server stops");
        assert_nothing_in_use(&pool, "the server stopped");
    }
}

/// The size class a request of `len` bytes gets from a pool of `buf_size`
/// bufs: `buf_size` doubled until it holds `len`.
fn class_of(len: usize, buf_size: usize) -> usize {
    len.next_power_of_two().max(buf_size)
}

/// A client that sends each frame one byte at a time is answered correctly,
/// and while a frame trickles in the refbuf mode holds no more memory for
/// it than the buf the whole frame needs, the one it leaves for the moment
/// the frame moves into a larger buf, and the buf its header was cut from,
/// which the header's slice keeps until the echo (the reader's buf when the
/// frame began: at most the size class of the frame before).
#[test]
#[cfg_attr(miri, ignore = "uses real sockets")]
fn one_byte_at_a_time() {
    const BUF: usize = 4096;
    for baseline in [false, true] {
        let server = Server::start_with_pool(
            config(DEFAULT_MAX_FRAME, baseline),
            Pool::builder().buf_size(BUF).build(),
        )
        .expect("server starts");
        let pool = server.pool().clone();
        let mut stream = frame::connect(server.addr()).expect("connect");
        stream.set_read_timeout(Some(BOUND)).expect("timeout");
        let mut most = 0;
        let mut header_buf = BUF;
        for (n, size) in [0, 1, 100, 5_000, 20_000].into_iter().enumerate() {
            let mut bytes = frame::header(size).to_vec();
            bytes.extend((0..size).map(|j| (j * 13 + n) as u8));
            let class = class_of(bytes.len(), BUF);
            let bound = class + class / 2 + header_buf;
            header_buf = class;
            for (j, byte) in bytes.iter().enumerate() {
                stream.write_all(&[*byte]).expect("write one byte");
                if !baseline && j % 512 == 511 {
                    let held = pool.stats().bytes_in_use;
                    assert!(
                        held <= bound,
                        "{held} bytes in use for a {}-byte frame, {j} bytes in",
                        bytes.len()
                    );
                    most = most.max(held);
                }
            }
            let mut echo = vec![0; bytes.len()];
            stream.read_exact(&mut echo).expect("the echo");
            assert!(echo == bytes, "frame {n} ({size} bytes) came back changed");
        }
        if !baseline {
            assert!(most > 0, "the pool was sampled while frames trickled in");
        }
        drop(stream);
        let end = next_end(&server);
        assert!(end.result.is_ok() && end.frames == 5, "{end:?}");
        assert_nothing_in_use(&pool, "the connection closed");
        server.stop().expect("server stops");
    }
}

/// Connections reset at every point of a frame (inside a header, inside a
/// payload, after whole frames, and with the server blocked writing echoes
/// nobody reads) each end with an error of their own, and leave nothing in
/// use; so do connections cut off mid-frame by the server stopping.
#[test]
#[cfg_attr(miri, ignore = "uses real sockets")]
fn abrupt_disconnects_leak_nothing() {
    for baseline in [false, true] {
        let server = start_server(DEFAULT_MAX_FRAME, baseline);
        let pool = server.pool().clone();
        let addr = server.addr();
        let mut resets = Vec::new();
        for i in 0..24 {
            let mut stream = frame::connect(addr).expect("connect");
            let mut bytes = Vec::new();
            for _ in 0..i % 3 {
                bytes.extend_from_slice(&frame::header(1000));
                bytes.extend_from_slice(&[i as u8; 1000]);
            }
            if i % 4 == 0 {
                bytes.extend_from_slice(&frame::header(50_000)[..2]);
            } else {
                bytes.extend_from_slice(&frame::header(50_000 + i * 10_000));
                bytes.resize(bytes.len() + (i * 7_919) % 50_000, 0xAB);
            }
            stream.write_all(&bytes).expect("write");
            resets.push(stream);
        }
        // Echoes nobody reads, until the server's writes block.
        let mut flood = frame::connect(addr).expect("connect");
        flood.set_nonblocking(true).expect("non-blocking");
        let mut big = frame::header(60_000).to_vec();
        big.resize(frame::HEADER_LEN + 60_000, 1);
        let mut sent = 0;
        while sent < 64 << 20 {
            match flood.write(&big) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("flood: {e}"),
            }
        }
        // Lets the server read what was sent before the resets.
        thread::sleep(Duration::from_millis(100));
        for stream in resets.into_iter().chain([flood]) {
            SockRef::from(&stream).set_linger(Some(Duration::ZERO)).expect("linger 0");
        }
        for _ in 0..25 {
            let end = next_end(&server);
            assert!(end.result.is_err(), "every connection ended inside a frame: {end:?}");
        }
        assert_nothing_in_use(&pool, "every connection reset");

        // Connections inside a frame when the server stops.
        let mut open = Vec::new();
        for i in 0..8 {
            let mut stream = frame::connect(addr).expect("connect");
            let mut bytes = frame::header(100_000).to_vec();
            bytes.resize(frame::HEADER_LEN + i * 9_000 + 1, 3);
            stream.write_all(&bytes).expect("write");
            open.push(stream);
        }
        thread::sleep(Duration::from_millis(100));
        server.stop().expect("server stops");
        assert_nothing_in_use(&pool, "the server stopped with connections inside frames");
        drop(open);
    }
}

/// Under a budget of fewer bufs than there are connections: connections
/// waiting for their peers hold no pool memory, so each new one is served
/// while they stay open; many pipelined connections are all served intact;
/// and the pool never holds more than its budget.
#[test]
#[cfg_attr(miri, ignore = "uses real sockets")]
fn served_within_a_budget() {
    // 16 standard bufs of 64 KiB for 48 connections.
    let budget = 1 << 20;
    let mut config = config(DEFAULT_MAX_FRAME, false);
    config.max_bytes = Some(budget);
    let server = Server::start(config).expect("server starts");
    let pool = server.pool().clone();
    let mut idle = Vec::new();
    for i in 0..48 {
        let mut stream = frame::connect(server.addr()).expect("connect");
        stream.set_read_timeout(Some(BOUND)).expect("timeout");
        let mut bytes = frame::header(1000).to_vec();
        bytes.resize(frame::HEADER_LEN + 1000, i as u8);
        stream.write_all(&bytes).expect("write");
        let mut echo = vec![0; bytes.len()];
        stream.read_exact(&mut echo).expect("served while the others stay open");
        assert!(echo == bytes, "connection {i}'s frame came back changed");
        idle.push(stream);
    }
    // The last reply may still be on its way out of the server's hands.
    let mut stats = pool.stats();
    for _ in 0..100 {
        if stats.bytes_in_use == 0 {
            break;
        }
        thread::sleep(Duration::from_millis(10));
        stats = pool.stats();
    }
    assert_eq!(stats.bytes_in_use, 0, "48 connections waiting for their peers: {stats}");

    load(server.addr(), 48, 4, 50, (0, 16_384));
    drop(idle);
    server.stop().expect("server stops");
    let stats = pool.stats();
    assert!(stats.high_water_bytes <= budget, "{stats}");
    assert_nothing_in_use(&pool, "the server stopped");
}
