#!/usr/bin/env bash
# Benchmark (not a test): full mutual-TLS 1.2 handshakes per second of `sfdiag serve` against
# stock `openssl s_server`, both loaded by the same `sfdiag connect --count N --concurrency C`
# (no session resumption: every handshake signs, verifies and judges certificates), then the
# memory one idle tunnel costs `serve` (RSS delta / tunnels held open).
#
# Usage: benches/handshakes.sh [N=2000] [C=32] [IDLE=1000]     (from anywhere; ~1 minute)
#        ROUNDS=2: rounds of the two servers, in ABBA order
# Builds the release binary first. Prints the conditions (date, cores, load, versions), one
# line per server and the ratio: on a shared machine compare ratios, not the rates of two runs.
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
# Tunnels serve holds now. `status --socket` lists every connection; `status --root` would
# merge the rows of one device UUID into one, and every tunnel of this fleet is ftd1's.
tunnels() {
  "$bin" status --socket "$work/lab/fmc/var/run/sftunnel.sock" --format json \
    | { grep -o '"connected":true' || true; } | wc -l
}

echo "== $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)," \
  "$("$bin" --version), $(rustc --version | cut -d' ' -f1-2), $(openssl version | cut -d' ' -f1-2), N=$N C=$C"

# 1. sfdiag serve (log to a file, as the appliance does). Its rate goes to $got.
# --no-dial: what is measured is the fleet dialing in; the root's devices do not listen here.
bench_serve() {
  "$bin" serve --root "$work/lab" --no-dial --listen 127.0.0.1:0 --log "$work/serve.log" &
  pids+=($!); local pid=$!
  local addr
  addr=$(wait_line "$work/serve.log" 'Listening on ' | sed -E 's/.*Listening on //')
  load "$addr" > "$work/serve.out"
  sed 's/^/  serve:    /' "$work/serve.out"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  : > "$work/serve.log"
  got=$(rate < "$work/serve.out")
}

# 2. openssl s_server with the same files. It stops at EOF on stdin, so its stdin is a fifo
#    this script holds open. Its rate goes to $got.
bench_openssl() {
  rm -f "$work/stdin"; mkfifo "$work/stdin"
  openssl s_server -accept 127.0.0.1:0 -tls1_2 -Verify 1 -verify_return_error \
    -CAfile "$fmc/ca_root/cacert.pem" -cert "$fmc/keys/sftunnel-cert.pem" \
    -key "$fmc/keys/sftunnel-key.pem" < "$work/stdin" > "$work/s_server.out" 2>&1 &
  pids+=($!); local pid=$!
  exec 3> "$work/stdin"
  local addr
  addr=$(wait_line "$work/s_server.out" '^ACCEPT ' | sed -E 's/^ACCEPT //')
  load "$addr" > "$work/openssl.out"
  sed 's/^/  s_server: /' "$work/openssl.out"
  exec 3>&-
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  got=$(rate < "$work/openssl.out")
}

# ROUNDS (default 2) in ABBA order (serve, s_server, then s_server, serve, ...) so a change of
# the machine's load during the run weighs on both servers alike; one ratio per round.
ROUNDS=${ROUNDS:-2}
sum_serve=0; sum_openssl=0
for r in $(seq "$ROUNDS"); do
  if [ $((r % 2)) -eq 1 ]; then
    bench_serve; s_rate=$got; bench_openssl; o_rate=$got
  else
    bench_openssl; o_rate=$got; bench_serve; s_rate=$got
  fi
  echo "round $r: serve $s_rate handshakes/s, openssl s_server $o_rate handshakes/s:" \
    "ratio $(echo "scale=2; $s_rate / $o_rate" | bc), load $(cut -d' ' -f1-3 /proc/loadavg)"
  sum_serve=$(echo "$sum_serve + $s_rate" | bc); sum_openssl=$(echo "$sum_openssl + $o_rate" | bc)
done
echo "serve: $(echo "scale=1; $sum_serve / $ROUNDS" | bc) handshakes/s;" \
  "openssl s_server: $(echo "scale=1; $sum_openssl / $ROUNDS" | bc) handshakes/s;" \
  "ratio $(echo "scale=2; $sum_serve / $sum_openssl" | bc) (mean of $ROUNDS rounds each)"

# 3. Memory per idle tunnel: RSS of serve before and with IDLE tunnels held open.
"$bin" serve --root "$work/lab" --no-dial --listen 127.0.0.1:0 --log "$work/serve2.log" --heartbeat 60 &
pids+=($!); serve_pid=$!
addr=$(wait_line "$work/serve2.log" 'Listening on ' | sed -E 's/.*Listening on //')
# Warm up allocator and runtime with one tunnel, then measure.
"$bin" connect "$addr" --root "$work/lab" --device ftd1 --once >/dev/null
before=$(awk '/VmRSS/ {print $2}' /proc/$serve_pid/status)
"$bin" connect "$addr" --root "$work/lab" --device ftd1 --count "$IDLE" --concurrency "$C" --hold 20 --heartbeat 60 > "$work/hold.out" &
pids+=($!); hold_pid=$!
up=0
for _ in $(seq 300); do
  up=$(tunnels)
  [ "$up" -ge "$IDLE" ] && break
  sleep 0.1
done
if [ "$up" -lt "$IDLE" ]; then
  echo "only $up of $IDLE idle tunnels came up in 30 s" >&2
  exit 1
fi
sleep 1
after=$(awk '/VmRSS/ {print $2}' /proc/$serve_pid/status)
echo "idle tunnels: $up; serve RSS $before kB -> $after kB: $(( (after - before) / up )) kB per idle tunnel"
wait "$hold_pid" || true
echo "== done $(date -u +%Y-%m-%dT%H:%M:%SZ), load $(cut -d' ' -f1-3 /proc/loadavg)"
