//! The examples over real loopback sockets: the echo server and client in
//! both modes, bad input on the wire, and the UDP relay. Each test is bounded
//! in frames and time and fails on any corrupted frame, and on any lost one
//! except where the relay is made to lose datagrams. The server, client and
//! relay are the examples' own code.

#[path = "../examples/common/mod.rs"]
mod examples;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::thread;
use std::time::Duration;

use examples::client;
use examples::frame::{self, DEFAULT_MAX_FRAME};
use examples::relay::{self, DemoConfig, Payloads, RELAY_HEADER_LEN, SinkCheck};
use examples::server::{Config, ConnEnd, Server, Summary};

/// Bound on every wait in these tests.
const BOUND: Duration = Duration::from_secs(30);

/// Bound on a whole client or server run, whose round trips the tests count: ten
/// waits' worth, since under valgrind on a busy machine 200 round trips of
/// up to 100 KB have taken longer than one.
const RUN_BOUND: Duration = Duration::from_secs(300);

fn start_server(max_frame: usize, baseline: bool) -> Server {
    let addr = SocketAddr::from(([127, 0, 0, 1], 0));
    Server::start(Config { addr, max_frame, baseline, frames: u64::MAX, duration: RUN_BOUND })
        .expect("server starts")
}

fn client_config(addr: SocketAddr, frames: u64, max_payload: usize) -> client::Config {
    client::Config { addr, frames, duration: RUN_BOUND, max_payload }
}

/// The next connection end the server reports.
fn next_end(server: &Server) -> ConnEnd {
    server.events().recv_timeout(BOUND).expect("a connection ended within the bound")
}

/// Runs `frames` round trips of every size against a fresh server in the given mode; returns the server's summary.
fn echo_round_trips(baseline: bool, frames: u64) -> Summary {
    let server = start_server(DEFAULT_MAX_FRAME, baseline);
    let report =
        client::run(&client_config(server.addr(), frames, DEFAULT_MAX_FRAME)).expect("every echo intact");
    assert_eq!(report.round_trips, frames, "stopped early: {report:?}");
    let end = next_end(&server);
    assert_eq!(end.frames, frames);
    assert!(end.result.is_ok(), "a clean close: {:?}", end.result);
    let summary = server.stop().expect("server stops");
    assert_eq!((summary.connections, summary.frames), (1, frames));
    summary
}

/// The refbuf server echoes frames of every size intact, using both the headroom path and the header-slice path.
#[test]
#[cfg_attr(miri, ignore = "uses real sockets")]
fn echo_refbuf_mode_round_trips_intact() {
    let summary = echo_round_trips(false, 3 * client::SIZES.len() as u64);
    assert!(summary.in_place > 0, "{summary:?}");
    assert!(summary.header_slices > 0, "{summary:?}");
    assert_eq!(summary.in_place + summary.header_slices, summary.frames);
}

/// The baseline server echoes the same frames intact.
#[test]
#[cfg_attr(miri, ignore = "uses real sockets")]
fn echo_baseline_mode_round_trips_intact() {
    let summary = echo_round_trips(true, 2 * client::SIZES.len() as u64);
    assert_eq!(summary.in_place + summary.header_slices, 0, "the baseline uses neither");
}

/// Several clients at once each get their own frames back intact.
#[test]
#[cfg_attr(miri, ignore = "uses real sockets")]
fn concurrent_clients_round_trip_intact() {
    let server = start_server(DEFAULT_MAX_FRAME, false);
    let clients: Vec<_> = (0..3)
        .map(|_| {
            let config = client_config(server.addr(), 40, 70_000);
            thread::spawn(move || client::run(&config))
        })
        .collect();
    for handle in clients {
        let report = handle.join().expect("client thread").expect("every echo intact");
        assert_eq!(report.round_trips, 40);
    }
    assert_eq!(server.stop().expect("server stops").frames, 120);
}

/// Opens a raw connection, writes `bytes`, shuts down writing, and returns
/// everything the server sends back before closing (an error counts as
/// closed).
fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = frame::connect(addr).expect("connect");
    stream.set_read_timeout(Some(BOUND)).expect("timeout");
    stream.write_all(bytes).expect("write");
    // The server may already have closed after refusing a header.
    let _ = stream.shutdown(Shutdown::Write);
    let mut back = Vec::new();
    match stream.read_to_end(&mut back) {
        Ok(_) => {}
        Err(e) => assert_ne!(e.kind(), io::ErrorKind::WouldBlock, "the server never closed the connection"),
    }
    back
}

/// A frame over the maximum is refused with a clear error and its connection closed, while another client keeps being served before and after.
#[test]
#[cfg_attr(miri, ignore = "uses real sockets")]
fn oversize_frame_refused_others_keep_working() {
    for baseline in [false, true] {
        let max = 100_000;
        let server = start_server(max, baseline);
        let addr = server.addr();
        let steady = thread::spawn(move || client::run(&client_config(addr, 200, max)));

        let mut oversize = frame::header(max + 1).to_vec();
        oversize.extend_from_slice(&[0; 64]);
        assert!(raw_exchange(addr, &oversize).is_empty(), "nothing is echoed for a refused frame");
        let end = next_end(&server);
        let err = end.result.expect_err("the oversize frame is refused");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("100001 bytes") && err.to_string().contains("exceeds"), "{err}");
        assert_eq!(end.frames, 0);

        let after = client::run(&client_config(addr, 20, max)).expect("served after the refusal");
        assert_eq!(after.round_trips, 20);
        let report = steady.join().expect("client thread").expect("every echo intact");
        assert_eq!(report.round_trips, 200);
        server.stop().expect("server stops");
    }
}

/// A connection that ends inside a frame's payload or header is reported as a truncated frame, after the whole frames before it were echoed.
#[test]
#[cfg_attr(miri, ignore = "uses real sockets")]
fn truncated_final_frame_reported() {
    for baseline in [false, true] {
        let server = start_server(DEFAULT_MAX_FRAME, baseline);
        let mut whole = frame::header(3).to_vec();
        whole.extend_from_slice(b"abc");

        let mut short_payload = whole.clone();
        short_payload.extend_from_slice(&frame::header(100));
        short_payload.extend_from_slice(&[7; 10]);
        assert_eq!(raw_exchange(server.addr(), &short_payload), whole, "only the whole frame is echoed");
        let end = next_end(&server);
        assert_eq!(end.frames, 1);
        let err = end.result.expect_err("truncated payload");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(
            err.to_string().contains("truncated frame") && err.to_string().contains("100-byte payload"),
            "{err}"
        );

        assert!(raw_exchange(server.addr(), &[0, 0]).is_empty());
        let err = next_end(&server).result.expect_err("truncated header");
        assert!(
            err.to_string().contains("truncated frame") && err.to_string().contains("4-byte header"),
            "{err}"
        );
        server.stop().expect("server stops");
    }
}

/// A connection closed cleanly between frames is not an error, and nothing is invented for it.
#[test]
#[cfg_attr(miri, ignore = "uses real sockets")]
fn clean_close_between_frames() {
    let server = start_server(DEFAULT_MAX_FRAME, false);
    let mut two = Vec::new();
    for payload in [&b""[..], b"xy"] {
        two.extend_from_slice(&frame::header(payload.len()));
        two.extend_from_slice(payload);
    }
    assert_eq!(raw_exchange(server.addr(), &two), two);
    let end = next_end(&server);
    assert_eq!(end.frames, 2);
    assert!(end.result.is_ok(), "{:?}", end.result);
    server.stop().expect("server stops");
}

/// The UDP relay delivers every datagram intact and in order through a second loopback port.
#[test]
#[cfg_attr(miri, ignore = "uses real sockets")]
fn udp_relay_delivers_every_datagram() {
    let config = DemoConfig { datagrams: 3_000, duration: BOUND, window: 32, recv_buffer: None, size: None };
    let report = relay::run_demo(&config, relay::relay).expect("no datagram corrupted");
    assert!(!report.buffers.short(), "{report:?}");
    assert_eq!((report.sent, report.delivered, report.forwarded), (3_000, 3_000, 3_000));
    let expected: u64 = (0..3_000).map(|i| relay::datagram_size(i) as u64).sum();
    assert_eq!(report.payload_bytes, expected);
}

/// With `--size`, every datagram has that payload size and still arrives
/// intact; sizes the sink cannot check are refused up front.
#[test]
#[cfg_attr(miri, ignore = "uses real sockets")]
fn udp_relay_one_size() {
    for size in [0, 64, 1472] {
        let config =
            DemoConfig { datagrams: 1_000, duration: BOUND, window: 32, recv_buffer: None, size: Some(size) };
        let report = relay::run_demo(&config, relay::relay).expect("no datagram corrupted");
        assert_eq!((report.delivered, report.payload_bytes), (1_000, 1_000 * size as u64), "{report:?}");
    }
    for (size, window) in [(1473, 32), (64, 251)] {
        let config =
            DemoConfig { datagrams: 10, duration: BOUND, window, recv_buffer: None, size: Some(size) };
        let err = relay::run_demo(&config, relay::relay).expect_err("refused");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
    }
}

/// At a window of 256 datagrams, more than Linux's default receive buffer of 212,992 bytes holds, the relay sizes its buffers for the window and every datagram arrives intact. Where the kernel grants less than the window needs (`net.core.rmem_max` too low), the report says so and every datagram is still accounted for, delivered or lost, none corrupted.
#[test]
#[cfg_attr(miri, ignore = "uses real sockets")]
fn udp_relay_window_256() {
    let datagrams = 20_000;
    let config = DemoConfig { datagrams, duration: BOUND, window: 256, recv_buffer: None, size: None };
    let report = relay::run_demo(&config, relay::relay).expect("no datagram corrupted");
    let buffers = report.buffers;
    assert_eq!(buffers.needed, 256 * relay::BUFFER_PER_DATAGRAM);
    assert_eq!(report.sent, datagrams, "{report:?}");
    assert_eq!(report.delivered + report.lost, report.sent, "{report:?}");
    if buffers.short() {
        eprintln!(
            "the kernel granted {} receive buffer bytes of {} needed: loss allowed",
            buffers.recv, buffers.needed
        );
    } else {
        assert_eq!((report.delivered, report.forwarded), (datagrams, datagrams), "{report:?}");
    }
}

/// With receive buffers far smaller than the window, datagrams are dropped, and the sink counts them as lost, not corrupted: every datagram sent is delivered intact or counted lost.
#[test]
#[cfg_attr(miri, ignore = "uses real sockets")]
fn udp_relay_counts_dropped_datagrams_as_lost() {
    // The two queues and the relay's hand hold a few dozen datagrams at
    // most, and the source sends a whole window before the sink reads.
    let config =
        DemoConfig { datagrams: 2_000, duration: BOUND, window: 256, recv_buffer: Some(4096), size: None };
    let report = relay::run_demo(&config, relay::relay).expect("loss is not an error");
    assert!(report.buffers.short(), "{report:?}");
    assert!(report.lost > 0, "{report:?}");
    assert_eq!(report.delivered + report.lost, report.sent, "{report:?}");
    assert!(report.lost_after_relay <= report.lost, "{report:?}");
}

/// The relay header and payload of datagram `i` as the relay forwards it with sequence number `seq`.
fn relayed(payloads: &Payloads, i: u64, seq: u32) -> Vec<u8> {
    let payload = payloads.get(i);
    let mut datagram = seq.to_be_bytes().to_vec();
    datagram.extend((payload.len() as u32).to_be_bytes());
    datagram.extend_from_slice(payload);
    datagram
}

/// The sink counts a gap before a datagram sent later as loss (before the relay or after it, by the relay's sequence numbers), and a datagram that matches none in flight as corruption.
#[test]
fn sink_tells_loss_from_corruption() {
    let payloads = Payloads::new(None);
    let mut check = SinkCheck::default();
    check.arrived(&payloads, &relayed(&payloads, 0, 0), 10).unwrap();
    // 1 and 2 dropped before the relay, which numbered 3 as its second.
    check.arrived(&payloads, &relayed(&payloads, 3, 1), 10).unwrap();
    // 4 dropped after the relay numbered it 2.
    check.arrived(&payloads, &relayed(&payloads, 5, 3), 10).unwrap();
    assert_eq!((check.delivered, check.lost, check.relay_skipped), (3, 3, 1));
    let bytes: usize = [0, 3, 5].map(|i| payloads.get(i).len()).iter().sum();
    assert_eq!(check.payload_bytes, bytes as u64);

    let corrupt = |datagram: &[u8], why: &str| {
        let mut copy = check;
        let err = copy.arrived(&payloads, datagram, 10).expect_err(why);
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{why}");
        let msg = err.to_string();
        assert!(
            msg.starts_with("a datagram arrived corrupted") && msg.contains("datagram 6 was next"),
            "{msg}"
        );
        assert_eq!(copy.accounted(), check.accounted(), "{why}: nothing counted");
    };
    let good = relayed(&payloads, 6, 4);
    let mut flipped = good.clone();
    flipped[RELAY_HEADER_LEN + 5] ^= 1;
    corrupt(&flipped, "a payload byte changed");
    let mut short = good.clone();
    short.truncate(good.len() - 1);
    corrupt(&short, "a byte missing");
    corrupt(&good[..5], "shorter than the relay header");
    // 6 and 7 lost make 5 in all, 1 of them after the relay: the relay can
    // have skipped 4 more numbers, not 5.
    let mut copy = check;
    copy.arrived(&payloads, &relayed(&payloads, 8, 8), 10).unwrap();
    corrupt(&relayed(&payloads, 8, 9), "the relay skipped more datagrams than are lost");
    corrupt(&relayed(&payloads, 10, 4), "a datagram never sent");
    corrupt(&relayed(&payloads, 2, 4), "a datagram already counted lost");

    // Silence: everything in flight is lost.
    check.lose_in_flight(10);
    assert_eq!((check.delivered, check.lost, check.accounted()), (3, 7, 10));
}
