#!/usr/bin/env python3
"""tokio_echo in refbuf mode against --baseline, side by side.

Each round starts a fresh server in each mode, the two modes in alternating
order, drives it with tokio_load for SECONDS, reads the server's resident
memory from /proc/PID/statm every 100 ms (the peak is kept) and its CPU time
from /proc/PID/stat at the end, then stops it. Prints every run, the medians
and the refbuf/baseline frames/s ratio of each round. Linux only.

    cargo build --release --features tokio --example tokio_echo --example tokio_load
    python3 benches/tokio_echo.py --rounds 9 --seconds 5 --connections 64 --in-flight 16
    python3 benches/tokio_echo.py --rounds 5 --seconds 5 --connections 256 --max-bytes 8388608
"""

import argparse
import os
import re
import statistics
import subprocess
import time

LOAD_LINE = re.compile(
    r"([\d.]+) frames/s, ([\d.]+) MB/s; round trip p50 (\d+) us, p99 (\d+) us, p999 (\d+) us"
)
COLUMNS = "frames/s, MB/s, p50 us, p99 us, p999 us, peak RSS MiB, server CPU us/frame"


def run_once(args, baseline):
    """One server, one load run: the load's figures and the server's."""
    server = [f"{args.bin}/tokio_echo", "--addr", "127.0.0.1:0", "--duration", "3600"]
    if args.max_bytes is not None:
        server += ["--max-bytes", str(args.max_bytes)]
    if baseline:
        server.append("--baseline")
    srv = subprocess.Popen(server, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        addr = re.search(r"listening on ([^;]+);", srv.stdout.readline()).group(1)
        load = subprocess.Popen(
            [f"{args.bin}/tokio_load", "--addr", addr, "--connections", str(args.connections),
             "--in-flight", str(args.in_flight), "--min", str(args.min), "--max", str(args.max),
             "--duration", str(args.seconds)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        page = os.sysconf("SC_PAGE_SIZE")
        peak = 0
        while load.poll() is None:
            with open(f"/proc/{srv.pid}/statm") as f:
                peak = max(peak, int(f.read().split()[1]) * page)
            time.sleep(0.1)
        out, err = load.communicate()
        with open(f"/proc/{srv.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    finally:
        srv.terminate()
        srv.wait()
    if load.returncode != 0:
        raise SystemExit(f"tokio_load failed: {err.strip()}")
    fps, mbs, p50, p99, p999 = (float(x) for x in LOAD_LINE.search(out).groups())
    frames = int(re.search(r": (\d+) frames,", out).group(1))
    return fps, mbs, p50, p99, p999, peak / 2**20, cpu / frames * 1e6


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bin", default="target/release/examples")
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--seconds", type=float, default=5)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--in-flight", type=int, default=16)
    p.add_argument("--min", type=int, default=64)
    p.add_argument("--max", type=int, default=16384)
    p.add_argument("--max-bytes", type=int, default=None)
    args = p.parse_args()

    runs = {"refbuf": [], "baseline": []}
    for r in range(args.rounds):
        order = ["refbuf", "baseline"] if r % 2 == 0 else ["baseline", "refbuf"]
        for mode in order:
            row = run_once(args, mode == "baseline")
            runs[mode].append(row)
            print(f"round {r} {mode:8} " + "  ".join(f"{x:.1f}" for x in row), flush=True)
    print(f"medians ({COLUMNS}):")
    for mode, rows in runs.items():
        print(f"{mode:8} " + "  ".join(f"{statistics.median(c):.1f}" for c in zip(*rows)))
    ratios = [a[0] / b[0] for a, b in zip(runs["refbuf"], runs["baseline"])]
    print("frames/s refbuf/baseline by round: " + " ".join(f"{x:.2f}" for x in ratios)
          + f"; median {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
