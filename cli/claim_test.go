package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/api/policyapi"
	"github.com/patchbay/patchbay/fleet"
)

// TestExplainFindingClaimAndFix: the explanation of a host finding a
// service claims says the service and the path, and its fix state.
func TestExplainFindingClaimAndFix(t *testing.T) {
	t.Parallel()
	now := time.Date(2027, 1, 5, 0, 0, 0, 0, time.UTC)
	d := policyapi.FindingDetail{
		Finding:  fleet.Finding{ID: 7, Vulnerability: "GHSA-j8r2-6x86-q33q", Package: "requests", Version: "2.25.0", Ecosystem: "PyPI", State: fleet.StateOpen, FirstSeen: now, Due: now.AddDate(0, 0, 30)},
		Hostname: "web-1",
		Claim:    &policyapi.FindingClaim{Service: "shop", Path: "/srv/shop", Location: "/srv/shop/requirements.txt"},
		Fix:      &policyapi.FindingFix{State: "proposed", Branch: "patchbay/fix/shop/weekly", To: "2.31.0", MergeRequest: "https://git.example/shop/-/merge_requests/3"},
	}
	var b bytes.Buffer
	explainFinding(&b, d, now)
	for _, want := range []string{
		"  fix proposed: 2.31.0 on branch patchbay/fix/shop/weekly https://git.example/shop/-/merge_requests/3\n",
		"  service: shop, via path /srv/shop (/srv/shop/requirements.txt)\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("no %q in\n%s", want, b.String())
		}
	}
	d.Claim, d.Fix = nil, nil
	b.Reset()
	explainFinding(&b, d, now)
	if strings.Contains(b.String(), "service:") || strings.Contains(b.String(), "fix proposed") {
		t.Errorf("no claim, no fix:\n%s", b.String())
	}
}
