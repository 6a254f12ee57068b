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

// HostIndex finds hosts by the software they have and reads inventories.
type HostIndex interface {
	HostsWith(ctx context.Context, keys []match.Key) ([]string, error)
	Inventory(ctx context.Context, hostID string) ([]inventory.Package, error)
}

// RematchResult says what an incremental rematch did.
type RematchResult struct {
	Hosts          []string // the hosts rematched
	Opened, Closed int
}

// Rematch recomputes the findings of the hosts that have software named by
// keys — the packages of new, modified or withdrawn advisories after a
// feed import — and only of those.
func Rematch(ctx context.Context, idx HostIndex, hist FindingHistory, src scan.Source, keys []match.Key, now time.Time) (RematchResult, error) {
	var r RematchResult
	if len(keys) == 0 {
		return r, nil
	}
	hosts, err := idx.HostsWith(ctx, keys)
	if err != nil {
		return r, err
	}
	for _, id := range hosts {
		pkgs, err := idx.Inventory(ctx, id)
		if err != nil {
			return r, err
		}
		res, err := scan.Run(ctx, src, inventory.Result{Packages: pkgs}, now)
		if err != nil {
			return r, fmt.Errorf("rematch %s: %w", id, err)
		}
		o, c, err := hist.Sync(ctx, id, findingsOf(id, res), now)
		if err != nil {
			return r, err
		}
		r.Hosts = append(r.Hosts, id)
		r.Opened += o
		r.Closed += c
	}
	return r, nil
}

func findingsOf(hostID string, res scan.Result) []Finding {
	out := make([]Finding, 0, len(res.Findings))
	for _, f := range res.Findings {
		out = append(out, Finding{HostID: hostID, Ecosystem: f.Ecosystem, Package: f.Package, Vulnerability: f.Vulnerability,
			Version: f.Version, Priority: f.Priority.String(), Fixed: f.Fixed})
	}
	return out
}
