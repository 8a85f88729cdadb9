#!/usr/bin/env bash
# The SikkerGuard demo: a host, an attacker and a friend in throwaway network
# namespaces, the bundled mock SikkerAPI, a private system bus, and the
# sikkerguard daemon protecting the host. Everything it creates is removed on
# exit, including on Ctrl-C. It never touches the machine's own firewall,
# routes, addresses or system bus.
set -euo pipefail
cd "$(dirname "$0")/../.."

BIN=${BIN:-bin}
# DEMO_NAME renames the namespaces and the state directory, so that two
# demos can run side by side.
DEMO_NAME=${DEMO_NAME:-sgdemo}
HOST=$DEMO_NAME-host ATTACKER=$DEMO_NAME-attacker FRIEND=$DEMO_NAME-friend
KEY=sk_free_demo0000000000000000
STATE=/run/sikkerguard-demo
[ "$DEMO_NAME" = sgdemo ] || STATE=/run/sikkerguard-$DEMO_NAME
MOCK_PID="" BUS_PID="" DAEMON_PID="" TMP=""

bold() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
stop_pid() { [ -n "$1" ] && kill "$1" 2>/dev/null && wait "$1" 2>/dev/null; return 0; }

cleanup() {
	set +e
	stop_pid "$DAEMON_PID"
	stop_pid "$MOCK_PID"
	stop_pid "$BUS_PID"
	for ns in $HOST $ATTACKER $FRIEND; do
		ip netns del "$ns" 2>/dev/null
	done
	rm -rf "$STATE"
	[ -n "$TMP" ] && rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" = 0 ] || { echo "the demo creates network namespaces: run it as root (sudo make demo)" >&2; exit 1; }
cleanup # leftovers of an interrupted run
TMP=$(mktemp -d /tmp/sikkerguard-demo.XXXXXX)
chmod 755 "$TMP"

bold "Creating namespaces: $HOST (192.0.2.1, 198.51.100.1), $ATTACKER (192.0.2.66), $FRIEND (198.51.100.77)"
for ns in $HOST $ATTACKER $FRIEND; do ip netns add "$ns"; in_ns "$ns" ip link set lo up; done
ip link add dm-att netns $HOST type veth peer name eth0 netns $ATTACKER
ip link add dm-fri netns $HOST type veth peer name eth0 netns $FRIEND
in_ns $HOST ip addr add 192.0.2.1/24 dev dm-att
in_ns $HOST ip addr add 198.51.100.1/24 dev dm-fri
in_ns $ATTACKER ip addr add 192.0.2.66/24 dev eth0
in_ns $FRIEND ip addr add 198.51.100.77/24 dev eth0
for l in "$HOST dm-att" "$HOST dm-fri" "$ATTACKER eth0" "$FRIEND eth0"; do set -- $l; in_ns "$1" ip link set "$2" up; done

bold "Starting the mock SikkerAPI in $HOST, serving docs/demo/blocklist.txt"
# Started with ip directly, not the in_ns function, so that $! is the mock
# itself and the exit trap can stop it. It listens on every address of the
# host namespace, so it doubles as the service the peers try to reach.
ip netns exec $HOST "$BIN/sikkerapi-mock" -listen 0.0.0.0:8580 -key "$KEY" -list docs/demo/blocklist.txt >/dev/null 2>&1 &
MOCK_PID=$!
for _ in $(seq 50); do in_ns $HOST bash -c 'exec 3<>/dev/tcp/127.0.0.1/8580' 2>/dev/null && break; sleep 0.1; done

bold "Starting a private system bus with the shipped policy (dbus/com.sikkerapi.SikkerGuard1.conf)"
sed -e "s|@DIR@|$TMP|" -e "s|@POLICY@|$PWD/dbus/com.sikkerapi.SikkerGuard1.conf|" docs/demo/bus.conf.in > "$TMP/bus.conf"
dbus-daemon --config-file="$TMP/bus.conf" --nofork --print-address > "$TMP/bus.addr" 2>/dev/null &
BUS_PID=$!
for _ in $(seq 50); do [ -s "$TMP/bus.addr" ] && break; sleep 0.1; done
export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$TMP/bus"

bold "Starting sikkerguard in $HOST (the daemon, as systemd would run it) with a second feed, local, and a monitor feed on trial"
install -d -m 750 "$STATE"
install -m 640 docs/demo/local.txt "$STATE/local.txt"
install -m 640 docs/demo/trial.txt "$STATE/trial.txt"
sed "s|/run/sikkerguard-demo|$STATE|g" docs/demo/sikkerguard.yaml > "$TMP/sikkerguard.yaml"
ip netns exec $HOST env SIKKER_API_KEY="$KEY" "$BIN/sikkerguard" -c "$TMP/sikkerguard.yaml" > "$TMP/daemon.log" 2>&1 &
DAEMON_PID=$!
for _ in $(seq 100); do grep -q "Firewall ready" "$TMP/daemon.log" && break; sleep 0.1; done
grep -E "Score threshold|Safety whitelist|Blocking|Firewall ready" "$TMP/daemon.log" | sed 's/^/  /'

# knock NS ADDR PORT: one TCP connection attempt, 1 s at most.
knock() {
	if in_ns "$1" timeout 1 bash -c "exec 3<>/dev/tcp/$2/$3" 2>/dev/null; then
		echo "  $1 -> $2:$3  connected"
	else
		echo "  $1 -> $2:$3  no answer (dropped)"
	fi
}

bold "The friend reaches the host's service; the listed attacker is dropped"
knock $FRIEND 198.51.100.1 8580
knock $ATTACKER 192.0.2.1 8580
knock $ATTACKER 192.0.2.1 22
knock $ATTACKER 192.0.2.1 23
knock $ATTACKER 192.0.2.1 23
# A second attacker address, 203.0.113.5, listed by SikkerAPI alone: its
# drops are unique to that feed, while 192.0.2.66 is on both feeds.
in_ns $ATTACKER ip addr add 203.0.113.5/32 dev eth0
in_ns $ATTACKER ip route add 192.0.2.1/32 dev eth0 src 203.0.113.5
knock $ATTACKER 192.0.2.1 22
knock $ATTACKER 192.0.2.1 3389
bold "The host itself tries to reach the listed attacker: counted and logged as OUTBOUND"
knock $HOST 192.0.2.66 80

bold "What the daemon logged (aggregated per address and port over 10 s windows)"
for _ in $(seq 150); do grep -q BLOCKED "$TMP/daemon.log" && grep -q WOULD-BLOCK "$TMP/daemon.log" && break; sleep 0.1; done
sleep 0.5
grep -E "BLOCKED|WOULD-BLOCK|OUTBOUND" "$TMP/daemon.log" | sed 's/^/  /'
echo "  (the friend is on the monitor feed \"trial\": it got through, and WOULD-BLOCK says enforcing the feed would cut it off)"

bold "sikkerctl status"
# status exits 3 while degraded and check exits 1 for a blocked address:
# both are answers here, not failures of the demo.
"$BIN/sikkerctl" status | sed 's/^/  /' || true
bold "sikkerctl check 192.0.2.66 (exit 1: blocked)"
"$BIN/sikkerctl" check 192.0.2.66 | sed 's/^/  /' || true
bold "sikkerctl check 198.51.100.77 (exit 0: monitored by the trial feed, not blocked)"
"$BIN/sikkerctl" check 198.51.100.77 | sed 's/^/  /'
bold "sikkerctl top"
"$BIN/sikkerctl" top | sed 's/^/  /'
bold "sikkerctl feeds: what each feed drops, drops alone (unique), breaks, and how fresh it is"
"$BIN/sikkerctl" feeds | sed 's/^/  /'

bold "The kernel's view: counters of the inet sikkerguard table"
in_ns $HOST nft list counters table inet sikkerguard | grep -E "counter|packets" | sed 's/^/  /'

bold "Stopping sikkerguard (SIGTERM, as systemctl stop does): the table is removed"
stop_pid "$DAEMON_PID"; DAEMON_PID=""
if in_ns $HOST nft list ruleset | grep -q sikkerguard; then echo "  table still present!"; else echo "  nft list ruleset: no sikkerguard objects"; fi
knock $ATTACKER 192.0.2.1 8580

bold "Removing the namespaces, the bus and the mock"
