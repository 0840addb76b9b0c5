#!/usr/bin/env bash
# Makes, once, the folder of real AMD libraries from Debian sid and experimental that the tests load
# (tests/amd_libraries.rs, tests/abi.rs): RCCL 5.4.3 and 7.2.4, ROCm SMI 6.4.1, their headers, and the
# sid C library they need (glibc 2.38 or newer; this machine's Debian 12 has 2.36).
#
# Usage: scripts/amd-root.sh            prints the folder (made if missing, reused if made before)
#        COLLBENCH_AMD_ROOT_CACHE=DIR   where it is kept (default /var/cache/collbench: outside the
#                                       checkout, so a fresh clone in CI reuses it)
#
# Nothing is installed on this machine: a private apt (its own sources list, lists and status, all under
# the cache) resolves and downloads the packages, and `dpkg-deb -x` unpacks each into a folder of its
# stack. No maintainer script runs, no chroot is made: the tests run our binary under sid's own loader
# (ld-linux-x86-64.so.2 --library-path), which needs no root, no mounts, and finds this machine's
# libmpi.so.40 after the sid folders (docs/TESTING.md, "The real AMD libraries").
#
# Folders under the root:
#   base/           libc6, libstdc++6, libgcc-s1 of sid: the loader and the C and C++ runtimes
#   rocm7/          what RCCL 7.2.4 needs besides: HIP 7.2 (libamdhip64.so.7), HSA, comgr, LLVM, ROCm SMI 7;
#                   and HIP 7.2's headers (hip_runtime_api.h, for tests/abi.rs)
#   rccl-7.2.4/     librccl.so.1 and rccl.h of RCCL 7.2.4 (experimental)
#   rccl-5.4.3/     librccl.so.1 and rccl.h of RCCL 5.4.3 (sid); it runs on this machine's HIP 5.2.3,
#                   as sid's own HIP 5 cannot be installed there any more (its libamd-comgr2 is gone)
#   rocm-smi-6.4.1/ librocm_smi64.so.1 and rocm_smi.h of ROCm SMI 6.4.1 (sid), with libdrm's headers
#                   that rocm_smi.h includes
# and manifest.txt: every package and version unpacked, and the seconds and bytes it took.
set -euo pipefail

# The recipe. Any change here makes a new root (the key is its hash); an old one stays until removed.
RECIPE_VERSION=2
RCCL7="librccl1=7.2.4-1~exp3"
# apt takes a dependency from experimental only when named: RCCL 7.2.4's HIP 7.2 and what it needs.
RCCL7_STACK=(libamdhip64-7=7.2.4-1~exp2 libamd-comgr3=7.2.4+dfsg-1~exp1 libhsa-runtime64-1=7.2.4+dfsg-1~exp1)
RCCL7_DEV="librccl-dev=7.2.4-1~exp3"
RCCL5="librccl1=5.4.3-3+b1"
RCCL5_DEV="librccl-dev=5.4.3-3+b1"
SMI6="librocm-smi64-1=6.4.1-1.1"
SMI6_DEV="librocm-smi-dev=6.4.1-1.1"
BASE_PKGS=(libc6 libgcc-s1 libstdc++6)
HEADER_ONLY=(libdrm-dev)
HIP7_DEV="libamdhip64-dev=7.2.4-1~exp2"

cache=${COLLBENCH_AMD_ROOT_CACHE:-/var/cache/collbench}
key=$(printf '%s\n' "$RECIPE_VERSION" "$RCCL7" "${RCCL7_STACK[@]}" "$RCCL7_DEV" "$RCCL5" "$RCCL5_DEV" "$SMI6" "$SMI6_DEV" \
    "${BASE_PKGS[@]}" "${HEADER_ONLY[@]}" "$HIP7_DEV" | sha256sum | cut -c1-12)
root="$cache/amd-root-$key"

if [ -f "$root/manifest.txt" ]; then
    ln -sfn "amd-root-$key" "$cache/amd-root"
    echo "$root"
    exit 0
fi

say() { echo "amd-root: $*" >&2; }
for tool in apt-get dpkg-deb sha256sum; do
    command -v "$tool" >/dev/null || { say "cannot make the root: $tool is missing"; exit 1; }
done
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -f "$keyring" ] || { say "cannot make the root: $keyring is missing (package debian-archive-keyring)"; exit 1; }

mkdir -p "$cache"
work=$(mktemp -d "$cache/.amd-root-$key.XXXXXX")
trap 'rm -rf "$work"' EXIT
start=$(date +%s)

apt_dir="$work/apt"
mkdir -p "$apt_dir"/{lists/partial,cache/archives/partial,etc/preferences.d}
: >"$apt_dir/status"
cat >"$apt_dir/etc/sources.list" <<EOF
deb [signed-by=$keyring] http://deb.debian.org/debian sid main
deb [signed-by=$keyring] http://deb.debian.org/debian experimental main
EOF
# The registry serves a snapshot whose experimental Release file has expired: its signature is still
# checked, only the date is not.
cat >"$apt_dir/apt.conf" <<EOF
Dir::Etc::SourceList "$apt_dir/etc/sources.list";
Dir::Etc::SourceParts "$apt_dir/etc/sources.list.d";
Dir::Etc::Preferences "$apt_dir/etc/preferences";
Dir::Etc::PreferencesParts "$apt_dir/etc/preferences.d";
Dir::State "$apt_dir";
Dir::State::Lists "$apt_dir/lists";
Dir::State::status "$apt_dir/status";
Dir::Cache "$apt_dir/cache";
Acquire::Check-Valid-Until "false";
Acquire::Languages "none";
APT::Architecture "amd64";
APT::Architectures { "amd64"; };
APT::Install-Recommends "false";
Debug::NoLocking "true";
EOF
export APT_CONFIG="$apt_dir/apt.conf"
# The private lists, downloaded as root, are read by apt's unprivileged _apt user otherwise.
apt_quiet=(-qq -o APT::Sandbox::User=root)

say "reading sid and experimental package lists"
apt-get "${apt_quiet[@]}" update >&2

# The packages apt would install on an empty system for `what`, as name=version, one per line.
closure() {
    apt-get "${apt_quiet[@]}" install -s "$@" 2>/dev/null \
        | awk '/^Inst /{gsub(/[()]/, "", $3); print $2 "=" $3}'
}
rccl7_all=$(closure "$RCCL7" "${RCCL7_STACK[@]}" || true)
if [ -z "$rccl7_all" ]; then
    say "cannot resolve $RCCL7 in sid/experimental:"
    apt-get "${apt_quiet[@]}" install -s "$RCCL7" "${RCCL7_STACK[@]}" >&2 || true
    exit 1
fi

debs="$work/debs"
mkdir -p "$debs"
fetch() { (cd "$debs" && apt-get "${apt_quiet[@]}" download "$@" >&2); }
# shellcheck disable=SC2086
fetch $rccl7_all "$RCCL7_DEV" "$RCCL5" "$RCCL5_DEV" "$SMI6" "$SMI6_DEV" "${HEADER_ONLY[@]}" "$HIP7_DEV"
downloaded=$(du -sb "$debs" | cut -f1)

unpack() { # unpack FOLDER DEB...
    local folder=$1 deb
    shift
    mkdir -p "$work/root/$folder"
    for deb in "$@"; do
        dpkg-deb -x "$deb" "$work/root/$folder"
        echo "$folder $(dpkg-deb -f "$deb" Package)=$(dpkg-deb -f "$deb" Version)" >>"$work/unpacked"
    done
}
deb_of() { ls "$debs/$1"_*.deb; }
: >"$work/unpacked"
for entry in $rccl7_all; do
    name=${entry%%=*}
    case " ${BASE_PKGS[*]} " in
        *" $name "*) unpack base "$(deb_of "$name")" ;;
        *)
            case $name in
                librccl1) ;;
                gcc-*-base) unpack base "$(deb_of "$name")" ;;
                *) unpack rocm7 "$(deb_of "$name")" ;;
            esac
            ;;
    esac
done
unpack rocm7 "$debs"/libamdhip64-dev_7.2.4*.deb
unpack rccl-7.2.4 "$debs"/librccl1_7.2.4*.deb "$debs"/librccl-dev_7.2.4*.deb
unpack rccl-5.4.3 "$debs"/librccl1_5.4.3*.deb "$debs"/librccl-dev_5.4.3*.deb
unpack rocm-smi-6.4.1 "$debs"/librocm-smi64-1_6.4.1*.deb "$debs"/librocm-smi-dev_6.4.1*.deb \
    "$(deb_of libdrm-dev)"

loader="$work/root/base/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
[ -x "$loader" ] || { say "sid's libc6 has no loader at ${loader#"$work/root/"}"; exit 1; }

end=$(date +%s)
{
    echo "# made by scripts/amd-root.sh (recipe $RECIPE_VERSION, key $key)"
    echo "seconds $((end - start))"
    echo "downloaded_bytes $downloaded"
    echo "unpacked_bytes $(du -sb "$work/root" | cut -f1)"
    cat "$work/unpacked"
} >"$work/root/manifest.txt"
rm -rf "$root"
mv "$work/root" "$root"
ln -sfn "amd-root-$key" "$cache/amd-root"
# Roots of older recipes are a gigabyte each: only the current one is kept.
for old in "$cache"/amd-root-*; do
    [ "$old" = "$root" ] || rm -rf "$old"
done
say "made $root in $((end - start)) s ($(du -sh "$root" | cut -f1), $((downloaded / 1000000)) MB downloaded)"
echo "$root"
