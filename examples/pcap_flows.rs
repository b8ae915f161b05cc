//! Per-flow packet and byte counts of a pcap or pcapng capture, read with
//! zero copy through a refbuf `Reader`.
//!
//! ```text
//! cargo run --release --example pcap_flows -- FILE [--copy]
//! ```
//!
//! Prints one line per unidirectional TCP or UDP flow, `PROTO SRC_IP
//! SRC_PORT DST_IP DST_PORT PACKETS BYTES` (BYTES: the sum of the frames'
//! lengths on the wire), by BYTES descending and then by the line's text,
//! and last `total packets=N bytes=M other=K`, where `other` counts frames
//! that are not TCP or UDP over IP. The speed goes to stderr.
//!
//! Record headers and frames are slices of the reader's buf, parsed where
//! they lie. `--copy` copies each frame into a fresh `Vec` first, as a
//! baseline to measure the zero-copy path against.

#[allow(dead_code, reason = "this example uses the capture reader, the dissector and the flow count only")]
mod pcap;

use std::error::Error;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use refbuf::Pool;

use pcap::capture::Capture;
use pcap::flows::count_flows;

/// The reader's buf size: large reads, few system calls.
const BUF_SIZE: usize = 1024 * 1024;

/// Per-flow packet and byte counts of a pcap or pcapng capture, read with
/// zero copy; the speed goes to stderr.
// Public, as are its fields, for `tests/examples.rs`, which checks it.
#[derive(Debug, Parser)]
#[command(name = "pcap_flows")]
pub struct Args {
    /// The pcap or pcapng capture to read.
    #[arg(value_name = "FILE")]
    pub path: PathBuf,
    /// Copy each frame into a fresh `Vec` first, as a baseline for the
    /// zero-copy path.
    #[arg(long)]
    pub copy: bool,
}

fn main() -> ExitCode {
    let Args { path, copy } = Args::parse();
    match run(&path, copy) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pcap_flows: {}: {e}", path.display());
            ExitCode::FAILURE
        }
    }
}

fn run(path: &Path, copy: bool) -> Result<(), Box<dyn Error>> {
    let file = File::open(path)?;
    let file_len = file.metadata()?.len();
    let start = Instant::now();
    let pool = Pool::builder().buf_size(BUF_SIZE).build();
    let table = count_flows(&mut Capture::open(&pool, file)?, copy)?;
    let elapsed = start.elapsed().as_secs_f64();
    std::io::stdout().lock().write_all(table.report().as_bytes())?;
    let packets = table.packets();
    eprintln!(
        "pcap_flows: {packets} packets, {:.1} MB in {elapsed:.3} s ({}): {:.0} packets/s, {:.0} MB/s; \
         the capture spans {:.3} s",
        file_len as f64 / 1e6,
        if copy { "copying each frame into a Vec" } else { "zero copy" },
        packets as f64 / elapsed,
        file_len as f64 / 1e6 / elapsed,
        table.span_secs(),
    );
    Ok(())
}
