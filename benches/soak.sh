#!/usr/bin/env bash
# Load and soak (a scripted run, not a test): one release `sfdiag serve` holding N concurrent
# tunnels with heartbeats, opened all at once by `sfdiag connect --count N --concurrency N
# --hold HOLD`; serve's memory before and with the tunnels (VmRSS/VmHWM from /proc); then a
# reconnect storm: serve restarts its tunnel service (SIGHUP: files re-read, every tunnel
# closed, as restarting sftunnel does) and all N devices reconnect at once, twice. Passes when
# every first handshake and every reconnect succeeded on both sides, serve's descriptors came
# back to the baseline once the fleet left, and a tunnel cost under 200 KiB.
#
# Usage: benches/soak.sh [N=5000] [HOLD=60] [HEARTBEAT=10]      (from anywhere; ~2 minutes)
#        STORMS=2: reconnect storms to run while the tunnels are held
#        SERVE_ARGS / CONNECT_ARGS: extra flags for serve / the fleet (e.g. SERVE_ARGS="--timeout 3")
# Only 127.0.0.1 is used. The fd limit is raised here, for this run, not in sfdiag's defaults.
set -euo pipefail
N=${1:-5000}; HOLD=${2:-60}; HB=${3:-10}; STORMS=${STORMS:-2}
cd "$(dirname "$0")/.."
# Each side holds one socket per tunnel (plus a few): raise the soft limit up to the hard one.
want=$(( N + 1024 ))
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$want" ]; then
  echo "the hard fd limit ($hard) is below $want: raise it (e.g. in limits.conf) and rerun" >&2
  exit 2
fi
ulimit -n "$want"
cargo build --release --quiet
bin=$PWD/target/release/sfdiag
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -n "${KEEP:-}" ]; then echo "logs kept in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
# On a failure, say what the two sides logged most (KEEP=1 keeps the logs).
diag() {
  for f in serve fleet; do
    [ -f "$work/$f.log" ] || continue
    echo "-- most frequent $f warnings/errors:" >&2
    grep -E '\[(WARN|ERROR)\]' "$work/$f.log" | sed -E 's/.*\] \[(WARN|ERROR)\] //; s/[0-9]+(\.[0-9]+)+(:[0-9]+)?/ADDR/g' \
      | sort | uniq -c | sort -rn | head -8 >&2
  done
}
trap diag ERR

# Wait (at most $3 s, default 20) for a line matching $2 in file $1 and print it.
wait_line() {
  for _ in $(seq $(( ${3:-20} * 10 ))); do
    if l=$(grep -m1 -E "$2" "$1" 2>/dev/null); then echo "$l"; return 0; fi
    sleep 0.1
  done
  echo "timed out waiting for '$2' in $1" >&2; return 1
}
# Wait (at most $3 s) until file $1 has at least $2 lines saying a peer connected.
wait_peers() {
  local n=0
  for _ in $(seq $(( $3 * 10 ))); do
    n=$(grep -c ') connected from ' "$1" || true)
    [ "$n" -ge "$2" ] && return 0
    sleep 0.1
  done
  echo "only $n of $2 peer connections after $3 s" >&2; return 1
}
kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
# CPU seconds (user + system) process $1 has used.
cpu() { awk -v t="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / t}' "/proc/$1/stat"; }
overflows() { nstat -az TcpExtListenOverflows 2>/dev/null | awk '/ListenOverflows/ {print $2}'; }
now() { date +%s.%N; }
# How many rows of serve's `status` match $1, one row per tunnel: `status --socket` lists every
# connection, whereas `status --root` merges the rows of one device UUID (and every tunnel of
# this fleet is ftd1's) into one.
rows() {
  "$bin" status --socket "$work/lab/fmc/var/run/sftunnel.sock" --format json \
    | { grep -o "$1" || true; } | wc -l
}

echo "== $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)," \
  "$("$bin" --version), fd limit $(ulimit -n), N=$N HOLD=${HOLD}s heartbeat ${HB}s STORMS=$STORMS"
"$bin" pki init --root "$work/lab" --devices 1 >/dev/null

# --no-dial: the fleet dials in; the root's devices do not listen, so the FMC would dial nobody.
"$bin" serve --root "$work/lab" --no-dial --listen 127.0.0.1:0 --heartbeat "$HB" --log "$work/serve.log" ${SERVE_ARGS:-} &
pids+=($!); serve=$!
addr=$(wait_line "$work/serve.log" 'Listening on ' | sed -E 's/.*Listening on //')
# One tunnel first so the runtime, allocator and TLS configs are warm before the baseline.
"$bin" connect "$addr" --root "$work/lab" --device ftd1 --once >/dev/null
wait_peers "$work/serve.log" 1 10
sleep 0.5
rss0=$(kb "$serve" VmRSS); fd0=$(ls "/proc/$serve/fd" | wc -l); ovf0=$(overflows); cpu0=$(cpu "$serve")

# The fleet: N handshakes at once, each tunnel then held HOLD s with heartbeats.
t0=$(now)
"$bin" connect "$addr" --root "$work/lab" --device ftd1 --count "$N" --concurrency "$N" \
  --hold "$HOLD" --heartbeat "$HB" --log "$work/fleet.log" ${CONNECT_ARGS:-} > "$work/fleet.out" &
pids+=($!); fleet=$!
wait_peers "$work/serve.log" $(( N + 1 )) 120
t_up=$(now)
# Let a heartbeat round pass over every tunnel, then measure.
sleep $(( HB + 1 ))
up=$(rows '"connected":true')
beats=$(rows '"last_heartbeat":"')
rss1=$(kb "$serve" VmRSS); hwm1=$(kb "$serve" VmHWM); fd1=$(ls "/proc/$serve/fd" | wc -l)
if [ "$up" -eq 0 ]; then
  echo "status lists no connected tunnel although serve logged $N" >&2
  exit 1
fi
per=$(echo "scale=1; ($rss1 - $rss0) / $up" | bc)
echo "up: $N tunnels in $(echo "$t_up - $t0" | bc) s; status: $up connected, $beats with a heartbeat"
echo "serve: VmRSS $rss0 kB -> $rss1 kB (VmHWM $hwm1 kB), fds $fd0 -> $fd1: $per KiB per tunnel"

# The storms: restart the tunnel service; every tunnel closes and every device comes back.
# Twice, so a leak per storm would show in the second one's figures.
up2=$N
for storm in $(seq "$STORMS"); do
  before=$(grep -c ') connected from ' "$work/serve.log")
  ts=$(now)
  kill -HUP "$serve"
  for _ in $(seq 100); do
    [ "$(grep -c 'Restarting the tunnel service' "$work/serve.log")" -ge "$storm" ] && break
    sleep 0.1
  done
  wait_peers "$work/serve.log" $(( before + N )) 120
  te=$(now)
  sleep 1
  n=$(rows '"connected":true')
  [ "$n" -lt "$up2" ] && up2=$n
  # Devices wait their initial backoff (1 s) before reconnecting.
  echo "storm $storm: all $N tunnels closed by the restart were back $(echo "$te - $ts" | bc) s" \
    "after SIGHUP: $(echo "$N / ($te - $ts - 1)" | bc) handshakes/s after the devices' 1 s backoff;" \
    "status: $n connected; serve VmRSS $(kb "$serve" VmRSS) kB (VmHWM $(kb "$serve" VmHWM) kB)," \
    "fds $(ls "/proc/$serve/fd" | wc -l)"
done

wait "$fleet" && fleet_rc=0 || fleet_rc=$?
echo "-- connect --count (exit $fleet_rc):"
cat "$work/fleet.out"
sleep 1
fd3=$(ls "/proc/$serve/fd" | wc -l); rss3=$(kb "$serve" VmRSS)
failed=$(grep -c 'SSL handshake failed' "$work/serve.log" || true)
timeouts=$(grep -c 'Timed out' "$work/serve.log" || true)
hs=$(( N * (STORMS + 1) ))
echo "-- serve: $failed 'SSL handshake failed', $timeouts timeouts in its log;" \
  "after the fleet left: fds $fd3 (baseline $fd0), VmRSS $rss3 kB;" \
  "listen queue overflows (host-wide): $(( $(overflows) - ovf0 ))"
echo "-- serve CPU: $(echo "$(cpu "$serve") - $cpu0" | bc) s for $hs handshakes and the heartbeats"
echo "== done $(date -u +%Y-%m-%dT%H:%M:%SZ), load $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "$fleet_rc" -eq 0 ] && [ "$failed" -eq 0 ] && [ "$up" -eq "$N" ] && [ "$up2" -eq "$N" ] \
  && [ "$fd3" -le $(( fd0 + 2 )) ] && [ "$(echo "$per < 200" | bc)" -eq 1 ]; then
  echo "PASS"
else
  echo "FAIL"; exit 1
fi
