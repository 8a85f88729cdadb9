#!/usr/bin/env bash
# make check-fresh: the whole `make check` inside a pristine Debian root file
# system, so that a missing install step fails here and not on a user's
# fresh machine.
#
# - The root file system is debootstrap's minbase plus make (the one program
#   the set-up command itself needs), built once by ./internal/e2e/mkrootfs
#   (the recipe and cache of the systemd-nspawn end-to-end test) and kept as
#   a tarball under /var/cache/sikkerguard-e2e. Every run unpacks a
#   throwaway copy under /var/tmp and removes it afterwards.
# - The repository goes in as a clean copy of the checkout: the tracked and
#   the untracked but not ignored files, as a commit of the working tree
#   would hold them; no build output, and nothing of the run comes back.
# - The host's Go toolchain is mounted read-only at /usr/local/go, where a
#   Debian machine without a packaged Go has it. The container starts with
#   an empty module cache; its Go fetches modules first from the host's
#   module download cache, mounted read-only as a file:// proxy (checked
#   against go.sum like any download), then through the host's GOPROXY.
#   CHECK_FRESH_MODCACHE=0 skips the host's cache.
# - The host's proxy variables (http_proxy, https_proxy, no_proxy) go in;
#   a host that sets SSL_CERT_FILE (a TLS-inspecting egress proxy, say) has
#   that bundle passed to Go inside. apt uses plain HTTP and the
#   container's own archive keys.
# - It runs in a private mount and PID namespace with /proc, /sys, /dev and
#   a tmpfs /run mounted in, not under systemd; the network is the host's,
#   so apt and the module proxy are reachable, and `ip netns add` works
#   because /run/netns lives in the private tmpfs.
#
# Arguments of the form NAME=VALUE (PKGS, RUN) are passed to make check.
# CHECK_FRESH_TARGET=demo runs the other set-up command, `make demo`, instead;
# CHECK_FRESH_SUITE picks another Debian suite; CHECK_FRESH_KEEP=1 keeps the
# copy for a post-mortem.
set -euo pipefail

suite=${CHECK_FRESH_SUITE:-bookworm}
target=${CHECK_FRESH_TARGET:-check}
repo=$(cd "$(dirname "$0")/.." && pwd)

if [ "${1:-}" = --inside ]; then
	# Second stage, inside the new namespaces: mount, then chroot and run.
	shift
	root=$1 goroot=$2 modcache=$3
	shift 3
	# The root must be a mount point of its own: `ip netns exec` makes "/"
	# a slave mount, which fails on a plain directory.
	mount --bind "$root" "$root"
	mount -t proc proc "$root/proc"
	mount -t sysfs sysfs "$root/sys"
	mount --rbind /dev "$root/dev"
	mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$root/run"
	robind() { mkdir -p "$root$2" && mount --bind "$1" "$root$2" && mount -o remount,bind,ro "$root$2"; }
	robind "$goroot" /usr/local/go
	host=/run/check-fresh
	mkdir -p "$root$host"
	proxy=$GOPROXY
	if [ -n "$modcache" ]; then
		robind "$modcache" $host/modcache
		proxy=file://$host/modcache,$GOPROXY
	fi
	# What the host needs to reach the network: its proxy settings, and
	# the CA bundle of a TLS-inspecting proxy when it names one.
	netenv=()
	for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
		[ -z "${!v:-}" ] || netenv+=("$v=${!v}")
	done
	if [ -n "${SSL_CERT_FILE:-}" ] && [ -r "$SSL_CERT_FILE" ]; then
		cp -L "$SSL_CERT_FILE" "$root$host/ca.crt"
		netenv+=(SSL_CERT_FILE=$host/ca.crt)
	fi
	# The environment of `sudo make check` on a fresh machine: root's PATH
	# without Go on it (the Makefile finds /usr/local/go/bin/go itself).
	exec chroot "$root" /usr/bin/env -i \
		PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		HOME=/root TERM=dumb LANG=C.UTF-8 CI=true \
		GOPROXY="$proxy" GOSUMDB="$GOSUMDB" GOTOOLCHAIN=local "${netenv[@]}" \
		SIKKER_CHECK_FRESH=1 \
		/bin/sh -c 'cd /root/sikkerguard && exec make "$@"' make "$target" "$@" </dev/null
fi

say() { printf '== check-fresh: %s\n' "$*"; }
die() { printf 'make check-fresh: %s\n' "$*" >&2; exit 1; }

for arg in "$@"; do
	case $arg in
	PKGS=* | RUN=*) ;;
	*) die "unexpected argument $arg (only PKGS=... and RUN=... are passed to make check)" ;;
	esac
done
case $target in
check | demo) ;;
*) die "CHECK_FRESH_TARGET=$target: only check and demo are set-up commands" ;;
esac
[ "$(id -u)" = 0 ] || die "needs root to build the root file system and to mount in it: sudo make check-fresh"

GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
[ -x "$GO" ] || die "Go toolchain not found (looked for go on PATH and /usr/local/go/bin/go)"
goroot=$("$GO" env GOROOT)
export GOPROXY GOSUMDB
GOPROXY=$("$GO" env GOPROXY)
GOSUMDB=$("$GO" env GOSUMDB)
modcache=""
if [ "${CHECK_FRESH_MODCACHE:-1}" != 0 ] && [ -d "$("$GO" env GOMODCACHE)/cache/download" ]; then
	modcache=$("$GO" env GOMODCACHE)/cache/download
fi

need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v git >/dev/null || need+=(git)
if [ ${#need[@]} -gt 0 ]; then
	say "installing on the host: ${need[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

start=$SECONDS
say "root file system: Debian $suite, debootstrap --variant=minbase --include=make (cached)"
tarball=$(cd "$repo" && "$GO" run -buildvcs=false ./internal/e2e/mkrootfs -suite "$suite" -include make)
say "using $tarball ($((SECONDS - start)) s)"

work=$(mktemp -d /var/tmp/sikkerguard-fresh.XXXXXX)
root=$work/root
# rooted_inside reports whether a process still has its root in the copy.
rooted_inside() {
	local p r
	for p in /proc/[0-9]*/root; do
		r=$(readlink "$p" 2>/dev/null) || continue
		case $r in "$root" | "$root"/*) return 0 ;; esac
	done
	return 1
}
cleanup() {
	local rc=${interrupted:-$?} i
	# The PID namespace dies with its first process, but its members take a
	# moment to go: never delete the copy under a process still using it.
	for i in $(seq 100); do rooted_inside || break; sleep 0.1; done
	# The mounts lived in the private namespace, so the host sees none;
	# never remove a tree that still has something mounted in it.
	if rooted_inside || findmnt -rn -o TARGET | grep -qF "$work"; then
		echo "make check-fresh: $work is still in use; leaving it in place" >&2
	elif [ "${CHECK_FRESH_KEEP:-}" = 1 ]; then
		echo "make check-fresh: kept $root" >&2
	else
		rm -rf --one-file-system "$work"
	fi
	exit $rc
}
trap cleanup EXIT
inner=""
# unshare --fork ignores SIGINT and SIGTERM while it waits; killing it ends
# its child (--kill-child), the PID namespace's first process, and with it
# every process of the run.
trap 'interrupted=130; [ -z "$inner" ] || { kill -KILL "$inner" 2>/dev/null; wait "$inner"; }; exit 130' INT TERM
mkdir "$root"
tar --numeric-owner -C "$root" -xf "$tarball"
cp -L /etc/resolv.conf "$root/etc/resolv.conf"

# Files as a fresh clone would have them once the working tree is committed.
# git runs as the checkout's owner, which it insists on.
owner=$(stat -c %u "$repo")
as_owner=()
if [ "$owner" != 0 ]; then
	as_owner=(env HOME="$(getent passwd "$owner" | cut -d: -f6)" setpriv --reuid="$owner" --regid="$(stat -c %g "$repo")" --clear-groups)
fi
mkdir -p "$root/root/sikkerguard"
dirty=$(cd "$repo" && "${as_owner[@]}" git status --porcelain --untracked-files=normal | wc -l)
(cd "$repo" && "${as_owner[@]}" git ls-files -z --cached --others --exclude-standard --deduplicate) |
	(cd "$repo" && while IFS= read -r -d '' f; do
		if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi # a deleted file is no longer in the tree
	done) |
	tar -C "$repo" --null -T - -cf - | tar -C "$root/root/sikkerguard" -xf -
say "copied $(cd "$repo" && "${as_owner[@]}" git rev-parse --short HEAD) with $dirty uncommitted change(s) into $root/root/sikkerguard"

from=$GOPROXY
[ -z "$modcache" ] || from="the host's module cache, then $GOPROXY"
say "make $target $* in the fresh system (apt installs what is missing; Go modules from $from)"
run=$SECONDS
unshare --mount --pid --fork --kill-child --propagation private -- "$0" --inside "$root" "$goroot" "$modcache" "$@" &
inner=$!
rc=0
wait "$inner" || rc=$?
inner=""
took=$((SECONDS - run))
if [ $rc = 0 ]; then
	echo "make check-fresh: make $target passed in a fresh Debian $suite in $((took / 60)) min $((took % 60)) s ($((SECONDS - start)) s in all)"
else
	echo "make check-fresh: make $target FAILED (exit $rc) in a fresh Debian $suite after $((took / 60)) min $((took % 60)) s" >&2
fi
exit $rc
