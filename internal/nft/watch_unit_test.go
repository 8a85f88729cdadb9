package nft

import (
	"testing"

	"github.com/sikkerapi/sikkerguard/internal/firewall"
)

// Inside a pid namespace the committing pid of a NEWGEN message is the
// initial namespace's, which the caller never saw; the sending socket's
// port id is the helper's own pid there, and identifies it.
func TestCommitOfAHelperIsKnownByItsPortID(t *testing.T) {
	helper := 4242 // the pid the caller started
	w := watcher{
		self:  func(int) bool { return false },
		ours:  func(pid int) bool { return pid == helper },
		match: func(TableEvent) Verdict { return Sure },
		out:   make(chan firewall.Change, 1),
	}
	w.pending = []TableEvent{{Name: "INPUT"}}
	w.commit(991234, "ip6tables-resto", uint32(helper))
	if len(w.out) != 0 {
		t.Fatal("a helper's commit, known by its port id, was reported")
	}
	w.pending = []TableEvent{{Name: "INPUT"}}
	w.commit(991235, "iptables", 77)
	if len(w.out) != 1 {
		t.Fatal("another program's commit was not reported")
	}
}
