#!/usr/bin/env bash
# Records sftunnel-like TLS 1.2 mutual-auth handshakes between stock openssl peers on port 8305,
# inside a private network namespace whose loopback has a 1500-byte MTU and no offloads (so the
# certificates span TCP segments as in a customer capture). After ../shared/tools/capture-lab.sh,
# with the variations the project's fixtures need. Needs root, tcpdump, dumpcap, iproute2.
#
# usage: record.sh PKI_DIR OUT [--v6] [--any] [--pcapng] [--no-client-cert] [--count N]
#   --v6              connect over ::1 instead of 127.0.0.1
#   --any             capture on the "any" device as Linux cooked v2 (SLL2), like `tcpdump -i any`
#   --pcapng          write pcapng (dumpcap) instead of pcap (tcpdump)
#   --no-client-cert  the client (FTD side) presents no certificate
#   --count N         N handshakes (default 1)
# What openssl s_client printed is kept as OUT.client.txt, s_server's as OUT.server.txt.
set -euo pipefail
pki=$(cd "$1" && pwd); out=$(readlink -f "$2"); shift 2
v6=0; any=0; ng=0; ccert=1; count=1
while [ $# -gt 0 ]; do
  case $1 in
    --v6) v6=1;; --any) any=1;; --pcapng) ng=1;; --no-client-cert) ccert=0;;
    --count) count=$2; shift;; *) echo "unknown option $1" >&2; exit 2;;
  esac; shift
done
ns=sfrec$$
ip netns add $ns; trap 'ip netns pids $ns | xargs -r kill 2>/dev/null; ip netns del $ns' EXIT
ip netns exec $ns ip link set lo up
ip netns exec $ns ip link set lo mtu 1500
ip netns exec $ns ethtool -K lo tso off gso off gro off >/dev/null 2>&1 || true
dev=lo; [ $any = 1 ] && dev=any
if [ $ng = 1 ]; then
  ip netns exec $ns dumpcap -q -i $dev -s 0 -f "tcp port 8305" -w "$out" 2>/dev/null & cpid=$!
else
  linktype=(); [ $any = 1 ] && linktype=(-y LINUX_SLL2)
  ip netns exec $ns tcpdump --immediate-mode -q -i $dev "${linktype[@]}" -s 0 -w "$out" tcp port 8305 2>/dev/null & cpid=$!
fi
sleep 1
fam=(); host=127.0.0.1; [ $v6 = 1 ] && { fam=(-6); host='[::1]'; }
www=$(mktemp -d); echo "sftunnel heartbeat" > "$www/hb.txt"
(cd "$www" && exec ip netns exec $ns openssl s_server "${fam[@]}" -accept 8305 -tls1_2 -Verify 1 -verify_return_error \
  -CAfile "$pki/ca.pem" -cert "$pki/fmc.pem" -key "$pki/fmc.key" -naccept "$count" -WWW > "$out.server.txt" 2>&1) & spid=$!
sleep 1
cert=(-cert "$pki/ftd.pem" -key "$pki/ftd.key"); [ $ccert = 0 ] && cert=()
: > "$out.client.txt"
for _ in $(seq "$count"); do
  printf 'GET /hb.txt HTTP/1.0\r\n\r\n' | ip netns exec $ns timeout 10 openssl s_client -ign_eof \
    -connect "$host:8305" "${cert[@]}" -CAfile "$pki/ca.pem" -verify_return_error >> "$out.client.txt" 2>&1 || true
done
sleep 1; kill $spid 2>/dev/null || true; wait $spid 2>/dev/null || true
sleep 1; kill $cpid; wait $cpid 2>/dev/null || true
rm -rf "$www"; ls -la "$out"
