#!/usr/bin/env python3
"""IPv6 UDP datagrams to [::1]:PORT carrying extension headers the kernel
builds from ancillary data: hop-by-hop options, destination options, a type 0
routing header (segments left 0), and one 3000-byte datagram that is
fragmented on a 1500-byte MTU."""
import socket
import struct
import sys


def checksum(data):
    data += b"\0" * (len(data) % 2)
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def routed_datagram(port, payload, hop_by_hop):
    """IPv6 ::1 -> ::1, [hop-by-hop,] type 0 routing header, UDP to port."""
    loop = socket.inet_pton(socket.AF_INET6, "::1")
    udp_len = 8 + len(payload)
    pseudo = loop + loop + struct.pack("!IxxxB", udp_len, 17)
    udp = struct.pack("!HHHH", port + 1, port, udp_len, 0) + payload
    udp = udp[:6] + struct.pack("!H", checksum(pseudo + udp)) + udp[8:]
    routing = bytes([17, 2, 0, 0, 0, 0, 0, 0]) + loop
    exts, first = routing, 43
    if hop_by_hop:
        exts, first = bytes([43, 0, 1, 4, 0, 0, 0, 0]) + routing, 0
    header = struct.pack("!IHBB", 6 << 28, len(exts) + udp_len, first, 64) + loop + loop
    return header + exts + udp

port = int(sys.argv[1])
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.bind(("::1", port + 1))
# An 8-byte options header: next header and length (filled by the kernel),
# then a PadN option covering the remaining 6 bytes.
opts = bytes([0, 0, 1, 4, 0, 0, 0, 0])
cases = [
    ("hop-by-hop", [(socket.IPPROTO_IPV6, socket.IPV6_HOPOPTS, opts)]),
    ("destination options", [(socket.IPPROTO_IPV6, socket.IPV6_DSTOPTS, opts)]),
    ("both", [(socket.IPPROTO_IPV6, socket.IPV6_HOPOPTS, opts), (socket.IPPROTO_IPV6, socket.IPV6_DSTOPTS, opts)]),
]
for name, cmsgs in cases:
    for i in range(2):
        try:
            s.sendmsg([f"{name} {i}".encode()], cmsgs, 0, ("::1", port))
        except OSError as e:
            print(f"{name}: {e}", file=sys.stderr)
s.sendto(b"F" * 3000, ("::1", port))
raw = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
for hop_by_hop in (False, True):
    raw.sendto(routed_datagram(port, b"routed", hop_by_hop), ("::1", 0))
