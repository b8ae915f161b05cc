//! The packet code shared by the `pcap_flows` and `vxlan_encap` examples,
//! by `tests/pcap.rs` and by the `pcap` fuzz target, each of which mounts
//! this folder as one module. It is not part of the library.
//!
//! - `capture`: reading pcap and pcapng through a `Reader`, each record
//!   header and frame a slice parsed in place;
//! - `dissect`: a frame's TCP or UDP flow (link layers, VLAN tags, IPv4,
//!   IPv6 extension headers);
//! - `flows`: counting frames per flow, and `pcap_flows`' report;
//! - `vxlan`: VXLAN encapsulation in a slice's headroom;
//! - `write`: classic pcap written with vectored writes, and a file written
//!   all or nothing.
//!
//! Nothing here may need a crate beyond `refbuf` and `std`: the fuzz target
//! mounts this module too, and its manifest names no other.

pub mod capture;
pub mod dissect;
pub mod flows;
pub mod vxlan;
pub mod write;
