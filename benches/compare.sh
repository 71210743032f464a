#!/usr/bin/env bash
# sfdiag analyze vs ssldump -N vs tshark on one capture: wall time (best of N runs, page cache
# warm), peak RSS (/usr/bin/time -v), and whether sfdiag finds every Certificate message tshark
# finds (same frames). The in-process floor (pcap-parser + etherparse) is `cargo bench --bench
# analyze`. usage: benches/compare.sh CAPTURE [RUNS]
# A peer that is not installed is skipped with a line saying so; the conditions (date, load,
# versions) are printed first: on a shared machine compare ratios from one run.
set -euo pipefail
cap=$(readlink -f "${1:?capture}"); runs=${2:-3}
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=$PWD/target/release/sfdiag
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cat "$cap" > /dev/null

best() { # name cmd...: prints "name seconds peak_rss_kb"
  local name=$1; shift; local t=999999 m=0
  if ! command -v "$1" >/dev/null 2>&1; then
    printf '%-28s SKIPPED: %s is not installed\n' "$name" "$1"
    return 0
  fi
  for _ in $(seq "$runs"); do
    /usr/bin/time -f "%e %M" -o "$tmp/time" "$@" > /dev/null 2>&1 || true
    read -r s k < "$tmp/time"
    if awk "BEGIN{exit !($s < $t)}"; then t=$s; m=$k; fi
  done
  printf '%-28s %8s s %10s KB peak RSS\n' "$name" "$t" "$m"
  echo "$t $name" >> "$tmp/times"
}

echo "== $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)," \
  "$("$bin" --version), $(tshark --version 2>/dev/null | head -1 || echo 'no tshark'), best of $runs"
echo "capture: $cap ($(stat -c %s "$cap") bytes, $(capinfos -c -M "$cap" | awk -F: '/Number of packets/{gsub(/ /,"",$2); print $2}') frames)"
best "sfdiag analyze (jsonl)" "$bin" analyze --format jsonl "$cap"
best "sfdiag analyze (text)" "$bin" analyze "$cap"
best "ssldump -N" ssldump -N -r "$cap"
best "tshark (certificates)" tshark -n -r "$cap" -Y "tls.handshake.type == 11" -T fields -e frame.number

"$bin" analyze --format jsonl "$cap" | grep '"type":"chain"' | sed 's/.*"frame":\([0-9]*\).*/\1/' | sort -n > "$tmp/ours" || true
tshark -n -r "$cap" -Y "tls.handshake.type == 11" -T fields -e frame.number 2>/dev/null | sort -n > "$tmp/tshark"
# Ratios against the first line (sfdiag analyze --format jsonl), same run, same page cache.
awk 'NR == 1 {base = $1; name = substr($0, index($0, " ") + 1); next}
     {printf "%s: %.1fx the time of %s\n", substr($0, index($0, " ") + 1), $1 / (base > 0 ? base : 0.01), name}' \
  "$tmp/times"
if cmp -s "$tmp/ours" "$tmp/tshark"; then
  echo "Certificate messages: sfdiag $(wc -l < "$tmp/ours"), tshark $(wc -l < "$tmp/tshark"): same frames"
else
  echo "Certificate messages: sfdiag $(wc -l < "$tmp/ours"), tshark $(wc -l < "$tmp/tshark"): frames differ:"
  diff "$tmp/ours" "$tmp/tshark" | head -20
fi
