//! A Redis-protocol (RESP2) server on refbuf's async layer, for the real
//! `redis-cli` and `redis-benchmark`: requests parsed straight from pool
//! memory, small values copied out into bufs of their own, large ones kept
//! where they were read, replies sent with vectored writes. `--baseline`
//! runs the same server on `BytesMut` and `tokio_util`.
//!
//! ```sh
//! cargo run --release --features tokio --example resp_server -- --addr 127.0.0.1:6379 --threads 1
//! redis-benchmark -p 6379 -t ping,set,get -P 16 -q
//! ```
//!
//! Commands: `PING`, `ECHO`, `SET` (no options), `GET`, `DEL`, `EXISTS`,
//! `INCR`, `MSET`, `MGET`, `DBSIZE`, `FLUSHALL`, `QUIT`; `CONFIG GET`,
//! `COMMAND` and `COMMAND DOCS` answer an empty array. The first line on
//! stdout names the address it listens on. See `docs/resp.md`.

mod resp;

use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::thread;

use clap::Parser;
use resp::server::{Config, Server};
use resp::store::KEEP_FROM;
use resp::tokio_common::args;

/// A Redis-protocol server on refbuf or, with `--baseline`, on `BytesMut`
/// and `tokio_util`.
#[derive(Debug, Parser)]
#[command(name = "resp_server")]
struct Args {
    /// The address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:6379")]
    addr: SocketAddr,
    /// Runtime worker threads; 1 runs a current-thread runtime [default:
    /// one per CPU].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
    /// The budget of the stored values: a write past it is refused with
    /// `-OOM` [default: none].
    #[arg(long, value_name = "BYTES")]
    maxmemory: Option<usize>,
    /// The longest array or bulk string accepted, as redis-server's
    /// `proto-max-bulk-len`.
    #[arg(long, value_name = "BYTES", default_value_t = 512 << 20)]
    proto_max_bulk_len: usize,
    /// Values at least this long are kept in the buf they were read into;
    /// shorter ones are copied out.
    #[arg(long, value_name = "BYTES", default_value_t = KEEP_FROM)]
    keep_from: usize,
    /// Serve with `BytesMut` and `tokio_util` instead of refbuf.
    #[arg(long)]
    baseline: bool,
}

fn main() -> ExitCode {
    args::run_main("resp_server", |args: Args| {
        let threads = match args.threads {
            Some(n) => usize::from(n),
            None => thread::available_parallelism().map_or(1, usize::from),
        };
        run(&Config {
            addr: args.addr,
            threads,
            maxmemory: args.maxmemory.unwrap_or(usize::MAX),
            max_bulk_len: args.proto_max_bulk_len,
            keep_from: args.keep_from,
            baseline: args.baseline,
        })
    })
}

/// Serves until killed.
fn run(config: &Config) -> io::Result<()> {
    let mode = if config.baseline { "baseline (BytesMut + tokio_util)" } else { "refbuf" };
    let server = Server::start(config)?;
    println!("resp_server ({mode}) listening on {}; {} threads", server.addr(), config.threads);
    server.wait()
}
