package main

import (
	"path/filepath"
	"strconv"
)

// The seed's cron script, the reference for every sikkerguard figure:
// curl the plaintext list, then one `ipset restore` of
// `create tmp; add tmp …; swap tmp live; destroy tmp` built from it with
// sed (hash:net, since lists hold CIDRs too).

// seedFetch downloads the list as the script did.
func seedFetch(ns, apiURL, out string) (timed, error) {
	url := apiURL + "/v1/key/blacklist?plaintext=true&scoreMinimum=50"
	return execTimed(ns, nil, nil, "curl", "-sf", "-H", "Authorization: Bearer "+labKey, "-o", out, url)
}

// seedScript builds the restore script from the list file $1 and feeds it
// to ipset restore, whose own peak RSS GNU time writes to $2.
const seedScript = `set -e -o pipefail
{
	echo "create sgwlive hash:net family inet hashsize 65536 maxelem $3 -exist"
	echo "create sgwtmp hash:net family inet hashsize 65536 maxelem $3"
	sed 's/^/add sgwtmp /' "$1"
	echo "swap sgwtmp sgwlive"
	echo "destroy sgwtmp"
} | /usr/bin/time -f %M -o "$2" ipset restore`

// seedRestore loads the list file into the live set; PeakKiB is ipset's.
func seedRestore(ns, list string, entries int) (timed, error) {
	rep := filepath.Join(filepath.Dir(list), "ipset-time")
	t, err := execTimed(ns, nil, nil, "bash", "-c", seedScript, "_", list, rep, strconv.Itoa(2*entries+1024))
	if err != nil {
		return t, err
	}
	t.PeakKiB, err = readTimeReport(rep)
	return t, err
}

// seedFlow is one whole cron run: fetch, then restore.
func seedFlow(ns, apiURL, dir string, entries int) (fetch, restore timed, err error) {
	file := filepath.Join(dir, "seed-list.txt")
	if fetch, err = seedFetch(ns, apiURL, file); err != nil {
		return
	}
	restore, err = seedRestore(ns, file, entries)
	return
}
