// Command mkrootfs prints the path of a cached Debian minbase root file
// system tarball, building it with debootstrap first when it is missing. It
// is how `make check-fresh` gets its pristine Debian from the same recipe
// and cache as the systemd-nspawn end-to-end test.
//
//	go run ./internal/e2e/mkrootfs -suite bookworm -include make
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"strings"

	"github.com/sikkerapi/sikkerguard/internal/e2e"
)

func main() {
	suite := flag.String("suite", "bookworm", "Debian suite to bootstrap")
	include := flag.String("include", "", "comma-separated packages to add to minbase")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("mkrootfs: ")
	if flag.NArg() > 0 {
		log.Printf("unexpected arguments: %s", strings.Join(flag.Args(), " "))
		os.Exit(2)
	}
	var pkgs []string
	for _, p := range strings.Split(*include, ",") {
		if p = strings.TrimSpace(p); p != "" {
			pkgs = append(pkgs, p)
		}
	}
	if os.Geteuid() != 0 {
		log.Fatalf("debootstrap and %s need root", e2e.CacheDir)
	}
	tarball, err := e2e.Rootfs(*suite, pkgs, log.Printf)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(tarball)
}
