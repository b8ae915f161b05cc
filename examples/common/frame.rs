//! The wire format, socket set-up, and reading frames with a `Reader`.
//!
//! A frame is a 4-byte big-endian payload length, then the payload.

use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};

use refbuf::{Reader, Slice};
use socket2::{Domain, SockRef, Socket, Type};

/// Bytes in a frame header.
pub const HEADER_LEN: usize = 4;

/// The largest payload a server accepts unless told otherwise: 16 MiB.
pub const DEFAULT_MAX_FRAME: usize = 16 << 20;

/// The header for a payload of `len` bytes.
///
/// # Panics
/// Where `len` does not fit in 32 bits.
pub fn header(len: usize) -> [u8; HEADER_LEN] {
    u32::try_from(len).expect("frame payloads are below 4 GiB").to_be_bytes()
}

/// The payload length a header announces.
pub fn payload_len(header: [u8; HEADER_LEN]) -> usize {
    u32::from_be_bytes(header) as usize
}

/// A listening socket on `addr`, with `SO_REUSEADDR` so that a restarted
/// server can bind at once.
pub fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(128)?;
    Ok(socket.into())
}

/// A connection to `addr` with `TCP_NODELAY`, so small frames go out at once.
pub fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_tcp_nodelay(true)?;
    socket.connect(&addr.into())?;
    Ok(socket.into())
}

/// Sets `TCP_NODELAY` on an accepted connection.
pub fn set_nodelay(stream: &TcpStream) -> io::Result<()> {
    SockRef::from(stream).set_tcp_nodelay(true)
}

/// The error for a frame announcing more than `max` bytes.
pub fn too_large(len: usize, max: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("refused a frame of {len} bytes: it exceeds the maximum of {max} bytes"),
    )
}

/// The error for a connection that ended inside a `part` of `want` bytes,
/// `got` bytes into it where that is known.
pub fn truncated(part: &str, got: Option<usize>, want: usize) -> io::Error {
    let at = got.map_or_else(|| String::from("inside"), |got| format!("{got} bytes into"));
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("truncated frame: the connection ended {at} a {want}-byte {part}"),
    )
}

/// The next frame from `reader`, as its header and payload slices (which
/// touch in memory where the payload fits in the reader's current buf), or
/// `None` where the connection ended cleanly between frames.
///
/// # Errors
/// - `InvalidData` for a frame over `max` bytes, before anything is read
///   or allocated for its payload;
/// - `UnexpectedEof` ("truncated frame") where the connection ends inside
///   a frame;
/// - any error of the connection.
pub fn read_frame<R: Read>(reader: &mut Reader<R>, max: usize) -> io::Result<Option<(Slice, Slice)>> {
    let header = match reader.read(HEADER_LEN) {
        Ok(header) => header,
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && reader.buffered() == 0 => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            return Err(truncated("header", Some(reader.buffered()), HEADER_LEN));
        }
        Err(e) => return Err(e),
    };
    let len = payload_len(header[..].try_into().expect("the header is 4 bytes"));
    if len > max {
        return Err(too_large(len, max));
    }
    match reader.read(len) {
        Ok(payload) => Ok(Some((header, payload))),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            Err(truncated("payload", Some(reader.buffered()), len))
        }
        Err(e) => Err(e),
    }
}

/// Reads into `buf` until it is full or the source ends; returns how many
/// bytes were read.
pub fn read_full<R: Read>(src: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match src.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}
