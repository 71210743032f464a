#!/bin/sh
# Runs fuzz targets one after another (one core each; the machine is shared), each for
# SECONDS, and prints the executions count of each run. Logs in fuzz/logs/<target>.log,
# crashes in fuzz/artifacts/<target>/.
#   ./run.sh 600 capture_reader net_frames ...     (no target: all of them)
set -u
cd "$(dirname "$0")"
secs=${1:-600}
shift || true
targets=${*:-$(cargo fuzz list)}
mkdir -p logs
for t in $targets; do
    mkdir -p "corpus/$t"
    start=$(date +%s)
    RUSTC_BOOTSTRAP=1 cargo fuzz run -a -O "$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"logs/$t.log" 2>&1
    rc=$?
    end=$(date +%s)
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "logs/$t.log" | grep -o '[0-9]*$' | tail -1)
    echo "$t: exit $rc, $((end - start)) s, ${execs:-?} executions, corpus $(ls "corpus/$t" | wc -l)"
done
