#!/usr/bin/env bash
# The GPU part of the telemetry check (issue 12), as one function scripts/gpu-check.sh can source and call,
# or run on its own: scripts/telemetry-check.sh [COLLBENCH_BINARY] [OUTDIR]
#
# telemetry_check BIN OUTDIR
#   1. readings of a real GPU under a 16 GB all_reduce: three rows (-N 3) with --telemetry, so the table
#      shows the lowest SM clock, highest temperature and power of each row and the JSON
#      (OUTDIR/telemetry-16G.json) each rank's min/max readings; the temperature should rise row by row;
#   2. the overhead of sampling on a 32K row: 32K all_reduce, 2000 iterations, alternately with and without
#      --no-telemetry, three times each; prints the mean time of each run (no measurable change expected).
# Returns 0 when every run exited 0.
set -uo pipefail

telemetry_check() {
    local bin="$1" out="$2" rc=0 i mode
    mkdir -p "$out"
    echo "== telemetry: 16G all_reduce, readings per row"
    "$bin" all_reduce -b 16G -e 16G -n 20 -N 3 --telemetry --no-progress \
        -J "$out/telemetry-16G.json" | tee "$out/telemetry-16G.log" || rc=1
    echo "== telemetry: overhead of sampling on a 32K row (us per operation, out-of-place / in-place)"
    for i in 1 2 3; do
        for mode in on off; do
            local flag=()
            [ "$mode" = off ] && flag=(--no-telemetry)
            "$bin" all_reduce -b 32K -e 32K -n 2000 -w 100 -c 0 --quiet "${flag[@]}" \
                -J "$out/overhead-$mode-$i.json" > /dev/null || rc=1
            python3 - "$out/overhead-$mode-$i.json" "$mode" <<'EOF'
import json, sys
row = json.load(open(sys.argv[1]))["rows"][0]
print(f"sampling {sys.argv[2]:3}: {row['out_of_place']['time_us']:.2f} / {row['in_place']['time_us']:.2f} us")
EOF
        done
    done
    return $rc
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    telemetry_check "${1:-./target/release/collbench}" "${2:-${OUT:-/tmp/collbench-telemetry-check}}"
fi
