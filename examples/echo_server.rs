//! A length-prefixed echo server over TCP: refbuf's `Reader`, headroom and
//! `Chain::write_to`, or `--baseline` with `Vec` and `read_exact`.
//!
//! ```sh
//! cargo run --release --example echo_server -- --addr 127.0.0.1:7878 --duration 60
//! cargo run --release --example echo_server -- --addr 127.0.0.1:7878 --duration 60 --baseline
//! ```
//!
//! Options: `--addr` (default 127.0.0.1:7878), `--max-frame BYTES` (default
//! 16 MiB), `--baseline`, `--frames N` (stop after N frames echoed, default
//! unbounded) and `--duration SECONDS` (default 60). Each connection's end is
//! reported on stderr: a clean close, a refused oversize frame, or a
//! truncated final frame.

mod common;

use std::io;
use std::process::ExitCode;

use common::args::{self, Args};
use common::frame::DEFAULT_MAX_FRAME;
use common::server::{Config, Server};

fn main() -> ExitCode {
    args::run_main("echo_server", parse, run)
}

fn parse(args: &mut Args) -> Result<Config, String> {
    Ok(Config {
        addr: args.value("--addr", "127.0.0.1:7878".parse().expect("a valid address"))?,
        max_frame: args.value("--max-frame", DEFAULT_MAX_FRAME)?,
        baseline: args.flag("--baseline"),
        frames: args.value("--frames", u64::MAX)?,
        duration: args.seconds("--duration", 60.0)?,
    })
}

fn run(config: Config) -> io::Result<()> {
    let mode = if config.baseline { "baseline (Vec + read_exact)" } else { "refbuf" };
    let server = Server::start(config.clone())?;
    println!(
        "echo_server ({mode}) listening on {}; max frame {} bytes; stops after {:?}",
        server.addr(),
        config.max_frame,
        config.duration
    );
    for end in server.events() {
        match end.result {
            Ok(()) => eprintln!("{}: closed after {} frames", end.peer, end.frames),
            Err(e) => eprintln!("{}: closed after {} frames: {e}", end.peer, end.frames),
        }
    }
    let summary = server.wait()?;
    println!(
        "served {} connections, {} frames ({} with the header in headroom, {} with a header slice)",
        summary.connections, summary.frames, summary.in_place, summary.header_slices
    );
    Ok(())
}
