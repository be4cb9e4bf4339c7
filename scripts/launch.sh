#!/usr/bin/env bash
# Launch csslm (or any program) as an MPI job: one node or many, with BLAS threads sized so that
# ranks × threads = cores on each node, root allowed, and the same environment on every rank.
#
#   scripts/launch.sh [options] [--] [PROGRAM [ARGS...]]
#
# Options:
#   -n, --ranks-per-node N   ranks on each node (default: the hostfile's slots, else 1 per core)
#   -H, --hostfile FILE      nodes and slots (hostfiles/localhost, hostfiles/two-nodes.example)
#   --np N                   total ranks (default: ranks per node × nodes in the hostfile)
#   --cores N                cores per node (default: this machine's `nproc`; nodes are alike)
#   --threads N              BLAS threads per rank (default: cores / ranks per node, at least 1)
#   --oversubscribe          allow more ranks than slots (tests, small machines)
#   --tcp-net NET            ranks and daemons talk over TCP on NET only (an interface name such
#                            as eth1, or a subnet such as 10.0.0.0/24): pml ob1 with btl tcp,self,
#                            so no shared memory either (UCX would use it between processes of
#                            one machine, and ranks on one node would use vader)
#   --agent CMD              how mpirun reaches a node (Open MPI's plm_rsh_agent; default ssh)
#   --cluster DIR            the simulated cluster of scripts/cluster.sh (DIR/launch.conf): its
#                            hostfile, its agent (scripts/netns-agent.sh), its subnet, and mpirun
#                            inside its switch namespace; ranks not bound, and BLAS threads =
#                            cores / all ranks (the hosts share this machine's cores)
#   --dry-run                print the mpirun command instead of running it
#   -h, --help               this text
# PROGRAM defaults to .build/release/csslm. Examples:
#   scripts/launch.sh -n 2 -- .build/release/csslm train --config run.json      # one node, 2 ranks
#   scripts/launch.sh -H hostfiles/cluster -n 4 -- csslm train --config run.json # many nodes
#   scripts/cluster.sh up 2 --rate 1gbit                                         # 2 simulated hosts
#   scripts/launch.sh --cluster runs/cluster -- .build/release/csslm train --config run.json
# A single process needs no launcher: .build/release/csslm train ... (MPI singleton).
set -euo pipefail
cd "$(dirname "$0")/.."

die() { printf 'launch.sh: error: %s\n' "$*" >&2; exit 2; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

ranks_per_node="" hostfile="" np="" cores="" threads="" oversubscribe=0 dry_run=0 tcp_net="" agent="" netns=""
while (($#)); do
  case "$1" in
    -n|--ranks-per-node) ranks_per_node=${2:?}; shift 2 ;;
    -H|--hostfile) hostfile=${2:?}; shift 2 ;;
    --np) np=${2:?}; shift 2 ;;
    --cores) cores=${2:?}; shift 2 ;;
    --threads) threads=${2:?}; shift 2 ;;
    --oversubscribe) oversubscribe=1; shift ;;
    --tcp-net) tcp_net=${2:?}; shift 2 ;;
    --agent) agent=${2:?}; shift 2 ;;
    --cluster)
      [[ -f "${2:?}/launch.conf" ]] || die "no cluster at $2 (hint: scripts/cluster.sh up N)"
      cluster=$(cd "$2" && pwd)
      hostfile=$cluster/hostfile
      agent=$(awk '$1 == "agent" {print $2}' "$cluster/launch.conf")
      tcp_net=$(awk '$1 == "tcp-net" {print $2}' "$cluster/launch.conf")
      netns=$(awk '$1 == "netns" {print $2}' "$cluster/launch.conf")
      export CSSLM_CLUSTER_DIR=$cluster  # where the agent finds the hosts
      shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) usage 0 ;;
    --) shift; break ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) break ;;
  esac
done
(($#)) || set -- .build/release/csslm
command -v mpirun >/dev/null || die "mpirun not found (hint: scripts/setup.sh installs openmpi-bin)"
[[ -z "$hostfile" || -f "$hostfile" ]] || die "no hostfile $hostfile"

# Nodes and slots from the hostfile: lines "host slots=N", comments and blank lines ignored.
nodes=1 slots=""
if [[ -n "$hostfile" ]]; then
  nodes=$(grep -cvE '^[[:space:]]*(#|$)' "$hostfile" || true)
  ((nodes > 0)) || die "$hostfile lists no hosts"
  slots=$(grep -vE '^[[:space:]]*(#|$)' "$hostfile" | grep -oE 'slots=[0-9]+' | head -n 1 | cut -d= -f2 || true)
fi
cores=${cores:-$(nproc)}
ranks_per_node=${ranks_per_node:-${slots:-$cores}}
np=${np:-$((ranks_per_node * nodes))}
# Simulated hosts (--cluster) share this machine's cores: divide them over every rank.
if [[ -n "$netns" ]]; then threads=${threads:-$((cores / np))}; else threads=${threads:-$((cores / ranks_per_node))}; fi
((threads >= 1)) || threads=1

args=(mpirun -np "$np")
[[ -n "$netns" ]] && args=(ip netns exec "$netns" "${args[@]}")
[[ -n "$hostfile" ]] && args+=(--hostfile "$hostfile")
# Place ranks per node explicitly, so the thread arithmetic above holds on every node.
args+=(--map-by "ppr:${ranks_per_node}:node")
# One BLAS thread per rank and a core for each: bind each rank to its core. More threads per rank,
# or more ranks than cores: let them spread (binding would pile threads or ranks onto one core).
# Simulated hosts share this machine's cores: each would bind its rank to the same first core.
if ((threads == 1 && ranks_per_node <= cores)) && [[ -z "$netns" ]]; then args+=(--bind-to core); else args+=(--bind-to none); fi
((oversubscribe)) && args+=(--oversubscribe)
[[ -n "$agent" ]] && args+=(--mca plm_rsh_agent "$agent")
if [[ -n "$tcp_net" ]]; then
  # Daemons' control traffic and ranks' data, both on that network only.
  args+=(--mca oob_tcp_if_include "$tcp_net" --mca pml ob1 --mca btl tcp,self --mca btl_tcp_if_include "$tcp_net")
fi
# Export the thread counts (and the collective deadline, if set) to ranks on other nodes too.
args+=(-x "OPENBLAS_NUM_THREADS=$threads" -x "OMP_NUM_THREADS=$threads")
[[ -n "${CSSLM_COLLECTIVE_TIMEOUT_S:-}" ]] && args+=(-x CSSLM_COLLECTIVE_TIMEOUT_S)
args+=("$@")

if (($(id -u) == 0)); then
  # Open MPI refuses to run as root without both variables (containers often run as root).
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
printf 'launch.sh: %d rank(s) on %d node(s), %d per node, %d BLAS thread(s) each\n' \
  "$np" "$nodes" "$ranks_per_node" "$threads" >&2
if ((dry_run)); then
  printf '%q ' "${args[@]}"; printf '\n'
  exit 0
fi
exec "${args[@]}"
