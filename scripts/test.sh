#!/usr/bin/env bash
# The test command of the README: installs what the tests need (safe to re-run), then runs every test.
# The tests use the real OpenMPI, the real libnccl.so.2 from PyPI, and the real libamdhip64, ROCm SMI
# and RCCL from Debian.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
# The real RCCL 5.4.3 and 7.2.4 and ROCm SMI 6.4.1 of Debian sid and experimental, made once into a cache
# outside the checkout (scripts/amd-root.sh); where it cannot be made the tests that load them skip with
# the reason (CI sets COLLBENCH_AMD_REQUIRED, which makes that a failure).
if amd_root=$(bash scripts/amd-root.sh); then
    export COLLBENCH_AMD_ROOT="$amd_root"
else
    echo "test: the sid/experimental AMD libraries could not be made (above); their tests will say so" >&2
fi
[ -d "$HOME/.cargo/bin" ] && export PATH="$HOME/.cargo/bin:$PATH"
if [ "$(id -u)" = 0 ]; then
    # OpenMPI refuses to start as root unless told that it is on purpose.
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
cargo test --all-targets "$@"
