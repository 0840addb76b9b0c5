#!/usr/bin/env bash
# The main job of the README: installs what is missing (safe to re-run), builds collbench, and runs
# every collective on whatever this machine has: its NVIDIA or AMD GPUs (one rank per GPU), otherwise
# MPI ranks on host memory. Arguments replace the default collbench arguments.
#   scripts/run.sh                      # default sweep, results in results/run-<time>.json
#   scripts/run.sh all_reduce -b 1M -e 1G -J ar.json
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
[ -d "$HOME/.cargo/bin" ] && export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --quiet
bin="$PWD/target/release/collbench"
if [ "$(id -u)" = 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi

# Results stay out of the source tree's way: results/ is ignored by git.
mkdir -p results
out="results/run-$(date -u +%Y%m%dT%H%M%SZ).json"

gpus=0
if command -v nvidia-smi >/dev/null 2>&1; then
    gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
elif command -v rocm-smi >/dev/null 2>&1; then
    gpus=$(rocm-smi --showid 2>/dev/null | grep -c 'GPU\[' || true)
fi

if [ "$gpus" -gt 0 ]; then
    [ $# -gt 0 ] || set -- all -J "$out"
    echo "run: $gpus GPU(s) found: one rank per GPU" >&2
    exec mpirun -np "$gpus" "$bin" "$@"
else
    # Host memory on a small machine: the mission's sweep up to 64M keeps the run to a minute or so.
    [ $# -gt 0 ] || set -- all -b 32K -e 64M -n 20 -J "$out"
    ranks=${COLLBENCH_RANKS:-4}
    echo "run: no GPU found: $ranks MPI ranks on host memory (set COLLBENCH_RANKS to change)" >&2
    exec mpirun --oversubscribe -np "$ranks" "$bin" --backend mpi "$@"
fi
