#!/usr/bin/env bash
# A small cluster on one machine, for tests and for people: hosts made of network namespaces, each with
# its own hostname, joined by veth pairs to a bridge, addressed from 198.18.0.0/15 (set aside for
# benchmark tests) with no route anywhere else. Open MPI launches across them through its rsh launcher,
# with an agent that enters the namespace instead of ssh; TCP between hosts, shared memory inside one.
# Needs root (ip netns, unshare --uts, tc).
#
#   scripts/lab.sh up DIR [HOSTS]        make a lab of HOSTS (default 4) hosts; its state lives in DIR
#   scripts/lab.sh mpirun DIR ARGS...    mpirun across the lab, launched from its first host
#   scripts/lab.sh exec DIR HOST CMD...  run a command on host HOST (0-based) of the lab
#   scripts/lab.sh slow DIR HOST RATE    rate-limit host HOST's link, both directions (tc tbf), e.g. 200mbit
#   scripts/lab.sh slow-link DIR A B RATE  rate-limit only the traffic between hosts A and B (tc htb)
#   scripts/lab.sh cut DIR HOST          take host HOST's link down (ip link set down)
#   scripts/lab.sh down DIR              kill what runs in the lab and remove it
#   scripts/lab.sh gc                    remove labs left by runs that were killed (their owner is gone)
#   scripts/lab.sh slurm DIR             start Slurm on the lab: munged and slurmctld on host 0, a slurmd
#                                        on every host (Debian's slurmd, slurmctld, munge; docs/FLEET.md)
#   scripts/lab.sh srun DIR ARGS...      srun on the lab (from host 0), e.g. srun DIR -N 4 --mpi=pmix CMD
#   scripts/lab.sh slurm-cmd DIR CMD...  a Slurm client command on the lab (squeue, scancel, sinfo)
#
# Every lab is registered under /run/collbench-lab/ID with the pid of its owner (the process that
# called `up`, or $COLLBENCH_LAB_OWNER), so a killed test run's leftovers are removed by the next `up`.
# Names are unique per lab, so labs of tests running in parallel do not collide.
set -euo pipefail

REGISTRY=/run/collbench-lab

die() {
    echo "lab: $*" >&2
    exit 2
}

# The namespace, root-side veth and bridge names of lab ID (interface names stay within 15 characters).
ns_name() { echo "cbl$1h$2"; }
veth_name() { echo "cbl$1v$2"; }
bridge_name() { echo "cbl$1br"; }

remove_lab() {
    local id=$1 ns
    for ns in $(ip netns list | awk '{print $1}' | grep "^cbl${id}h" || true); do
        # Whatever the lab runs (orted, ranks) goes with it; these are processes the lab started.
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
        ip netns delete "$ns" 2>/dev/null || true
    done
    ip link delete "$(bridge_name "$id")" 2>/dev/null || true
    rm -rf "${REGISTRY:?}/$id"
}

gc() {
    local entry id owner
    [ -d "$REGISTRY" ] || return 0
    for entry in "$REGISTRY"/*; do
        [ -e "$entry" ] || continue
        id=$(basename "$entry")
        owner=$(cat "$entry/owner" 2>/dev/null || echo 0)
        # kill -0 0 would ask about our own process group: an owner that is not a real pid is gone.
        if ! [[ "$owner" =~ ^[0-9]+$ ]] || [ "$owner" -le 1 ] || ! kill -0 "$owner" 2>/dev/null; then
            echo "lab: removing lab $id left by process $owner, which is gone" >&2
            remove_lab "$id"
        fi
    done
}

state() {
    local dir=$1
    [ -f "$dir/id" ] || die "$dir is not a lab (no $dir/id): make one with 'scripts/lab.sh up $dir'"
    ID=$(cat "$dir/id")
    HOSTS=$(cat "$dir/hosts")
    SUBNET=$(cat "$dir/subnet")
}

address() { echo "${SUBNET%.0/24}.$(($2 + 1))"; }

up() {
    local dir=$1 hosts=${2:-4} id third i ns veth
    [ "$(id -u)" = 0 ] || die "the lab needs root (network namespaces, unshare --uts, tc)"
    [[ "$hosts" =~ ^[0-9]+$ ]] && [ "$hosts" -ge 2 ] && [ "$hosts" -le 200 ] ||
        die "HOSTS must be 2 to 200, not '$hosts'"
    gc
    mkdir -p "$dir" "$REGISTRY"
    dir=$(cd "$dir" && pwd)
    # 5 hex digits: unique enough among the labs of one machine; a clash is refused below.
    id=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n' | cut -c1-5)
    mkdir "$REGISTRY/$id" || die "lab id $id is taken; try again"
    echo "${COLLBENCH_LAB_OWNER:-$PPID}" >"$REGISTRY/$id/owner"
    echo "$dir" >"$REGISTRY/$id/dir"
    # A /24 of 198.18.0.0/15 per lab, from the id, so two labs' addresses rarely look alike in logs.
    third=$((16#${id:0:2}))
    echo "$id" >"$dir/id"
    echo "$hosts" >"$dir/hosts"
    echo "198.18.$third.0/24" >"$dir/subnet"
    state "$dir"

    ip link add "$(bridge_name "$id")" type bridge
    ip link set "$(bridge_name "$id")" up
    : >"$dir/hostfile"
    : >"$dir/names"
    for ((i = 0; i < hosts; i++)); do
        ns=$(ns_name "$id" "$i")
        veth=$(veth_name "$id" "$i")
        ip netns add "$ns"
        ip link add "$veth" type veth peer name "${veth}p"
        ip link set "${veth}p" netns "$ns"
        ip -n "$ns" link set "${veth}p" name eth0
        ip -n "$ns" addr add "$(address "$dir" "$i")/24" dev eth0
        ip -n "$ns" link set eth0 up
        ip -n "$ns" link set lo up
        ip link set "$veth" master "$(bridge_name "$id")" up
        if [ "$i" = 0 ]; then
            # mpirun runs here. When a host is cut, mpirun's order to that host's daemon stays
            # unacknowledged and mpirun waits until the kernel gives up retransmitting it: 15 retries,
            # about 15 minutes, by default. The lab's launch host gives up after 5 (about 13 s), as
            # docs/FLEET.md advises for a real launch node.
            ip netns exec "$ns" sysctl -qw net.ipv4.tcp_retries2=5
        fi
        echo "$(address "$dir" "$i") slots=64" >>"$dir/hostfile"
        echo "$(address "$dir" "$i") $ns" >>"$dir/names"
    done
    # The launcher's agent: Open MPI calls it as `agent HOST COMMAND...`, as it would call ssh.
    cat >"$dir/agent" <<EOF
#!/bin/sh
# Open MPI's rsh agent for lab $id: enter the host's namespaces instead of logging in.
host=\$1; shift
ns=\$(awk -v h="\$host" '\$1 == h {print \$2}' "$dir/names")
[ -n "\$ns" ] || { echo "lab agent: \$host is not a host of lab $id" >&2; exit 255; }
exec ip netns exec "\$ns" unshare --uts sh -c "hostname \$ns; \$*"
EOF
    chmod +x "$dir/agent"
    echo "lab: $hosts hosts up in lab $id ($SUBNET): $(awk '{print $2}' "$dir/names" | tr '\n' ' ')" >&2
}

lab_mpirun() {
    local dir=$1
    shift
    state "$dir"
    local ns
    ns=$(ns_name "$ID" 0)
    # TCP between hosts on the lab's subnet only, shared memory inside one; the agent instead of ssh.
    exec ip netns exec "$ns" unshare --uts env \
        OMPI_MCA_plm_rsh_agent="$dir/agent" \
        OMPI_MCA_plm_rsh_no_tree_spawn=1 \
        OMPI_MCA_orte_default_hostfile="$dir/hostfile" \
        OMPI_MCA_oob_tcp_if_include="$SUBNET" \
        OMPI_MCA_btl_tcp_if_include="$SUBNET" \
        OMPI_MCA_btl=self,vader,tcp \
        OMPI_MCA_pml=ob1 \
        sh -c 'hostname "$0"; exec mpirun "$@"' "$ns" "$@"
}

host_arg() {
    [[ "$1" =~ ^[0-9]+$ ]] && [ "$1" -lt "$HOSTS" ] || die "HOST must be 0 to $((HOSTS - 1)), not '$1'"
}

slow() {
    local dir=$1 host=$2 rate=$3
    state "$dir"
    host_arg "$host"
    # Both directions: what the host sends (its eth0) and what the bridge sends to it (the root side).
    ip netns exec "$(ns_name "$ID" "$host")" tc qdisc replace dev eth0 root tbf rate "$rate" burst 32kbit latency 400ms
    tc qdisc replace dev "$(veth_name "$ID" "$host")" root tbf rate "$rate" burst 32kbit latency 400ms
}

slow_link() {
    local dir=$1 a=$2 b=$3 rate=$4
    state "$dir"
    host_arg "$a"
    host_arg "$b"
    [ "$a" != "$b" ] || die "a link joins two different hosts, not $a and $b"
    local from to
    for pair in "$a $b" "$b $a"; do
        read -r from to <<<"$pair"
        local ns
        ns=$(ns_name "$ID" "$from")
        # Only packets from this host to the other one take the slow class; the rest go at full speed.
        ip netns exec "$ns" tc qdisc replace dev eth0 root handle 1: htb default 10
        ip netns exec "$ns" tc class replace dev eth0 parent 1: classid 1:10 htb rate 100gbit
        ip netns exec "$ns" tc class replace dev eth0 parent 1: classid 1:20 htb rate "$rate" ceil "$rate"
        ip netns exec "$ns" tc filter replace dev eth0 parent 1: protocol ip prio 1 u32 \
            match ip dst "$(address "$dir" "$to")/32" flowid 1:20
    done
}

cut_link() {
    local dir=$1 host=$2
    state "$dir"
    host_arg "$host"
    ip link set "$(veth_name "$ID" "$host")" down
}

down() {
    local dir=$1
    [ -f "$dir/id" ] || return 0
    remove_lab "$(cat "$dir/id")"
    rm -f "$dir/id"
}

lab_exec() {
    local dir=$1 host=$2
    shift 2
    state "$dir"
    host_arg "$host"
    local ns
    ns=$(ns_name "$ID" "$host")
    exec ip netns exec "$ns" unshare --uts sh -c 'hostname "$0"; exec "$@"' "$ns" "$@"
}

# Slurm across the lab. Each slurmd runs in its host's network namespace entered with nsenter (not
# `ip netns exec`, which remounts /sys, where slurmd then misses /sys/fs/cgroup), with its own hostname
# and its own /tmp (PMIx makes its per-step directory there; one /tmp for every host makes them
# collide). slurmctld and munged run on host 0, so labs never share a port.
slurm_dir() { echo "$1/slurm"; }

slurm_up() {
    local dir=$1 i ns tool s ns0
    state "$dir"
    for tool in slurmd slurmctld munged srun sinfo; do
        command -v "$tool" >/dev/null ||
            die "$tool is missing: apt-get install slurmd slurmctld slurm-client munge (scripts/setup.sh --test does)"
    done
    s=$(slurm_dir "$dir")
    [ ! -e "$s/slurm.conf" ] || die "Slurm already runs on lab $ID"
    mkdir -p "$s/munge" "$s/ctld" "$s/spool" "$s/log" "$s/tmp"
    chmod 700 "$s/munge"
    head -c 1024 /dev/urandom >"$s/munge/munge.key"
    chmod 400 "$s/munge/munge.key"
    ns0=$(ns_name "$ID" 0)
    {
        echo "# Slurm for lab $ID (scripts/lab.sh slurm)"
        echo "ClusterName=cbl$ID"
        echo "SlurmctldHost=$ns0($(address "$dir" 0))"
        echo "AuthType=auth/munge"
        echo "CredType=cred/munge"
        echo "AuthInfo=socket=$s/munge/socket"
        echo "SlurmUser=root"
        echo "SlurmdUser=root"
        echo "StateSaveLocation=$s/ctld"
        echo "SlurmdSpoolDir=$s/spool/%n"
        echo "SlurmctldPidFile=$s/slurmctld.pid"
        echo "SlurmdPidFile=$s/slurmd-%n.pid"
        echo "SlurmctldLogFile=$s/log/slurmctld.log"
        echo "SlurmdLogFile=$s/log/slurmd-%n.log"
        # No cgroups: the lab's hosts share the machine's, which are not theirs to divide.
        echo "ProctrackType=proctrack/linuxproc"
        echo "TaskPlugin=task/none"
        echo "JobAcctGatherType=jobacct_gather/none"
        echo "AccountingStorageType=accounting_storage/none"
        echo "SwitchType=switch/none"
        echo "MpiDefault=none"
        echo "SchedulerType=sched/builtin"
        echo "SelectType=select/linear"
        # Every host offers 8 CPUs whatever the machine has: the lab oversubscribes, as its mpirun does.
        echo "SlurmdParameters=config_overrides"
        echo "ReturnToService=2"
        # scancel and time limits: SIGTERM, then SIGKILL 2 s later.
        echo "KillWait=2"
        echo "InactiveLimit=0"
        echo "MessageTimeout=20"
        echo "SlurmdTimeout=60"
        for ((i = 0; i < HOSTS; i++)); do
            echo "NodeName=$(ns_name "$ID" "$i") NodeAddr=$(address "$dir" "$i") CPUs=8 State=UNKNOWN"
        done
        echo "PartitionName=lab Nodes=ALL Default=YES MaxTime=INFINITE State=UP"
    } >"$s/slurm.conf"
    # How a slurmd enters its host: its hostname, and a /tmp of its own. What lies under the machine's
    # /tmp and every host must see stays where it is: the lab's folder, this checkout (the binary a
    # job runs, and srun's working folder) and CARGO_TARGET_DIR.
    local shared=() p
    for p in "$dir" "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)" "${CARGO_TARGET_DIR:-}"; do
        case "$p" in /tmp/*) shared+=("$p") ;; esac
    done
    {
        echo '#!/bin/sh'
        echo "# Enters a host of lab $ID as its slurmd needs: enter HOST CMD..."
        echo 'host=$1; shift'
        echo 'hostname "$host"'
        echo "mkdir -p \"$s/tmp/\$host\" || exit 1"
        if [ "${#shared[@]}" -gt 0 ]; then
            # The machine's /tmp stays reachable, in this mount namespace only, to put those back.
            echo "mkdir -p \"$REGISTRY/$ID/tmp\" && mount --bind /tmp \"$REGISTRY/$ID/tmp\" || exit 1"
        fi
        echo "mount --bind \"$s/tmp/\$host\" /tmp || exit 1"
        for p in "${shared[@]}"; do
            echo "mkdir -p \"$p\" && mount --bind \"$REGISTRY/$ID/tmp/${p#/tmp/}\" \"$p\" || exit 1"
        done
        echo 'exec "$@"'
    } >"$s/enter"
    chmod +x "$s/enter"
    nsenter --net="/run/netns/$ns0" munged -f --key-file="$s/munge/munge.key" --socket="$s/munge/socket" \
        --pid-file="$s/munge/munged.pid" --log-file="$s/log/munged.log" --seed-file="$s/munge/seed" ||
        die "munged did not start: see $s/log/munged.log"
    nsenter --net="/run/netns/$ns0" unshare --uts sh -c 'hostname "$0"; exec slurmctld -c -f "$1"' \
        "$ns0" "$s/slurm.conf" || die "slurmctld did not start: see $s/log/slurmctld.log"
    for ((i = 0; i < HOSTS; i++)); do
        ns=$(ns_name "$ID" "$i")
        nsenter --net="/run/netns/$ns" unshare --uts --mount "$s/enter" "$ns" slurmd -N "$ns" -f "$s/slurm.conf" ||
            die "slurmd on $ns did not start: see $s/log/slurmd-$ns.log"
    done
    # Every host idle before the first job: a slurmd registers within a second or two.
    local idle=0 waited=0
    while [ "$idle" != "$HOSTS" ]; do
        [ "$waited" -lt 300 ] || die "only $idle of $HOSTS hosts joined Slurm in 30 s: see $s/log/"
        sleep 0.1
        waited=$((waited + 1))
        idle=$(slurm_client "$dir" sinfo -h -N -o %T 2>/dev/null | grep -c '^idle' || true)
    done
    echo "lab: Slurm up on lab $ID: slurmctld on $ns0, a slurmd on each of $HOSTS hosts" >&2
}

# A Slurm client on host 0, with the lab's configuration.
slurm_client() {
    local dir=$1
    shift
    state "$dir"
    SLURM_CONF="$(slurm_dir "$dir")/slurm.conf" nsenter --net="/run/netns/$(ns_name "$ID" 0)" "$@"
}

lab_srun() {
    local dir=$1
    shift
    state "$dir"
    [ -f "$(slurm_dir "$dir")/slurm.conf" ] || die "no Slurm on lab $ID: start it with 'scripts/lab.sh slurm $dir'"
    # TCP between hosts on the lab's subnet, shared memory inside one. Open MPI 4.1's modex fence under
    # srun crashed 6 launches in 200 here (a peer's first message reaching a rank still in MPI_Init: a
    # segfault in btl/tcp); without the fence (addresses fetched when first needed) none did in 200
    # (docs/FLEET.md).
    exec env SLURM_CONF="$(slurm_dir "$dir")/slurm.conf" \
        OMPI_MCA_btl_tcp_if_include="$SUBNET" \
        OMPI_MCA_btl=self,vader,tcp \
        OMPI_MCA_pml=ob1 \
        OMPI_MCA_pmix_base_async_modex=1 \
        OMPI_MCA_pmix_base_collect_data=0 \
        nsenter --net="/run/netns/$(ns_name "$ID" 0)" srun "$@"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
up) [ $# -ge 1 ] || die "usage: lab.sh up DIR [HOSTS]"; up "$@" ;;
mpirun) [ $# -ge 1 ] || die "usage: lab.sh mpirun DIR ARGS..."; lab_mpirun "$@" ;;
exec) [ $# -ge 3 ] || die "usage: lab.sh exec DIR HOST CMD..."; lab_exec "$@" ;;
slow) [ $# -eq 3 ] || die "usage: lab.sh slow DIR HOST RATE"; slow "$@" ;;
slow-link) [ $# -eq 4 ] || die "usage: lab.sh slow-link DIR A B RATE"; slow_link "$@" ;;
cut) [ $# -eq 2 ] || die "usage: lab.sh cut DIR HOST"; cut_link "$@" ;;
down) [ $# -eq 1 ] || die "usage: lab.sh down DIR"; down "$@" ;;
gc) gc ;;
slurm) [ $# -eq 1 ] || die "usage: lab.sh slurm DIR"; slurm_up "$@" ;;
srun) [ $# -ge 2 ] || die "usage: lab.sh srun DIR ARGS..."; lab_srun "$@" ;;
slurm-cmd) [ $# -ge 2 ] || die "usage: lab.sh slurm-cmd DIR CMD..."; slurm_client "$@" ;;
*) die "usage: lab.sh up|mpirun|exec|slow|slow-link|cut|down|gc|slurm|srun|slurm-cmd (see the top of scripts/lab.sh)" ;;
esac
