#!/bin/bash
# Writes DOCDIR/copyright from the template beside this script, with the
# years of the first and the last commit. Used by the .deb and the .rpm.
# Usage: copyright.sh DOCDIR
set -euo pipefail
doc=$1
here=$(cd "$(dirname "$0")" && pwd)
root_commit=$(git rev-list --max-parents=0 HEAD 2>/dev/null | tail -n1 || true)
first=${root_commit:+$(git log -1 --format=%cd --date=format:%Y "$root_commit")}
last=$(git log -1 --format=%cd --date=format:%Y 2>/dev/null || date +%Y)
years=${first:-$last}
[[ $years == "$last" ]] || years="$years-$last"
mkdir -p "$doc"
sed "s|@YEARS@|$years|" "$here/copyright" >"$doc/copyright"
chmod 0644 "$doc/copyright"
