//! The `resp_server` example, run in-process over loopback sockets in both
//! modes, driven by a small RESP client of this file's own and by the real
//! `redis-cli` and `redis-benchmark` (Debian's `redis-tools`, which
//! `.ci/run` installs; a test that needs one fails, saying so, where it is
//! missing). The replies pinned here are redis-server 7.0's, byte for byte,
//! except where the example answers differently on purpose (`CONFIG GET`,
//! `COMMAND`, and the protocol errors redis-server reads past); see
//! `docs/resp.md`. Every wait is bounded.
//!
//! The binary counts heap allocations (`tests/common/counting.rs`) for the
//! steady-state test of `PING` and `GET`, polled by hand over an in-memory
//! duplex stream so that only the server's own code is counted.

#![cfg(feature = "tokio")]

#[path = "../examples/resp/mod.rs"]
mod resp;

#[path = "common/counting.rs"]
mod counting;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use resp::server::{Config, Server, Service};
use resp::store::KEEP_FROM;

#[global_allocator]
static GLOBAL: counting::Counting = counting::Counting;

/// Bound on every wait in these tests.
const BOUND: Duration = Duration::from_secs(60);

/// A configuration on a free loopback port, two worker threads.
fn config(baseline: bool) -> Config {
    Config {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        threads: 2,
        maxmemory: usize::MAX,
        max_bulk_len: 512 << 20,
        keep_from: KEEP_FROM,
        baseline,
    }
}

fn start(config: &Config) -> Server {
    Server::start(config).expect("the server starts")
}

/// A request as redis-cli sends it: an array of bulk strings.
fn request(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// One reply, as this client reads it.
#[derive(Debug, PartialEq, Eq)]
enum Reply {
    Simple(Vec<u8>),
    Error(Vec<u8>),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Reply>),
}

/// A blocking RESP client over one connection.
struct Client {
    stream: TcpStream,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(BOUND)).expect("timeout");
        stream.set_write_timeout(Some(BOUND)).expect("timeout");
        Client { stream }
    }

    /// Sends one request and reads its reply.
    fn call(&mut self, args: &[&[u8]]) -> Reply {
        self.stream.write_all(&request(args)).expect("send");
        self.reply()
    }

    /// Sends raw bytes and reads exactly as many bytes back as `expected`
    /// holds, which they must equal.
    fn exchange(&mut self, raw: &[u8], expected: &[u8]) {
        self.stream.write_all(raw).expect("send");
        let mut back = vec![0; expected.len()];
        self.stream.read_exact(&mut back).expect("the reply");
        assert_eq!(
            String::from_utf8_lossy(&back),
            String::from_utf8_lossy(expected),
            "for {:?}",
            String::from_utf8_lossy(raw)
        );
    }

    /// Sends `QUIT` and waits until the server has closed the connection,
    /// by which time it has let go of everything the connection held.
    #[cfg(feature = "diagnostics")]
    fn quit(mut self) {
        self.exchange(&request(&[b"QUIT"]), b"+OK\r\n");
        assert!(self.until_closed().is_empty(), "QUIT closes the connection");
    }

    /// Everything the server sends until it closes the connection.
    fn until_closed(&mut self) -> Vec<u8> {
        let mut back = Vec::new();
        if let Err(e) = self.stream.read_to_end(&mut back) {
            assert_ne!(e.kind(), io::ErrorKind::WouldBlock, "the server never closed the connection");
        }
        back
    }

    fn line(&mut self) -> Vec<u8> {
        let mut line = Vec::new();
        let mut byte = [0];
        while !line.ends_with(b"\r\n") {
            self.stream.read_exact(&mut byte).expect("a reply line");
            line.push(byte[0]);
        }
        line.truncate(line.len() - 2);
        line
    }

    fn reply(&mut self) -> Reply {
        let line = self.line();
        let number = || std::str::from_utf8(&line[1..]).expect("ascii").parse::<i64>().expect("a number");
        match line[0] {
            b'+' => Reply::Simple(line[1..].to_vec()),
            b'-' => Reply::Error(line[1..].to_vec()),
            b':' => Reply::Int(number()),
            b'$' => match number() {
                -1 => Reply::Bulk(None),
                n => {
                    let mut data = vec![0; n as usize + 2];
                    self.stream.read_exact(&mut data).expect("bulk data");
                    assert_eq!(&data[n as usize..], b"\r\n");
                    data.truncate(n as usize);
                    Reply::Bulk(Some(data))
                }
            },
            b'*' => Reply::Array((0..number()).map(|_| self.reply()).collect()),
            other => panic!("not a reply: {:?}", char::from(other)),
        }
    }
}

fn ok() -> Reply {
    Reply::Simple(b"OK".to_vec())
}

fn bulk(bytes: &[u8]) -> Reply {
    Reply::Bulk(Some(bytes.to_vec()))
}

/// Every command, and its errors, answered byte for byte as redis-server
/// 7.0 answers them (captured from Debian's redis-server), in both modes.
#[test]
#[cfg_attr(miri, ignore = "uses real sockets")]
fn every_command_as_redis_server_answers() {
    let pinned: &[(&[&[u8]], &[u8])] = &[
        (&[b"PING"], b"+PONG\r\n"),
        (&[b"ping", b"hi"], b"$2\r\nhi\r\n"),
        (&[b"PING", b"a", b"b"], b"-ERR wrong number of arguments for 'ping' command\r\n"),
        (&[b"ECHO", b"x"], b"$1\r\nx\r\n"),
        (&[b"ECHO", b""], b"$0\r\n\r\n"),
        (&[b"ECHO"], b"-ERR wrong number of arguments for 'echo' command\r\n"),
        (&[b"SET", b"k", b"v"], b"+OK\r\n"),
        (&[b"SET", b"k"], b"-ERR wrong number of arguments for 'set' command\r\n"),
        (&[b"SET", b"k", b"v", b"x"], b"-ERR syntax error\r\n"),
        (&[b"GET", b"k"], b"$1\r\nv\r\n"),
        (&[b"get", b"nokey"], b"$-1\r\n"),
        (&[b"GET"], b"-ERR wrong number of arguments for 'get' command\r\n"),
        (&[b"GET", b"a", b"b"], b"-ERR wrong number of arguments for 'get' command\r\n"),
        (&[b"EXISTS", b"k", b"k", b"nokey"], b":2\r\n"),
        (&[b"EXISTS"], b"-ERR wrong number of arguments for 'exists' command\r\n"),
        (&[b"DEL", b"k", b"nokey"], b":1\r\n"),
        (&[b"DEL"], b"-ERR wrong number of arguments for 'del' command\r\n"),
        (&[b"INCR", b"n"], b":1\r\n"),
        (&[b"INCR", b"n"], b":2\r\n"),
        (&[b"SET", b"m", b"-5"], b"+OK\r\n"),
        (&[b"INCR", b"m"], b":-4\r\n"),
        (&[b"SET", b"s", b"abc"], b"+OK\r\n"),
        (&[b"INCR", b"s"], b"-ERR value is not an integer or out of range\r\n"),
        (&[b"SET", b"s", b"01"], b"+OK\r\n"),
        (&[b"INCR", b"s"], b"-ERR value is not an integer or out of range\r\n"),
        (&[b"SET", b"s", b" 1"], b"+OK\r\n"),
        (&[b"INCR", b"s"], b"-ERR value is not an integer or out of range\r\n"),
        (&[b"SET", b"s", b""], b"+OK\r\n"),
        (&[b"INCR", b"s"], b"-ERR value is not an integer or out of range\r\n"),
        (&[b"SET", b"big", b"9223372036854775807"], b"+OK\r\n"),
        (&[b"INCR", b"big"], b"-ERR increment or decrement would overflow\r\n"),
        (&[b"INCR"], b"-ERR wrong number of arguments for 'incr' command\r\n"),
        (&[b"MSET", b"a", b"1", b"b", b"2"], b"+OK\r\n"),
        (&[b"MSET", b"a", b"1", b"b"], b"-ERR wrong number of arguments for 'mset' command\r\n"),
        (&[b"MSET"], b"-ERR wrong number of arguments for 'mset' command\r\n"),
        (&[b"MGET", b"a", b"nokey", b"b"], b"*3\r\n$1\r\n1\r\n$-1\r\n$1\r\n2\r\n"),
        (&[b"MGET"], b"-ERR wrong number of arguments for 'mget' command\r\n"),
        (&[b"DBSIZE"], b":6\r\n"),
        (&[b"DBSIZE", b"x"], b"-ERR wrong number of arguments for 'dbsize' command\r\n"),
        (&[b"FLUSHALL", b"x"], b"-ERR syntax error\r\n"),
        (&[b"FLUSHALL", b"async"], b"+OK\r\n"),
        (&[b"FLUSHALL", b"SYNC"], b"+OK\r\n"),
        (&[b"FLUSHALL"], b"+OK\r\n"),
        (&[b"DBSIZE"], b":0\r\n"),
        (&[b"CONFIG"], b"-ERR wrong number of arguments for 'config' command\r\n"),
        (&[b"CONFIG", b"GET"], b"-ERR wrong number of arguments for 'config|get' command\r\n"),
        (&[b"CONFIG", b"foo"], b"-ERR unknown subcommand 'foo'. Try CONFIG HELP.\r\n"),
        (&[b"COMMAND", b"foo"], b"-ERR unknown subcommand 'foo'. Try COMMAND HELP.\r\n"),
        (&[b"FOO"], b"-ERR unknown command 'FOO', with args beginning with: \r\n"),
        (&[b"FOO", b"a", b"b"], b"-ERR unknown command 'FOO', with args beginning with: 'a' 'b' \r\n"),
        (&[b"FOO", b"a\r\nb"], b"-ERR unknown command 'FOO', with args beginning with: 'a  b' \r\n"),
        (&[b""], b"-ERR unknown command '', with args beginning with: \r\n"),
    ];
    // Where the example answers differently from redis-server, on purpose.
    let own: &[(&[&[u8]], &[u8])] = &[
        (&[b"CONFIG", b"GET", b"save"], b"*0\r\n"),
        (&[b"COMMAND"], b"*0\r\n"),
        (&[b"COMMAND", b"DOCS"], b"*0\r\n"),
        (&[b"COMMAND", b"docs", b"get"], b"*0\r\n"),
    ];
    let long = vec![b'a'; 200];
    let unknown_long =
        format!("-ERR unknown command 'FOO', with args beginning with: '{}' \r\n", "a".repeat(128));
    for baseline in [false, true] {
        let server = start(&config(baseline));
        let mut client = Client::connect(server.addr());
        for (args, expected) in pinned.iter().chain(own) {
            client.exchange(&request(args), expected);
        }
        client.exchange(&request(&[b"FOO", &long, b"b"]), unknown_long.as_bytes());
        // Inline commands, as redis-benchmark's PING_INLINE sends them.
        client.exchange(b"PING\r\n", b"+PONG\r\n");
        client.exchange(b"PING\n", b"+PONG\r\n");
        client.exchange(b"\r\n  \r\n*0\r\n*-1\r\nPING hi\r\n", b"$2\r\nhi\r\n");
        client.exchange(b"SET  k \t v\r\nGET k\r\n", b"+OK\r\n$1\r\nv\r\n");
        client.exchange(b"ECHO a b\r\n", b"-ERR wrong number of arguments for 'echo' command\r\n");
        client.exchange(&request(&[b"QUIT", b"x"]), b"+OK\r\n");
        assert!(client.until_closed().is_empty(), "QUIT closes the connection");
        server.stop().expect("the server stops");
    }
}

/// A value of `len` bytes with `\r\n` and NUL throughout.
fn binary_value(len: usize) -> Vec<u8> {
    (0..len).map(|i| [b'\r', b'\n', 0, b'$', (i * 7) as u8][i % 5]).collect()
}

/// The sizes binary values are tried at: empty to 1 MiB, around the
/// keep-or-copy cut-off and the read buf's size.
const SIZES: [usize; 10] = [0, 1, 2, 5, 100, KEEP_FROM - 1, KEEP_FROM, 65_536, 200_000, 1 << 20];

/// Binary values from 0 bytes to 1 MiB, `\r\n` and NUL inside, stored and
/// read back intact, singly and with MSET/MGET, in both modes.
#[test]
#[cfg_attr(miri, ignore = "uses real sockets")]
fn binary_values_round_trip() {
    for baseline in [false, true] {
        let server = start(&config(baseline));
        let mut client = Client::connect(server.addr());
        for len in SIZES {
            let value = binary_value(len);
            let key = format!("key\r\n{len}\0");
            assert_eq!(client.call(&[b"SET", key.as_bytes(), &value]), ok());
            assert_eq!(client.call(&[b"GET", key.as_bytes()]), bulk(&value), "{len} bytes");
        }
        let values: Vec<Vec<u8>> = SIZES.iter().map(|&len| binary_value(len + 1)).collect();
        let keys: Vec<String> = SIZES.iter().map(|len| format!("m{len}")).collect();
        let mut mset: Vec<&[u8]> = vec![b"MSET"];
        for (key, value) in keys.iter().zip(&values) {
            mset.extend([key.as_bytes(), value.as_slice()]);
        }
        assert_eq!(client.call(&mset), ok());
        let mut mget: Vec<&[u8]> = vec![b"MGET"];
        mget.extend(keys.iter().map(|k| k.as_bytes()));
        let expected = Reply::Array(values.iter().map(|v| bulk(v)).collect());
        assert_eq!(client.call(&mget), expected);
        assert_eq!(client.call(&[b"DBSIZE"]), Reply::Int(2 * SIZES.len() as i64));
        drop(client);
        server.stop().expect("the server stops");
    }
}

/// A long value sent in an inline command, without a bulk string's
/// `$len` in front, is kept and read back as one all the same, beside
/// values that came framed.
#[test]
#[cfg_attr(miri, ignore = "uses real sockets")]
fn long_inline_values_round_trip() {
    for baseline in [false, true] {
        let server = start(&config(baseline));
        let mut client = Client::connect(server.addr());
        let inline = vec![b'v'; KEEP_FROM + 10];
        client.exchange(&[b"SET inline ".as_slice(), &inline, b"\r\n"].concat(), b"+OK\r\n");
        assert_eq!(client.call(&[b"GET", b"inline"]), bulk(&inline));
        let framed = binary_value(KEEP_FROM + 10);
        assert_eq!(client.call(&[b"MSET", b"framed", &framed, b"again", &inline]), ok());
        let all = Reply::Array(vec![bulk(&framed), bulk(&inline), bulk(&inline)]);
        assert_eq!(client.call(&[b"MGET", b"framed", b"inline", b"again"]), all);
        drop(client);
        server.stop().expect("the server stops");
    }
}

/// 1,000 requests sent in one write are all answered, in order.
#[test]
#[cfg_attr(miri, ignore = "uses real sockets")]
fn thousand_pipelined_requests_answered_in_order() {
    for baseline in [false, true] {
        let server = start(&config(baseline));
        let mut client = Client::connect(server.addr());
        let mut batch = Vec::new();
        for i in 0..1000 {
            let (key, value) = (format!("k{}", i % 100), format!("v{i}"));
            batch.extend(match i % 4 {
                0 => request(&[b"SET", key.as_bytes(), value.as_bytes()]),
                1 => request(&[b"GET", format!("k{}", (i - 1) % 100).as_bytes()]),
                2 => request(&[b"INCR", format!("n{}", i % 7).as_bytes()]),
                _ => b"PING\r\n".to_vec(),
            });
        }
        client.stream.write_all(&batch).expect("send");
        let mut counts = [0i64; 7];
        for i in 0..1000 {
            let expected = match i % 4 {
                0 => ok(),
                1 => bulk(format!("v{}", i - 1).as_bytes()),
                2 => {
                    counts[i % 7] += 1;
                    Reply::Int(counts[i % 7])
                }
                _ => Reply::Simple(b"PONG".to_vec()),
            };
            assert_eq!(client.reply(), expected, "reply {i}");
        }
        server.stop().expect("the server stops");
    }
}

/// Each hostile input is answered with redis-server's protocol error (or
/// this server's own where redis-server has none) and closes its own
/// connection, with nothing allocated for the length it claims, while a
/// second client is served throughout.
#[test]
#[cfg_attr(miri, ignore = "uses real sockets")]
fn hostile_input_closes_only_its_connection() {
    let long_line = |first: &[u8]| {
        let mut line = first.to_vec();
        line.resize(70_000, b'1');
        line
    };
    let hostile: Vec<(Vec<u8>, &[u8])> = vec![
        (b"*x\r\n".to_vec(), b"-ERR Protocol error: invalid multibulk length\r\n"),
        (b"*1x\r\n".to_vec(), b"-ERR Protocol error: invalid multibulk length\r\n"),
        (b"*01\r\n".to_vec(), b"-ERR Protocol error: invalid multibulk length\r\n"),
        (b"*3000000000\r\n".to_vec(), b"-ERR Protocol error: invalid multibulk length\r\n"),
        (b"*1\r\n$x\r\n".to_vec(), b"-ERR Protocol error: invalid bulk length\r\n"),
        (b"*1\r\n$-1\r\n".to_vec(), b"-ERR Protocol error: invalid bulk length\r\n"),
        (b"*1\r\n$04\r\nPING\r\n".to_vec(), b"-ERR Protocol error: invalid bulk length\r\n"),
        (b"*1\r\n$600000000\r\n".to_vec(), b"-ERR Protocol error: invalid bulk length\r\n"),
        (b"*1\r\n+PING\r\n".to_vec(), b"-ERR Protocol error: expected '$', got '+'\r\n"),
        (long_line(b"*"), b"-ERR Protocol error: too big mbulk count string\r\n"),
        (long_line(b"*1\r\n$"), b"-ERR Protocol error: too big bulk count string\r\n"),
        (long_line(b"A"), b"-ERR Protocol error: too big inline request\r\n"),
        // Where redis-server reads on regardless.
        (b"*1\r\n$4\r\nPINGxx".to_vec(), b"-ERR Protocol error: expected CRLF after bulk string data\r\n"),
        (b"*1\r\n$4\rxPING\r\n".to_vec(), b"-ERR Protocol error: invalid bulk length\r\n"),
    ];
    for baseline in [false, true] {
        let server = start(&config(baseline));
        let mut second = Client::connect(server.addr());
        for (i, (raw, expected)) in hostile.iter().enumerate() {
            let mut client = Client::connect(server.addr());
            let _ = client.stream.write_all(raw);
            let back = client.until_closed();
            assert_eq!(String::from_utf8_lossy(&back), String::from_utf8_lossy(expected), "input {i}");
            let key = format!("k{i}");
            assert_eq!(second.call(&[b"SET", key.as_bytes(), b"v"]), ok());
            assert_eq!(second.call(&[b"GET", key.as_bytes()]), bulk(b"v"));
        }

        // A length claimed but not sent takes no memory for it.
        let mut claim = Client::connect(server.addr());
        claim.stream.write_all(b"*2\r\n$3\r\nSET\r\n$500000000\r\nabc").expect("send");
        assert_eq!(second.call(&[b"PING"]), Reply::Simple(b"PONG".to_vec()));
        thread::sleep(Duration::from_millis(100));
        if !baseline {
            let in_use = server.service().read_pool.stats().bytes_in_use;
            assert!(in_use <= 4 << 16, "{in_use} bytes in use for a 500 MB claim");
        }
        claim.stream.shutdown(Shutdown::Write).expect("shutdown");
        assert!(claim.until_closed().is_empty(), "a request cut off is dropped unanswered");
        assert_eq!(second.call(&[b"DBSIZE"]), Reply::Int(hostile.len() as i64));
        drop(second);
        server.stop().expect("the server stops");
    }
}

/// Under `--maxmemory` a write past the budget is refused at once with
/// redis-server's OOM error, reads are still served, and once values are
/// deleted writes are accepted again; for values copied out and for values
/// kept where they were read, in both modes.
#[test]
#[cfg_attr(miri, ignore = "uses real sockets")]
fn maxmemory_refuses_then_accepts_after_del() {
    let oom = Reply::Error(b"OOM command not allowed when used memory > 'maxmemory'.".to_vec());
    for baseline in [false, true] {
        let mut config = config(baseline);
        config.maxmemory = 1 << 20;
        let server = start(&config);
        let mut client = Client::connect(server.addr());
        for len in [100_000, 1000] {
            let value = binary_value(len);
            let mut stored = 0;
            loop {
                let key = format!("{len}:{stored}");
                match client.call(&[b"SET", key.as_bytes(), &value]) {
                    Reply::Simple(s) if s == b"OK" => stored += 1,
                    refused => {
                        assert_eq!(refused, oom, "after {stored} values of {len} bytes");
                        break;
                    }
                }
                assert!(stored <= (1 << 20) / len, "{stored} values of {len} bytes fit in 1 MiB");
            }
            assert!(stored >= (1 << 20) / len / 2, "only {stored} values of {len} bytes stored");
            assert_eq!(client.call(&[b"MSET", b"x", b"1", b"y", &value]), oom);
            assert_eq!(client.call(&[b"GET", format!("{len}:0").as_bytes()]), bulk(&value));
            let keys: Vec<String> = (0..stored).map(|i| format!("{len}:{i}")).collect();
            let mut del: Vec<&[u8]> = vec![b"DEL"];
            del.extend(keys.iter().map(|k| k.as_bytes()));
            assert_eq!(client.call(&del), Reply::Int(stored as i64));
            assert_eq!(client.call(&[b"SET", b"again", &value]), ok());
            assert_eq!(client.call(&[b"DEL", b"again"]), Reply::Int(1));
        }
        drop(client);
        server.stop().expect("the server stops");
    }
}

/// A `GET` of a value kept where it was read sends it from there, shared
/// with the keyspace: no buf is made for a copy of it (a 4 MiB copy would
/// need a buf of its own, larger than any the pool keeps idle).
#[test]
#[cfg_attr(miri, ignore = "uses real sockets")]
fn get_of_a_kept_value_shares_it() {
    let server = start(&config(false));
    let mut client = Client::connect(server.addr());
    let value = binary_value(4 << 20);
    assert_eq!(client.call(&[b"SET", b"big", &value]), ok());
    let pool = &server.service().read_pool;
    let before = pool.stats();
    for _ in 0..4 {
        assert_eq!(client.call(&[b"GET", b"big"]), bulk(&value));
    }
    let after = pool.stats();
    assert!(after.bufs_created - before.bufs_created < 4, "copies were made: from {before} to {after}");
    server.stop().expect("the server stops");
}

/// After a SET-heavy run, small values copied out and large ones kept, no
/// buf of either pool is pinned: small values never hold a read buf.
#[cfg(feature = "diagnostics")]
#[test]
#[cfg_attr(miri, ignore = "uses real sockets")]
fn set_heavy_run_pins_no_buf() {
    let server = start(&config(false));
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let addr = server.addr();
            thread::spawn(move || {
                let mut client = Client::connect(addr);
                for i in 0..2000 {
                    let len = if i % 50 == 0 { KEEP_FROM + i } else { 3 + i % 60 };
                    let key = format!("{c}:{i}");
                    assert_eq!(client.call(&[b"SET", key.as_bytes(), &binary_value(len)]), ok());
                }
                client.quit();
            })
        })
        .collect();
    for client in clients {
        client.join().expect("a client");
    }
    let mut client = Client::connect(server.addr());
    assert_eq!(client.call(&[b"DBSIZE"]), Reply::Int(8000));
    // A reply's slice outlives the write that sent it by a moment; once the
    // connection is closed, whatever a pool still holds is the values'.
    client.quit();
    let service = server.service();
    for (name, pool) in [("read", &service.read_pool), ("value", &service.value_pool)] {
        let report = pool.report();
        assert!(!report.bufs.is_empty() || name == "read", "the values are somewhere");
        assert_eq!(report.pinned().count(), 0, "{name} pool:\n{report}");
    }
    server.stop().expect("the server stops");
}

/// The path of a tool from Debian's `redis-tools`; panics, saying how to
/// install it, where it is missing.
fn tool(name: &str) -> &str {
    let found = Command::new(name).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
    assert!(
        found.is_ok_and(|status| status.success()),
        "`{name}` is missing: install Debian's redis-tools (apt-get install -y redis-tools)"
    );
    name
}

/// Runs `command` to its end within `BOUND`, feeding it `stdin`; its
/// stdout, or a panic naming what failed.
fn run_bounded(command: &mut Command, stdin: &[u8]) -> Vec<u8> {
    let mut child =
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let mut input = child.stdin.take().expect("stdin");
    let stdin = stdin.to_vec();
    let feeder = thread::spawn(move || input.write_all(&stdin));
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = thread::spawn(move || {
        let mut out = Vec::new();
        stdout.read_to_end(&mut out).map(|_| out)
    });
    let deadline = Instant::now() + BOUND;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{command:?} took longer than {BOUND:?}");
        }
        thread::sleep(Duration::from_millis(20));
    };
    feeder.join().expect("feeder").expect("stdin written");
    let out = reader.join().expect("reader").expect("stdout read");
    let mut err = String::new();
    child.stderr.take().expect("stderr").read_to_string(&mut err).expect("stderr read");
    assert!(status.success(), "{command:?} failed ({status}): {err}");
    out
}

/// The real redis-cli stores binary values with `-x` (value from stdin)
/// and reads them back raw, and MSET/MGET round trip, in both modes.
#[test]
#[cfg_attr(miri, ignore = "runs redis-cli")]
fn redis_cli_round_trips() {
    let cli = tool("redis-cli");
    for baseline in [false, true] {
        let server = start(&config(baseline));
        let port = server.addr().port().to_string();
        let redis_cli = |args: &[&str], stdin: &[u8]| {
            run_bounded(Command::new(cli).args(["-p", &port, "--raw"]).args(args), stdin)
        };
        for len in [0, 1, 100, KEEP_FROM, 1 << 20] {
            let value = binary_value(len);
            let key = format!("bin{len}");
            assert_eq!(redis_cli(&["-x", "SET", &key], &value), b"OK\n");
            let mut expected = value.clone();
            expected.push(b'\n');
            assert!(redis_cli(&["GET", &key], b"") == expected, "{len} bytes came back changed");
        }
        assert_eq!(redis_cli(&["MSET", "a", "1", "b", "two words"], b""), b"OK\n");
        assert_eq!(redis_cli(&["MGET", "a", "nokey", "b"], b""), b"1\n\ntwo words\n");
        assert_eq!(redis_cli(&["PING"], b""), b"PONG\n");
        server.stop().expect("the server stops");
    }
}

/// The real redis-benchmark, 50 connections pipelining 16 requests each,
/// completes PING, SET and GET against the example with no error.
#[test]
#[cfg_attr(miri, ignore = "runs redis-benchmark")]
fn redis_benchmark_completes() {
    let benchmark = tool("redis-benchmark");
    for baseline in [false, true] {
        let server = start(&config(baseline));
        let port = server.addr().port().to_string();
        let out = run_bounded(
            Command::new(benchmark).args([
                "-p",
                &port,
                "-t",
                "ping,set,get",
                "-n",
                "100000",
                "-P",
                "16",
                "-c",
                "50",
                "-q",
            ]),
            b"",
        );
        let out = String::from_utf8_lossy(&out);
        for test in ["PING_INLINE", "PING_MBULK", "SET", "GET"] {
            assert!(
                out.split(['\n', '\r']).any(
                    |line| line.starts_with(&format!("{test}: ")) && line.contains("requests per second")
                ),
                "no result for {test}:\n{out}"
            );
        }
        assert!(!out.contains("ERR"), "{out}");
        server.stop().expect("the server stops");
    }
}

/// A `PING` and a `GET` on a server connection over an in-memory duplex
/// stream, polled by hand with a noop waker, allocate nothing once warm:
/// the request is parsed in place, and the replies go out from pool memory,
/// a large value's from where it was stored.
#[test]
fn ping_and_get_allocate_nothing() {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};
    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

    let service = Service::new(&config(false));
    let (mut client, server_end) = tokio::io::duplex(64 * 1024);
    let (input, output) = tokio::io::split(server_end);
    let mut connection = Box::pin(resp::server::serve_connection(input, output, &service));
    let mut cx = Context::from_waker(Waker::noop());
    let mut exchange = |request: &[u8], expected: &[u8]| {
        let sent = Pin::new(&mut client).poll_write(&mut cx, request);
        assert!(matches!(sent, Poll::Ready(Ok(n)) if n == request.len()), "{sent:?}");
        let mut reply = [0; 2 * KEEP_FROM];
        let mut got = 0;
        for _ in 0..100 {
            assert!(connection.as_mut().poll(&mut cx).is_pending(), "the connection ended");
            let mut buf = ReadBuf::new(&mut reply[got..expected.len()]);
            if let Poll::Ready(read) = Pin::new(&mut client).poll_read(&mut cx, &mut buf) {
                read.expect("read");
                got += buf.filled().len();
            }
            if got == expected.len() {
                break;
            }
        }
        assert_eq!(&reply[..got], expected);
    };
    exchange(&request(&[b"SET", b"key", b"value"]), b"+OK\r\n");
    let large = binary_value(KEEP_FROM);
    exchange(&request(&[b"SET", b"large", &large]), b"+OK\r\n");
    let get = request(&[b"GET", b"key"]);
    let get_large = request(&[b"GET", b"large"]);
    let large_reply = [format!("${}\r\n", large.len()).as_bytes(), &large, b"\r\n"].concat();
    let round = |exchange: &mut dyn FnMut(&[u8], &[u8])| {
        exchange(b"*1\r\n$4\r\nPING\r\n", b"+PONG\r\n");
        exchange(&get, b"$5\r\nvalue\r\n");
        exchange(b"PING\r\nGET key\r\n", b"+PONG\r\n$5\r\nvalue\r\n");
        exchange(&get_large, &large_reply);
    };
    // A round sends 75 bytes: the reader moves to a new buf every 870
    // rounds or so, and the pool has made every buf it needs by the third
    // move.
    let rounds = 2_000;
    for _ in 0..3 * rounds {
        round(&mut exchange);
    }
    let allocations = counting::allocations_in(|| {
        for _ in 0..rounds {
            round(&mut exchange);
        }
    });
    assert_eq!(allocations, 0, "{allocations} heap allocations over {rounds} rounds");
}
