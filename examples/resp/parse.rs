//! RESP2 requests, parsed in place from the bytes a connection has
//! buffered: a `Parser` finds where the next request ends and notes where
//! each of its arguments lies, as byte ranges, in one pass and with no
//! allocation for requests of up to 32 arguments.
//!
//! Two forms, as redis-server reads them:
//! - an array of bulk strings, `*<n>\r\n` then `n` times `$<len>\r\n<len
//!   bytes>\r\n`;
//! - an inline command, one line ending in `\n` (a `\r` before it is
//!   dropped) split at whitespace; quotes are not interpreted.
//!
//! Lengths are checked as the header is read, before anything is allocated
//! for them, and the errors carry redis-server's wording where it has one.
//! Where redis-server reads on regardless (no `\r\n` after a bulk string's
//! bytes, a `\r` not followed by `\n` ending a length), this parser refuses
//! the request.

use std::fmt;
use std::ops::Range;

use smallvec::SmallVec;

/// The longest line (inline command, or array or bulk length) accepted
/// without its end: redis-server's `PROTO_INLINE_MAX_SIZE`.
pub const MAX_LINE: usize = 64 * 1024;

/// What makes a request unreadable; the connection is answered with
/// `-ERR Protocol error: <this>` and closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    /// An array length that is not a number, or is over the limit.
    MultibulkLength,
    /// A bulk length that is not a number, is negative, or is over the
    /// limit.
    BulkLength,
    /// An array element that is not a bulk string.
    ExpectedBulk(u8),
    /// A bulk string's bytes not followed by `\r\n`.
    MissingCrlf,
    /// An array length line longer than `MAX_LINE` without its end.
    MultibulkLineTooLong,
    /// A bulk length line longer than `MAX_LINE` without its end.
    BulkLineTooLong,
    /// An inline command longer than `MAX_LINE` without its end.
    InlineTooLong,
}

impl fmt::Display for ProtocolError {
    /// The words after `Protocol error: `, as redis-server puts them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::MultibulkLength => f.write_str("invalid multibulk length"),
            ProtocolError::BulkLength => f.write_str("invalid bulk length"),
            ProtocolError::ExpectedBulk(got) => write!(f, "expected '$', got '{}'", char::from(*got)),
            ProtocolError::MissingCrlf => f.write_str("expected CRLF after bulk string data"),
            ProtocolError::MultibulkLineTooLong => f.write_str("too big mbulk count string"),
            ProtocolError::BulkLineTooLong => f.write_str("too big bulk count string"),
            ProtocolError::InlineTooLong => f.write_str("too big inline request"),
        }
    }
}

/// Where a whole request lies at the start of the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Bytes of the request, from the start of the buffer.
    pub len: usize,
    /// Its arguments, the command name first; 0 for an empty request
    /// (`*0\r\n`, a blank line), which is answered with nothing.
    pub argc: usize,
}

/// The arguments of one request, as ranges of its bytes: up to 32 of them
/// on the stack (redis-benchmark's `MSET` has 21).
pub type ArgRanges = SmallVec<[Range<usize>; 32]>;

/// Finds the end of the next request in a buffer that grows between calls,
/// resuming where the last call stopped: a request that arrives in many
/// reads is parsed once, not once per read.
#[derive(Debug)]
pub struct Parser {
    /// The longest array or bulk string accepted.
    max_bulk_len: usize,
    /// Progress through an array whose end is not buffered yet.
    partial: Option<Partial>,
    /// The arguments found so far of the request being parsed.
    args: ArgRanges,
}

/// How far an unfinished array has been parsed.
#[derive(Clone, Copy, Debug)]
struct Partial {
    /// Elements the array announced.
    argc: usize,
    /// Elements whose bytes are all buffered.
    done: usize,
    /// Where the next element starts.
    at: usize,
}

impl Parser {
    /// A parser refusing array and bulk lengths over `max_bulk_len`.
    pub fn new(max_bulk_len: usize) -> Parser {
        Parser { max_bulk_len, partial: None, args: ArgRanges::new() }
    }

    /// The arguments of the request the last `parse` returned, the command
    /// name first, as ranges of its bytes.
    pub fn args(&self) -> &[Range<usize>] {
        &self.args
    }

    /// The next request at the start of `buf`, `None` while it is not all
    /// buffered, or why it cannot be read. `buf` must start where it
    /// started at the last call, with more bytes after, until a request is
    /// returned; the next request then starts the buffer.
    pub fn parse(&mut self, buf: &[u8]) -> Result<Option<Frame>, ProtocolError> {
        let mut partial = match self.partial {
            Some(partial) => partial,
            None if buf.is_empty() => return Ok(None),
            None if buf[0] != b'*' => return self.inline(buf),
            None => {
                self.args.clear();
                let Some((n, at)) = length_line(buf, 1, ProtocolError::MultibulkLength)? else {
                    return line_missing(buf.len(), ProtocolError::MultibulkLineTooLong);
                };
                if n > self.max_bulk_len as i64 {
                    return Err(ProtocolError::MultibulkLength);
                }
                // Zero or negative: nothing to run, as redis-server has it.
                let argc = usize::try_from(n).unwrap_or(0);
                Partial { argc, done: 0, at }
            }
        };
        while partial.done < partial.argc {
            let Some(&kind) = buf.get(partial.at) else {
                self.partial = Some(partial);
                return Ok(None);
            };
            if kind != b'$' {
                return Err(ProtocolError::ExpectedBulk(kind));
            }
            let Some((n, data)) = length_line(buf, partial.at + 1, ProtocolError::BulkLength)? else {
                self.partial = Some(partial);
                return line_missing(buf.len() - partial.at, ProtocolError::BulkLineTooLong);
            };
            let n = usize::try_from(n).map_err(|_| ProtocolError::BulkLength)?;
            if n > self.max_bulk_len {
                return Err(ProtocolError::BulkLength);
            }
            let end = data + n;
            match buf.get(end..end + 2) {
                None => {
                    self.partial = Some(partial);
                    return Ok(None);
                }
                Some(b"\r\n") => {}
                Some(_) => return Err(ProtocolError::MissingCrlf),
            }
            self.args.push(data..end);
            partial.at = end + 2;
            partial.done += 1;
        }
        self.partial = None;
        Ok(Some(Frame { len: partial.at, argc: partial.argc }))
    }

    /// An inline command: one line, split at whitespace.
    fn inline(&mut self, buf: &[u8]) -> Result<Option<Frame>, ProtocolError> {
        let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
            return line_missing(buf.len(), ProtocolError::InlineTooLong);
        };
        self.args.clear();
        let mut at = 0;
        while let Some(start) = buf[at..nl].iter().position(|&b| !is_space(b)) {
            let start = at + start;
            let end = buf[start..nl].iter().position(|&b| is_space(b)).map_or(nl, |n| start + n);
            self.args.push(start..end);
            at = end;
        }
        Ok(Some(Frame { len: nl + 1, argc: self.args.len() }))
    }
}

/// `None` while a line is shorter than `MAX_LINE`, else `too_long`.
fn line_missing(buffered: usize, too_long: ProtocolError) -> Result<Option<Frame>, ProtocolError> {
    if buffered > MAX_LINE { Err(too_long) } else { Ok(None) }
}

/// The number on the line from `from` to its `\r\n`, and where the next
/// line starts; `None` while the `\r\n` is not buffered. A number is
/// written as redis-server's `string2ll` accepts it: an optional `-`, then
/// digits with no leading zero, within an `i64`.
fn length_line(
    buf: &[u8],
    from: usize,
    invalid: ProtocolError,
) -> Result<Option<(i64, usize)>, ProtocolError> {
    let Some(cr) = buf[from..].iter().position(|&b| b == b'\r') else {
        return Ok(None);
    };
    let cr = from + cr;
    match buf.get(cr + 1) {
        None => return Ok(None),
        Some(b'\n') => {}
        Some(_) => return Err(invalid),
    }
    let n = parse_i64(&buf[from..cr]).ok_or(invalid)?;
    Ok(Some((n, cr + 2)))
}

/// `digits` as redis-server's `string2ll` reads an integer: `0`, or an
/// optional `-` and digits with no leading zero, within an `i64`; no sign
/// `+`, no spaces, no `-0`.
pub fn parse_i64(digits: &[u8]) -> Option<i64> {
    let (negative, body) = match digits {
        [b'0'] => return Some(0),
        [b'-', rest @ ..] => (true, rest),
        _ => (false, digits),
    };
    if body.is_empty() || body[0] == b'0' || body.len() > 19 {
        return None;
    }
    let mut n: i64 = 0;
    for &d in body {
        if !d.is_ascii_digit() {
            return None;
        }
        let d = i64::from(d - b'0');
        n = n.checked_mul(10)?;
        n = if negative { n.checked_sub(d)? } else { n.checked_add(d)? };
    }
    Some(n)
}

/// Whether `b` separates inline arguments (C's `isspace`).
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c')
}
