#!/bin/bash
# Builds the sikkerguard .deb from a tree produced by
#   make install DESTDIR=ROOT PREFIX=/usr SYSTEMDUNITDIR=/lib/systemd/system
# Usage: build-deb.sh ROOT VERSION ARCH MAINTAINER OUTDIR
# Prints the path of the package on success.
set -euo pipefail

root=$1 version=$2 arch=$3 maintainer=$4 outdir=$5
here=$(cd "$(dirname "$0")" && pwd)
doc=$root/usr/share/doc/sikkerguard

[[ -x $root/usr/sbin/sikkerguard ]] || { echo "build-deb: $root/usr/sbin/sikkerguard missing; run make install into it first" >&2; exit 1; }
[[ $version =~ ^[0-9][A-Za-z0-9.+~]*$ ]] || { echo "build-deb: version '$version' is not a Debian version" >&2; exit 1; }

# Debian policy: man pages and changelogs compressed with gzip -9n, no
# timestamps, so the package is reproducible.
find "$root/usr/share/man" -type f ! -name '*.gz' -exec gzip -9nf {} +
bash "$here/copyright.sh" "$doc"
date=$(git log -1 --format=%cD 2>/dev/null || date -R)
{
	printf 'sikkerguard (%s) unstable; urgency=medium\n\n' "$version"
	printf '  * Built from %s.\n\n' "$(git rev-parse --short HEAD 2>/dev/null || echo 'an unversioned tree')"
	printf ' -- %s  %s\n' "$maintainer" "$date"
} | gzip -9n >"$doc/changelog.gz"
chmod 0644 "$doc/changelog.gz"

install -Dm0644 "$here/lintian-overrides" "$root/usr/share/lintian/overrides/sikkerguard"

mkdir -p "$root/DEBIAN"
for s in postinst prerm postrm; do
	install -m0755 "$here/$s" "$root/DEBIAN/$s"
done
# Every file under /etc is a conffile; the API key is never shipped.
(cd "$root" && find etc -type f | sed 's|^|/|' | sort) >"$root/DEBIAN/conffiles"
if grep -q 'api\.key' "$root/DEBIAN/conffiles"; then
	echo "build-deb: refusing to package an API key" >&2
	exit 1
fi

# The binaries are linked against glibc only (cgo for the resolver); ask
# for the newest symbol version they use.
glibc=$(objdump -T "$root/usr/sbin/sikkerguard" "$root/usr/bin/sikkerctl" |
	grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)
depends="libc6${glibc:+ (>= $glibc)}, dbus"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s|@VERSION@|$version|" -e "s|@ARCH@|$arch|" -e "s|@MAINTAINER@|$maintainer|" \
	-e "s|@SIZE@|$size|" -e "s|@DEPENDS@|$depends|" "$here/control.in" >"$root/DEBIAN/control"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles" "$root/DEBIAN/md5sums"

mkdir -p "$outdir"
deb=$outdir/sikkerguard_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
