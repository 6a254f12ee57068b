package fleet

import (
	"context"
	"fmt"
	"time"

	"github.com/patchbay/patchbay/inventory"
	"github.com/patchbay/patchbay/match"
	"github.com/patchbay/patchbay/scan"
)

// Inventories is where hosts' inventories are kept.
type Inventories interface {
	ReplaceInventory(ctx context.Context, hostID string, pkgs []inventory.Package) (bool, error)
}

// FindingHistory is where hosts' findings are kept, with their history.
type FindingHistory interface {
	Sync(ctx context.Context, hostID string, current []Finding, now time.Time) (opened, closed int, err error)
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
func Ingest(ctx context.Context, inv Inventories, hist FindingHistory, src scan.Source, host Host, pkgs []inventory.Package, now time.Time) (IngestResult, error) {
	var r IngestResult
	changed, err := inv.ReplaceInventory(ctx, host.ID, pkgs)
	if err != nil {
		return r, err
	}
	r.Changed = changed
	if !changed {
		return r, nil
	}
	res, err := scan.Run(ctx, src, inventory.Result{Packages: pkgs}, now)
	if err != nil {
		return r, fmt.Errorf("match inventory of %s: %w", host.ID, err)
	}
	current := findingsOf(host.ID, res)
	r.Findings = len(current)
	r.Opened, r.Closed, err = hist.Sync(ctx, host.ID, current, now)
	return r, err
}

// HostIndex finds the software hosts have.
type HostIndex interface {
	// SoftwareWith returns, per host, its packages named by any of the
	// keys (a key of a bare ecosystem, "Debian", also names "Debian:12").
	SoftwareWith(ctx context.Context, keys []match.Key) (map[string][]inventory.Package, error)
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
	SyncScoped(ctx context.Context, changes []ScopedChange, now time.Time, fence Fence) (opened, closed int, err error)
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
func Rematch(ctx context.Context, idx HostIndex, hist ScopedHistory, src scan.Source, keys []match.Key, now time.Time, fence Fence) (RematchResult, error) {
	var r RematchResult
	if len(keys) == 0 {
		return r, nil
	}
	byHost, err := idx.SoftwareWith(ctx, keys)
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
		res, err := scan.Run(ctx, src, inventory.Result{Packages: pkgs}, now)
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
	changes := make([]ScopedChange, 0, len(byHost))
	for id, sig := range hostGroup {
		g := groups[sig]
		fs := make([]Finding, len(g.findings))
		for i, f := range g.findings {
			f.HostID = id
			fs[i] = f
		}
		changes = append(changes, ScopedChange{HostID: id, Scope: g.scope, Findings: fs})
	}
	r.Opened, r.Closed, err = hist.SyncScoped(ctx, changes, now, fence)
	return r, err
}

func findingsOf(hostID string, res scan.Result) []Finding {
	out := make([]Finding, 0, len(res.Findings))
	for _, f := range res.Findings {
		ff := Finding{HostID: hostID, Ecosystem: f.Ecosystem, Package: f.Package, Vulnerability: f.Vulnerability,
			Version: f.Version, Priority: f.Priority.String(), Severity: f.Severity, Fixed: f.Fixed, Due: f.Due}
		if f.KEV != nil {
			ff.KEVDue = f.KEV.DueDate
		}
		out = append(out, ff)
	}
	return out
}
