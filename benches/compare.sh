#!/usr/bin/env bash
# sfdiag analyze vs the floor vs ssldump -N vs tshark, in one run: wall time (best of N runs,
# page cache warm) and peak RSS (/usr/bin/time -v) for
#   1. one capture: sfdiag (jsonl, text) beside the floor (benches/floor.rs: pcap-parser +
#      etherparse on every frame, nothing else), ssldump and tshark; the ratio sfdiag/floor;
#   2. the same capture given 8 times (8 names): sfdiag --jobs 1 (one by one) against sfdiag
#      on every core, and ssldump/tshark one file after the other; the ratio serial/parallel;
# and whether sfdiag finds every Certificate message tshark finds (same frames). The machine
# may be shared: compare the ratios of one run, not absolute times across runs.
# usage: benches/compare.sh CAPTURE [RUNS] [RUNS_8]   (RUNS_8: for the 8-file figures, default 1)
# A peer that is not installed is skipped with a line saying so; the conditions (date, load,
# versions) are printed first.
set -euo pipefail
cap=$(readlink -f "${1:?capture}"); runs=${2:-3}; runs8=${3:-1}
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=$PWD/target/release/sfdiag
floor=$(cargo bench --no-run --bench floor --message-format=json 2>/dev/null \
  | grep -o '"executable":"[^"]*/deps/floor-[^"]*"' | cut -d'"' -f4 | tail -1)
[ -x "$floor" ] || { echo "benches/floor did not build" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cat "$cap" > /dev/null

best() { # name runs cmd...: prints "name seconds peak_rss_kb", keeps the seconds in $tmp/name
  local name=$1 n=$2; shift 2; local t=999999 m=0
  local prog=$1; [ "$prog" = sh ] && prog=${name%%[ ,]*}
  if ! command -v "$prog" >/dev/null 2>&1; then
    printf '%-40s SKIPPED: %s is not installed\n' "$name" "$prog"
    return 0
  fi
  for _ in $(seq "$n"); do
    /usr/bin/time -f "%e %M" -o "$tmp/time" "$@" > /dev/null 2>&1 || true
    read -r s k < "$tmp/time"
    if awk "BEGIN{exit !($s < $t)}"; then t=$s; m=$k; fi
  done
  printf '%-40s %8s s %10s KB peak RSS\n' "$name" "$t" "$m"
  echo "$t" > "$tmp/$(echo "$name" | tr -c 'a-z0-9' _)"
}
secs() { cat "$tmp/$(echo "$1" | tr -c 'a-z0-9' _)"; }
ratio() { awk "BEGIN{printf \"%.2f\", $(secs "$1") / $(secs "$2")}"; }

echo "== $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)," \
  "$("$bin" --version), $(tshark --version 2>/dev/null | head -1 || echo 'no tshark')"
echo "capture: $cap ($(stat -c %s "$cap") bytes, $(capinfos -c -M "$cap" | awk -F: '/Number of packets/{gsub(/ /,"",$2); print $2}') frames), $(nproc) cores"
echo "-- one file (best of $runs)"
# tshark decodes by port: `-d tcp.port==8305,tls`, or a client port that is another protocol's
# (44818, EtherNet/IP) makes it miss that connection's certificates.
best "floor (pcap-parser + etherparse)" "$runs" "$floor" "$cap"
best "sfdiag analyze (jsonl)" "$runs" "$bin" analyze --format jsonl "$cap"
best "sfdiag analyze (text)" "$runs" "$bin" analyze "$cap"
best "ssldump -N" "$runs" ssldump -N -r "$cap"
best "tshark (certificates)" "$runs" tshark -n -r "$cap" -d tcp.port==8305,tls -Y "tls.handshake.type == 11" -T fields -e frame.number
echo "sfdiag/floor: jsonl $(ratio "sfdiag analyze (jsonl)" "floor (pcap-parser + etherparse)")x, text $(ratio "sfdiag analyze (text)" "floor (pcap-parser + etherparse)")x"

files=(); for i in $(seq 8); do ln -s "$cap" "$tmp/capture-$i.pcap"; files+=("$tmp/capture-$i.pcap"); done
echo "-- 8 files (best of $runs8)"
best "floor, 8 files one by one" "$runs8" "$floor" "${files[@]}"
best "sfdiag 8 files --jobs 1 (one by one)" "$runs8" "$bin" analyze --jobs 1 --format jsonl "${files[@]}"
best "sfdiag 8 files (every core)" "$runs8" "$bin" analyze --format jsonl "${files[@]}"
best "ssldump -N, 8 files one by one" "$runs8" sh -c 'for f; do ssldump -N -r "$f"; done' sh "${files[@]}"
best "tshark, 8 files one by one" "$runs8" sh -c 'for f; do tshark -n -r "$f" -d tcp.port==8305,tls -Y "tls.handshake.type == 11" -T fields -e frame.number; done' sh "${files[@]}"
echo "sfdiag 8 files: $(ratio "sfdiag 8 files --jobs 1 (one by one)" "sfdiag 8 files (every core)")x faster on every core than one by one"
"$bin" analyze --jobs 1 --format jsonl "${files[@]}" | md5sum > "$tmp/serial.md5"
"$bin" analyze --format jsonl "${files[@]}" | md5sum > "$tmp/parallel.md5"
if cmp -s "$tmp/serial.md5" "$tmp/parallel.md5"; then echo "8 files: the same report on every core as one by one"; else echo "8 files: reports DIFFER"; fi

"$bin" analyze --format jsonl "$cap" | grep '"type":"chain"' | sed 's/.*"frame":\([0-9]*\).*/\1/' | sort -n > "$tmp/ours" || true
tshark -n -r "$cap" -d tcp.port==8305,tls -Y "tls.handshake.type == 11" -T fields -e frame.number 2>/dev/null | sort -n > "$tmp/tshark"
# Ratios against sfdiag analyze --format jsonl, same run, same page cache (a peer that is not
# installed has no time, so no ratio).
for peer in "ssldump -N" "tshark (certificates)"; do
  [ -f "$tmp/$(echo "$peer" | tr -c 'a-z0-9' _)" ] &&
    echo "$peer: $(ratio "$peer" "sfdiag analyze (jsonl)")x the time of sfdiag analyze (jsonl)"
done
if cmp -s "$tmp/ours" "$tmp/tshark"; then
  echo "Certificate messages: sfdiag $(wc -l < "$tmp/ours"), tshark $(wc -l < "$tmp/tshark"): same frames"
else
  echo "Certificate messages: sfdiag $(wc -l < "$tmp/ours"), tshark $(wc -l < "$tmp/tshark"): frames differ:"
  diff "$tmp/ours" "$tmp/tshark" | head -20
fi
