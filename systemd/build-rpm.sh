#!/bin/bash
# Builds the sikkerguard .rpm from a tree produced by
#   make install DESTDIR=ROOT PREFIX=/usr SYSTEMDUNITDIR=/usr/lib/systemd/system
# with rpmbuild and systemd/sikkerguard.spec, the way build-deb.sh builds
# the .deb from the same tree.
# Usage: build-rpm.sh ROOT VERSION MAINTAINER OUTDIR
# Prints the path of the package on success.
set -euo pipefail

root=$(cd "$1" && pwd) version=$2 maintainer=$3 outdir=$4
here=$(cd "$(dirname "$0")" && pwd)

[[ -x $root/usr/sbin/sikkerguard ]] || { echo "build-rpm: $root/usr/sbin/sikkerguard missing; run make install into it first" >&2; exit 1; }
# RPM versions may not contain '-'; version.sh never produces one.
[[ $version =~ ^[0-9][A-Za-z0-9.+~]*$ ]] || { echo "build-rpm: version '$version' is not an RPM version" >&2; exit 1; }
command -v rpmbuild >/dev/null || { echo "build-rpm: rpmbuild not found (Debian package rpm)" >&2; exit 1; }

# The same compressed man pages and copyright as in the .deb.
find "$root/usr/share/man" -type f ! -name '*.gz' -exec gzip -9nf {} +
bash "$here/debian/copyright.sh" "$root/usr/share/doc/sikkerguard"
if find "$root/etc" -name 'api.key*' | grep -q .; then
	echo "build-rpm: refusing to package an API key" >&2
	exit 1
fi

top=$(mktemp -d)
trap 'rm -rf "$top"' EXIT
mkdir -p "$outdir"
out=$(cd "$outdir" && pwd)
rpmbuild -bb --quiet \
	--define "_topdir $top" \
	--define "_rpmdir $out" \
	--define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" \
	--define "sikker_version $version" \
	--define "sikker_packager $maintainer" \
	--define "sikker_root $root" \
	"$here/sikkerguard.spec" >&2
arch=$(rpm --eval '%{_arch}')
echo "$outdir/sikkerguard-$version-1.$arch.rpm"
