#!/usr/bin/env bash
# Records a capture that starts mid-session, as when tcpdump is started on a tunnel already up:
# a TLS 1.2 session between stock openssl peers (s_client sends ten lines, 0.1 s apart, to
# s_server, then closes with close_notify and FIN) is recorded whole as OUT.full.pcap in the
# same private network namespace as record.sh, then cut with editcap so that OUT starts at its
# fourth application-data record: no hello, no certificate, only application data, the
# closing encrypted alert and the FINs. Needs root, tcpdump, iproute2, openssl, tshark/editcap.
#
# usage: record-cut.sh PKI_DIR OUT   (PKI_DIR from pki.sh: ca.pem, fmc.pem, fmc.key)
set -euo pipefail
pki=$(cd "$1" && pwd); out=$(readlink -f "$2")
full=$(mktemp --suffix=.pcap); trap 'rm -f "$full"' EXIT
ns=sfcut$$
ip netns add $ns; trap 'ip netns pids $ns | xargs -r kill 2>/dev/null; ip netns del $ns; rm -f "$full"' EXIT
ip netns exec $ns ip link set lo up
ip netns exec $ns ip link set lo mtu 1500
ip netns exec $ns ethtool -K lo tso off gso off gro off >/dev/null 2>&1 || true
ip netns exec $ns tcpdump --immediate-mode -q -i lo -s 0 -w "$full" tcp port 8443 2>/dev/null & cpid=$!
sleep 1
# s_server sends what its stdin gives and closes at its end: keep it open past the client.
sleep 4 | ip netns exec $ns openssl s_server -accept 8443 -tls1_2 -naccept 1 -quiet \
  -cert "$pki/fmc.pem" -key "$pki/fmc.key" > /dev/null 2>&1 & spid=$!
sleep 1
for i in $(seq 10); do echo "line $i"; sleep 0.1; done \
  | ip netns exec $ns timeout 20 openssl s_client -quiet -no_ign_eof -connect 127.0.0.1:8443 \
      -CAfile "$pki/ca.pem" > /dev/null 2>&1 || true
wait $spid 2>/dev/null || true
sleep 1; kill $cpid; wait $cpid 2>/dev/null || true
first=$(tshark -n -r "$full" -Y 'tls.record.content_type == 23' -T fields -e frame.number | sed -n 4p)
last=$(tshark -n -r "$full" -T fields -e frame.number | tail -1)
editcap -r "$full" "$out" "$first-$last"
ls -la "$out"
