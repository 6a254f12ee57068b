package storetest

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/inventory"
	"github.com/patchbay/patchbay/match"
	"github.com/patchbay/patchbay/patch"
	"github.com/patchbay/patchbay/risk"
)

// RedecideStore is a store whose findings are decided again in bulk.
type RedecideStore interface {
	UpsertHost(ctx context.Context, h fleet.Host) error
	HostSummary(ctx context.Context, id string) (fleet.HostSummary, error)
	History() fleet.History
	List(ctx context.Context, hostID string) ([]fleet.Finding, error)
	Finding(ctx context.Context, id int64) (fleet.Finding, []fleet.FindingEvent, error)
}

// assetIndex is the hosts' context as a re-decision reads it.
type assetIndex map[string]fleet.Asset

func (x assetIndex) SoftwareWith(context.Context, []match.Key) (map[string][]inventory.Package, error) {
	return map[string][]inventory.Package{}, nil
}

func (x assetIndex) Assets(context.Context) (map[string]fleet.Asset, error) {
	out := map[string]fleet.Asset{}
	for k, v := range x {
		out[k] = v
	}
	return out, nil
}

// envTriage decides by the host's env label: prod findings are P1 when
// exploited, else P2; elsewhere P4, and (unless blind) zlib's are
// accepted on staging. Decisions read only the env label (ContextKey),
// and blind ones no finding's identity.
type envTriage struct{ blind bool }

func (envTriage) ContextKey(a fleet.Asset) string { return a.Labels["env"] }

func (t envTriage) IdentityBlind() bool { return t.blind }

func (t envTriage) Decide(a fleet.Asset, fs []fleet.Finding, now time.Time) {
	env := a.Labels["env"]
	for i := range fs {
		f := &fs[i]
		f.Priority, f.SLA, f.State, f.Exception, f.Lane = risk.P4, 90*24*time.Hour, fleet.StateOpen, "", ""
		if env == "prod" {
			f.Priority, f.SLA = risk.P2, 30*24*time.Hour
			if f.Exploitation == risk.ExploitActive {
				f.Priority, f.SLA = risk.P1, 7*24*time.Hour
			}
		}
		if env == "staging" && f.Package == "zlib" && !t.blind {
			f.State, f.Exception = fleet.StateAccepted, "zlib-ok"
		}
		if f.Automatable {
			f.Lane = fleet.Lane("fast")
		}
		f.DueCap = f.KEVDue
		f.Reasons = []string{"env " + env, "exploitation " + string(f.Exploitation)}
	}
}

// legacyHistory hides a store's BulkRedecide: Reprioritize decides each
// finding and stores the decisions with Redecide.
type legacyHistory struct{ fleet.History }

// Redecide runs the bulk re-decision contract: a re-decision through
// BulkRedecide (per distinct input) leaves the same findings, events,
// open counts and result as deciding every finding (Redecide), for a
// fleet-wide scope, new evidence and one host. open returns a fresh,
// empty store each call.
func Redecide(t *testing.T, open func(t *testing.T) RedecideStore) {
	ctx := context.Background()
	t1 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	kev := t1.Add(5 * 24 * time.Hour)
	assets := assetIndex{}
	envs := []string{"prod", "staging", "dev"}
	seed := func(s RedecideStore) {
		for i := 0; i < 9; i++ {
			id := "h" + string(rune('1'+i))
			labels := map[string]string{"env": envs[i%3], "team": []string{"a", "b"}[i%2]}
			if err := s.UpsertHost(ctx, fleet.Host{ID: id, MachineID: "m" + id, Labels: labels}); err != nil {
				t.Fatal(err)
			}
			assets[id] = fleet.Asset{ID: id, Labels: labels}
			var fs []fleet.Finding
			for j, pkg := range []string{"openssl", "zlib", "curl", "bash"} {
				if (i+j)%4 == 3 {
					continue // not every host has every package
				}
				f := fleet.Finding{Ecosystem: "Debian:12", Package: pkg, Version: "1." + string(rune('0'+i%2)), Vulnerability: "CVE-" + pkg,
					Priority: risk.P3, Fixed: "9", Exploitation: risk.ExploitNone, Impact: "partial", Cycle: patch.CycleSystem, Automatable: j%2 == 0}
				if pkg == "curl" {
					f.Exploitation, f.KEVDue = risk.ExploitActive, kev.Add(time.Duration(i%2)*24*time.Hour)
				}
				fs = append(fs, f)
			}
			if _, _, err := s.History().Sync(ctx, id, fs, t1.Add(time.Duration(i)*time.Hour), "seed"); err != nil {
				t.Fatal(err)
			}
			if i == 0 { // a remediated finding is left alone
				if _, _, err := s.History().Sync(ctx, id, fs[1:], t1.Add(time.Duration(i)*time.Hour+time.Minute), "seed"); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	bulk, legacy := open(t), open(t)
	seed(bulk)
	seed(legacy)
	if _, ok := bulk.History().(fleet.BulkRedecider); !ok {
		t.Fatalf("%T does not re-decide in bulk", bulk.History())
	}
	type state struct {
		findings []fleet.Finding
		events   [][]fleet.FindingEvent
		open     map[string]int
	}
	read := func(s RedecideStore) map[string]state {
		out := map[string]state{}
		for id := range assets {
			var st state
			fs, err := s.List(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range fs {
				_, evs, err := s.Finding(ctx, f.ID)
				if err != nil {
					t.Fatal(err)
				}
				st.events = append(st.events, evs)
			}
			st.findings = fs
			h, err := s.HostSummary(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			st.open = h.Open
			// The counts are those of the findings stored.
			want := map[string]int{}
			for _, f := range fs {
				if f.RemediatedAt.IsZero() && f.State == fleet.StateOpen {
					want[f.Priority.String()]++
				}
			}
			if len(h.Open) != 0 || len(want) != 0 {
				if !reflect.DeepEqual(h.Open, want) {
					t.Errorf("host %s: open counts %v, its findings %v", id, h.Open, want)
				}
			}
			out[id] = st
		}
		return out
	}
	tri := envTriage{}
	step := func(name string, scope fleet.Scope, at time.Time, wantChanged bool) {
		t.Helper()
		rb, err := fleet.Matcher{Index: assets, History: bulk.History(), Triage: tri}.Reprioritize(ctx, scope, at, name)
		if err != nil {
			t.Fatalf("%s: bulk: %v", name, err)
		}
		rl, err := fleet.Matcher{Index: assets, History: legacyHistory{legacy.History()}, Triage: tri}.Reprioritize(ctx, scope, at, name)
		if err != nil {
			t.Fatalf("%s: one by one: %v", name, err)
		}
		if rb != rl {
			t.Errorf("%s: bulk result %+v, one by one %+v", name, rb, rl)
		}
		if wantChanged && rb.Changed == 0 {
			t.Errorf("%s: nothing changed: %+v", name, rb)
		}
		sb, sl := read(bulk), read(legacy)
		for id := range assets {
			if !reflect.DeepEqual(sb[id], sl[id]) {
				t.Errorf("%s: host %s: bulk\n%+v\none by one\n%+v", name, id, sb[id], sl[id])
			}
		}
	}
	step("policy applied", fleet.Scope{}, t1.Add(24*time.Hour), true)
	step("same policy", fleet.Scope{}, t1.Add(25*time.Hour), false)
	step("bash added to KEV", fleet.Scope{Evidence: map[string]fleet.Evidence{"CVE-bash": {Exploitation: risk.ExploitActive, KEVDue: t1.Add(3 * 24 * time.Hour)}}},
		t1.Add(26*time.Hour), true)
	a := assets["h2"]
	a.Labels = map[string]string{"env": "prod", "team": "a"}
	assets["h2"] = a
	step("h2 labelled prod", fleet.Scope{HostIDs: []string{"h2"}}, t1.Add(27*time.Hour), true)
	tri = envTriage{blind: true}
	step("zlib exception removed", fleet.Scope{}, t1.Add(28*time.Hour), true)

	// The evidence the open findings were decided with: each distinct
	// (exploitation, KEV due date) of each vulnerability, once.
	ev, ok := bulk.History().(interface {
		Evidence(ctx context.Context) (map[string][]fleet.Evidence, error)
	})
	if !ok {
		t.Fatalf("%T has no Evidence", bulk.History())
	}
	got, err := ev.Evidence(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]fleet.Evidence{}
	for id := range assets {
		fs, err := bulk.List(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fs {
			e := fleet.Evidence{Exploitation: f.Exploitation, KEVDue: f.KEVDue}
			if f.RemediatedAt.IsZero() && !slices.ContainsFunc(want[f.Vulnerability], func(x fleet.Evidence) bool { return x.Exploitation == e.Exploitation && x.KEVDue.Equal(e.KEVDue) }) {
				want[f.Vulnerability] = append(want[f.Vulnerability], e)
			}
		}
	}
	if len(want["CVE-curl"]) != 2 || len(want["CVE-bash"]) != 1 {
		t.Fatalf("the fixture's evidence: %v", want)
	}
	for v, es := range want {
		slices.SortFunc(es, func(a, b fleet.Evidence) int { return a.KEVDue.Compare(b.KEVDue) })
		g := slices.Clone(got[v])
		slices.SortFunc(g, func(a, b fleet.Evidence) int { return a.KEVDue.Compare(b.KEVDue) })
		if fmt.Sprint(g) != fmt.Sprint(es) {
			t.Errorf("evidence of %s: %v, want %v", v, g, es)
		}
	}
	if len(got) != len(want) {
		t.Errorf("evidence of %d vulnerabilities, want %d: %v", len(got), len(want), got)
	}
}

// redecideOf is the backend's fleet and findings stores as a RedecideStore.
func redecideOf(t *testing.T, b Backend) RedecideStore {
	hs, ok := b.Fleet.(interface {
		HostSummary(ctx context.Context, id string) (fleet.HostSummary, error)
	})
	if !ok {
		t.Fatalf("%T has no HostSummary", b.Fleet)
	}
	fs, ok := b.Findings.(interface {
		fleet.History
		Finding(ctx context.Context, id int64) (fleet.Finding, []fleet.FindingEvent, error)
	})
	if !ok {
		t.Fatalf("%T is not a fleet.History with findings by id", b.Findings)
	}
	return redecideStore{b.Fleet, hs, fs}
}

type redecideStore struct {
	FleetStore
	hs interface {
		HostSummary(ctx context.Context, id string) (fleet.HostSummary, error)
	}
	fs interface {
		fleet.History
		Finding(ctx context.Context, id int64) (fleet.Finding, []fleet.FindingEvent, error)
	}
}

func (s redecideStore) HostSummary(ctx context.Context, id string) (fleet.HostSummary, error) {
	return s.hs.HostSummary(ctx, id)
}
func (s redecideStore) History() fleet.History { return s.fs }
func (s redecideStore) List(ctx context.Context, hostID string) ([]fleet.Finding, error) {
	return s.fs.(FindingStore).List(ctx, hostID)
}
func (s redecideStore) Finding(ctx context.Context, id int64) (fleet.Finding, []fleet.FindingEvent, error) {
	return s.fs.Finding(ctx, id)
}
