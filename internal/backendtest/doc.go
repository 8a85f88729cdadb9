// Package backendtest holds the kernel test suite that both firewall backends
// must pass: the nftables backend (internal/nft) and the iptables-nft + ipset
// backend (internal/ipset). The same table of cases runs against each in
// throwaway network namespaces, with real packets over a veth pair: verdicts,
// atomic replacement under a flood, adoption after a crash, and cleanup that
// leaves the administrator's own rules exactly as they were.
//
// It has no code of its own; run it with `go test ./internal/backendtest`
// as root (make check sets SIKKER_NETNS_TESTS=1).
package backendtest
