//! Code shared by the examples (`echo_server`, `echo_client`, `udp_relay`)
//! and by `tests/net.rs`, which runs the same server, client and relay
//! in-process.
//!
//! - `args`: the `main` the examples share, `--duration`'s parser, and the
//!   options both echo servers take (this one and `tokio_echo`);
//! - `frame`: the wire format (4-byte big-endian length, then the payload),
//!   socket set-up with `socket2`, and reading a frame with a `Reader`;
//! - `server`: the echo server, in refbuf and `--baseline` modes;
//! - `outcome`: what an echo server reports (`ConnEnd`, `Summary`), this one
//!   and the tokio one in `examples/tokio_common/`;
//! - `client`: the echo client that checks every byte;
//! - `relay`: the UDP relay and its loopback demo.

#![allow(
    dead_code,
    reason = "each example uses a different part of this module, so in any one of them the rest is unused"
)]

pub mod args;
pub mod client;
pub mod frame;
pub mod outcome;
pub mod relay;
pub mod server;
