#!/bin/bash
# Checks that the .deb and the .rpm install the same files with the same
# modes and owners, from `dpkg-deb -c` and `rpm -qlvp`. Debian's unit
# directory /lib/systemd/system is /usr/lib/systemd/system on RPM
# distributions (and on merged-/usr Debian); the Debian changelog and
# lintian overrides exist in the .deb only.
# Usage: compare-packages.sh DEB RPM
set -euo pipefail
deb=$1 rpm=$2

debian_only='^(/usr/share/doc/sikkerguard/changelog\.gz|/usr/share/lintian/overrides/sikkerguard) '

# MODE OWNER/GROUP PATH for every non-directory entry.
deb_list() {
	dpkg-deb -c "$deb" | awk '$1 !~ /^d/ { p = $6; sub(/^\./, "", p); print p, $1, $2 }' |
		sed -E 's|^/lib/systemd/system/|/usr/lib/systemd/system/|' | grep -Ev "$debian_only" | sort
}
rpm_list() {
	rpm -qlvp "$rpm" | awk '$1 !~ /^d/ { print $9, $1, $3 "/" $4 }' | sort
}

if ! diff -u --label "$deb" --label "$rpm" <(deb_list) <(rpm_list); then
	echo "compare-packages: the .deb and the .rpm install different files or modes (above: - only/differs in the .deb, + in the .rpm)" >&2
	exit 1
fi
echo "compare-packages: $(deb_list | wc -l) files, same paths, modes and owners"
