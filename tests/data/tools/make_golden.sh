#!/usr/bin/env bash
# Writes tests/data/golden/*: tshark's view of every test capture, and of
# vxlan_encap's output for the Ethernet ones. Each golden file's first line
# is the command that made it. Run from the repository root after
# `cargo build --release --example vxlan_encap`.
set -euo pipefail
mkdir -p tests/data/golden
flows_fields="-e frame.len -e frame.protocols -e ip.src -e ip.dst -e ipv6.src -e ipv6.dst -e tcp.srcport -e tcp.dstport -e udp.srcport -e udp.dstport"
vxlan_fields="-e frame.number -e vxlan.vni -e eth.src -e eth.dst -e ip.src -e ip.dst -e ip.flags.df -e ip.ttl -e ip.checksum.status -e udp.srcport -e udp.dstport -e udp.checksum -e ipv6.src -e ipv6.dst"
for f in tests/data/*.pcap tests/data/*.pcapng; do
    name=$(basename "$f")
    cmd="tshark -r $f -o ip.defragment:FALSE -o ipv6.defragment:FALSE -T fields -E occurrence=f $flows_fields | python3 tests/data/tools/tshark_flows.py"
    { echo "# $cmd"; eval "$cmd"; } >"tests/data/golden/$name.flows"
done
for name in http dns ipv6 vlan; do
    out=/tmp/refbuf-golden-$name.vxlan.pcap
    target/release/examples/vxlan_encap tests/data/$name.pcapng $out --vni 4242 --outer-src 198.51.100.1 --outer-dst 198.51.100.2
    cmd="tshark -r $out -o ip.check_checksum:TRUE -o ip.defragment:FALSE -o ipv6.defragment:FALSE -T fields -E occurrence=a -E aggregator=, $vxlan_fields"
    { echo "# target/release/examples/vxlan_encap tests/data/$name.pcapng $out --vni 4242 --outer-src 198.51.100.1 --outer-dst 198.51.100.2"
      echo "# $cmd"
      eval "$cmd"; } >"tests/data/golden/$name.vxlan"
done
