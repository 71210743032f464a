#!/usr/bin/env bash
# Benchmark (not a test): full mutual-TLS 1.2 handshakes per second of `sfdiag serve` against
# stock `openssl s_server`, both loaded by the same `sfdiag connect --count N --concurrency C`
# (no session resumption: every handshake signs, verifies and judges certificates), then the
# memory one idle tunnel costs `serve` (RSS delta / tunnels held open).
#
# Usage: benches/handshakes.sh [N=2000] [C=32] [IDLE=1000]     (from the crate root)
# Builds the release binary first. Prints one line per server and the ratio.
set -euo pipefail
N=${1:-2000}; C=${2:-32}; IDLE=${3:-1000}
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=$PWD/target/release/sfdiag
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

"$bin" pki init --root "$work/lab" --devices 1 >/dev/null
fmc=$work/lab/fmc/etc/sf
# Wait (at most 20 s) for a line matching $2 in file $1 and print it.
wait_line() {
  for _ in $(seq 200); do
    if l=$(grep -m1 -E "$2" "$1" 2>/dev/null); then echo "$l"; return 0; fi
    sleep 0.1
  done
  echo "timed out waiting for '$2' in $1" >&2; return 1
}
rate() { sed -nE 's/.*: ([0-9.]+) handshakes\/s/\1/p'; }
load() { "$bin" connect "$1" --root "$work/lab" --device ftd1 --count "$N" --concurrency "$C"; }

echo "== $(nproc) cores, $(openssl version), N=$N C=$C"

# 1. sfdiag serve (log to a file, as the appliance does).
"$bin" serve --root "$work/lab" --listen 127.0.0.1:0 --log "$work/serve.log" &
pids+=($!); serve_pid=$!
addr=$(wait_line "$work/serve.log" 'Listening on ' | sed -E 's/.*Listening on //')
load "$addr" | tee "$work/serve.out"
serve_rate=$(rate < "$work/serve.out")
kill "$serve_pid"; wait "$serve_pid" 2>/dev/null || true

# 2. openssl s_server with the same files. It stops at EOF on stdin, so its stdin is a fifo
#    this script holds open.
mkfifo "$work/stdin"
openssl s_server -accept 127.0.0.1:0 -tls1_2 -Verify 1 -verify_return_error \
  -CAfile "$fmc/ca_root/cacert.pem" -cert "$fmc/keys/sftunnel-cert.pem" \
  -key "$fmc/keys/sftunnel-key.pem" < "$work/stdin" > "$work/s_server.out" 2>&1 &
pids+=($!); openssl_pid=$!
exec 3> "$work/stdin"
addr=$(wait_line "$work/s_server.out" '^ACCEPT ' | sed -E 's/^ACCEPT //')
load "$addr" | tee "$work/openssl.out"
openssl_rate=$(rate < "$work/openssl.out")
exec 3>&-
kill "$openssl_pid" 2>/dev/null || true

echo "serve: $serve_rate handshakes/s; openssl s_server: $openssl_rate handshakes/s; ratio $(echo "scale=2; $serve_rate / $openssl_rate" | bc)"

# 3. Memory per idle tunnel: RSS of serve before and with IDLE tunnels held open.
"$bin" serve --root "$work/lab" --listen 127.0.0.1:0 --log "$work/serve2.log" --heartbeat 60 &
pids+=($!); serve_pid=$!
addr=$(wait_line "$work/serve2.log" 'Listening on ' | sed -E 's/.*Listening on //')
# Warm up allocator and runtime with one tunnel, then measure.
"$bin" connect "$addr" --root "$work/lab" --device ftd1 --once >/dev/null
before=$(awk '/VmRSS/ {print $2}' /proc/$serve_pid/status)
"$bin" connect "$addr" --root "$work/lab" --device ftd1 --count "$IDLE" --concurrency "$C" --hold 20 --heartbeat 60 > "$work/hold.out" &
pids+=($!); hold_pid=$!
for _ in $(seq 300); do
  up=$("$bin" status --root "$work/lab" --format json | { grep -o '"connected":true' || true; } | wc -l)
  [ "$up" -ge "$IDLE" ] && break
  sleep 0.1
done
sleep 1
after=$(awk '/VmRSS/ {print $2}' /proc/$serve_pid/status)
echo "idle tunnels: $up; serve RSS $before kB -> $after kB: $(( (after - before) / up )) kB per idle tunnel"
wait "$hold_pid" || true
