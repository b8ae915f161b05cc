#!/usr/bin/env python3
"""Opens the tun device NAME (which `ip tuntap add` made) and answers every
UDP datagram written to it by swapping its addresses and ports, which keeps
both checksums valid; stops after COUNT answers."""
import fcntl
import os
import struct
import sys

name, count = sys.argv[1], int(sys.argv[2])
fd = os.open("/dev/net/tun", os.O_RDWR)
IFF_TUN, IFF_NO_PI, TUNSETIFF = 0x0001, 0x1000, 0x400454CA
fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
answered = 0
while answered < count:
    p = bytearray(os.read(fd, 65536))
    if p[0] >> 4 == 4 and p[9] == 17:
        hl = (p[0] & 15) * 4
        p[12:16], p[16:20] = p[16:20], p[12:16]
    elif p[0] >> 4 == 6 and p[6] == 17:
        hl = 40
        p[8:24], p[24:40] = p[24:40], p[8:24]
    else:
        continue
    p[hl:hl + 2], p[hl + 2:hl + 4] = p[hl + 2:hl + 4], p[hl:hl + 2]
    os.write(fd, bytes(p))
    answered += 1
