#!/usr/bin/env python3
"""`add_vlan_tags.py IN OUT`: copies the classic pcap IN (little-endian,
Ethernet) to OUT with VLAN tags inserted after the MAC addresses, because
this machine's kernel has no 802.1Q support to tag real traffic: TCP frames
get an 802.1Q tag (VID 100), UDP frames an 802.1ad tag (VID 200) over an
802.1Q tag (VID 300), every other frame an 802.1Q tag (VID 100). Lengths and
timestamps are kept, plus the tag bytes."""
import struct
import sys

src, dst = open(sys.argv[1], "rb").read(), open(sys.argv[2], "wb")
dst.write(src[:24])
at = 24
while at < len(src):
    secs, frac, caplen, wire = struct.unpack("<IIII", src[at:at + 16])
    frame = src[at + 16:at + 16 + caplen]
    at += 16 + caplen
    ipproto = frame[23] if frame[12:14] == b"\x08\x00" else None
    if ipproto == 17:
        tags = b"\x88\xa8" + struct.pack("!H", 200) + b"\x81\x00" + struct.pack("!H", 300)
    else:
        tags = b"\x81\x00" + struct.pack("!H", 100)
    frame = frame[:12] + tags + frame[12:]
    dst.write(struct.pack("<IIII", secs, frac, caplen + len(tags), wire + len(tags)) + frame)
