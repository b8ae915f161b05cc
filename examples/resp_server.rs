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

use clap::Parser;
use resp::server::{Config, Server};
use resp::store::KEEP_FROM;
use resp::tokio_common::{args, server};

/// A Redis-protocol server on refbuf or, with `--baseline`, on `BytesMut`
/// and `tokio_util`.
// Public, as are its fields, for `tests/examples.rs`, which checks it.
#[derive(Debug, Parser)]
#[command(name = "resp_server")]
pub struct Args {
    /// The address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:6379")]
    pub addr: SocketAddr,
    /// Runtime worker threads; 1 runs a current-thread runtime [default:
    /// one per CPU].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
    /// The budget of the stored values: a write past it is refused with
    /// `-OOM` [default: none].
    #[arg(long, value_name = "BYTES")]
    pub maxmemory: Option<usize>,
    /// The longest array or bulk string accepted, as redis-server's
    /// `proto-max-bulk-len`.
    #[arg(long, value_name = "BYTES", default_value_t = 512 << 20)]
    pub proto_max_bulk_len: usize,
    /// Values at least this long are kept in the buf they were read into;
    /// shorter ones are copied out.
    #[arg(long, value_name = "BYTES", default_value_t = KEEP_FROM)]
    pub keep_from: usize,
    /// Serve with `BytesMut` and `tokio_util` instead of refbuf.
    #[arg(long)]
    pub baseline: bool,
}

impl Args {
    /// The server's configuration.
    pub fn config(self) -> Config {
        let threads = server::worker_threads(self.threads);
        Config {
            addr: self.addr,
            threads,
            maxmemory: self.maxmemory.unwrap_or(usize::MAX),
            max_bulk_len: self.proto_max_bulk_len,
            keep_from: self.keep_from,
            baseline: self.baseline,
        }
    }
}

fn main() -> ExitCode {
    args::run_main("resp_server", |args: Args| run(&args.config()))
}

/// Serves until killed.
fn run(config: &Config) -> io::Result<()> {
    let mode = if config.baseline { "baseline (BytesMut + tokio_util)" } else { "refbuf" };
    let server = Server::start(config)?;
    println!("resp_server ({mode}) listening on {}; {} threads", server.addr(), config.threads);
    server.wait()
}
