//! Counting frames per unidirectional flow, and the report `pcap_flows`
//! prints.

use std::collections::HashMap;
use std::fmt::Write;

use crate::dissect::Flow;

/// Frames and bytes per flow, and totals.
#[derive(Debug, Default)]
pub struct FlowTable {
    flows: HashMap<Flow, Counts>,
    total: Counts,
    /// Frames that are not TCP or UDP over IP.
    other: u64,
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
    /// An empty table.
    pub fn new() -> FlowTable {
        FlowTable::default()
    }

    /// Counts a frame of `wire_len` bytes on the wire, in `flow` or as other.
    pub fn add(&mut self, flow: Option<Flow>, wire_len: u32) {
        self.total.add(wire_len);
        match flow {
            Some(flow) => self.flows.entry(flow).or_default().add(wire_len),
            None => self.other += 1,
        }
    }

    /// The frames counted so far.
    pub fn packets(&self) -> u64 {
        self.total.packets
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
