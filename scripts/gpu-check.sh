#!/usr/bin/env bash
# The GPU acceptance run of collbench on a machine with NVIDIA GPU(s), as one prepared script.
#
# Usage: scripts/gpu-check.sh [COLLBENCH_BINARY] [--quick]
#   COLLBENCH_BINARY  defaults to ./target/release/collbench. Build it elsewhere with
#                     `cargo build --release --no-default-features` when the GPU machine has no OpenMPI
#                     (the default build links libmpi).
#   --quick           one data type and two sizes, for a first look.
# Results (logs, JSON, the summary table) go to $OUT if set, else /tmp/collbench-gpu-check.
#
# What it does:
#   1. lists the GPUs (nvidia-smi -L) and finds libnccl.so.2 (pip's nvidia-nccl-cu13/-cu12 in the active
#      Python, else what collbench finds itself);
#   2. runs every collective with the correctness check at 32K, 1M, 32M and 1G on all GPUs
#      (-g N in one process; under mpirun, one rank per GPU, when the binary links MPI), for float,
#      bfloat16 and int32;
#   3. runs a 16G all_reduce on one GPU;
#   4. when nccl-tests binaries (all_reduce_perf, ...) are on PATH, runs them at the same sizes and prints
#      our bus bandwidth and time over theirs.
# Exit status: 0 when every collbench run exited 0, else 1.
set -uo pipefail

bin="./target/release/collbench"
quick=0
for arg in "$@"; do
    case "$arg" in
        --quick) quick=1 ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) bin="$arg" ;;
    esac
done
results="${OUT:-/tmp/collbench-gpu-check}"
mkdir -p "$results"
summary="$results/summary.tsv"
: > "$summary"

say() { printf '%s\n' "$*" | tee -a "$results/gpu-check.log"; }

if [ ! -x "$bin" ]; then
    say "gpu-check: collbench binary '$bin' not found or not executable (build with cargo build --release --no-default-features)"
    exit 2
fi
say "gpu-check: $(date -u +%FT%TZ) on $(hostname), binary $bin ($("$bin" --version 2>/dev/null || echo '?'))"

# 1. GPUs and NCCL
if ! command -v nvidia-smi >/dev/null 2>&1; then
    say "gpu-check: nvidia-smi not found: this script needs a machine with NVIDIA GPUs and their driver"
    exit 2
fi
nvidia-smi -L | tee -a "$results/gpu-check.log"
ngpus=$(nvidia-smi -L | grep -c '^GPU ')
if [ "${CUDA_VISIBLE_DEVICES+set}" = set ]; then
    ngpus=$(printf '%s' "$CUDA_VISIBLE_DEVICES" | tr ',' '\n' | grep -c .)
fi
say "gpu-check: $ngpus GPU(s) visible"
[ "$ngpus" -ge 1 ] || { say "gpu-check: no GPU visible"; exit 2; }

nccl_lib=""
for py in python3 python; do
    command -v "$py" >/dev/null 2>&1 || continue
    nccl_lib=$("$py" - <<'PY' 2>/dev/null
import importlib.util, os
for mod in ("nvidia.nccl", "nvidia.cu13", "nvidia"):
    try:
        spec = importlib.util.find_spec(mod)
    except Exception:
        spec = None
    for d in (spec.submodule_search_locations or []) if spec else []:
        for sub in ("lib", "nccl/lib"):
            p = os.path.join(d, sub, "libnccl.so.2")
            if os.path.exists(p):
                print(p)
                raise SystemExit
PY
)
    [ -n "$nccl_lib" ] && break
done
nccl_args=()
if [ -n "$nccl_lib" ]; then
    say "gpu-check: NCCL from Python site-packages: $nccl_lib"
    nccl_args=(--nccl-lib "$nccl_lib")
    export LD_LIBRARY_PATH="$(dirname "$nccl_lib")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
else
    say "gpu-check: no NCCL wheel in Python; collbench searches itself (NCCL_HOME, loader path)"
fi

# How to run on all GPUs: one rank per GPU under mpirun when the binary has MPI, else -g N threads.
launch=("$bin")
per_run=(-g "$ngpus")
mode="-g $ngpus (threads)"
if command -v mpirun >/dev/null 2>&1 && ldd "$bin" 2>/dev/null | grep -q libmpi; then
    launch=(mpirun --allow-run-as-root -np "$ngpus" --bind-to none "$bin")
    per_run=()
    mode="mpirun -np $ngpus"
fi
say "gpu-check: all-GPU runs use $mode"

collectives=(all_reduce all_gather reduce_scatter broadcast reduce all_to_all sendrecv gather scatter)
dtypes=(float bfloat16 int32)
min=32K; max=1G; factor=32   # 32K 1M 32M 1G
if [ "$quick" = 1 ]; then dtypes=(float); max=1M; fi

failures=0
# run NAME ARGS... : one collbench run, its JSON kept, its status recorded.
run() {
    local name="$1"; shift
    local json="$results/$name.json" log="$results/$name.log"
    local start end rc
    start=$(date +%s.%N)
    "$@" -J "$json" > "$log" 2>&1
    rc=$?
    end=$(date +%s.%N)
    awk -v n="$name" -v r="$rc" -v a="$start" -v b="$end" 'BEGIN { printf "%s\t%s\t%.1f\n", n, r, b - a }' >> "$summary"
    if [ "$rc" != 0 ]; then
        failures=$((failures + 1))
        say "FAIL $name (exit $rc): $(tail -n 3 "$log" | tr '\n' ' ')"
    else
        say "ok   $name"
    fi
}

# 2. every collective, checked, on all GPUs
for c in "${collectives[@]}"; do
    for d in "${dtypes[@]}"; do
        run "${c}_${d}_all" "${launch[@]}" "$c" "${per_run[@]}" "${nccl_args[@]}" --backend nccl \
            -b "$min" -e "$max" -f "$factor" -d "$d" -n 20 -w 5 -c 1
    done
done

# 3. a 16G all_reduce on one GPU (two 16 GiB buffers)
if [ "$quick" = 0 ]; then
    run "all_reduce_float_16G_1gpu" "$bin" all_reduce -g 1 "${nccl_args[@]}" --backend nccl \
        -b 16G -e 16G -d float -n 5 -w 1 -c 1
fi

# 4. the table, and nccl-tests side by side when present
python3 - "$results" "${collectives[*]}" "${dtypes[*]}" <<'PY' | tee -a "$results/gpu-check.log"
import json, os, sys
results, collectives, dtypes = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
print()
print(f"{'run':<34} {'size':>10} {'time us':>10} {'busbw GB/s':>11} {'in-pl bw':>9} {'#wrong':>7} path")
for c in collectives:
    for d in dtypes + ["float_16G_1gpu"] if c == "all_reduce" else dtypes:
        name = f"{c}_{d}_all" if not d.endswith("1gpu") else f"{c}_{d}"
        path = os.path.join(results, name + ".json")
        try:
            doc = json.load(open(path))
        except Exception as e:
            print(f"{name:<34} (no JSON: {e.__class__.__name__})")
            continue
        for row in doc.get("rows", []):
            oop, inp = row.get("out_of_place") or {}, row.get("in_place") or {}
            wrong = (oop.get("wrong") or 0) + (inp.get("wrong") or 0)
            print(f"{name:<34} {row.get('size_bytes', 0):>10} {oop.get('time_us', float('nan')):>10.1f} "
                  f"{oop.get('busbw_gbps', float('nan')):>11.2f} {inp.get('busbw_gbps', float('nan')):>9.2f} "
                  f"{wrong:>7} {row.get('path', '')}")
PY

nccl_tests_name() {
    case "$1" in
        all_to_all) echo alltoall_perf ;;
        *) echo "${1}_perf" ;;
    esac
}
if command -v all_reduce_perf >/dev/null 2>&1; then
    say ""
    say "collbench / nccl-tests (float, out of place, all GPUs; busbw ratio and time ratio):"
    for c in "${collectives[@]}"; do
        exe=$(nccl_tests_name "$c")
        command -v "$exe" >/dev/null 2>&1 || { say "  $c: $exe not on PATH"; continue; }
        if [ "${#per_run[@]}" -gt 0 ]; then
            "$exe" -g "$ngpus" -b "$min" -e "$max" -f "$factor" -d float -n 20 -w 5 -c 1 > "$results/${c}_nccl_tests.log" 2>&1
        else
            mpirun --allow-run-as-root -np "$ngpus" --bind-to none "$exe" -g 1 -b "$min" -e "$max" -f "$factor" \
                -d float -n 20 -w 5 -c 1 > "$results/${c}_nccl_tests.log" 2>&1
        fi
        python3 - "$results/${c}_float_all.json" "$results/${c}_nccl_tests.log" "$c" <<'PY' | tee -a "$results/gpu-check.log"
import json, sys
ours_path, theirs_path, name = sys.argv[1:4]
theirs = {}
for line in open(theirs_path, errors="replace"):
    f = line.split()
    # Data lines start with the size; the last 8 fields are time algbw busbw #wrong twice.
    if len(f) >= 12 and f[0].isdigit():
        try:
            theirs[int(f[0])] = (float(f[-8]), float(f[-6]))
        except ValueError:
            pass
try:
    rows = json.load(open(ours_path)).get("rows", [])
except Exception:
    rows = []
for row in rows:
    size, oop = row.get("size_bytes"), row.get("out_of_place") or {}
    if size in theirs and oop:
        t_time, t_bw = theirs[size]
        bw = oop.get("busbw_gbps", 0) / t_bw if t_bw else float("nan")
        tm = oop.get("time_us", 0) / t_time if t_time else float("nan")
        print(f"  {name:<16} {size:>11} B  busbw {oop.get('busbw_gbps', 0):8.2f} / {t_bw:8.2f} = {bw:5.2f}"
              f"   time {oop.get('time_us', 0):10.1f} / {t_time:10.1f} = {tm:5.2f}")
if not theirs:
    print(f"  {name}: no data lines in {theirs_path}")
PY
    done
else
    say "gpu-check: nccl-tests binaries not on PATH; no side-by-side comparison"
fi

say ""
say "gpu-check: $failures failed run(s); logs and JSON in $results"
[ "$failures" = 0 ]
