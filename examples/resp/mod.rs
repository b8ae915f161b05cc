//! A Redis-protocol (RESP2) server on refbuf, shared by the `resp_server`
//! example and by `tests/resp.rs`, which runs it in-process.
//!
//! - `parse`: finding whole requests in the buffered bytes, and walking
//!   their arguments, with no allocation;
//! - `command`: the commands and their replies, the same in both modes;
//! - `store`: the keyspace, values kept as slices or as `Bytes`, and the
//!   `--maxmemory` budget;
//! - `server`: the accept loop and the connections, in refbuf and
//!   `--baseline` modes;
//! - `tokio_common`: the tokio examples' shared code, for the `main` the
//!   examples share and the runtime.

#![allow(dead_code, reason = "the example and the test each use a different part of this module")]

pub mod command;
pub mod parse;
pub mod server;
pub mod store;
#[path = "../tokio_common/mod.rs"]
pub mod tokio_common;
