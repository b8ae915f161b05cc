//! Counting frames per unidirectional flow, and the report `pcap_flows`
//! prints.

use std::collections::HashMap;
use std::fmt::{self, Write};
use std::hint::black_box;
use std::io::Read;

use super::capture::{Capture, CaptureError, Timestamp};
use super::dissect::{DissectError, Flow, flow_of};

/// Why a capture's flows cannot be counted.
#[derive(Debug)]
pub enum FlowsError {
    /// The capture file is bad.
    Capture(CaptureError),
    /// A frame's IP header is bad.
    Frame {
        /// The frame's number, from 1.
        number: u64,
        /// What is wrong with it.
        error: DissectError,
    },
}

impl fmt::Display for FlowsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlowsError::Capture(e) => e.fmt(f),
            FlowsError::Frame { number, error } => write!(f, "frame {number}: {error}"),
        }
    }
}

impl std::error::Error for FlowsError {}

impl From<CaptureError> for FlowsError {
    fn from(e: CaptureError) -> FlowsError {
        FlowsError::Capture(e)
    }
}

/// Counts the flows of every frame of `capture`. With `copy`, each frame is
/// first copied into a fresh `Vec` and dissected there: the baseline the
/// zero-copy path is measured against.
///
/// # Errors
/// The first bad record or IP header.
pub fn count_flows<R: Read>(capture: &mut Capture<R>, copy: bool) -> Result<FlowTable, FlowsError> {
    let mut table = FlowTable::default();
    while let Some(packet) = capture.next_packet()? {
        let flow = if copy {
            let owned: Vec<u8> = black_box(packet.data.to_vec());
            drop(packet.data);
            flow_of(packet.link, &owned, packet.wire_len)
        } else {
            flow_of(packet.link, &packet.data, packet.wire_len)
        };
        let flow = flow.map_err(|error| FlowsError::Frame { number: table.total.packets + 1, error })?;
        table.add(flow, packet.wire_len, packet.ts);
    }
    Ok(table)
}

/// Frames and bytes per flow, and totals.
#[derive(Debug, Default)]
pub struct FlowTable {
    flows: HashMap<Flow, Counts>,
    total: Counts,
    /// Frames that are not TCP or UDP over IP.
    other: u64,
    /// The earliest and latest timestamps.
    span: Option<(Timestamp, Timestamp)>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    packets: u64,
    /// Sum of lengths on the wire.
    bytes: u64,
}

impl Counts {
    fn add(&mut self, wire_len: u32) {
        self.packets += 1;
        self.bytes += u64::from(wire_len);
    }
}

impl FlowTable {
    /// Counts a frame captured at `ts` with `wire_len` bytes on the wire, in
    /// `flow` or as other.
    pub fn add(&mut self, flow: Option<Flow>, wire_len: u32, ts: Timestamp) {
        self.total.add(wire_len);
        let (first, last) = self.span.get_or_insert((ts, ts));
        (*first, *last) = ((*first).min(ts), (*last).max(ts));
        match flow {
            Some(flow) => self.flows.entry(flow).or_default().add(wire_len),
            None => self.other += 1,
        }
    }

    /// The frames counted so far.
    pub fn packets(&self) -> u64 {
        self.total.packets
    }

    /// Seconds from the earliest frame to the latest.
    pub fn span_secs(&self) -> f64 {
        self.span.map_or(0.0, |(first, last)| {
            (last.secs - first.secs) as f64 + (f64::from(last.nanos) - f64::from(first.nanos)) / 1e9
        })
    }

    /// The report: a line `PROTO SRC_IP SRC_PORT DST_IP DST_PORT PACKETS
    /// BYTES` per flow, by BYTES descending, then by the line's text; then
    /// `total packets=N bytes=M other=K`. Every line ends in `\n`.
    pub fn report(&self) -> String {
        let mut lines: Vec<(u64, String)> = self
            .flows
            .iter()
            .map(|(flow, c)| (c.bytes, format!("{flow} {} {}", c.packets, c.bytes)))
            .collect();
        lines.sort_unstable_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        let mut out = String::new();
        for (_, line) in lines {
            out.push_str(&line);
            out.push('\n');
        }
        let Counts { packets, bytes } = self.total;
        // Writing to a String cannot fail.
        let _ = writeln!(out, "total packets={packets} bytes={bytes} other={}", self.other);
        out
    }
}
