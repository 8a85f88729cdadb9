#!/bin/sh
# Prints a Debian-safe version from `git describe`:
#   v1.2.3            -> 1.2.3
#   v1.2.3-4-gabc1234 -> 1.2.3+4.gabc1234
#   no tag            -> 0.0~git<commits>.g<hash>
# A modified tree gets a "+dirty" suffix. Only digits, letters, '.', '+'
# and '~' are produced, and the result always starts with a digit.
set -eu
dirty=""
if ! git diff --quiet HEAD -- 2>/dev/null; then
	dirty="+dirty"
fi
if desc=$(git describe --tags --long --match 'v[0-9]*' 2>/dev/null); then
	hash=${desc##*-}
	rest=${desc%-*}
	count=${rest##*-}
	tag=${rest%-*}
	ver=$(printf '%s' "${tag#v}" | tr -c 'A-Za-z0-9.+~\n' '.')
	if [ "$count" != 0 ]; then
		ver="$ver+$count.$hash"
	fi
elif hash=$(git rev-parse --short HEAD 2>/dev/null); then
	ver="0.0~git$(git rev-list --count HEAD).g$hash"
else
	ver="0.0~unknown"
fi
echo "$ver$dirty"
