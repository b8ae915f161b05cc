//! The keyspace: keys to values under one lock, shared by every
//! connection, with the `--maxmemory` budget.
//!
//! The store is generic over how a value is kept (`Values`): the refbuf
//! mode keeps small values as `Slice`s copied into a pool of their own and
//! large ones in the read buf they arrived in, handed to `Bytes` so that a
//! `GET` can send them without a copy (`PooledValues`); the baseline keeps
//! `Bytes` (`BytesValues`).
//!
//! # The budget
//!
//! `used` is the sum of the stored values' lengths. A write is refused,
//! with nothing changed, where `used` plus the bytes it writes would exceed
//! `--maxmemory`; the values it replaces count until they are replaced. In
//! the refbuf mode the small values' copies also live in a pool whose
//! budget is `--maxmemory`, so the memory they take, whole bufs, never
//! exceeds it either, and a copy the pool refuses refuses the write. A large
//! value kept in the read buf it arrived in counts its own length: the rest
//! of that buf holds other requests, gone once they are answered, and a
//! value is kept only where it is at least a quarter of a standard read buf
//! (`KEEP_FROM`), so it keeps at most four times its length in use.

use std::collections::HashMap;
use std::io;
use std::ops::Range;
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use refbuf::{Allocator, Pool, Slice};

use super::command::{Out, Request};

/// How values are kept.
pub trait Values: Send {
    /// A stored value.
    type Value: AsRef<[u8]> + Send;

    /// The argument of `req` at `range` as it is to be stored, cut out of
    /// the request or copied; `None` where there is no memory for it.
    fn take<R: Request<Value = Self::Value>>(
        &mut self,
        req: &mut R,
        range: Range<usize>,
    ) -> Option<Self::Value>;

    /// A copy of `bytes` to store; `None` where there is no memory for it.
    fn copy(&mut self, bytes: &[u8]) -> Option<Self::Value>;

    /// Writes `value` to `out` as a bulk string reply, a copy unless the
    /// replies can share it.
    ///
    /// # Errors
    /// Where `out` has no memory for the reply.
    fn reply(value: &Self::Value, out: &mut impl Out) -> io::Result<()> {
        out.bulk(value.as_ref())
    }
}

/// Values below this length are copied out of the read buf they arrived
/// in; longer ones are kept there. A quarter of the read pool's standard
/// 64 KiB buf, so that a value kept holds at most four times its length
/// and is never flagged as pinning its buf (`PoolReport`); `docs/resp.md`
/// gives the measurement.
pub const KEEP_FROM: usize = 16 * 1024;

/// Values in pool memory: small ones copied into bufs of their own through
/// one allocator, large ones kept where they were read.
pub struct PooledValues {
    /// Copies the small values into the value pool.
    alloc: Allocator,
    /// The cut-off: values at least this long are kept.
    keep_from: usize,
}

impl PooledValues {
    /// Copies values shorter than `keep_from` into `pool`, whose budget is
    /// `--maxmemory`.
    pub fn new(pool: &Pool, keep_from: usize) -> PooledValues {
        PooledValues { alloc: pool.allocator(0), keep_from }
    }
}

/// A value the refbuf mode stores.
pub enum PooledValue {
    /// Copied into the value pool.
    Copied(Slice),
    /// Kept in the read buf it arrived in, handed to `Bytes` without a copy
    /// (`Slice::into_bytes`), so that each `GET` shares it with the replies.
    /// Where the request sent it as a bulk string, `bytes` keeps the
    /// request's own `$len\r\n` in front of it (`header` bytes) and `\r\n`
    /// after it: the very reply a `GET` sends.
    Kept {
        /// The value, framed as a bulk string where `header > 0`.
        bytes: Bytes,
        /// Bytes of `$len\r\n` in front of the value; 0 where unframed.
        header: usize,
    },
}

impl AsRef<[u8]> for PooledValue {
    fn as_ref(&self) -> &[u8] {
        match self {
            PooledValue::Copied(slice) => slice,
            PooledValue::Kept { bytes, header: 0 } => bytes,
            PooledValue::Kept { bytes, header } => &bytes[*header..bytes.len() - 2],
        }
    }
}

impl Values for PooledValues {
    type Value = PooledValue;

    fn take<R: Request<Value = PooledValue>>(
        &mut self,
        req: &mut R,
        range: Range<usize>,
    ) -> Option<PooledValue> {
        if range.len() >= self.keep_from { Some(req.cut(range)) } else { self.copy(req.arg(&range)) }
    }

    fn copy(&mut self, bytes: &[u8]) -> Option<PooledValue> {
        // Never waits: a used-up budget is an OOM reply, at once.
        self.alloc.try_copy_from_slice(bytes).ok().map(PooledValue::Copied)
    }

    fn reply(value: &PooledValue, out: &mut impl Out) -> io::Result<()> {
        match value {
            PooledValue::Copied(slice) => out.bulk(slice),
            PooledValue::Kept { bytes, header: 0 } => {
                out.line(b'$', bytes.len() as i64)?;
                out.put_shared(bytes)?;
                out.put(b"\r\n")
            }
            PooledValue::Kept { bytes, .. } => out.put_shared(bytes),
        }
    }
}

/// Values as `Bytes`, kept as cut from the connection's `BytesMut`.
pub struct BytesValues;

impl Values for BytesValues {
    type Value = Bytes;

    fn take<R: Request<Value = Bytes>>(&mut self, req: &mut R, range: Range<usize>) -> Option<Bytes> {
        Some(req.cut(range))
    }

    fn copy(&mut self, bytes: &[u8]) -> Option<Bytes> {
        Some(Bytes::copy_from_slice(bytes))
    }
}

/// The keyspace, shared by every connection.
pub struct Store<V: Values> {
    /// The keyspace, under its lock.
    inner: Mutex<Keyspace<V>>,
}

/// The keys and values, under the store's lock.
pub struct Keyspace<V: Values> {
    /// The values by key.
    map: HashMap<Box<[u8]>, V::Value>,
    /// Sum of the stored values' lengths.
    used: usize,
    /// The budget: `used` never exceeds it.
    max: usize,
    /// How values are kept.
    values: V,
}

impl<V: Values> Store<V> {
    /// An empty store keeping values with `values`, refusing writes past
    /// `max` bytes of values.
    pub fn new(values: V, max: usize) -> Store<V> {
        Store { inner: Mutex::new(Keyspace { map: HashMap::new(), used: 0, max, values }) }
    }

    /// The keyspace, locked.
    pub fn lock(&self) -> MutexGuard<'_, Keyspace<V>> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The reply to a write refused for the budget.
#[derive(Debug)]
pub struct OutOfMemory;

impl<V: Values> Keyspace<V> {
    /// The value of `key`.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.value(key).map(AsRef::as_ref)
    }

    /// The value of `key` as stored.
    pub fn value(&self, key: &[u8]) -> Option<&V::Value> {
        self.map.get(key)
    }

    /// Whether `key` holds a value.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.map.contains_key(key)
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether writing `bytes` more would stay within the budget.
    pub fn has_room(&self, bytes: usize) -> bool {
        self.used.checked_add(bytes).is_some_and(|total| total <= self.max)
    }

    /// The argument of `req` at `range` as it is to be stored (see
    /// `Values::take`), within the budget.
    pub fn take<R: Request<Value = V::Value>>(
        &mut self,
        req: &mut R,
        range: Range<usize>,
    ) -> Result<V::Value, OutOfMemory> {
        if !self.has_room(range.len()) {
            return Err(OutOfMemory);
        }
        self.values.take(req, range).ok_or(OutOfMemory)
    }

    /// A copy of `bytes` to store, within the budget.
    pub fn copy(&mut self, bytes: &[u8]) -> Result<V::Value, OutOfMemory> {
        if !self.has_room(bytes.len()) {
            return Err(OutOfMemory);
        }
        self.values.copy(bytes).ok_or(OutOfMemory)
    }

    /// Stores `value` (made by `take` or `copy`) under `key`.
    pub fn insert(&mut self, key: &[u8], value: V::Value) {
        self.used += value.as_ref().len();
        let old = match self.map.get_mut(key) {
            Some(slot) => Some(std::mem::replace(slot, value)),
            None => self.map.insert(key.into(), value),
        };
        if let Some(old) = old {
            self.used -= old.as_ref().len();
        }
    }

    /// Removes `key`; whether it held a value.
    pub fn remove(&mut self, key: &[u8]) -> bool {
        match self.map.remove(key) {
            Some(old) => {
                self.used -= old.as_ref().len();
                true
            }
            None => false,
        }
    }

    /// Removes every key.
    pub fn clear(&mut self) {
        self.map.clear();
        self.used = 0;
    }
}
