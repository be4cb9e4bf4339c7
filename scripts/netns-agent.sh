#!/usr/bin/env bash
# Open MPI's launch agent for the simulated cluster of scripts/cluster.sh: mpirun's rsh launcher
# calls it as it would call ssh (`AGENT [OPTIONS] HOST COMMAND...`), and it runs COMMAND (orted,
# Open MPI's daemon) inside HOST's network namespace instead of on a remote machine, so every rank
# that daemon starts has HOST's address and talks to the others only over HOST's link.
#   mpirun --mca plm_rsh_agent scripts/netns-agent.sh --hostfile runs/cluster/hostfile ...
# HOST must be a name in the cluster's hosts file ($CSSLM_CLUSTER_DIR/hosts, default
# runs/cluster/hosts next to this script's repository); its namespace has the same name.
set -euo pipefail

die() { printf 'netns-agent.sh: error: %s\n' "$*" >&2; exit 255; }  # 255: what ssh returns when it cannot connect
hosts=${CSSLM_CLUSTER_DIR:-$(dirname "$0")/../runs/cluster}/hosts

# ssh-style options before the host (Open MPI passes none to an unknown agent; skip any anyway).
while (($#)) && [[ "$1" == -* ]]; do shift; done
(($# >= 2)) || die "usage: netns-agent.sh HOST COMMAND..."
host=$1; shift
[[ -f "$hosts" ]] || die "no cluster hosts file $hosts (hint: scripts/cluster.sh up N)"
awk -v h="$host" '$1 !~ /^#/ && $2 == h { found = 1 } END { exit !found }' "$hosts" \
  || die "host '$host' is not in $hosts (hint: scripts/cluster.sh status)"
ip netns list | awk '{print $1}' | grep -qx -- "$host" || die "host '$host' has no network namespace (hint: scripts/cluster.sh up N)"
# Like ssh: the command line is one string for the remote shell, and the environment is a fresh
# login's, not the launcher's (mpirun forwards what ranks need with -x). A UTS namespace of its
# own gives the host its own name, as a real node has: Open MPI's session directories
# (/tmp/ompi.HOSTNAME.UID) stay apart, and messages that print the host name name this one.
exec ip netns exec "$host" unshare --uts env -i PATH="${PATH}" HOME="${HOME:-/root}" LANG=C.UTF-8 \
  CSSLM_HOST="$host" CSSLM_COMMAND="$*" sh -c 'hostname "$CSSLM_HOST" && c=$CSSLM_COMMAND && unset CSSLM_HOST CSSLM_COMMAND && exec sh -c "$c"'
