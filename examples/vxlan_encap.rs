//! Encapsulates every Ethernet frame of a capture in VXLAN (RFC 7348),
//! prepending the outer headers in place with `Slice::expand_front`.
//!
//! ```text
//! cargo run --release --example vxlan_encap -- IN OUT --vni N [--outer-src IP] [--outer-dst IP]
//! ```
//!
//! IN is a pcap or pcapng capture of Ethernet frames. Each frame is read
//! into a slice with exactly 50 bytes of headroom; the outer Ethernet,
//! IPv4, UDP and VXLAN headers are written into that headroom, so no byte of
//! the frame is copied after the read. OUT is a classic pcap of the
//! encapsulated frames, with the original timestamps (nanosecond
//! resolution). The outer addresses default to 192.0.2.1 and 192.0.2.2.

#[path = "pcap/capture.rs"]
mod capture;
#[path = "pcap/dissect.rs"]
mod dissect;
#[path = "pcap/vxlan.rs"]
mod vxlan;
#[path = "pcap/write.rs"]
mod write;

use std::error::Error;
use std::fs::File;
use std::net::Ipv4Addr;
use std::process::ExitCode;

use refbuf::Pool;

use crate::vxlan::{MAX_VNI, Tunnel, encapsulate_capture};

const USAGE: &str = "usage: vxlan_encap IN OUT --vni N [--outer-src IP] [--outer-dst IP]";

fn main() -> ExitCode {
    let (input, output, tunnel) = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("vxlan_encap: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&input, &output, &tunnel) {
        Ok(frames) => {
            eprintln!("vxlan_encap: {frames} frames from {input} written to {output}, VNI {}", tunnel.vni);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vxlan_encap: {input}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `IN OUT --vni N [--outer-src IP] [--outer-dst IP]`, options anywhere.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<(String, String, Tunnel), String> {
    let mut paths = Vec::new();
    let (mut vni, mut src, mut dst) = (None, Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2));
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
            _ if !arg.starts_with("--") => paths.push(arg),
            _ => return Err(format!("unknown option {arg}")),
        }
    }
    let [input, output] =
        <[String; 2]>::try_from(paths).map_err(|p| format!("two paths needed, got {}", p.len()))?;
    let vni = vni.ok_or("--vni is required")?;
    Ok((input, output, Tunnel { src, dst, vni }))
}

/// Encapsulates every frame of `input` into `output`; returns how many.
fn run(input: &str, output: &str, tunnel: &Tunnel) -> Result<u64, Box<dyn Error>> {
    let (frames, _) = encapsulate_capture(&Pool::new(), File::open(input)?, File::create(output)?, tunnel)?;
    Ok(frames)
}
