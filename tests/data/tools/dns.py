#!/usr/bin/env python3
"""DNS over UDP for the test captures: `dns.py server ADDR PORT` answers A
queries (and a 3000-byte TXT answer for big.example., which IPv4 fragments on
a 1500-byte MTU) until it has answered 20; `dns.py client ADDR PORT` asks a
few names and waits for each answer."""
import socket
import struct
import sys


def query(qid, name, qtype):
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".") if p) + b"\0"
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + labels + struct.pack("!HH", qtype, 1)


def answer(packet):
    qid, _, qd = struct.unpack("!HHH", packet[:6])
    end = packet.index(b"\0", 12) + 5
    question = packet[12:end]
    name = question[:-4]
    if b"\x03big" in name:
        txt = b"".join(bytes([250]) + bytes([65 + i]) * 250 for i in range(12))
        rr = b"\xc0\x0c" + struct.pack("!HHIH", 16, 1, 60, len(txt)) + txt
    else:
        rr = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + bytes([192, 0, 2, qid % 250 + 1])
    return struct.pack("!HHHHHH", qid, 0x8180, 1, 1, 0, 0) + question + rr


def main():
    mode, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.settimeout(10)
    if mode == "server":
        s.bind((addr, port))
        for _ in range(20):
            packet, peer = s.recvfrom(4096)
            s.sendto(answer(packet), peer)
    else:
        names = ["www.example.", "mail.example.", "big.example.", "ns1.example.", "www.example."]
        for i, name in enumerate(names):
            s.sendto(query(0x1000 + i, name, 16 if name.startswith("big") else 1), (addr, port))
            s.recvfrom(8192)


main()
