#!/usr/bin/env bash
# The SikkerGuard demo: a host, an attacker and a friend in throwaway network
# namespaces, the bundled mock SikkerAPI, and sikkerguard applying its list.
# Everything it creates is removed on exit, including on Ctrl-C. It never
# touches the machine's own firewall, routes or addresses.
set -euo pipefail
cd "$(dirname "$0")/../.."

BIN=${BIN:-bin}
HOST=sgdemo-host ATTACKER=sgdemo-attacker FRIEND=sgdemo-friend
KEY=sk_free_demo0000000000000000
MOCK_PID=""

bold() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

cleanup() {
	set +e
	[ -n "$MOCK_PID" ] && kill "$MOCK_PID" 2>/dev/null && wait "$MOCK_PID" 2>/dev/null
	for ns in $HOST $ATTACKER $FRIEND; do
		ip netns del "$ns" 2>/dev/null
	done
	rm -rf /run/sikkerguard-demo
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" = 0 ] || { echo "the demo creates network namespaces: run it as root (sudo make demo)" >&2; exit 1; }
cleanup # leftovers of an interrupted run

bold "Creating namespaces: $HOST (192.0.2.1, 198.51.100.1), $ATTACKER (192.0.2.66), $FRIEND (198.51.100.77)"
for ns in $HOST $ATTACKER $FRIEND; do ip netns add "$ns"; in_ns "$ns" ip link set lo up; done
ip link add dm-att netns $HOST type veth peer name eth0 netns $ATTACKER
ip link add dm-fri netns $HOST type veth peer name eth0 netns $FRIEND
in_ns $HOST ip addr add 192.0.2.1/24 dev dm-att
in_ns $HOST ip addr add 198.51.100.1/24 dev dm-fri
in_ns $ATTACKER ip addr add 192.0.2.66/24 dev eth0
in_ns $FRIEND ip addr add 198.51.100.77/24 dev eth0
for l in "$HOST dm-att" "$HOST dm-fri" "$ATTACKER eth0" "$FRIEND eth0"; do set -- $l; in_ns "$1" ip link set "$2" up; done

bold "Starting the mock SikkerAPI in $HOST with docs/demo/blocklist.txt"
# It listens on every address of the host namespace, so it doubles as the
# service the attacker and the friend try to reach.
# Started without the in_ns function: $! must be the mock itself, not a
# subshell, so that the exit trap can stop it.
ip netns exec $HOST "$BIN/sikkerapi-mock" -listen 0.0.0.0:8580 -key "$KEY" -list docs/demo/blocklist.txt >/dev/null 2>&1 &
MOCK_PID=$!
for _ in $(seq 50); do in_ns $HOST bash -c 'exec 3<>/dev/tcp/127.0.0.1/8580' 2>/dev/null && break; sleep 0.1; done

# connect NS ADDR: a TCP connection to the host's service, 2 s at most.
connect() {
	if in_ns "$1" timeout 2 bash -c "exec 3<>/dev/tcp/$2/8580" 2>/dev/null; then
		echo "  $1 -> $2:8580  connected"
	else
		echo "  $1 -> $2:8580  no answer (dropped)"
	fi
}

bold "Before sikkerguard: both reach the host"
connect $ATTACKER 192.0.2.1
connect $FRIEND 198.51.100.1

bold "sikkerguard --once (pull, check, apply in one nftables transaction)"
in_ns $HOST env SIKKER_API_KEY="$KEY" "$BIN/sikkerguard" -c docs/demo/sikkerguard.yaml --once

bold "After: the listed attacker is dropped, the friend still gets through"
connect $ATTACKER 192.0.2.1
connect $FRIEND 198.51.100.1

bold "The table sikkerguard keeps: nft list table inet sikkerguard (see the dropped4 counter)"
in_ns $HOST nft list table inet sikkerguard

bold "sikkerguard --cleanup: the table is gone and the attacker reaches the host again"
in_ns $HOST "$BIN/sikkerguard" -c docs/demo/sikkerguard.yaml --cleanup
in_ns $HOST nft list ruleset | grep -c sikkerguard >/dev/null && echo "  table still present!" || echo "  nft list ruleset: no sikkerguard objects"
connect $ATTACKER 192.0.2.1

bold "Removing the namespaces"
