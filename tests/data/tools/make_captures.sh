#!/usr/bin/env bash
# Makes the test captures in tests/data from real traffic, in network
# namespaces this script creates (and deletes): see tests/data/README.md.
# Needs root, tshark, editcap, curl and python3. Run from the repository root.
set -euo pipefail
out=tests/data
tools=$out/tools
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; ip netns del pcap-lo 2>/dev/null || true;
      ip netns del pcap-a 2>/dev/null || true; ip netns del pcap-b 2>/dev/null || true; rm -rf "$tmp"' EXIT

# Runs "$@" in namespace $ns, capturing with tshark ARGS... into $tmp/$name.pcapng
# until the command ends.
capture() {
    local ns=$1 name=$2; shift 2
    local args=()
    while [ "$1" != -- ]; do args+=("$1"); shift; done; shift
    ip netns exec "$ns" tshark -q "${args[@]}" -w "$tmp/$name.pcapng" 2>"$tmp/$name.log" &
    local pid=$!
    sleep 2
    ip netns exec "$ns" "$@"
    sleep 1
    kill -INT $pid; wait $pid || true
}

# Writes $name.pcap and $name.pcapng in tests/data from a capture in $tmp.
commit_forms() {
    local name=$1
    editcap -F pcap "$tmp/$name.pcapng" "$out/$name.pcap"
    editcap -F pcapng "$tmp/$name.pcapng" "$out/$name.pcapng"
}

ip netns add pcap-lo
ip netns exec pcap-lo ip link set lo up mtu 1500
mkdir -p "$tmp/www" && python3 -c "print('refbuf ' * 1500)" >"$tmp/www/page.txt"
ip netns exec pcap-lo python3 -m http.server 8080 --bind 127.0.0.1 --directory "$tmp/www" >/dev/null 2>&1 &
ip netns exec pcap-lo python3 -m http.server 8081 --bind ::1 --directory "$tmp/www" >/dev/null 2>&1 &
sleep 1

# HTTP over IPv4 loopback: two fetches with curl.
capture pcap-lo http -i lo -f "tcp port 8080" -- \
    sh -c 'curl -s http://127.0.0.1:8080/page.txt >/dev/null; curl -s http://127.0.0.1:8080/ >/dev/null'

# DNS over UDP to a local server, plus one query to a closed port (an ICMP
# port unreachable comes back) and a big answer that IPv4 fragments.
capture pcap-lo dns -i lo -f "udp or icmp" -- sh -c "
    python3 $tools/dns.py server 127.0.0.1 5353 & s=\$!; sleep 0.5
    python3 $tools/dns.py client 127.0.0.1 5353
    python3 -c \"import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('127.0.0.1', 5399))\"
    sleep 0.5; kill \$s"

# IPv6 loopback: an HTTP fetch, DNS, and UDP with extension headers.
capture pcap-lo ipv6 -i lo -f "ip6" -- sh -c "
    curl -s 'http://[::1]:8081/page.txt' >/dev/null
    python3 $tools/dns.py server ::1 5353 & s=\$!; sleep 0.5
    python3 $tools/dns.py client ::1 5353
    python3 $tools/ipv6_ext.py 6000
    sleep 0.5; kill \$s"

# Linux cooked captures of everything on every interface (SLL and SLL2).
for link in LINUX_SLL LINUX_SLL2; do
    name=$(echo sll${link#LINUX_SLL} | tr -d _)
    capture pcap-lo "$name" -i any -y $link -f "tcp port 8080 or udp port 5353" -- sh -c "
        python3 $tools/dns.py server 127.0.0.1 5353 & s=\$!; sleep 0.5
        curl -s http://127.0.0.1:8080/ >/dev/null
        python3 $tools/dns.py client 127.0.0.1 5353
        sleep 0.5; kill \$s"
done

# Raw IP (link type 101): UDP over IPv4 and IPv6 through a tun device,
# answered by tun_echo.py.
ip netns exec pcap-lo ip tuntap add dev tun0 mode tun
ip netns exec pcap-lo python3 $tools/tun_echo.py tun0 10 &
sleep 0.5
ip netns exec pcap-lo ip link set tun0 up
ip netns exec pcap-lo ip addr add 192.0.2.1/24 dev tun0
ip netns exec pcap-lo ip addr add 2001:db8::1/64 dev tun0 nodad
capture pcap-lo rawip -i tun0 -- sh -c "
    python3 $tools/dns.py client 192.0.2.99 53
    python3 $tools/dns.py client 2001:db8::99 53"

# Ethernet between two namespaces over a veth pair, then VLAN tags added by
# add_vlan_tags.py (the kernel here has no 802.1Q module).
ip netns add pcap-a
ip netns add pcap-b
ip link add veth-a netns pcap-a type veth peer name veth-b netns pcap-b
ip netns exec pcap-a sh -c 'ip link set lo up; ip link set veth-a up; ip addr add 192.0.2.1/24 dev veth-a'
ip netns exec pcap-b sh -c 'ip link set lo up; ip link set veth-b up; ip addr add 192.0.2.2/24 dev veth-b'
ip netns exec pcap-b python3 -m http.server 8080 --bind 192.0.2.2 --directory "$tmp/www" >/dev/null 2>&1 &
ip netns exec pcap-b python3 $tools/dns.py server 192.0.2.2 5353 &
sleep 1
capture pcap-a veth -i veth-a -- sh -c "
    curl -s http://192.0.2.2:8080/page.txt >/dev/null
    python3 $tools/dns.py client 192.0.2.2 5353"
editcap -F pcap "$tmp/veth.pcapng" "$tmp/veth.pcap"
python3 $tools/add_vlan_tags.py "$tmp/veth.pcap" "$tmp/vlan.pcap"
editcap -F pcapng "$tmp/vlan.pcap" "$tmp/vlan.pcapng"

for name in http dns ipv6 sll sll2 rawip vlan; do
    commit_forms $name
done
ls -l $out/*.pcap $out/*.pcapng
