//! The length-prefixed echo server of `echo_server` on a multi-thread tokio
//! runtime: refbuf's `AsyncReader`, zero-copy replies and
//! `Chain::write_all_async`, or `--baseline` with `tokio_util`'s `Framed`
//! and `LengthDelimitedCodec`. Drive it with `tokio_load` (or
//! `echo_client`).
//!
//! ```sh
//! cargo run --release --features tokio --example tokio_echo -- --addr 127.0.0.1:7878 --duration 60
//! cargo run --release --features tokio --example tokio_echo -- --addr 127.0.0.1:7878 --duration 60 --baseline
//! ```
//!
//! Options: `--addr` (default 127.0.0.1:7878), `--max-frame BYTES` (default
//! 16 MiB), `--max-bytes BYTES` (the pool's budget, default none),
//! `--threads N` (runtime workers, default one per CPU; 1 runs a
//! current-thread runtime), `--baseline`, `--frames N` (stop after N frames
//! echoed, default unbounded) and `--duration SECONDS` (default 60). The
//! first line on stdout names the address it listens on; each connection's
//! end is reported on stderr.

mod tokio_common;

use std::io;
use std::process::ExitCode;

use clap::Parser;
use tokio_common::args;
use tokio_common::server::{self, Config, Server};

/// A length-prefixed echo server on tokio, on refbuf or, with `--baseline`,
/// on `Framed` and `LengthDelimitedCodec`.
// Public, as are its fields, for `tests/examples.rs`, which checks it.
#[derive(Debug, Parser)]
#[command(name = "tokio_echo")]
pub struct Args {
    // `--addr` and `--max-frame`, as `echo_server` takes them.
    #[command(flatten)]
    pub listen: args::Listen,
    /// The pool's budget: bytes in use and idle together never exceed it
    /// [default: none].
    #[arg(long, value_name = "BYTES")]
    pub max_bytes: Option<usize>,
    /// Runtime worker threads; 1 runs a current-thread runtime [default:
    /// one per CPU].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
    /// Echo with `Framed` and `LengthDelimitedCodec` instead of refbuf.
    #[arg(long)]
    pub baseline: bool,
    // `--frames` and `--duration`, as `echo_server` takes them.
    #[command(flatten)]
    pub stop: args::Stop,
}

impl Args {
    /// The server's configuration.
    pub fn config(self) -> Config {
        let threads = server::worker_threads(self.threads);
        Config {
            addr: self.listen.addr,
            max_frame: self.listen.max_frame,
            max_bytes: self.max_bytes,
            baseline: self.baseline,
            threads,
            frames: self.stop.frame_limit(),
            duration: self.stop.duration,
        }
    }
}

fn main() -> ExitCode {
    args::run_main("tokio_echo", |args: Args| run(args.config()))
}

fn run(config: Config) -> io::Result<()> {
    let mode = if config.baseline { "baseline (Framed + LengthDelimitedCodec)" } else { "refbuf" };
    let server = Server::start(config.clone())?;
    let budget = config.max_bytes.map_or_else(|| String::from("none"), |max| format!("{max} bytes"));
    println!(
        "tokio_echo ({mode}) listening on {}; {} threads; max frame {} bytes; budget {budget}; stops after {:?}",
        server.addr(),
        config.threads,
        config.max_frame,
        config.duration
    );
    for end in server.events() {
        eprintln!("{end}");
    }
    let pool = server.pool().clone();
    let summary = server.wait()?;
    println!(
        "served {} connections, {} frames in {} writes ({} with the header joined to the payload, {} with a header slice)",
        summary.connections, summary.frames, summary.writes, summary.in_place, summary.header_slices
    );
    if !config.baseline {
        println!("pool: {}", pool.stats());
    }
    Ok(())
}
