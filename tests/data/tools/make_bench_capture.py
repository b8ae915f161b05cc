#!/usr/bin/env python3
"""`make_bench_capture.py OUT [FRAMES]`: writes a classic pcap of FRAMES
(default 1,000,000) full-size Ethernet frames (1514 bytes: IPv4, TCP, 1460
bytes of payload) spread over 64 flows, for measuring pcap_flows. The
frames are synthetic; the file is about 1.5 GB, so keep it out of the
repository."""
import struct
import sys

out, count = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
payload = bytes(range(256)) * 5 + bytes(180)
frames = []
for flow in range(64):
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 1500, flow, 0x4000, 64, 6, 0,
                     bytes([192, 0, 2, 1]), bytes([198, 51, 100, flow]))
    tcp = struct.pack("!HHIIBBHHH", 40000 + flow, 443, 1, 1, 0x50, 0x10, 65535, 0, 0)
    frames.append(b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x08\x00" + ip + tcp + payload)
with open(out, "wb") as f:
    f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for i in range(count):
        frame = frames[i % 64]
        f.write(struct.pack("<IIII", 1_700_000_000 + i // 100_000, i % 100_000 * 10, len(frame), len(frame)))
        f.write(frame)
