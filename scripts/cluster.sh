#!/usr/bin/env bash
# A cluster of N simulated hosts on this machine, for trying and testing csslm across nodes: each
# host is a network namespace with its own address, joined by a veth pair (its "network cable")
# to a bridge in a switch namespace, which is also where mpirun runs (the "head node"). Ranks on
# different hosts can only talk over those veths, through real TCP, at the rate set per link.
#
#   scripts/cluster.sh up N [--rate RATE] [--delay DELAY]   make hosts csslm-h1..csslm-hN
#   scripts/cluster.sh down                                  remove everything `up` made (idempotent)
#   scripts/cluster.sh status                                hosts, addresses, links, qdiscs
#   scripts/cluster.sh cut HOST | mend HOST                  take HOST's link down / up again
#   scripts/cluster.sh available                             exit 0, or print why not and exit 1
#
# RATE (e.g. 1gbit, 10gbit) limits each link in both directions; DELAY (e.g. 0.2ms) adds one-way
# latency per link and needs the kernel's netem qdisc (sch_netem). Without netem, rates use tbf
# (token bucket) and --delay is an error. Names and addresses:
#   switch namespace  csslm-sw    bridge csslm-br, 10.77.0.254/24 (mpirun runs here;
#                                 net.ipv4.tcp_retries2 = 4, see below)
#   host i            csslm-hI    eth0 (peer csslm-vI on the bridge), 10.77.0.I/24, lo up
# Files in $CSSLM_CLUSTER_DIR (default runs/cluster): hostfile (`csslm-hI slots=1`, the
# hostfiles/ format), hosts (/etc/hosts style, read by scripts/netns-agent.sh), launch.conf
# (agent, subnet and namespace for scripts/launch.sh --cluster). Launch with
#   scripts/launch.sh --cluster runs/cluster -- .build/release/csslm train ...
# Needs root (or CAP_NET_ADMIN and CAP_SYS_ADMIN) and iproute2.
set -euo pipefail
cd "$(dirname "$0")/.."

readonly prefix=csslm-h switch=csslm-sw bridge=csslm-br subnet=10.77.0 head=10.77.0.254 launcher_tcp_retries=4
dir=${CSSLM_CLUSTER_DIR:-runs/cluster}

die() { printf 'cluster.sh: error: %s\n' "$*" >&2; exit 2; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

# Why the machine cannot host the cluster, or nothing: the tests print this when they skip.
unavailable_reason() {
  (($(id -u) == 0)) || { echo "not root (network namespaces need CAP_NET_ADMIN and CAP_SYS_ADMIN)"; return; }
  command -v ip >/dev/null || { echo "no ip command (apt install iproute2)"; return; }
  local probe=csslm-probe-$$
  ip netns add "$probe" 2>/dev/null || { echo "ip netns add fails here (no network namespaces in this container)"; return; }
  local ok=1
  ip netns exec "$probe" ip link add pa type veth peer name pb 2>/dev/null || ok=0
  ip netns del "$probe" 2>/dev/null || true
  ((ok)) || echo "veth pairs cannot be made here"
}

# Our namespaces: the switch and csslm-h<digits>, nothing else.
our_namespaces() { ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^($switch|$prefix[0-9]+)\$" || true; }

has_netem() {
  local ok=0
  ip netns exec "$switch" ip link add csslm-np type veth peer name csslm-nq 2>/dev/null || return 1
  ip netns exec "$switch" tc qdisc add dev csslm-np root netem delay 1ms 2>/dev/null && ok=1
  ip netns exec "$switch" ip link del csslm-np 2>/dev/null || true
  ((ok))
}

# shape NS DEV: rate (and delay) on DEV's egress in namespace NS.
shape() {
  local ns=$1 dev=$2
  if ((netem)); then
    local args=()
    [[ -n "$delay" ]] && args+=(delay "$delay")
    [[ -n "$rate" ]] && args+=(rate "$rate")
    # netem queues by packets: leave room for a window of full-size frames at the rate.
    if ((${#args[@]})); then ip netns exec "$ns" tc qdisc replace dev "$dev" root netem "${args[@]}" limit 100000; fi
  elif [[ -n "$rate" ]]; then
    # burst: 1 ms at the rate (at least a 64 KB segment, which veths pass unsplit); latency: a
    # deep queue, as a switch port has.
    local burst; burst=$(awk -v r="$rate" 'BEGIN {
      n = r + 0; u = substr(r, length(n "") + 1); m = 1
      if (u ~ /^k/) m = 1e3; else if (u ~ /^m/) m = 1e6; else if (u ~ /^g/) m = 1e9
      if (u ~ /bps$/) m *= 8
      b = n * m / 8 / 1000; if (b < 65536) b = 65536; printf "%d", b }')
    ip netns exec "$ns" tc qdisc replace dev "$dev" root tbf rate "$rate" burst "$burst" latency 50ms
  fi
}

up() {
  local n=${1:-}
  [[ "$n" =~ ^[0-9]+$ ]] && ((n >= 1 && n <= 200)) || die "up needs a host count 1..200, got '${n}' (see --help)"
  shift
  rate="" delay=""
  while (($#)); do
    case "$1" in
      --rate) rate=${2:?--rate needs a value, e.g. 1gbit}; shift 2 ;;
      --delay) delay=${2:?--delay needs a value, e.g. 0.2ms}; shift 2 ;;
      *) die "unknown option $1 (see --help)" ;;
    esac
  done
  [[ -z "$rate" || "$rate" =~ ^[0-9.]+([kmg]?(bit|bps))$ ]] || die "--rate $rate: use a tc rate such as 100mbit, 1gbit, 10gbit"
  [[ -z "$delay" || "$delay" =~ ^[0-9.]+(us|ms|s)$ ]] || die "--delay $delay: use a tc time such as 200us or 0.2ms"
  local reason; reason=$(unavailable_reason)
  [[ -z "$reason" ]] || die "cannot make network namespaces: $reason"
  [[ -z "$(our_namespaces)" ]] || die "a cluster is already up (scripts/cluster.sh status; scripts/cluster.sh down first)"

  # Anything that fails from here on leaves no half-made cluster behind.
  trap 'echo "cluster.sh: up failed; removing what it made" >&2; down' EXIT
  ip netns add "$switch"
  netem=0
  has_netem && netem=1
  if [[ -n "$delay" ]] && ((!netem)); then
    die "--delay needs the netem qdisc, which this kernel lacks (modprobe sch_netem); omit --delay (rates work with tbf)"
  fi
  ip netns exec "$switch" ip link set lo up
  # mpirun learns that a host is unreachable only when TCP gives up on the connection to that
  # host's daemon: after tcp_retries2 retransmissions, by default 15 (about 15 minutes, a hang
  # for anyone waiting). 4 is about 6 s. The hosts keep the default, so a cut link stalls their
  # ranks in a collective and the collective watchdog is what reports it.
  ip netns exec "$switch" sh -c "echo $launcher_tcp_retries > /proc/sys/net/ipv4/tcp_retries2"
  ip netns exec "$switch" ip link add "$bridge" type bridge
  ip netns exec "$switch" ip addr add "$head/24" dev "$bridge"
  ip netns exec "$switch" ip link set "$bridge" up

  mkdir -p "$dir"
  local hosts="# csslm cluster (scripts/cluster.sh): address name; the namespace is the name
$head $switch" hostfile="# csslm cluster (scripts/cluster.sh up $n${rate:+ --rate $rate}${delay:+ --delay $delay}); one rank slot per host
# launch: scripts/launch.sh --cluster $dir -- PROGRAM ARGS..."
  for ((i = 1; i <= n; i++)); do
    local ns=$prefix$i port=csslm-v$i
    ip netns add "$ns"
    ip netns exec "$ns" ip link set lo up
    # The pair is made inside the host, then one end moves to the switch: nothing touches the root namespace.
    ip netns exec "$ns" ip link add eth0 type veth peer name "$port"
    ip netns exec "$ns" ip link set "$port" netns "$switch"
    ip netns exec "$switch" ip link set "$port" master "$bridge" up
    ip netns exec "$ns" ip addr add "$subnet.$i/24" dev eth0
    ip netns exec "$ns" ip link set eth0 up
    shape "$ns" eth0          # host → switch
    shape "$switch" "$port"   # switch → host
    hosts+=$'\n'"$subnet.$i $ns"
    hostfile+=$'\n'"$ns slots=1"
  done
  printf '%s\n' "$hosts" > "$dir/hosts"
  printf '%s\n' "$hostfile" > "$dir/hostfile"
  printf 'agent %s\ntcp-net %s\nnetns %s\n' "$PWD/scripts/netns-agent.sh" "$subnet.0/24" "$switch" > "$dir/launch.conf"
  trap - EXIT
  local shaping=""
  [[ -n "$rate$delay" ]] && shaping=" (${rate:+$rate per link}${rate:+${delay:+, }}${delay:+$delay one way}, tc $( ((netem)) && echo netem || echo tbf))"
  printf 'cluster.sh: %d host(s) up on %s.0/24%s; hostfile %s/hostfile\n' "$n" "$subnet" "$shaping" "$dir" >&2
}

down() {
  local ns
  for ns in $(our_namespaces); do
    # Whatever still runs inside (a rank, an orted) goes first, or the namespace lingers.
    local pids; pids=$(ip netns pids "$ns" 2>/dev/null || true)
    [[ -z "$pids" ]] || kill -9 $pids 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -f "$dir/hosts" "$dir/hostfile" "$dir/launch.conf"
  [[ -z "$(our_namespaces)" ]] || die "could not remove: $(our_namespaces | tr '\n' ' ')"
}

status() {
  local list; list=$(our_namespaces)
  [[ -n "$list" ]] || { echo "no cluster is up"; return 0; }
  local ns
  for ns in $list; do
    [[ "$ns" == "$switch" ]] && continue
    printf '%s %s link %s qdisc %s\n' "$ns" \
      "$(ip netns exec "$ns" ip -4 -o addr show dev eth0 | awk '{print $4}')" \
      "$(ip netns exec "$ns" cat /sys/class/net/eth0/operstate)" \
      "$(ip netns exec "$ns" tc qdisc show dev eth0 | head -n 1 | cut -d' ' -f2-)"
  done
  [[ -f "$dir/hostfile" ]] && echo "hostfile: $dir/hostfile"
}

# cut|mend HOST: the host's cable (its eth0) down or up; what a pulled cable or a dead switch port does.
link() {
  local state=$1 ns=${2:-}
  [[ "$ns" =~ ^$prefix[0-9]+$ ]] && our_namespaces | grep -qx "$ns" || die "no host '$ns' (scripts/cluster.sh status)"
  ip netns exec "$ns" ip link set eth0 "$state"
}

case "${1:-}" in
  up) shift; up "$@" ;;
  down) down ;;
  status) status ;;
  cut) link down "${2:-}" ;;
  mend) link up "${2:-}" ;;
  available) reason=$(unavailable_reason); [[ -z "$reason" ]] || { echo "$reason"; exit 1; } ;;
  -h|--help) usage 0 ;;
  *) printf 'cluster.sh: error: unknown command "%s"\n\n' "${1:-}" >&2; usage 2 >&2 ;;
esac
