#!/bin/sh
# Fills fuzz/corpus/<target>/ with seeds made from the project's captures and certificates
# and from ../shared/captures (third-party files: read at run time, never committed).
# The regression inputs are added too, so every known crash stays in the corpus.
set -eu
cd "$(dirname "$0")"
shared=${SHARED_CAPTURES:-../../shared/captures}
files=$(find ../captures ../certs "$shared" -type f \
    \( -name '*.pcap' -o -name '*.pcapng' -o -name '*.gz' -o -name '*.pem' -o -name '*.keylog' \) 2>/dev/null | sort)
# The example reuses the main crate's debug build (same lock file versions).
CARGO_TARGET_DIR=../target cargo run --quiet --example seeds -- corpus $files
for d in regressions/*/; do
    [ -d "$d" ] || continue
    t=$(basename "$d")
    mkdir -p "corpus/$t"
    cp "$d"* "corpus/$t/" 2>/dev/null || true
done
