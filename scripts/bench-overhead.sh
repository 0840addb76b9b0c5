#!/usr/bin/env bash
# collbench's overhead on the mpi backend against bench/mpi_loop.c, a minimal MPI timing loop in C:
# all_reduce, all_to_all and sendrecv at 32K, 1M and 64M on 2 and 4 ranks. Both run alternately ROUNDS
# times; the medians are compared. Targets: ratio within 2 % at 32K (the small messages of decode-phase
# tensor parallelism, where only the loop's own cost shows), within 5 % at 1M and above.
#   scripts/bench-overhead.sh [ROUNDS] [RANK COUNTS, default "2 4"]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
[ "$(id -u)" = 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl=self,vader
mkdir -p bench/out
mpicc -O2 -o bench/out/mpi_loop bench/mpi_loop.c
cargo build --release --quiet
bin=target/release/collbench

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

printf "%-4s %-11s %6s %12s %12s %8s %8s\n" np collective size "C (us)" "ours (us)" ratio target
status=0
for np in ${2:-2 4}; do
  for coll in all_reduce all_to_all sendrecv; do
    for size in 32K 1M 64M; do
      # Enough iterations that one run lasts about a second: fewer leave the machine's noise in the ratio.
      case $size in 32K) bytes=32768 iters=20000 warm=200 target=1.02;; 1M) bytes=1048576 iters=2000 warm=20 target=1.05;;
                    64M) bytes=67108864 iters=30 warm=3 target=1.05;; esac
      c_times=(); our_times=()
      for _ in $(seq "$rounds"); do
        c_times+=("$(mpirun --oversubscribe -np "$np" bench/out/mpi_loop "$coll" "$bytes" "$iters" "$warm")")
        # Column 6 of the row is the out-of-place time.
        our_times+=("$(mpirun --oversubscribe -np "$np" "$bin" "$coll" -b "$size" -e "$size" -n "$iters" -w "$warm" -c 0 --quiet --no-progress \
                      --backend mpi | awk '!/^#/ && NF > 5 {print $6; exit}')")
      done
      c=$(printf "%s\n" "${c_times[@]}" | median)
      ours=$(printf "%s\n" "${our_times[@]}" | median)
      ratio=$(awk -v a="$ours" -v b="$c" 'BEGIN {printf "%.3f", a / b}')
      ok=$(awk -v r="$ratio" -v t="$target" 'BEGIN {print (r <= t) ? "ok" : "OVER"}')
      [ "$ok" = ok ] || status=1
      printf "%-4s %-11s %6s %12s %12s %8s %8s %s\n" "$np" "$coll" "$size" "$c" "$ours" "$ratio" "<=$target" "$ok"
    done
  done
done
exit $status
