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
#   --dry-run                print the mpirun command instead of running it
#   -h, --help               this text
# PROGRAM defaults to .build/release/csslm. Examples:
#   scripts/launch.sh -n 2 -- .build/release/csslm train --config run.json      # one node, 2 ranks
#   scripts/launch.sh -H hostfiles/cluster -n 4 -- csslm train --config run.json # many nodes
# A single process needs no launcher: .build/release/csslm train ... (MPI singleton).
set -euo pipefail
cd "$(dirname "$0")/.."

die() { printf 'launch.sh: error: %s\n' "$*" >&2; exit 2; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

ranks_per_node="" hostfile="" np="" cores="" threads="" oversubscribe=0 dry_run=0
while (($#)); do
  case "$1" in
    -n|--ranks-per-node) ranks_per_node=${2:?}; shift 2 ;;
    -H|--hostfile) hostfile=${2:?}; shift 2 ;;
    --np) np=${2:?}; shift 2 ;;
    --cores) cores=${2:?}; shift 2 ;;
    --threads) threads=${2:?}; shift 2 ;;
    --oversubscribe) oversubscribe=1; shift ;;
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
threads=${threads:-$((cores / ranks_per_node))}
((threads >= 1)) || threads=1

args=(mpirun -np "$np")
[[ -n "$hostfile" ]] && args+=(--hostfile "$hostfile")
# Place ranks per node explicitly, so the thread arithmetic above holds on every node.
args+=(--map-by "ppr:${ranks_per_node}:node")
# One BLAS thread per rank and a core for each: bind each rank to its core. More threads per rank,
# or more ranks than cores: let them spread (binding would pile threads or ranks onto one core).
if ((threads == 1 && ranks_per_node <= cores)); then args+=(--bind-to core); else args+=(--bind-to none); fi
((oversubscribe)) && args+=(--oversubscribe)
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
