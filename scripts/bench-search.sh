#!/usr/bin/env bash
# The pairs search against synthetic fabrics (examples/search_bench.rs, the same search code that runs
# on MPI/NCCL): for each profile (infiniband: healthy pairs a few percent apart; lab: up to ~30 %),
# host count and scenario (healthy, bad host, bad link, two bad hosts, flaky host), 1,000 seeded
# fabrics; rounds to a verdict, faults found and missed, false blame, and the wall time the rounds take
# beside the circle method's (--full: n-1 rounds x 3 repeats) at ROUND_SECONDS per round.
#   scripts/bench-search.sh [ROUND_SECONDS] [EXTRA ARGS...]   e.g. --hosts 1024,4096 --fabrics 1000
# ROUND_SECONDS defaults to a round of the 8-host lab (docs/FLEET.md's recording); give the round time
# of your own fabric (collbench pairs prints it, and stores search.seconds_per_round).
set -euo pipefail
cd "$(dirname "$0")/.."
round_s=${1:-1.0}
shift || true
cargo build --release --quiet --example search_bench
exec target/release/examples/search_bench --round-seconds "$round_s" "$@"
