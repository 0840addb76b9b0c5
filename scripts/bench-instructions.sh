#!/usr/bin/env bash
# What collbench's timed loop adds to each operation, counted in instructions rather than time, so the
# machine's load does not enter: on one rank, valgrind's cachegrind counts the instructions of a run of
# N and of 2N iterations; their difference over N is the cost of one timed iteration. collbench times
# both placements of a row (out-of-place, then in place), so its figure is set against bench/mpi_loop.c
# run both ways, with the same MPI calls. `extra` is what collbench adds per operation.
#   scripts/bench-instructions.sh [N] [SIZE] [COLLECTIVES]      defaults: 5000, 32K, every collective
#   COLLBENCH_BIN=path/to/collbench scripts/bench-instructions.sh   (another build, e.g. an older one)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-5000}
size=${2:-32K}
collectives=${3:-all_reduce all_gather reduce_scatter broadcast reduce all_to_all sendrecv gather scatter}
[ "$(id -u)" = 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl=self,vader
case $size in 32K) bytes=32768;; 1M) bytes=1048576;; *) echo "size $size: use 32K or 1M" >&2; exit 2;; esac
mkdir -p bench/out
mpicc -O2 -o bench/out/mpi_loop bench/mpi_loop.c
if [ -z "${COLLBENCH_BIN:-}" ]; then cargo build --release --quiet; fi
bin=${COLLBENCH_BIN:-target/release/collbench}

# Instructions of one run (a singleton MPI process, no launcher: the same for both programs).
refs() { valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null "$@" 2>&1 >/dev/null |
           awk '/I *refs:/ {gsub(",", "", $NF); print $NF}'; }
ours() { refs "$bin" "$coll" -b "$size" -e "$size" -n "$1" -w 10 -c 0 --samples 0 --quiet --no-progress \
           --no-telemetry --backend mpi; }
c_loop() { refs bench/out/mpi_loop "$coll" "$bytes" "$1" 10 ${2:-}; }

printf "%-15s %5s %14s %14s %10s\n" collective size "C (instr/op)" "ours (instr/op)" extra
for coll in $collectives; do
  c=$(( ( $(c_loop $((2 * n))) - $(c_loop "$n") + $(c_loop $((2 * n)) in_place) - $(c_loop "$n" in_place) ) / (2 * n) ))
  o=$(( ( $(ours $((2 * n))) - $(ours "$n") ) / (2 * n) ))
  printf "%-15s %5s %14d %14d %+10d\n" "$coll" "$size" "$c" "$o" $((o - c))
done
