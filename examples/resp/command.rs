//! The commands, run on a parsed request against the store, with their
//! replies written as redis-server 7.0 writes them, byte for byte
//! (`tests/resp.rs` pins them). Shared by both modes: a mode gives the
//! request (`Request`, which cuts values out of it) and where replies go
//! (`Out`).

use std::io;
use std::io::Write as _;
use std::ops::Range;

use bytes::Bytes;
use smallvec::SmallVec;

use super::store::{Keyspace, OutOfMemory, Store, Values};

/// The reply to a write refused for `--maxmemory`, as redis-server words it.
pub const OOM: &[u8] = b"-OOM command not allowed when used memory > 'maxmemory'.\r\n";

/// A key copied out of a request before the request is cut: keys up to 64
/// bytes stay on the stack.
type Key = SmallVec<[u8; 64]>;

/// A request whose arguments a command reads and whose values it may keep.
pub trait Request {
    /// A value cut from it.
    type Value;

    /// The bytes of the argument at `range`; only ranges after the last
    /// one cut.
    fn arg(&self, range: &Range<usize>) -> &[u8];

    /// The argument at `range`, cut out to be kept; ranges must come in
    /// increasing order.
    fn cut(&mut self, range: Range<usize>) -> Self::Value;
}

/// Where replies go.
pub trait Out {
    /// Appends `bytes` to the replies.
    ///
    /// # Errors
    /// Where there is no memory for them.
    fn put(&mut self, bytes: &[u8]) -> io::Result<()>;

    /// `<kind><n>\r\n`: an integer reply, or an array or bulk header.
    fn line(&mut self, kind: u8, n: i64) -> io::Result<()> {
        let mut digits = [0; 20];
        let digits = decimal(n, &mut digits);
        let mut line = [0; 23];
        line[0] = kind;
        line[1..=digits.len()].copy_from_slice(digits);
        line[digits.len() + 1..digits.len() + 3].copy_from_slice(b"\r\n");
        self.put(&line[..digits.len() + 3])
    }

    /// A bulk string reply: one `put` where it is short, three otherwise.
    fn bulk(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut digits = [0; 20];
        let digits = decimal(bytes.len() as i64, &mut digits);
        let mut reply = [0; 128];
        let len = 1 + digits.len() + 2 + bytes.len() + 2;
        if len > reply.len() {
            self.line(b'$', bytes.len() as i64)?;
            self.put(bytes)?;
            return self.put(b"\r\n");
        }
        let mut at = 0;
        for part in [b"$", digits, b"\r\n", bytes, b"\r\n"] {
            reply[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        self.put(&reply[..len])
    }

    /// Appends `bytes`, stored elsewhere, which the replies may share
    /// rather than copy; copied unless an `Out` says otherwise.
    fn put_shared(&mut self, bytes: &Bytes) -> io::Result<()> {
        self.put(bytes)
    }

    /// An error reply, `-ERR <message>\r\n`, with any `\r` or `\n` in the
    /// message made a space, as redis-server does.
    fn error(&mut self, message: &[u8]) -> io::Result<()> {
        self.put(b"-ERR ")?;
        for part in message.split(|&b| b == b'\r' || b == b'\n').enumerate() {
            if part.0 > 0 {
                self.put(b" ")?;
            }
            self.put(part.1)?;
        }
        self.put(b"\r\n")
    }
}

/// `n` in decimal, written into `buf`.
fn decimal(n: i64, buf: &mut [u8; 20]) -> &[u8] {
    let mut cursor = io::Cursor::new(&mut buf[..]);
    write!(cursor, "{n}").expect("20 bytes hold any i64");
    let len = cursor.position() as usize;
    &buf[..len]
}

/// What the connection does after a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Reads the next request.
    Continue,
    /// Sends the replies so far and closes (`QUIT`).
    Quit,
}

/// Runs the request whose arguments are `args` (at least one) and writes
/// its reply to `out`.
///
/// # Errors
/// Only where `out` has no memory for the reply.
pub fn execute<R, V>(
    req: &mut R,
    args: &[Range<usize>],
    store: &Store<V>,
    out: &mut impl Out,
) -> io::Result<Flow>
where
    R: Request,
    V: Values<Value = R::Value>,
{
    let name = req.arg(&args[0]);
    let argc = args.len();
    let is = |command: &str| name.eq_ignore_ascii_case(command.as_bytes());
    if is("GET") {
        if argc != 2 {
            return arity(out, "get");
        }
        match store.lock().value(req.arg(&args[1])) {
            Some(value) => V::reply(value, out)?,
            None => out.put(b"$-1\r\n")?,
        }
    } else if is("SET") {
        match argc {
            ..3 => return arity(out, "set"),
            3 => {}
            _ => return syntax_error(out),
        }
        let key = Key::from_slice(req.arg(&args[1]));
        let mut keyspace = store.lock();
        match keyspace.take(req, args[2].clone()) {
            Ok(value) => {
                keyspace.insert(&key, value);
                out.put(b"+OK\r\n")?;
            }
            Err(OutOfMemory) => out.put(OOM)?,
        }
    } else if is("PING") {
        match argc {
            1 => out.put(b"+PONG\r\n")?,
            2 => out.bulk(req.arg(&args[1]))?,
            _ => return arity(out, "ping"),
        }
    } else if is("ECHO") {
        if argc != 2 {
            return arity(out, "echo");
        }
        out.bulk(req.arg(&args[1]))?;
    } else if is("DEL") || is("EXISTS") {
        let (del, command) = if is("DEL") { (true, "del") } else { (false, "exists") };
        if argc < 2 {
            return arity(out, command);
        }
        let mut keyspace = store.lock();
        let mut n = 0;
        for key in &args[1..] {
            let key = req.arg(key);
            n += i64::from(if del { keyspace.remove(key) } else { keyspace.contains(key) });
        }
        out.line(b':', n)?;
    } else if is("INCR") {
        if argc != 2 {
            return arity(out, "incr");
        }
        incr(&mut store.lock(), req.arg(&args[1]), out)?;
    } else if is("MSET") {
        if argc < 3 || argc.is_multiple_of(2) {
            return arity(out, "mset");
        }
        mset(req, &args[1..], &mut store.lock(), out)?;
    } else if is("MGET") {
        if argc < 2 {
            return arity(out, "mget");
        }
        out.line(b'*', (argc - 1) as i64)?;
        let keyspace = store.lock();
        for key in &args[1..] {
            match keyspace.value(req.arg(key)) {
                Some(value) => V::reply(value, out)?,
                None => out.put(b"$-1\r\n")?,
            }
        }
    } else if is("DBSIZE") {
        if argc != 1 {
            return arity(out, "dbsize");
        }
        out.line(b':', store.lock().len() as i64)?;
    } else if is("FLUSHALL") {
        let mode = args.get(1).map(|mode| req.arg(mode));
        let known = mode.is_none_or(|m| m.eq_ignore_ascii_case(b"SYNC") || m.eq_ignore_ascii_case(b"ASYNC"));
        if argc > 2 || !known {
            return syntax_error(out);
        }
        store.lock().clear();
        out.put(b"+OK\r\n")?;
    } else if is("QUIT") {
        out.put(b"+OK\r\n")?;
        return Ok(Flow::Quit);
    } else if is("CONFIG") {
        subcommand(req, args, out, "config", "GET", 3)?;
    } else if is("COMMAND") {
        if argc == 1 {
            out.put(b"*0\r\n")?;
        } else {
            subcommand(req, args, out, "command", "DOCS", 2)?;
        }
    } else {
        unknown(req, args, out)?;
    }
    Ok(Flow::Continue)
}

/// `-ERR wrong number of arguments for '<command>' command`.
fn arity(out: &mut impl Out, command: &str) -> io::Result<Flow> {
    out.error(format!("wrong number of arguments for '{command}' command").as_bytes())?;
    Ok(Flow::Continue)
}

/// `-ERR syntax error`.
fn syntax_error(out: &mut impl Out) -> io::Result<Flow> {
    out.error(b"syntax error")?;
    Ok(Flow::Continue)
}

/// `CONFIG GET` and `COMMAND DOCS`: an empty array where the subcommand is
/// `known` with at least `min_argc` arguments in all.
fn subcommand<R: Request>(
    req: &R,
    args: &[Range<usize>],
    out: &mut impl Out,
    command: &str,
    known: &str,
    min_argc: usize,
) -> io::Result<()> {
    let Some(sub) = args.get(1).map(|sub| req.arg(sub)) else {
        arity(out, command)?;
        return Ok(());
    };
    if !sub.eq_ignore_ascii_case(known.as_bytes()) {
        let mut message = b"unknown subcommand '".to_vec();
        message.extend_from_slice(sub);
        message.extend_from_slice(format!("'. Try {} HELP.", command.to_uppercase()).as_bytes());
        return out.error(&message);
    }
    if args.len() < min_argc {
        arity(out, &format!("{command}|{}", known.to_lowercase()))?;
        return Ok(());
    }
    out.put(b"*0\r\n")
}

/// `INCR key`: the value as a decimal `i64`, plus one.
fn incr<V: Values>(keyspace: &mut Keyspace<V>, key: &[u8], out: &mut impl Out) -> io::Result<()> {
    let n = match keyspace.get(key) {
        None => 0,
        Some(value) => match super::parse::parse_i64(value) {
            Some(n) => n,
            None => return out.error(b"value is not an integer or out of range"),
        },
    };
    let Some(n) = n.checked_add(1) else {
        return out.error(b"increment or decrement would overflow");
    };
    let mut digits = [0; 20];
    match keyspace.copy(decimal(n, &mut digits)) {
        Ok(value) => {
            keyspace.insert(key, value);
            out.line(b':', n)
        }
        Err(OutOfMemory) => out.put(OOM),
    }
}

/// `MSET key value ...`: every pair stored, or none where the budget has no
/// room for them all.
fn mset<R, V>(
    req: &mut R,
    pairs: &[Range<usize>],
    keyspace: &mut Keyspace<V>,
    out: &mut impl Out,
) -> io::Result<()>
where
    R: Request,
    V: Values<Value = R::Value>,
{
    let total = pairs.chunks(2).map(|pair| pair[1].len()).sum();
    if !keyspace.has_room(total) {
        return out.put(OOM);
    }
    let mut kept: SmallVec<[(Key, V::Value); 10]> = SmallVec::new();
    for pair in pairs.chunks(2) {
        let key = Key::from_slice(req.arg(&pair[0]));
        match keyspace.take(req, pair[1].clone()) {
            Ok(value) => kept.push((key, value)),
            Err(OutOfMemory) => return out.put(OOM),
        }
    }
    for (key, value) in kept {
        keyspace.insert(&key, value);
    }
    out.put(b"+OK\r\n")
}

/// `-ERR unknown command '<name>', with args beginning with: '<arg>' ...`:
/// the name and the arguments each cut at a NUL and at 128 bytes in all,
/// as redis-server 7.0 writes them.
fn unknown<R: Request>(req: &R, args: &[Range<usize>], out: &mut impl Out) -> io::Result<()> {
    /// `bytes` up to a NUL, at most `max` of them, as C's `%.*s` prints.
    fn c_str(bytes: &[u8], max: usize) -> &[u8] {
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len()).min(max);
        &bytes[..end]
    }
    let mut message = b"unknown command '".to_vec();
    message.extend_from_slice(c_str(req.arg(&args[0]), 128));
    message.extend_from_slice(b"', with args beginning with: ");
    let mut listed = Vec::new();
    for arg in &args[1..] {
        if listed.len() >= 128 {
            break;
        }
        listed.push(b'\'');
        listed.extend_from_slice(c_str(req.arg(arg), 128 - (listed.len() - 1)));
        listed.extend_from_slice(b"' ");
    }
    message.extend_from_slice(&listed);
    out.error(&message)
}
