//! Writing a classic pcap file of Ethernet frames held in slices, without
//! copying them: frames are queued and written with vectored writes. And
//! writing a file all or nothing, through a temporary file renamed over it.

use std::fs::{self, File};
use std::io::{self, IoSlice, Write};
use std::path::{Path, PathBuf};
use std::process;

use refbuf::Slice;

use super::capture::{MAX_CAPLEN, Timestamp};
use super::dissect::LINKTYPE_ETHERNET;

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

/// Writes the file `dest` with `write`, all or nothing: `write` gets a new
/// temporary file in `dest`'s directory, which is synced and renamed over
/// `dest` only once `write` has succeeded. On an error (or a panic) the
/// temporary file is removed, so no partial file is left, and an earlier
/// `dest` is untouched. A `dest` that is a symbolic link is resolved first,
/// so the link stays and its target is replaced; the new file takes an
/// earlier `dest`'s permissions. A `dest` that exists and is not a regular
/// file (a pipe, `/dev/stdout`) cannot be replaced, and is written directly.
///
/// # Errors
/// `write`'s error, or failing to create, sync or rename the file.
pub fn replace_file<T, E: From<io::Error>>(
    dest: &Path,
    write: impl FnOnce(&mut File) -> Result<T, E>,
) -> Result<T, E> {
    let dest = fs::canonicalize(dest).unwrap_or_else(|_| dest.to_owned());
    let earlier = fs::metadata(&dest).ok();
    if earlier.as_ref().is_some_and(|m| !m.is_file()) {
        return write(&mut File::create(&dest)?);
    }
    let mut temp = TempFile::next_to(&dest)?;
    if let Some(earlier) = earlier {
        temp.file.set_permissions(earlier.permissions())?;
    }
    let value = write(&mut temp.file)?;
    temp.rename_over(&dest)?;
    Ok(value)
}

/// A new file that is removed when dropped, unless renamed over its
/// destination first.
#[derive(Debug)]
struct TempFile {
    path: PathBuf,
    file: File,
    renamed: bool,
}

impl TempFile {
    /// Creates `.NAME.PID.tmp` in `dest`'s directory, where `dest` is
    /// `DIR/NAME`: a file this process alone writes, never one that exists.
    fn next_to(dest: &Path) -> io::Result<TempFile> {
        let name = dest.file_name().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("{}: not a file name", dest.display()))
        })?;
        let mut temp_name = std::ffi::OsString::from(".");
        temp_name.push(name);
        temp_name.push(format!(".{}.tmp", process::id()));
        let path = dest.with_file_name(temp_name);
        let file = File::options().write(true).create_new(true).open(&path).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot create the temporary file {}: {e}", path.display()))
        })?;
        Ok(TempFile { path, file, renamed: false })
    }

    /// Syncs the file and renames it over `dest`.
    fn rename_over(mut self, dest: &Path) -> io::Result<()> {
        self.file.sync_all()?;
        fs::rename(&self.path, dest).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot rename {} over {}: {e}", self.path.display(), dest.display()),
            )
        })?;
        self.renamed = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.renamed {
            // Nothing to do about a failure here: the error being returned
            // already says what went wrong.
            let _ = fs::remove_file(&self.path);
        }
    }
}
