#!/usr/bin/env bash
# sfdiag analyze vs ssldump -N vs tshark on one capture: wall time (best of N runs, page cache
# warm), peak RSS (/usr/bin/time -v), and whether sfdiag finds every Certificate message tshark
# finds (same frames). The in-process floor (pcap-parser + etherparse) is `cargo bench --bench
# analyze`. usage: benches/compare.sh CAPTURE [RUNS]
set -euo pipefail
cap=$(readlink -f "${1:?capture}"); runs=${2:-3}
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=$PWD/target/release/sfdiag
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cat "$cap" > /dev/null

best() { # name cmd...: prints "name seconds peak_rss_kb"
  local name=$1; shift; local t=999999 m=0
  for _ in $(seq "$runs"); do
    /usr/bin/time -f "%e %M" -o "$tmp/time" "$@" > /dev/null 2>&1 || true
    read -r s k < "$tmp/time"
    if awk "BEGIN{exit !($s < $t)}"; then t=$s; m=$k; fi
  done
  printf '%-28s %8s s %10s KB peak RSS\n' "$name" "$t" "$m"
}

echo "capture: $cap ($(stat -c %s "$cap") bytes, $(capinfos -c -M "$cap" | awk -F: '/Number of packets/{gsub(/ /,"",$2); print $2}') frames)"
best "sfdiag analyze (jsonl)" "$bin" analyze --format jsonl "$cap"
best "sfdiag analyze (text)" "$bin" analyze "$cap"
best "ssldump -N" ssldump -N -r "$cap"
best "tshark (certificates)" tshark -n -r "$cap" -Y "tls.handshake.type == 11" -T fields -e frame.number

"$bin" analyze --format jsonl "$cap" | grep '"type":"chain"' | sed 's/.*"frame":\([0-9]*\).*/\1/' | sort -n > "$tmp/ours" || true
tshark -n -r "$cap" -Y "tls.handshake.type == 11" -T fields -e frame.number 2>/dev/null | sort -n > "$tmp/tshark"
if cmp -s "$tmp/ours" "$tmp/tshark"; then
  echo "Certificate messages: sfdiag $(wc -l < "$tmp/ours"), tshark $(wc -l < "$tmp/tshark"): same frames"
else
  echo "Certificate messages: sfdiag $(wc -l < "$tmp/ours"), tshark $(wc -l < "$tmp/tshark"): frames differ:"
  diff "$tmp/ours" "$tmp/tshark" | head -20
fi
