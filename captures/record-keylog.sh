#!/usr/bin/env bash
# Records the key-log captures: TLS 1.3 sftunnel-like handshakes whose certificates are
# encrypted, each with the NSS key log its client wrote (`openssl s_client -keylogfile`), and a
# TLS 1.2 set whose encrypted alerts the key log names. Like record.sh: port 8305, a private
# network namespace per capture, its loopback at a 1500-byte MTU without offloads, tcpdump.
# The PKIs are the lab trees in ../certs (made by `sfdiag pki init`, see certs/README.md).
# Needs root, tcpdump, iproute2, openssl 3, python3 (its ssl module on OpenSSL 1.1.1+).
#
# usage: record-keylog.sh [OUTDIR]     (default: this folder)
# Each CAPTURE.pcap comes with CAPTURE.keylog (the client's key log) and CAPTURE.client.log /
# CAPTURE.server.log (what the peers said about verification and alerts).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$(readlink -f "${1:-$here}")
certs=$here/../certs
fmc_uuid=cdb123c8-4347-11ef-aca1-f3aa241412a1
ftd1_uuid=c8d5d5c6-87c9-11ef-a993-b9831565bc4e
# valid/: one InternalCA for the FMC and both devices; expired-ca/: another InternalCA,
# expired 2024-05-29, whose peer certificates are still within their dates.
v_ca=$certs/valid/fmc/etc/sf/ca_root/cacert.pem
v_fmc=$certs/valid/fmc/etc/sf/keys/sftunnel
v_ftd=$certs/valid/ftd1/var/sf/peers/$fmc_uuid/sftunnel
x_ca=$certs/expired-ca/fmc/etc/sf/ca_root/cacert.pem
x_fmc=$certs/expired-ca/fmc/etc/sf/keys/sftunnel
x_ftd=$certs/expired-ca/ftd1/var/sf/peers/6a0e4d52-0c1f-4b8e-a1d3-5e6f7a8b9c0d/sftunnel
: "$ftd1_uuid"

tmp=$(mktemp -d)
ns=
cleanup() {
  if [ -n "$ns" ]; then ip netns pids "$ns" | xargs -r kill 2>/dev/null || true; ip netns del "$ns"; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
echo "sftunnel heartbeat" > "$tmp/hb.txt"

# start NAME: a namespace with tcpdump writing OUT/NAME.pcap
start() {
  name=$1; ns=sfkl$$
  ip netns add "$ns"
  ip netns exec "$ns" ip link set lo up
  ip netns exec "$ns" ip link set lo mtu 1500
  ip netns exec "$ns" ethtool -K lo tso off gso off gro off >/dev/null 2>&1 || true
  rm -f "$out/$name.keylog"
  ip netns exec "$ns" tcpdump --immediate-mode -q -i lo -s 0 -w "$out/$name.pcap" tcp port 8305 2>/dev/null &
  cpid=$!
  sleep 1
}
# stop: ends the capture and the namespace; keeps what the peers said about verification.
stop() {
  sleep 1; kill "$cpid"; wait "$cpid" 2>/dev/null || true
  ip netns pids "$ns" | xargs -r kill 2>/dev/null || true
  ip netns del "$ns"; ns=
  chmod 644 "$out/$name.pcap"; chmod 600 "$out/$name.keylog"
  for side in client server; do
    grep -aE 'depth=|verify error|Verification|Verify return|error:|alert|handshake done|got:|post-handshake|KEYUPDATE|Protocol *:|Cipher is' \
      "$tmp/$name.$side.txt" > "$out/$name.$side.log" || true
  done
  ls -la "$out/$name.pcap"
}
# s_server NAME CERT CAFILE [options]: the FMC side, openssl, mutual TLS in the handshake
s_server() {
  local name=$1 cert=$2 ca=$3; shift 3
  (cd "$tmp" && exec ip netns exec "$ns" openssl s_server -accept 8305 -Verify 1 -verify_return_error \
    -CAfile "$ca" -cert "$cert-cert.pem" -key "$cert-key.pem" -WWW "$@" > "$tmp/$name.server.txt" 2>&1) &
  spid=$!
  sleep 1
}
# s_client NAME CERT CAFILE INPUT_SCRIPT [options]: the FTD side; INPUT_SCRIPT is run and its
# output typed (so `K` lines become KeyUpdates, with pauses in between)
s_client() {
  local name=$1 cert=$2 ca=$3 input=$4; shift 4
  bash -c "$input" | ip netns exec "$ns" timeout 20 openssl s_client -connect 127.0.0.1:8305 -crlf \
    -cert "$cert-cert.pem" -key "$cert-key.pem" -CAfile "$ca" -verify_return_error \
    -keylogfile "$out/$name.keylog" "$@" >> "$tmp/$name.client.txt" 2>&1 || true
}
wait_server() { sleep 1; kill "$spid" 2>/dev/null || true; wait "$spid" 2>/dev/null || true; }

get='sleep 1; printf "GET /hb.txt HTTP/1.0\n\n"; sleep 2'

# 1. TLS 1.3, both chains valid, the device's certificate in the handshake; then the client
#    asks for a KeyUpdate (and gets one back) before its GET.
start tls13-valid
s_server tls13-valid "$v_fmc" "$v_ca" -tls1_3 -naccept 1
s_client tls13-valid "$v_ftd" "$v_ca" 'sleep 1; echo K; sleep 1; printf "GET /hb.txt HTTP/1.0\n\n"; sleep 2' -tls1_3
wait_server; stop

# 2. TLS 1.3, the InternalCA expired: the device rejects the FMC's chain (err 10 at depth 1)
#    with an alert encrypted under its handshake key.
start tls13-ca-expired
s_server tls13-ca-expired "$x_fmc" "$x_ca" -tls1_3 -naccept 1
s_client tls13-ca-expired "$x_ftd" "$x_ca" "$get" -tls1_3
wait_server; stop

# 2b. TLS 1.3 with the two other suites (AES-128-GCM, ChaCha20-Poly1305), one connection each.
start tls13-suites
s_server tls13-suites "$v_fmc" "$v_ca" -tls1_3 -naccept 2
for suite in TLS_AES_128_GCM_SHA256 TLS_CHACHA20_POLY1305_SHA256; do
  s_client tls13-suites "$v_ftd" "$v_ca" "$get" -tls1_3 -ciphersuites "$suite"
done
wait_server; stop

# 3. Post-handshake authentication (FMC 7.6+): python's ssl asks for the device's certificate
#    after the handshake; the client updates keys first, so the request comes under the
#    second application generation of both sides.
pha() { # NAME DEVICE_CERT
  local name=$1 dev=$2
  start "$name"
  ip netns exec "$ns" python3 "$here/pha_server.py" 8305 "$v_fmc-cert.pem" "$v_fmc-key.pem" "$v_ca" \
    > "$tmp/$name.server.txt" 2>&1 &
  spid=$!
  sleep 1
  s_client "$name" "$dev" "$v_ca" 'sleep 1; echo K; sleep 1; echo hello; sleep 1; echo ping; sleep 1; echo bye; sleep 2' \
    -tls1_3 -enable_pha
  wait_server; stop
}
pha tls13-pha-valid "$v_ftd"
# 4. The same, but the device holds a certificate of another InternalCA (an FMC rebuilt or
#    upgraded with a new CA, the device never re-registered): the FMC rejects it.
pha tls13-pha-ca-mismatch "$x_ftd"

# 5. TLS 1.2 (CLIENT_RANDOM lines): four connections, one per record protection the analyzer
#    opens (AES-GCM, ChaCha20-Poly1305, AES-CBC with and without encrypt-then-MAC); each ends
#    with encrypted close_notify alerts from both sides.
start tls12-alerts
s_server tls12-alerts "$v_fmc" "$v_ca" -tls1_2 -naccept 4
for c in "ECDHE-RSA-AES256-GCM-SHA384" "ECDHE-RSA-CHACHA20-POLY1305" "ECDHE-RSA-AES128-SHA256" "ECDHE-RSA-AES256-SHA -no_etm"; do
  # shellcheck disable=SC2086
  s_client tls12-alerts "$v_ftd" "$v_ca" "$get" -tls1_2 -cipher $c
done
wait_server; stop
