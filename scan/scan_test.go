package scan_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/patchbay/patchbay/advisory"
	"github.com/patchbay/patchbay/inventory"
	"github.com/patchbay/patchbay/match"
	"github.com/patchbay/patchbay/risk"
	"github.com/patchbay/patchbay/scan"
)

// memSource is an in-memory advisory index.
type memSource struct {
	advs []*advisory.Advisory
	kev  map[string]advisory.KEVEntry
}

func (m memSource) Advisories(_ context.Context, keys []match.Key) ([]*advisory.Advisory, error) {
	var out []*advisory.Advisory
	for _, a := range m.advs {
		for _, af := range a.Affected {
			if slices.Contains(keys, match.Key{Ecosystem: af.Ecosystem, Name: match.NormalizeName(af.Ecosystem, af.Name)}) {
				out = append(out, a)
				break
			}
		}
	}
	return out, nil
}

func (m memSource) Exploitation(_ context.Context, cves []string) (map[string]advisory.KEVEntry, map[string]advisory.EPSSScore, error) {
	out := map[string]advisory.KEVEntry{}
	for _, c := range cves {
		if e, ok := m.kev[c]; ok {
			out[c] = e
		}
	}
	return out, map[string]advisory.EPSSScore{}, nil
}

func pypi(id, fixed string, aliases ...string) *advisory.Advisory {
	return &advisory.Advisory{ID: id, Aliases: aliases, Affected: []advisory.Affected{{Ecosystem: "PyPI", Name: "Django",
		Ranges: []advisory.Range{{Type: advisory.RangeEcosystem, Events: []advisory.Event{{Introduced: "0"}, {Fixed: fixed}}}}}}}
}

func TestAliasesMergeIntoOneFinding(t *testing.T) {
	src := memSource{
		advs: []*advisory.Advisory{
			pypi("GHSA-aaaa-bbbb-cccc", "3.2.4", "CVE-2021-31542"),
			pypi("PYSEC-2021-7", "3.2.5", "CVE-2021-31542", "GHSA-aaaa-bbbb-cccc"),
			pypi("PYSEC-2021-9", "3.2.9", "CVE-2021-33203"),
		},
		kev: map[string]advisory.KEVEntry{"CVE-2021-33203": {CVE: "CVE-2021-33203", DateAdded: time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC)}},
	}
	inv := inventory.Result{Packages: []inventory.Package{
		{Ecosystem: "PyPI", Name: "django", Version: "3.2.0", Location: "a/requirements.txt"},
		{Ecosystem: "PyPI", Name: "Django", Version: "3.2.0", Location: "b/poetry.lock"},
	}}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	res, err := scan.Run(context.Background(), src, inv, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Findings) != 2 {
		t.Fatalf("%d findings, want 2: %v", len(res.Findings), res.Findings)
	}
	// Sorted by priority: the KEV one first.
	kev, merged := res.Findings[0], res.Findings[1]
	if kev.Vulnerability != "CVE-2021-33203" || kev.Priority != risk.P2 || kev.KEV == nil || kev.Fixed != "3.2.9" {
		t.Errorf("KEV finding %+v", kev)
	}
	if merged.Vulnerability != "CVE-2021-31542" ||
		!slices.Equal(merged.Aliases, []string{"GHSA-aaaa-bbbb-cccc", "PYSEC-2021-7"}) ||
		!slices.Equal(merged.Advisories, []string{"GHSA-aaaa-bbbb-cccc", "PYSEC-2021-7"}) {
		t.Errorf("merged finding ids: %s %v %v", merged.Vulnerability, merged.Aliases, merged.Advisories)
	}
	// The patch fixes every merged record: the larger of 3.2.4 and 3.2.5.
	if merged.Fixed != "3.2.5" {
		t.Errorf("fixed %q, want 3.2.5", merged.Fixed)
	}
	// Both lockfiles pin the same package: one finding, two locations.
	if !slices.Equal(merged.Locations, []string{"a/requirements.txt", "b/poetry.lock"}) {
		t.Errorf("locations %v", merged.Locations)
	}
	if merged.Due != now.Add(risk.SLA[merged.Priority]) {
		t.Errorf("due %v", merged.Due)
	}
}
