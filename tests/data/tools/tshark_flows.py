#!/usr/bin/env python3
"""Aggregates tshark's per-frame fields (frame.len, frame.protocols, ip.src,
ip.dst, ipv6.src, ipv6.dst, tcp.srcport, tcp.dstport, udp.srcport,
udp.dstport; first occurrences, tab-separated, on stdin) into pcap_flows'
report: a frame belongs to a flow where the first protocol after its first
IP layer (past IPv6 extension headers) is TCP or UDP; otherwise it is
"other"."""
import collections
import sys

EXTENSIONS = {"ipv6.hopopts", "ipv6.routing", "ipv6.dstopts", "ipv6.fraghdr"}
flows = collections.defaultdict(lambda: [0, 0])
packets = total = other = 0
for line in sys.stdin:
    length, protocols, ip_src, ip_dst, ip6_src, ip6_dst, tcp_sp, tcp_dp, udp_sp, udp_dp = line.rstrip("\n").split("\t")
    packets += 1
    total += int(length)
    layers = protocols.split(":")
    ip = next((i for i, p in enumerate(layers) if p in ("ip", "ipv6")), None)
    transport = None
    if ip is not None:
        rest = layers[ip + 1:]
        while rest and rest[0] in EXTENSIONS:
            rest.pop(0)
        transport = rest[0] if rest else None
    if transport not in ("tcp", "udp"):
        other += 1
        continue
    src, dst = (ip_src, ip_dst) if layers[ip] == "ip" else (ip6_src, ip6_dst)
    sport, dport = (tcp_sp, tcp_dp) if transport == "tcp" else (udp_sp, udp_dp)
    key = f"{transport.upper()} {src} {sport} {dst} {dport}"
    flows[key][0] += 1
    flows[key][1] += int(length)
lines = sorted((f"{k} {p} {b}" for k, (p, b) in flows.items()), key=lambda l: (-int(l.split()[-1]), l))
for line in lines:
    print(line)
print(f"total packets={packets} bytes={total} other={other}")
