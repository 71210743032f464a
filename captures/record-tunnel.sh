#!/usr/bin/env bash
# Records one sftunnel-like TLS 1.2 mutual-auth session between stock openssl peers (as in
# record.sh) carried through real Linux kernel VXLAN tunnels, and records it twice: on the
# underlay (what a tap behind the tunnel sees) and on the innermost overlay device (the same
# session unwrapped, for the tests to compare with). Two private network namespaces, "fmc" and
# "ftd", joined by a veth pair; every address is a documentation range inside them. Offloads
# are off so frames are wire-sized. Needs root, tcpdump, ethtool, iproute2, openssl.
#
# usage: record-tunnel.sh PKI_DIR OUT KIND
#   KIND vxlan            IPv4 underlay, VXLAN VNI 42, IPv4 inside
#        vxlan6           IPv6 underlay, VXLAN VNI 42, IPv6 inside
#        vxlan-in-vxlan   IPv4 underlay, VXLAN VNI 42 carrying IPv6, in it VXLAN VNI 43,
#                         IPv4 inside (this kernel has no 802.1Q either, CONFIG_VLAN_8021Q)
# Writes OUT (underlay, `udp port 4789`) and OUT.inner.pcap (innermost device, `tcp port
# 8305`); what openssl printed goes to OUT.{client,server}.txt.
#
# Other tunnel kinds (ipip, sit, gre, gretap, erspan, ip6gre, ip6tnl, geneve) need kernel
# options this machine's kernel was built without (CONFIG_NET_IPIP, CONFIG_NET_IPGRE,
# CONFIG_IPV6_SIT, CONFIG_IPV6_TUNNEL, CONFIG_IPV6_GRE, CONFIG_GENEVE, no modules): their tests
# wrap real recorded frames instead (tests/it/encap.rs). Where the kernel has them, the same
# shape works with `ip link add t0 type gre|gretap|erspan|... local A remote B`.
set -euo pipefail
pki=$(cd "$1" && pwd); out=$(readlink -f "$2"); kind=$3
ns_s=sftun-fmc$$; ns_c=sftun-ftd$$
cleanup() {
  for ns in $ns_s $ns_c; do
    ip netns pids $ns 2>/dev/null | xargs -r kill 2>/dev/null || true
    ip netns del $ns 2>/dev/null || true
  done
}
trap cleanup EXIT
ip netns add $ns_s; ip netns add $ns_c
S() { ip netns exec $ns_s "$@"; }
C() { ip netns exec $ns_c "$@"; }
quiet() { ethtool -K "$1" tso off gso off gro off tx off rx off >/dev/null 2>&1 || true; }

for ns in $ns_s $ns_c; do ip netns exec $ns ip link set lo up; done
ip link add ul0 netns $ns_s type veth peer name ul0 netns $ns_c
S ip link set ul0 address 02:00:00:00:00:01 mtu 1500 up; S bash -c "$(declare -f quiet); quiet ul0"
C ip link set ul0 address 02:00:00:00:00:02 mtu 1500 up; C bash -c "$(declare -f quiet); quiet ul0"

# tunnel NS DEV VNI LOCAL REMOTE MAC MTU: a point-to-point VXLAN device, up, offloads off.
# The MTU leaves room for the outer headers (IPv4 50 bytes, IPv6 70), so that nothing is
# fragmented: a device without a lower one would otherwise default to 1500.
tunnel() {
  local ns=$1 dev=$2 vni=$3 local=$4 remote=$5 mac=$6 mtu=$7
  ip netns exec "$ns" ip link add "$dev" type vxlan id "$vni" local "$local" remote "$remote" \
    dstport 4789 nolearning
  ip netns exec "$ns" ip link set "$dev" address "$mac" mtu "$mtu" up
  ip netns exec "$ns" bash -c "$(declare -f quiet); quiet $dev"
}
# v4only NS DEV: no IPv6 on an IPv4 overlay (no router solicitations or MLD reports inside).
v4only() { ip netns exec "$1" sysctl -qw "net.ipv6.conf.$2.disable_ipv6=1"; }
# addr NS DEV ADDR/LEN PEER PEER_MAC: an address and a permanent neighbour, so that no ARP or
# neighbour discovery crosses the tunnel (the recording holds the session only).
addr() {
  ip netns exec "$1" ip addr add "$3" dev "$2" nodad 2>/dev/null || ip netns exec "$1" ip addr add "$3" dev "$2"
  ip netns exec "$1" ip neigh replace "$4" lladdr "$5" dev "$2" nud permanent
}

case $kind in
  vxlan)
    addr $ns_s ul0 192.0.2.1/24 192.0.2.2 02:00:00:00:00:02
    addr $ns_c ul0 192.0.2.2/24 192.0.2.1 02:00:00:00:00:01
    tunnel $ns_s vx0 42 192.0.2.1 192.0.2.2 02:00:00:00:01:01 1450
    tunnel $ns_c vx0 42 192.0.2.2 192.0.2.1 02:00:00:00:01:02 1450
    v4only $ns_s vx0; v4only $ns_c vx0
    addr $ns_s vx0 198.51.100.1/24 198.51.100.2 02:00:00:00:01:02
    addr $ns_c vx0 198.51.100.2/24 198.51.100.1 02:00:00:00:01:01
    inner=vx0; host=198.51.100.1; fam=() ;;
  vxlan6)
    addr $ns_s ul0 2001:db8::1/64 2001:db8::2 02:00:00:00:00:02
    addr $ns_c ul0 2001:db8::2/64 2001:db8::1 02:00:00:00:00:01
    tunnel $ns_s vx0 42 2001:db8::1 2001:db8::2 02:00:00:00:01:01 1430
    tunnel $ns_c vx0 42 2001:db8::2 2001:db8::1 02:00:00:00:01:02 1430
    addr $ns_s vx0 2001:db8:1::1/64 2001:db8:1::2 02:00:00:00:01:02
    addr $ns_c vx0 2001:db8:1::2/64 2001:db8:1::1 02:00:00:00:01:01
    inner=vx0; host='[2001:db8:1::1]'; fam=(-6) ;;
  vxlan-in-vxlan)
    addr $ns_s ul0 192.0.2.1/24 192.0.2.2 02:00:00:00:00:02
    addr $ns_c ul0 192.0.2.2/24 192.0.2.1 02:00:00:00:00:01
    tunnel $ns_s vx0 42 192.0.2.1 192.0.2.2 02:00:00:00:01:01 1450
    tunnel $ns_c vx0 42 192.0.2.2 192.0.2.1 02:00:00:00:01:02 1450
    addr $ns_s vx0 2001:db8:1::1/64 2001:db8:1::2 02:00:00:00:01:02
    addr $ns_c vx0 2001:db8:1::2/64 2001:db8:1::1 02:00:00:00:01:01
    tunnel $ns_s vx1 43 2001:db8:1::1 2001:db8:1::2 02:00:00:00:02:01 1380
    tunnel $ns_c vx1 43 2001:db8:1::2 2001:db8:1::1 02:00:00:00:02:02 1380
    v4only $ns_s vx1; v4only $ns_c vx1
    addr $ns_s vx1 203.0.113.1/24 203.0.113.2 02:00:00:00:02:02
    addr $ns_c vx1 203.0.113.2/24 203.0.113.1 02:00:00:00:02:01
    inner=vx1; host=203.0.113.1; fam=() ;;
  *) echo "unknown kind $kind" >&2; exit 2 ;;
esac
sleep 1

C tcpdump --immediate-mode -q -i ul0 -s 0 -w "$out" udp port 4789 2>/dev/null & upid=$!
C tcpdump --immediate-mode -q -i $inner -s 0 -w "$out.inner.pcap" tcp port 8305 2>/dev/null & ipid=$!
sleep 1
www=$(mktemp -d); echo "sftunnel heartbeat" > "$www/hb.txt"
(cd "$www" && exec ip netns exec $ns_s openssl s_server "${fam[@]}" -accept 8305 -tls1_2 -Verify 1 \
  -verify_return_error -CAfile "$pki/ca.pem" -cert "$pki/fmc.pem" -key "$pki/fmc.key" -naccept 1 -WWW \
  > "$out.server.txt" 2>&1) & spid=$!
sleep 1
printf 'GET /hb.txt HTTP/1.0\r\n\r\n' | C timeout 10 openssl s_client -ign_eof -connect "$host:8305" \
  -cert "$pki/ftd.pem" -key "$pki/ftd.key" -CAfile "$pki/ca.pem" -verify_return_error \
  > "$out.client.txt" 2>&1 || true
sleep 1; kill $spid 2>/dev/null || true; wait $spid 2>/dev/null || true
sleep 1; kill $upid $ipid; wait $upid $ipid 2>/dev/null || true
rm -rf "$www"; ls -la "$out" "$out.inner.pcap"
