#!/usr/bin/env bash
# Re-records the tunnel captures (root needed: network namespaces, VXLAN devices, tcpdump).
# Each: a PKI from pki.sh, one session through real kernel VXLAN tunnels recorded by
# record-tunnel.sh on the underlay (CAPTURE) and on the innermost device (CAPTURE.inner.pcap),
# the CA both peers trusted kept as PKI.ca.pem, and what openssl said about verification kept
# as CAPTURE.{client,server}.log. Keys stay in the temporary directory.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
rec() { # file pki kind
  local file=$1 pki=$2 kind=$3
  "$here/record-tunnel.sh" "$pki" "$here/$file" "$kind" >/dev/null
  chmod 644 "$here/$file" "$here/$file.inner.pcap"
  cp "$pki/ca.pem" "$here/$pki.ca.pem"; chmod 644 "$here/$pki.ca.pem"
  for side in client server; do
    grep -aE 'depth=|verify error|Verification|Verify return|error:|alert' "$here/$file.$side.txt" \
      > "$here/$file.$side.log" || true
    rm "$here/$file.$side.txt"
  done
}
"$here/pki.sh" tunnel-valid >/dev/null
rec sftunnel-vxlan.pcap tunnel-valid vxlan
rec sftunnel-vxlan6.pcap tunnel-valid vxlan6
# InternalCA expired 2024-06-01, as sftunnel-ca-expired.pcap: the FTD refuses the FMC's chain
# (err 10 at depth 1, alert 45), seen through two VXLAN tunnels.
"$here/pki.sh" tunnel-ca-expired 20140601000000Z 20240601000000Z 20240101000000Z 20340101000000Z \
  20240101000000Z 20340101000000Z >/dev/null
rec sftunnel-vxlan-in-vxlan-ca-expired.pcap tunnel-ca-expired vxlan-in-vxlan
ls -la "$here"/sftunnel-vxlan*
