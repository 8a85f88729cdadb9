package mock

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/ipnet"
)

// Entry is one blacklisted address or network with the details the JSON
// blacklist carries.
type Entry struct {
	Prefix      netip.Prefix
	Score       int // confidenceLevel, 1..100
	LastSeen    time.Time
	Sessions    int
	Protocols   []string
	CountryCode string
	ASN         uint32
	ASNOrg      string
}

// Protocols are the honeypot protocol names SikkerAPI uses.
var Protocols = []string{"ssh", "http", "ftp", "smtp", "mysql", "postgresql", "mongodb", "redis",
	"docker", "telnet", "elasticsearch", "mssql", "imap", "smb", "rtsp", "sip", "rdp"}

// networks gives generated entries a consistent country, ASN and owner.
var networks = []struct {
	asn     uint32
	org, cc string
}{
	{4134, "Chinanet", "CN"}, {4837, "China Unicom", "CN"}, {45090, "Tencent Cloud", "CN"},
	{37963, "Alibaba Cloud", "CN"}, {12389, "Rostelecom", "RU"}, {14061, "DigitalOcean", "US"},
	{16509, "Amazon", "US"}, {396982, "Google Cloud", "US"}, {8075, "Microsoft", "US"},
	{4766, "Korea Telecom", "KR"}, {24940, "Hetzner Online", "DE"}, {16276, "OVH", "FR"},
	{9829, "BSNL", "IN"}, {7552, "Viettel", "VN"}, {28573, "Claro", "BR"},
	{63949, "Akamai Connected Cloud", "US"}, {211252, "Delis", "NL"}, {17974, "Telkomnet", "ID"},
}

// GenerateOptions controls Generate.
type GenerateOptions struct {
	N         int
	Seed      int64
	V6Share   float64   // share of IPv6 entries, 0..1
	CIDRShare float64   // share of network (not single-address) entries, 0..1
	Base      time.Time // newest lastSeen; default 2025-10-09T08:53:20Z
}

// DefaultBase is the newest lastSeen of generated entries, fixed so that
// the same seed always yields the same list.
var DefaultBase = time.UnixMilli(1760000000000).UTC()

// Generate returns opt.N distinct entries, deterministic for a seed, all in
// globally routable space (never private, documentation, reserved or
// multicast ranges), sorted like the API sorts them.
func Generate(opt GenerateOptions) []Entry {
	if opt.Base.IsZero() {
		opt.Base = DefaultBase
	}
	r := rand.New(rand.NewPCG(uint64(opt.Seed), 0x5eed5eed))
	nonGlobal := ipnet.NonGlobal()
	seen := make(map[netip.Prefix]bool, opt.N)
	out := make([]Entry, 0, opt.N)
	for len(out) < opt.N {
		p := randomPrefix(r, r.Float64() < opt.V6Share, r.Float64() < opt.CIDRShare)
		if seen[p] || !isGlobalPrefix(p, nonGlobal) {
			continue
		}
		seen[p] = true
		nw := networks[r.IntN(len(networks))]
		protos := make([]string, 0, 3)
		for range 1 + r.IntN(3) {
			pr := Protocols[r.IntN(len(Protocols))]
			if !slices.Contains(protos, pr) {
				protos = append(protos, pr)
			}
		}
		out = append(out, Entry{
			Prefix:      p,
			Score:       1 + r.IntN(100),
			LastSeen:    opt.Base.Add(-time.Duration(r.Int64N(int64(30*24*time.Hour/time.Millisecond))) * time.Millisecond),
			Sessions:    1 + r.IntN(500),
			Protocols:   protos,
			CountryCode: nw.cc,
			ASN:         nw.asn,
			ASNOrg:      nw.org,
		})
	}
	SortEntries(out)
	return out
}

func randomPrefix(r *rand.Rand, v6, cidr bool) netip.Prefix {
	if v6 {
		var b [16]byte
		// 2000::/3 is the global unicast space.
		hi := 0x2000_0000_0000_0000 | r.Uint64()&0x1fff_ffff_ffff_ffff
		lo := r.Uint64()
		for i := range 8 {
			b[i] = byte(hi >> (56 - 8*i))
			b[8+i] = byte(lo >> (56 - 8*i))
		}
		a := netip.AddrFrom16(b)
		if cidr {
			return netip.PrefixFrom(a, 32+r.IntN(33)).Masked() // /32../64
		}
		return netip.PrefixFrom(a, 128)
	}
	v := r.Uint32()
	a := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	if cidr {
		return netip.PrefixFrom(a, 20+r.IntN(10)).Masked() // /20../29
	}
	return netip.PrefixFrom(a, 32)
}

func isGlobalPrefix(p netip.Prefix, nonGlobal ipnet.Set) bool {
	if p.IsSingleIP() {
		return !nonGlobal.Contains(p.Addr())
	}
	var s ipnet.Set
	s.AddPrefix(p)
	return ipnet.Intersect(s, nonGlobal).IsEmpty()
}

// SortEntries orders entries like the API: by confidence, then recency;
// the address breaks ties so that the order is total.
func SortEntries(es []Entry) {
	// The order is total, so an unstable sort gives the same result.
	slices.SortFunc(es, func(a, b Entry) int {
		if a.Score != b.Score {
			return b.Score - a.Score
		}
		if c := b.LastSeen.Compare(a.LastSeen); c != 0 {
			return c
		}
		if c := a.Prefix.Addr().Compare(b.Prefix.Addr()); c != 0 {
			return c
		}
		return a.Prefix.Bits() - b.Prefix.Bits()
	})
}

// ParseList reads a list for the mock to serve: either the API's JSON
// blacklist document (or a bare array of its rows), or plain text with one
// address or CIDR a line and # comments. Plain-text entries get score 100
// and no details, so every scoreMinimum includes them. Any bad line or row
// is an error naming it.
func ParseList(r io.Reader) ([]Entry, error) {
	br := bufio.NewReader(r)
	head, _ := br.Peek(512)
	if t := bytes.TrimLeft(head, " \t\r\n\ufeff"); len(t) > 0 && (t[0] == '{' || t[0] == '[') {
		return parseJSONList(br)
	}
	var out []Entry
	sc := bufio.NewScanner(br)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		p, err := parsePrefix(line)
		if err != nil {
			return nil, fmt.Errorf("list line %d: %w", n, err)
		}
		out = append(out, Entry{Prefix: p, Score: 100, LastSeen: DefaultBase, Sessions: 1})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read list: %w", err)
	}
	SortEntries(out)
	return out, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap().WithZone("")
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// wireEntry is a row of the JSON blacklist.
type wireEntry struct {
	IP          string   `json:"ip"`
	Confidence  int      `json:"confidenceLevel"`
	LastSeen    int64    `json:"lastSeen"`
	Sessions    int      `json:"sessions"`
	Protocols   []string `json:"protocols"`
	CountryCode string   `json:"countryCode"`
	ASN         string   `json:"asn"`
	ASNOrg      string   `json:"asnOrg"`
}

func parseJSONList(r io.Reader) ([]Entry, error) {
	raw, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read list: %w", err)
	}
	var rows []wireEntry
	raw = bytes.TrimLeft(raw, " \t\r\n\ufeff")
	if len(raw) > 0 && raw[0] == '[' {
		err = json.Unmarshal(raw, &rows)
	} else {
		var doc struct {
			Data []wireEntry `json:"data"`
		}
		err = json.Unmarshal(raw, &doc)
		rows = doc.Data
	}
	if err != nil {
		return nil, fmt.Errorf("json list: %w", err)
	}
	out := make([]Entry, 0, len(rows))
	for i, w := range rows {
		p, err := parsePrefix(strings.TrimSpace(w.IP))
		if err != nil {
			return nil, fmt.Errorf("json list row %d: %w", i+1, err)
		}
		asn, _ := parseASN(w.ASN)
		e := Entry{Prefix: p, Score: w.Confidence, Sessions: w.Sessions, Protocols: w.Protocols,
			CountryCode: w.CountryCode, ASN: asn, ASNOrg: w.ASNOrg}
		if w.LastSeen > 0 {
			e.LastSeen = time.UnixMilli(w.LastSeen).UTC()
		}
		out = append(out, e)
	}
	SortEntries(out)
	return out, nil
}

func parseASN(s string) (uint32, bool) {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && strings.EqualFold(s[:2], "AS") {
		s = s[2:]
	}
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err == nil && n > 0
}

// text is the entry as the plaintext blacklist shows it.
func (e Entry) text() string {
	if e.Prefix.IsSingleIP() {
		return e.Prefix.Addr().String()
	}
	return e.Prefix.String()
}

// wire is the entry as a JSON row, its lastSeen moved on by shift.
func (e Entry) wire(asnStyle string, i int, shift time.Duration) wireEntry {
	w := wireEntry{IP: e.text(), Confidence: e.Score, Sessions: e.Sessions, Protocols: e.Protocols,
		CountryCode: e.CountryCode, ASNOrg: e.ASNOrg}
	if w.Protocols == nil {
		w.Protocols = []string{}
	}
	if !e.LastSeen.IsZero() {
		w.LastSeen = e.LastSeen.Add(shift).UnixMilli()
	}
	if e.ASN != 0 {
		w.ASN = strconv.FormatUint(uint64(e.ASN), 10)
		if asnStyle == ASNPrefixed || (asnStyle == ASNMixed && i%2 == 1) {
			w.ASN = "AS" + w.ASN
		}
	}
	return w
}
