#!/usr/bin/env bash
# Records sfdiag's own peers (`sfdiag serve` as the FMC, `sfdiag connect --once` as the FTD) on
# port 8305 inside a private network namespace (1500-byte MTU loopback, no offloads), the same
# way record.sh records stock openssl peers. Needs root, tcpdump, iproute2 and a built sfdiag.
#
# usage: record-sfdiag.sh SFDIAG_BIN PKI_ROOT OUT
#   PKI_ROOT: made by `sfdiag pki init --root PKI_ROOT --devices 1` (device ftd1).
# Both sides' messages-log lines are kept as OUT.server.log and OUT.client.log.
set -euo pipefail
bin=$(readlink -f "$1"); root=$(cd "$2" && pwd); out=$(readlink -f "$3")
ns=sfsd$$
ip netns add $ns; trap 'ip netns pids $ns | xargs -r kill 2>/dev/null; ip netns del $ns' EXIT
ip netns exec $ns ip link set lo up
ip netns exec $ns ip link set lo mtu 1500
ip netns exec $ns ethtool -K lo tso off gso off gro off >/dev/null 2>&1 || true
ip netns exec $ns tcpdump --immediate-mode -q -i lo -s 0 -w "$out" tcp port 8305 2>/dev/null & cpid=$!
sleep 1
ip netns exec $ns "$bin" serve --root "$root" --listen 127.0.0.1:8305 > "$out.server.log" 2>&1 & spid=$!
sleep 1
ip netns exec $ns timeout 20 "$bin" connect 127.0.0.1:8305 --root "$root" --device ftd1 --once \
  > "$out.client.log" 2>&1 || true
sleep 1; kill $spid 2>/dev/null || true; wait $spid 2>/dev/null || true
sleep 1; kill $cpid; wait $cpid 2>/dev/null || true
ls -la "$out"
