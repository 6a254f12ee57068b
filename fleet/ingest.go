package fleet

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/patchbay/patchbay/inventory"
	"github.com/patchbay/patchbay/match"
	"github.com/patchbay/patchbay/risk"
	"github.com/patchbay/patchbay/scan"
)

// Inventories is where hosts' inventories are kept.
type Inventories interface {
	ReplaceInventory(ctx context.Context, hostID string, pkgs []inventory.Package) (bool, error)
}

// InventoryIngester is an inventory store that also keeps its hosts'
// findings, and writes an inventory with the findings matched from it in
// one transaction: a crash between the two cannot leave a host with a new
// inventory and the findings of the old one.
type InventoryIngester interface {
	// IngestInventory replaces the host's inventory and makes its open
	// findings current, as ReplaceInventory and Sync would; it does
	// nothing and returns false when the inventory is unchanged.
	IngestInventory(ctx context.Context, hostID string, pkgs []inventory.Package, current []Finding, now time.Time, cause string) (changed bool, opened, closed int, err error)
}

// FindingHistory is where hosts' findings are kept, with their history.
type FindingHistory interface {
	// Sync makes the host's open findings current; changes of priority
	// or state are recorded with cause.
	Sync(ctx context.Context, hostID string, current []Finding, now time.Time, cause string) (opened, closed int, err error)
}

// Asset is a host as decisions see it.
type Asset struct {
	ID     string
	Labels map[string]string // effective labels
	// Service names the service whose uploaded inventory the asset holds
	// ("" for a host).
	Service string
}

// AssetOf is a host as decisions see it.
func AssetOf(h Host) Asset {
	a := Asset{ID: h.ID, Labels: h.EffectiveLabels()}
	if h.IsService() {
		a.Service = strings.TrimPrefix(h.MachineID, ServicePrefix)
	}
	return a
}

// Triage decides findings in their host's context: priority, SLA, state,
// lane and reasons. Without one, findings keep the context-free
// assessment of the scan.
type Triage interface {
	Decide(a Asset, fs []Finding, now time.Time)
}

// History is where hosts' findings are kept with their history: whole
// hosts synced by Ingest, scoped changes and re-decisions by Rematch and
// Reprioritize.
type History interface {
	FindingHistory
	ScopedHistory
}

// Matcher keeps hosts' findings current: it matches their software
// against the advisory index, decides the findings in each host's
// context and records them, with their history, when an inventory, an
// advisory or a policy changes.
type Matcher struct {
	// Inventories keeps hosts' inventories (Ingest).
	Inventories Inventories
	// Index finds the software hosts have and their context (Rematch,
	// Reprioritize).
	Index HostIndex
	// History keeps hosts' findings with their history.
	History History
	// Source is the advisory index inventories are matched against
	// (Ingest, Rematch).
	Source scan.Source
	// Triage decides findings in their host's context. Without one,
	// Ingest and Rematch keep the context-free assessment of the scan;
	// Reprioritize needs one.
	Triage Triage
}

// IngestResult says what an inventory ingest changed.
type IngestResult struct {
	Changed  bool // the inventory differed from the stored one
	Findings int  // open findings after the ingest
	Opened   int
	Closed   int // remediated by this inventory
}

// Ingest stores a host's inventory and, when it changed, recomputes the
// host's findings against the advisory index: new ones open, those whose
// package was upgraded or removed close as remediated now.
//
// When m.Inventories is an InventoryIngester the inventory is matched
// first and stored with its findings in one transaction (m.History's Sync
// is not used): callers ingest inventories they know to differ from the
// stored one, so the match is rarely wasted.
func (m Matcher) Ingest(ctx context.Context, host Host, pkgs []inventory.Package, now time.Time) (IngestResult, error) {
	var r IngestResult
	if ing, ok := m.Inventories.(InventoryIngester); ok {
		current, err := m.match(ctx, host, pkgs, now)
		if err != nil {
			return r, err
		}
		changed, opened, closed, err := ing.IngestInventory(ctx, host.ID, pkgs, current, now, ingestCause(host))
		if err != nil || !changed {
			return r, err
		}
		return IngestResult{Changed: true, Findings: len(current), Opened: opened, Closed: closed}, nil
	}
	changed, err := m.Inventories.ReplaceInventory(ctx, host.ID, pkgs)
	if err != nil {
		return r, err
	}
	r.Changed = changed
	if !changed {
		return r, nil
	}
	current, err := m.match(ctx, host, pkgs, now)
	if err != nil {
		return r, err
	}
	r.Findings = len(current)
	r.Opened, r.Closed, err = m.History.Sync(ctx, host.ID, current, now, ingestCause(host))
	return r, err
}

func ingestCause(host Host) string { return "inventory of " + host.Hostname + " changed" }

// match matches an inventory against the advisory index and decides the
// findings in the host's context.
func (m Matcher) match(ctx context.Context, host Host, pkgs []inventory.Package, now time.Time) ([]Finding, error) {
	res, err := scan.Run(ctx, m.Source, inventory.Result{Packages: pkgs}, now)
	if err != nil {
		return nil, fmt.Errorf("match inventory of %s: %w", host.ID, err)
	}
	current := findingsOf(host.ID, res)
	if m.Triage != nil {
		m.Triage.Decide(AssetOf(host), current, now)
	}
	return current, nil
}

// HostIndex finds the software hosts have.
type HostIndex interface {
	// SoftwareWith returns, per host, its packages named by any of the
	// keys (a key of a bare ecosystem, "Debian", also names "Debian:12").
	SoftwareWith(ctx context.Context, keys []match.Key) (map[string][]inventory.Package, error)
	// Assets are every host with its effective labels, by id.
	Assets(ctx context.Context) (map[string]Asset, error)
}

// AssetsOfer is a HostIndex that reads some hosts' assets alone: a
// re-decision of a few hosts need not read the fleet.
type AssetsOfer interface {
	AssetsOf(ctx context.Context, ids []string) (map[string]Asset, error)
}

// PackageID names a package as findings do: ecosystem and the name
// advisories use (the source package for OS packages).
type PackageID struct{ Ecosystem, Name string }

// ScopedChange replaces one host's open findings of the packages in Scope
// with Findings; its other findings are left alone.
type ScopedChange struct {
	HostID   string
	Scope    []PackageID
	Findings []Finding
}

// Fence is the lease term the leader writes under: a write under a term
// that is no longer the lease's is refused. The zero Fence does not fence.
type Fence struct {
	Lease string
	Term  int64
}

// ScopedHistory applies scoped finding changes.
type ScopedHistory interface {
	// SyncScoped applies every change in one transaction, checking the
	// fence inside it.
	SyncScoped(ctx context.Context, changes []ScopedChange, now time.Time, fence Fence, cause string) (opened, closed int, err error)
	// OpenOf returns the unremediated findings of the hosts (only those
	// of vulns, when given; then nil hosts means all).
	OpenOf(ctx context.Context, hostIDs, vulns []string) (map[string][]Finding, error)
	// Redecide stores new decisions of findings still unremediated, with
	// an event for each change of priority or state, in one transaction.
	Redecide(ctx context.Context, changes []Redecision, now time.Time, cause string) error
}

// Redecision is a finding's new decision (its Priority, State,
// Exception, Lane, Exploitation, KEVDue, Due and Reasons) and what it
// was before.
type Redecision struct {
	Finding
	PriorityFrom risk.Priority
	StateFrom    State
}

// RematchResult says what an incremental rematch did.
type RematchResult struct {
	Hosts          int // hosts whose software the keys name
	Groups         int // distinct package sets among them, each matched once
	Opened, Closed int
}

// Rematch recomputes, after a feed import, the findings of the packages
// named by keys — those of new, modified or withdrawn advisories — on the
// hosts that have them, and nothing else: no host's full inventory is read
// or matched. Hosts with the same set of such packages are matched once.
func (m Matcher) Rematch(ctx context.Context, keys []match.Key, now time.Time, fence Fence, cause string) (RematchResult, error) {
	var r RematchResult
	if len(keys) == 0 {
		return r, nil
	}
	byHost, err := m.Index.SoftwareWith(ctx, keys)
	if err != nil {
		return r, err
	}
	r.Hosts = len(byHost)
	type group struct {
		scope    []PackageID
		findings []Finding
	}
	groups := map[string]*group{}
	hostGroup := make(map[string]string, len(byHost))
	for id, pkgs := range byHost {
		sig := InventoryHash(pkgs)
		hostGroup[id] = sig
		if _, ok := groups[sig]; ok {
			continue
		}
		res, err := scan.Run(ctx, m.Source, inventory.Result{Packages: pkgs}, now)
		if err != nil {
			return r, fmt.Errorf("rematch: %w", err)
		}
		g := &group{findings: findingsOf("", res)}
		seen := map[PackageID]bool{}
		for _, p := range pkgs {
			pid := PackageID{p.Ecosystem, p.MatchName()}
			if !seen[pid] {
				seen[pid] = true
				g.scope = append(g.scope, pid)
			}
		}
		groups[sig] = g
	}
	r.Groups = len(groups)
	var assets map[string]Asset
	if m.Triage != nil {
		if assets, err = m.Index.Assets(ctx); err != nil {
			return r, err
		}
	}
	changes := make([]ScopedChange, 0, len(byHost))
	for id, sig := range hostGroup {
		g := groups[sig]
		fs := make([]Finding, len(g.findings))
		for i, f := range g.findings {
			f.HostID = id
			fs[i] = f
		}
		if a, ok := assets[id]; ok {
			m.Triage.Decide(a, fs, now)
		}
		changes = append(changes, ScopedChange{HostID: id, Scope: g.scope, Findings: fs})
	}
	r.Opened, r.Closed, err = m.History.SyncScoped(ctx, changes, now, fence, cause)
	return r, err
}

// Evidence is new exploitation evidence of one vulnerability.
type Evidence struct {
	Exploitation risk.Exploitation
	KEVDue       time.Time
}

// Scope selects what Reprioritize re-decides.
type Scope struct {
	// HostIDs are the hosts; nil means every host.
	HostIDs []string
	// Evidence replaces the exploitation of the findings of these
	// vulnerabilities before deciding.
	Evidence map[string]Evidence
}

// ReprioritizeResult says what a re-decision changed.
type ReprioritizeResult struct {
	Hosts    int `json:"hosts"`
	Findings int `json:"findings"` // unremediated findings decided again
	Changed  int `json:"changed"`  // whose priority, state, lane, exception or due date changed
}

// Reprioritize decides the unremediated findings of the hosts in scope
// again, from their stored decision inputs, after a policy, label or
// exploitation change: no inventory is read or matched. Changes of
// priority or state are recorded with cause. It needs m.Triage.
func (m Matcher) Reprioritize(ctx context.Context, scope Scope, now time.Time, cause string) (ReprioritizeResult, error) {
	var r ReprioritizeResult
	var assets map[string]Asset
	var err error
	if x, ok := m.Index.(AssetsOfer); ok && scope.HostIDs != nil {
		assets, err = x.AssetsOf(ctx, scope.HostIDs)
	} else {
		assets, err = m.Index.Assets(ctx)
	}
	if err != nil {
		return r, err
	}
	if b, ok := m.History.(BulkRedecider); ok {
		return m.bulkReprioritize(ctx, b, assets, scope, now, cause)
	}
	var vulns []string
	for v := range scope.Evidence {
		vulns = append(vulns, v)
	}
	slices.Sort(vulns)
	// New evidence is about a few vulnerabilities: their findings are
	// read in one pass, and only their hosts visited.
	var preloaded map[string][]Finding
	if len(vulns) > 0 {
		if preloaded, err = m.History.OpenOf(ctx, scope.HostIDs, vulns); err != nil {
			return r, err
		}
	}
	var ids []string
	switch {
	case preloaded != nil:
		for id := range preloaded {
			ids = append(ids, id)
		}
	case scope.HostIDs != nil:
		ids = slices.Clone(scope.HostIDs)
	default:
		for id := range assets {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	// 250 hosts (~80,000 findings) at a time: memory stays flat.
	const chunk = 250
	for start := 0; start < len(ids); start += chunk {
		part := ids[start:min(start+chunk, len(ids))]
		open := preloaded
		if open == nil {
			if open, err = m.History.OpenOf(ctx, part, nil); err != nil {
				return r, err
			}
		}
		var changes []Redecision
		for _, id := range part {
			a, ok := assets[id]
			fs := open[id]
			if !ok || len(fs) == 0 {
				continue
			}
			r.Hosts++
			was := slices.Clone(fs)
			for i := range fs {
				if ev, ok := scope.Evidence[fs[i].Vulnerability]; ok {
					fs[i].Exploitation, fs[i].KEVDue = ev.Exploitation, ev.KEVDue
				}
			}
			m.Triage.Decide(a, fs, now)
			for i, f := range fs {
				r.Findings++
				f.Due = f.FirstSeen.Add(f.SLA)
				if !f.DueCap.IsZero() && f.DueCap.Before(f.Due) {
					f.Due = f.DueCap
				}
				w := was[i]
				if w.Priority == f.Priority && w.State == f.State && w.Lane == f.Lane && w.Exception == f.Exception && w.Due.Equal(f.Due) &&
					w.Exploitation == f.Exploitation && w.KEVDue.Equal(f.KEVDue) {
					continue
				}
				r.Changed++
				changes = append(changes, Redecision{Finding: f, PriorityFrom: w.Priority, StateFrom: w.State})
			}
		}
		if err := m.History.Redecide(ctx, changes, now, cause); err != nil {
			return r, err
		}
	}
	return r, nil
}

func findingsOf(hostID string, res scan.Result) []Finding {
	out := make([]Finding, 0, len(res.Findings))
	for _, f := range res.Findings {
		ff := Finding{HostID: hostID, Ecosystem: f.Ecosystem, Package: f.Package, Vulnerability: f.Vulnerability,
			Version: f.Version, Priority: f.Priority, Severity: f.Severity, Fixed: f.Fixed, Due: f.Due,
			State: StateOpen, Exploitation: f.Exploitation, Automatable: f.Automatable, Impact: f.TechnicalImpact, Cycle: f.Cycle}
		if f.KEV != nil {
			ff.KEVDue = f.KEV.DueDate
		}
		out = append(out, ff)
	}
	return out
}
