package server

import (
	"context"
	"slices"

	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/inventory"
	"github.com/patchbay/patchbay/policy"
	"github.com/patchbay/patchbay/remedy"
)

// claim is where a host's package of a finding belongs: the service
// claiming its location (policy.Set.Claim), by the claimed path.
type claim struct {
	Service, Path, Location string
}

// claimOf finds, among a host's packages, the one a finding is about
// (ecosystem, name, version) whose location a service claims.
func claimOf(set *policy.Set, labels map[string]string, pkgs []inventory.Package, f fleet.Finding) (claim, bool) {
	for _, p := range pkgs {
		if p.Ecosystem != f.Ecosystem || p.Name != f.Package || p.Version != f.Version {
			continue
		}
		if sv, via, ok := set.Claim(labels, p.Location); ok {
			return claim{sv, via, p.Location}, true
		}
	}
	return claim{}, false
}

// withServices sets each row's service — the uploaded inventory's, or the
// one claiming the host's package path — and, for a service's finding, the
// state of its proposed fix.
func (s *Server) withServices(ctx context.Context, rows []fleet.FindingRow) error {
	if len(rows) == 0 {
		return nil
	}
	set, err := s.Policy(ctx)
	if err != nil {
		return err
	}
	var ids []string
	for _, r := range rows {
		if !slices.Contains(ids, r.HostID) {
			ids = append(ids, r.HostID)
		}
	}
	assets, err := s.db.Fleet.AssetsOf(ctx, ids)
	if err != nil {
		return err
	}
	claims := set.Claims()
	inv := map[string][]inventory.Package{}
	proposals := map[string][]remedy.Proposal{}
	for i := range rows {
		r := &rows[i]
		a := assets[r.HostID]
		if a.Service != "" {
			r.Service = a.Service
		} else if claims && r.Cycle == "application" {
			pkgs, ok := inv[r.HostID]
			if !ok {
				if pkgs, err = s.db.Fleet.Inventory(ctx, r.HostID); err != nil {
					return err
				}
				inv[r.HostID] = pkgs
			}
			if c, ok := claimOf(set, a.Labels, pkgs, r.Finding); ok {
				r.Service, r.ServicePath, r.Location = c.Service, c.Path, c.Location
			}
		}
		if r.Service == "" {
			continue
		}
		ps, ok := proposals[r.Service]
		if !ok {
			if ps, err = s.db.Fixes.List(ctx, r.Service); err != nil {
				return err
			}
			proposals[r.Service] = ps
		}
		if fx := fixOf(ps, r.Finding); fx != nil {
			r.Fix = fx.State
		}
	}
	return nil
}
