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
use std::path::Path;
use std::process::ExitCode;

use refbuf::Pool;

use pcap::vxlan::{MAX_VNI, Oversize, Tunnel, encapsulate_file};

const USAGE: &str =
    "usage: vxlan_encap IN OUT --vni N [--outer-src IP] [--outer-dst IP] [--oversize skip|fail]";

/// The command line, parsed.
struct Args {
    input: String,
    output: String,
    tunnel: Tunnel,
    oversize: Oversize,
}

fn main() -> ExitCode {
    let Args { input, output, tunnel, oversize } = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("vxlan_encap: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let warn = |skipped| eprintln!("vxlan_encap: warning: {input}: {skipped}");
    match encapsulate_file(&Pool::new(), Path::new(&input), Path::new(&output), &tunnel, oversize, warn) {
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

/// `IN OUT --vni N [--outer-src IP] [--outer-dst IP] [--oversize skip|fail]`,
/// options anywhere.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut paths = Vec::new();
    let (mut vni, mut src, mut dst) = (None, Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2));
    let mut oversize = Oversize::default();
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--vni" => {
                let v = value()?;
                vni = Some(
                    v.parse::<u32>()
                        .ok()
                        .filter(|&n| n <= MAX_VNI)
                        .ok_or_else(|| format!("--vni {v}: a VNI is a number from 0 to {MAX_VNI}"))?,
                );
            }
            "--outer-src" => src = value()?.parse().map_err(|e| format!("--outer-src: {e}"))?,
            "--outer-dst" => dst = value()?.parse().map_err(|e| format!("--outer-dst: {e}"))?,
            "--oversize" => oversize = value()?.parse()?,
            _ if !arg.starts_with("--") => paths.push(arg),
            _ => return Err(format!("unknown option {arg}")),
        }
    }
    let [input, output] =
        <[String; 2]>::try_from(paths).map_err(|p| format!("two paths needed, got {}", p.len()))?;
    let vni = vni.ok_or("--vni is required")?;
    Ok(Args { input, output, tunnel: Tunnel { src, dst, vni }, oversize })
}
