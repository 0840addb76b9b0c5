#!/usr/bin/env bash
# Installs what collbench needs to build and run on Debian 12, skipping what is already there.
# Usage: scripts/setup.sh [--test]   (--test also installs what the test suite uses: the pip NCCL,
#                                    libamdhip64, ROCm SMI)
# Safe to re-run.
set -euo pipefail

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

sudo_cmd=""
if [ "$(id -u)" != 0 ]; then sudo_cmd="sudo"; fi

missing=()
pkgs=(libopenmpi-dev openmpi-bin libclang-dev pkg-config)
[ "$want_test" = 1 ] && pkgs+=(libamdhip64-5 python3-pip)
# Debian 12's ROCm SMI 5.2.3: its rocm_smi.h for tests/abi.rs, the library for tests/amd_libraries.rs
# (installed on a machine without an AMD GPU, as Debian's Slurm installs it on NVIDIA nodes).
[ "$want_test" = 1 ] && pkgs+=(librocm-smi64-1 librocm-smi-dev)
# Slurm across the multi-host lab (tests/slurm_lab.rs) and the count of bytes written (tests/document_writes.rs).
[ "$want_test" = 1 ] && pkgs+=(slurmd slurmctld slurm-client munge strace)
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
    if [ -x "$HOME/.cargo/bin/cargo" ]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    else
        echo "setup: cargo not found; install Rust (https://rustup.rs) and re-run" >&2
        exit 1
    fi
fi

if [ "$want_test" = 1 ]; then
    # The real libnccl.so.2 (no GPU needed to load it) for the NCCL loading and ABI tests.
    nccl_dir=$(python3 - <<'PY' 2>/dev/null || true
import importlib.util, os
spec = importlib.util.find_spec("nvidia.nccl")
if spec and spec.submodule_search_locations:
    d = os.path.join(list(spec.submodule_search_locations)[0], "lib")
    if os.path.exists(os.path.join(d, "libnccl.so.2")):
        print(d)
PY
)
    if [ -z "$nccl_dir" ]; then
        echo "setup: installing nvidia-nccl-cu12 from PyPI (about 350 MB)"
        python3 -m pip install -q --disable-pip-version-check nvidia-nccl-cu12 2>/dev/null \
            || python3 -m pip install -q --disable-pip-version-check --break-system-packages nvidia-nccl-cu12
    fi
fi
echo "setup: ok"
