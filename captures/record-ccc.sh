#!/usr/bin/env bash
# Records a TLS session that leaves TLS again: an FTP control channel (ftp_ccc.py, Python's ssl
# module = OpenSSL on both ends) that goes into TLS 1.2 with AUTH TLS, is asked for a client
# certificate and sends none, then clears the channel with CCC (close_notify each way) and
# goes on in cleartext. Same private network namespace, 1500-byte MTU and no offloads as
# record.sh. Needs root, tcpdump, iproute2, python3.
#
# usage: record-ccc.sh PKI_DIR OUT   (PKI_DIR from pki.sh: ca.pem, fmc.pem, fmc.key)
set -euo pipefail
pki=$(cd "$1" && pwd); out=$(readlink -f "$2")
here=$(cd "$(dirname "$0")" && pwd)
ns=sfccc$$
ip netns add $ns; trap 'ip netns pids $ns | xargs -r kill 2>/dev/null; ip netns del $ns' EXIT
ip netns exec $ns ip link set lo up
ip netns exec $ns ip link set lo mtu 1500
ip netns exec $ns ethtool -K lo tso off gso off gro off >/dev/null 2>&1 || true
ip netns exec $ns tcpdump --immediate-mode -q -i lo -s 0 -w "$out" tcp port 2121 2>/dev/null & cpid=$!
sleep 1
ip netns exec $ns python3 "$here/ftp_ccc.py" server 2121 "$pki/fmc.pem" "$pki/fmc.key" "$pki/ca.pem" & spid=$!
sleep 1
ip netns exec $ns timeout 20 python3 "$here/ftp_ccc.py" client 2121 "$pki/ca.pem"
wait $spid
sleep 1; kill $cpid; wait $cpid 2>/dev/null || true
ls -la "$out"
