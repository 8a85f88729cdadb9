package ipnet_test

import (
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/sikkerapi/sikkerguard/internal/ipnet"
)

func ExampleParse() {
	feed := "ip,score\n203.0.113.0/24 ; SBL1\n198.51.100.6,90\n198.51.100.7\nnot an address\n"
	s, st, err := ipnet.Parse(strings.NewReader(feed), ipnet.ParseOptions{})
	if err != nil {
		panic(err)
	}
	s.Merge()
	fmt.Printf("entries=%d skipped=%d malformed=%d %q\n", st.Entries, st.Skipped, st.Malformed, st.Samples[0].Text)
	s.WriteTo(os.Stdout)
	// Output:
	// entries=3 skipped=1 malformed=1 "not an address"
	// 198.51.100.6/31
	// 203.0.113.0/24
}

func ExampleSet_Subtract() {
	block := ipnet.FromPrefixes(netip.MustParsePrefix("198.51.0.0/16"))
	allow := ipnet.FromAddrs(netip.MustParseAddr("198.51.100.7"))
	for r := range block.Subtract(allow).Ranges() {
		fmt.Println(r)
	}
	// Output:
	// 198.51.0.0-198.51.100.6
	// 198.51.100.8-198.51.255.255
}

func ExampleDiff() {
	prev := ipnet.FromPrefixes(netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("198.51.100.0/24"))
	next := ipnet.FromPrefixes(netip.MustParsePrefix("192.0.2.0/25"), netip.MustParsePrefix("198.51.100.0/24"))
	added, removed := ipnet.Diff(prev, next)
	fmt.Println("add", added.V4, "delete", removed.V4)
	// Output:
	// add [192.0.2.0/25] delete [192.0.2.0/24]
}

func ExampleSet_Lookup() {
	s := ipnet.FromPrefixes(netip.MustParsePrefix("203.0.113.0/24"))
	r, ok := s.Lookup(netip.MustParseAddr("::ffff:203.0.113.9"))
	fmt.Println(r, ok)
	// Output:
	// 203.0.113.0/24 true
}
