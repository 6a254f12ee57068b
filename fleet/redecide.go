package fleet

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/patchbay/patchbay/patch"
	"github.com/patchbay/patchbay/risk"
)

// DecisionInput is what a stored finding is decided from, in the context
// class of its host: the findings of thousands of hosts share a few
// thousand of them, so re-decisions are made once per input and fanned
// out to the findings in the store.
type DecisionInput struct {
	Class         int // index into the classes BulkRedecide was given
	Vulnerability string
	Ecosystem     string
	Package       string
	Version       string
	Exploitation  risk.Exploitation
	Automatable   bool
	Impact        string
	Cycle         patch.Cycle
	KEVDue        time.Time
}

// InputDecision is the new decision of every unremediated finding with
// Input: its Priority, State, Exception, Lane, Exploitation and KEVDue
// (new evidence replaces the stored one) and its due date, counted from
// each finding's first sighting: FirstSeen + SLA, capped at DueCap.
type InputDecision struct {
	Input        DecisionInput
	Priority     risk.Priority
	State        State
	Exception    string
	Lane         Lane
	Exploitation risk.Exploitation
	KEVDue       time.Time
	SLA          time.Duration
	DueCap       time.Time
	Reasons      []string
}

// BulkRedecider re-decides findings per distinct decision input, with
// set-based writes: a fleet-wide re-decision costs what its distinct
// inputs cost, plus the database's own work per row.
type BulkRedecider interface {
	// BulkRedecide reads, in one transaction, the distinct decision
	// inputs of the unremediated findings of the hosts (host id → class;
	// only the findings of vulns when given), calls decide with them, and
	// stores its decisions on every finding with an input decided: those
	// whose decision changed are updated, with an event for each change
	// of priority or state, and the open counts of the hosts whose
	// findings changed priority or state are counted again.
	// With blind set the inputs carry no vulnerability, ecosystem,
	// package or version (decide does not read them): far fewer distinct
	// ones.
	BulkRedecide(ctx context.Context, scope BulkScope, decide func([]DecisionInput) ([]InputDecision, error),
		now time.Time, cause string) (ReprioritizeResult, error)
}

// BulkScope is what BulkRedecide decides again.
type BulkScope struct {
	Hosts map[string]int // host id → class
	Vulns []string       // only these vulnerabilities' findings, when given
	Blind bool           // decisions do not read a finding's identity
}

// IdentityBlinder is a Triage that may not read findings' identities
// (vulnerability, ecosystem, package, version).
type IdentityBlinder interface {
	IdentityBlind() bool
}

// ContextKeyer is a Triage whose decisions of an asset depend on less
// than the whole asset: assets with the same key are decided alike.
type ContextKeyer interface {
	ContextKey(a Asset) string
}

// bulkReprioritize is Reprioritize with a BulkRedecider: hosts are put in
// classes (one per host unless the triage says what its decisions depend
// on), and each distinct input of a class is decided once.
func (m Matcher) bulkReprioritize(ctx context.Context, b BulkRedecider, assets map[string]Asset, scope Scope, now time.Time, cause string) (ReprioritizeResult, error) {
	keyer, _ := m.Triage.(ContextKeyer)
	hosts := make(map[string]int, len(assets))
	var reps []Asset // a representative asset per class
	classOf := map[string]int{}
	add := func(a Asset) {
		key := "\x00" + a.ID
		if keyer != nil {
			key = keyer.ContextKey(a)
		}
		c, ok := classOf[key]
		if !ok {
			c = len(reps)
			classOf[key] = c
			reps = append(reps, a)
		}
		hosts[a.ID] = c
	}
	if scope.HostIDs != nil {
		for _, id := range scope.HostIDs {
			if a, ok := assets[id]; ok {
				add(a)
			}
		}
	} else {
		ids := make([]string, 0, len(assets))
		for id := range assets {
			ids = append(ids, id)
		}
		slices.Sort(ids) // representatives do not depend on map order
		for _, id := range ids {
			add(assets[id])
		}
	}
	if len(hosts) == 0 {
		return ReprioritizeResult{}, nil
	}
	var vulns []string
	for v := range scope.Evidence {
		vulns = append(vulns, v)
	}
	slices.Sort(vulns)
	decide := func(ins []DecisionInput) ([]InputDecision, error) {
		byClass := map[int][]int{}
		for i, in := range ins {
			byClass[in.Class] = append(byClass[in.Class], i)
		}
		out := make([]InputDecision, len(ins))
		for c, idx := range byClass {
			a := reps[c]
			fs := make([]Finding, len(idx))
			for j, i := range idx {
				in := ins[i]
				f := Finding{HostID: a.ID, Ecosystem: in.Ecosystem, Package: in.Package, Vulnerability: in.Vulnerability, Version: in.Version,
					Exploitation: in.Exploitation, Automatable: in.Automatable, Impact: in.Impact, Cycle: in.Cycle, KEVDue: in.KEVDue, State: StateOpen}
				if ev, ok := scope.Evidence[in.Vulnerability]; ok {
					f.Exploitation, f.KEVDue = ev.Exploitation, ev.KEVDue
				}
				fs[j] = f
			}
			m.Triage.Decide(a, fs, now)
			for j, i := range idx {
				f := fs[j]
				out[i] = InputDecision{Input: ins[i], Priority: f.Priority, State: f.State, Exception: f.Exception, Lane: f.Lane,
					Exploitation: f.Exploitation, KEVDue: f.KEVDue, SLA: f.SLA, DueCap: f.DueCap, Reasons: f.Reasons}
			}
		}
		return out, ctx.Err()
	}
	// New evidence is keyed by vulnerability: those decisions need it.
	blind := false
	if bl, ok := m.Triage.(IdentityBlinder); ok && len(vulns) == 0 {
		blind = bl.IdentityBlind()
	}
	return b.BulkRedecide(ctx, BulkScope{Hosts: hosts, Vulns: vulns, Blind: blind}, decide, now, cause)
}

// ContextKeyOf is a key of what decisions can depend on in an asset: its
// service and labels (not its id).
func ContextKeyOf(a Asset) string {
	keys := make([]string, 0, len(a.Labels))
	for k := range a.Labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString(a.Service)
	if a.ID != "" {
		b.WriteString("\x00host")
	}
	for _, k := range keys {
		b.WriteString("\x00")
		b.WriteString(k)
		b.WriteString("=")
		b.WriteString(a.Labels[k])
	}
	return b.String()
}
