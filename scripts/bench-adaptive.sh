#!/usr/bin/env bash
# Fixed iterations against -n auto on the mpi backend: all_reduce from 32K to 256M on 4 ranks. Prints the
# wall time of each sweep and the precision it reached (the 95 % confidence half-width of each row's mean,
# as a percentage of the mean), and the ratio of wall times.
#   scripts/bench-adaptive.sh [RANKS] [EXTRA AUTO FLAGS...]
set -euo pipefail
cd "$(dirname "$0")/.."
ranks=${1:-4}
shift || true
[ "$(id -u)" = 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl=self,vader
cargo build --release --quiet
bin=target/release/collbench
out=bench/out
mkdir -p "$out"

run() { # name, flags...
    local name=$1
    shift
    local start end
    start=$(date +%s.%N)
    mpirun --oversubscribe -np "$ranks" "$bin" all_reduce -b 32K -e 256M -c 1 --quiet --no-progress \
        --backend mpi -J "$out/adaptive-$name.json" "$@" >/dev/null
    end=$(date +%s.%N)
    awk -v a="$start" -v b="$end" 'BEGIN {printf "%.1f", b - a}'
}

fixed_s=$(run fixed -n 20)
auto_s=$(run auto -n auto "$@")

python3 - "$out/adaptive-fixed.json" "$out/adaptive-auto.json" "$fixed_s" "$auto_s" <<'PY'
import json, statistics, sys
fixed, auto = (json.load(open(p)) for p in sys.argv[1:3])
fixed_s, auto_s = float(sys.argv[3]), float(sys.argv[4])
def summary(doc):
    cis, iters = [], []
    for row in doc["rows"]:
        for p in ("out_of_place", "in_place"):
            m = row[p]
            cis.append(m["stats"]["ci95_percent"]); iters.append(m["iterations"])
    return cis, iters
print(f"{'size':>10} {'fixed iters':>11} {'fixed ci95%':>11} {'auto iters':>10} {'auto ci95%':>10}")
for rf, ra in zip(fixed["rows"], auto["rows"]):
    mf, ma = rf["out_of_place"], ra["out_of_place"]
    print(f"{rf['size_bytes']:>10} {mf['iterations']:>11} {mf['stats']['ci95_percent']:>11.2f} {ma['iterations']:>10} {ma['stats']['ci95_percent']:>10.2f}")
for name, doc, secs in (("fixed -n 20", fixed, fixed_s), ("-n auto", auto, auto_s)):
    cis, iters = summary(doc)
    print(f"{name:>12}: wall {secs:6.1f} s, timed iterations {sum(iters):6d}, ci95 median {statistics.median(cis):5.2f}% max {max(cis):6.2f}%, rows within 1%: {sum(c <= 1.0 for c in cis)}/{len(cis)}")
print(f"wall-time ratio auto / fixed: {auto_s / fixed_s:.2f}")
# Equal precision: the confidence half-width shrinks as 1/sqrt(n), so fixed counts would need
# n x (ci_fixed / ci_auto)^2 iterations per row to match what auto reached.
need_s = got_s = 0.0
for rf, ra in zip(fixed["rows"], auto["rows"]):
    for p in ("out_of_place", "in_place"):
        mf, ma = rf[p], ra[p]
        n_equal = mf["iterations"] * (mf["stats"]["ci95_percent"] / ma["stats"]["ci95_percent"]) ** 2
        need_s += n_equal * mf["stats"]["mean_us"] / 1e6
        got_s += ma["iterations"] * ma["stats"]["mean_us"] / 1e6
print(f"timed seconds at auto's precision: fixed counts would need {need_s:.1f} s, auto spent {got_s:.1f} s (ratio {got_s / need_s:.3f})")
PY
