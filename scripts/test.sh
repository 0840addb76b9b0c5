#!/usr/bin/env bash
# The test command of the README: installs what the tests need (safe to re-run), then runs every test.
# The tests use the real OpenMPI, the real libnccl.so.2 from PyPI and the real libamdhip64 from Debian.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
[ -d "$HOME/.cargo/bin" ] && export PATH="$HOME/.cargo/bin:$PATH"
if [ "$(id -u)" = 0 ]; then
    # OpenMPI refuses to start as root unless told that it is on purpose.
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
cargo test --all-targets "$@"
