//! Writing a classic pcap file of Ethernet frames held in slices, without
//! copying them: frames are queued and written with vectored writes.

use std::io::{self, IoSlice, Write};

use refbuf::Slice;

use crate::capture::{MAX_CAPLEN, Timestamp};
use crate::dissect::LINKTYPE_ETHERNET;

/// Frames queued before a vectored write.
const BATCH: usize = 64;

/// A classic pcap writer: little-endian, nanosecond timestamps, Ethernet.
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    out: W,
    /// Record headers of the queued frames.
    headers: Vec<[u8; 16]>,
    frames: Vec<Slice>,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header to `out`.
    ///
    /// # Errors
    /// A write error.
    pub fn new(mut out: W) -> io::Result<PcapWriter<W>> {
        let mut header = [0u8; 24];
        header[0..4].copy_from_slice(&0xa1b2_3c4d_u32.to_le_bytes());
        header[4..6].copy_from_slice(&2u16.to_le_bytes());
        header[6..8].copy_from_slice(&4u16.to_le_bytes());
        header[16..20].copy_from_slice(&MAX_CAPLEN.to_le_bytes());
        header[20..24].copy_from_slice(&u32::from(LINKTYPE_ETHERNET).to_le_bytes());
        out.write_all(&header)?;
        Ok(PcapWriter { out, headers: Vec::with_capacity(BATCH), frames: Vec::with_capacity(BATCH) })
    }

    /// Queues a frame captured at `ts` whose length on the wire was
    /// `wire_len`; writes the queue when it is full.
    ///
    /// # Errors
    /// A write error, or a frame or timestamp that classic pcap cannot hold.
    pub fn write(&mut self, ts: Timestamp, wire_len: u32, frame: Slice) -> io::Result<()> {
        let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidInput, what);
        let secs =
            u32::try_from(ts.secs).map_err(|_| invalid(format!("timestamp {} s past 2106", ts.secs)))?;
        let caplen = u32::try_from(frame.len())
            .ok()
            .filter(|&n| n <= MAX_CAPLEN)
            .ok_or_else(|| invalid(format!("frame of {} bytes is over the snaplen", frame.len())))?;
        let mut header = [0u8; 16];
        header[0..4].copy_from_slice(&secs.to_le_bytes());
        header[4..8].copy_from_slice(&ts.nanos.to_le_bytes());
        header[8..12].copy_from_slice(&caplen.to_le_bytes());
        header[12..16].copy_from_slice(&wire_len.max(caplen).to_le_bytes());
        self.headers.push(header);
        self.frames.push(frame);
        if self.frames.len() == BATCH { self.flush_queue() } else { Ok(()) }
    }

    /// Writes what is queued, flushes, and returns the output.
    ///
    /// # Errors
    /// A write error.
    pub fn finish(mut self) -> io::Result<W> {
        self.flush_queue()?;
        self.out.flush()?;
        Ok(self.out)
    }

    /// Writes the queued records, header then frame, with vectored writes.
    fn flush_queue(&mut self) -> io::Result<()> {
        let mut parts: Vec<IoSlice<'_>> = self
            .headers
            .iter()
            .zip(&self.frames)
            .flat_map(|(h, f)| [IoSlice::new(h), IoSlice::new(f)])
            .collect();
        let mut parts = &mut parts[..];
        while !parts.is_empty() {
            match self.out.write_vectored(parts) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => IoSlice::advance_slices(&mut parts, n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.headers.clear();
        self.frames.clear();
        Ok(())
    }
}
