//! Encapsulates every Ethernet frame of a capture in VXLAN (RFC 7348),
//! prepending the outer headers in place with `Slice::expand_front`.
//!
//! ```text
//! cargo run --release --example vxlan_encap -- IN OUT --vni N [--outer-src IP] [--outer-dst IP] \
//!     [--oversize skip|fail]
//! ```
//!
//! IN is a pcap or pcapng capture of Ethernet frames. Each frame is read
//! into a slice with exactly 50 bytes of headroom; the outer Ethernet,
//! IPv4, UDP and VXLAN headers are written into that headroom, so no byte of
//! the frame is copied after the read. OUT is a classic pcap of the
//! encapsulated frames, with the original timestamps (nanosecond
//! resolution). The outer addresses default to 192.0.2.1 and 192.0.2.2.
//!
//! A frame over 65,499 bytes does not fit in one outer IPv4 packet (a
//! loopback capture holds frames of up to 65,549). By default each such
//! frame is skipped with a warning naming it, and the summary counts them;
//! `--oversize fail` stops at the first one instead, with exit status 1.
//! OUT is written to a temporary file next to it and renamed over it only
//! once every frame is written, so an error leaves no partial file and an
//! earlier OUT as it was.

#[allow(dead_code, reason = "this example uses the VXLAN encapsulation only, not the flow count")]
mod pcap;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use refbuf::Pool;

use pcap::vxlan::{MAX_VNI, Oversize, Tunnel, encapsulate_file};

/// Encapsulates every Ethernet frame of a capture in VXLAN, writing the
/// outer headers into each frame's headroom.
// Public, as are its fields, for `tests/examples.rs`, which checks it.
#[derive(Debug, Parser)]
#[command(name = "vxlan_encap")]
pub struct Args {
    /// The pcap or pcapng capture of Ethernet frames to read.
    #[arg(value_name = "IN")]
    pub input: PathBuf,
    /// The classic pcap to write, replaced only once every frame is written.
    #[arg(value_name = "OUT")]
    pub output: PathBuf,
    /// The VXLAN network identifier, 0 to 16777215.
    #[arg(long, value_name = "N", value_parser = vni)]
    pub vni: u32,
    /// The outer IPv4 source address.
    #[arg(long, value_name = "IP", default_value_t = Ipv4Addr::new(192, 0, 2, 1))]
    pub outer_src: Ipv4Addr,
    /// The outer IPv4 destination address.
    #[arg(long, value_name = "IP", default_value_t = Ipv4Addr::new(192, 0, 2, 2))]
    pub outer_dst: Ipv4Addr,
    /// What to do with a frame too large for one outer IPv4 packet: skip it
    /// with a warning, or stop with an error.
    #[arg(long, value_name = "skip|fail", default_value = "skip")]
    pub oversize: Oversize,
}

/// A VNI: a number from 0 to `MAX_VNI`.
fn vni(arg: &str) -> Result<u32, String> {
    arg.parse::<u32>()
        .ok()
        .filter(|&n| n <= MAX_VNI)
        .ok_or_else(|| format!("a VNI is a number from 0 to {MAX_VNI}"))
}

fn main() -> ExitCode {
    let Args { input, output, vni, outer_src, outer_dst, oversize } = Args::parse();
    let tunnel = Tunnel { src: outer_src, dst: outer_dst, vni };
    let warn = |skipped| eprintln!("vxlan_encap: warning: {}: {skipped}", input.display());
    let done = encapsulate_file(&Pool::new(), &input, &output, &tunnel, oversize, warn);
    let (input, output) = (input.display(), output.display());
    match done {
        Ok(done) => {
            eprintln!(
                "vxlan_encap: {} frames from {input} written to {output}, VNI {}; {} skipped as too \
                 large for VXLAN over IPv4",
                done.written, tunnel.vni, done.skipped
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vxlan_encap: {input}: {e}");
            ExitCode::FAILURE
        }
    }
}
