#!/usr/bin/env bash
# What rank 0's reporters cost at fleet size (benches/reporters.rs: synthetic rows of RANKS ranks with
# every rank's times and GPU readings, fed through the reporter into a JSON document in FOLDER): bytes
# written, peak memory, time and the document's size, for this checkout and, with BEFORE=REV, for the
# code of REV (a git revision, e.g. main) built from a worktree of its own with the same benchmark.
#   scripts/bench-reporters.sh [RANKS [ROWS [FOLDER]]]          (default 8192 200 /tmp)
#   BEFORE=main scripts/bench-reporters.sh 8192 200 /tmp
# REV's app::record and app::reporter are made public in its worktree (as here) so the benchmark can
# drive them; nothing else of REV changes. REV builds into target/before (one target folder for both
# would let cargo run one build's benchmark for the other's: same package, same name).
set -euo pipefail
cd "$(dirname "$0")/.."
ranks=${1:-8192} rows=${2:-200} folder=${3:-/tmp}
here=$PWD

run() { # LABEL DIR TARGET
    (cd "$2" && CARGO_TARGET_DIR=$3 cargo bench --quiet --bench reporters --no-run)
    # stdout is the table, a line a row; the figures are on stderr.
    echo "$1: $( (cd "$2" && CARGO_TARGET_DIR=$3 cargo bench --quiet --bench reporters -- "$ranks" "$rows" "$folder") 2>&1 >/dev/null | tail -1)"
}

if [ -n "${BEFORE:-}" ]; then
    rev=$(git rev-parse --short "$BEFORE")
    tree=${TMPDIR:-/tmp}/collbench-before-$rev
    [ -d "$tree" ] || git worktree add --detach --quiet "$tree" "$rev"
    sed -i -e 's/^mod record;/pub mod record;/' -e 's/^mod reporter;/pub mod reporter;/' "$tree/src/app/mod.rs"
    cp benches/reporters.rs "$tree/benches/reporters.rs" 2>/dev/null ||
        { mkdir -p "$tree/benches" && cp benches/reporters.rs "$tree/benches/reporters.rs"; }
    grep -q 'name = "reporters"' "$tree/Cargo.toml" ||
        printf '\n[[bench]]\nname = "reporters"\nharness = false\n' >>"$tree/Cargo.toml"
    run "before ($BEFORE, $rev)" "$tree" "$here/target/before"
fi
run "this checkout ($(git rev-parse --short HEAD))" "$here" "$here/target"
