package remedy

import (
	"errors"
	"time"

	"github.com/patchbay/patchbay/inventory"
	"github.com/patchbay/patchbay/match"
	"github.com/patchbay/patchbay/risk"
)

// The states of a fix proposal and of each finding it fixes: proposed (a
// branch is pushed and a merge request opened), merged (the merge
// request was merged), deployed (an inventory of the service shows the
// fixed version), closed (the merge request was closed unmerged).
const (
	StateProposed = "proposed"
	StateMerged   = "merged"
	StateDeployed = "deployed"
	StateClosed   = "closed"
)

// ErrNoProposal: no fix proposal has the id.
var ErrNoProposal = errors.New("no such fix proposal")

// Proposal is a fix delivered to a service's repository: one branch and
// its merge request, updated by later fixes of the same group.
type Proposal struct {
	ID      int64  `json:"id"`
	Service string `json:"service"`
	Branch  string `json:"branch"`
	// Forge is github, gitlab or none; MRNumber and MRURL its merge
	// request (0 and "" with none).
	Forge    string `json:"forge"`
	MRNumber int    `json:"mr_number,omitempty"`
	MRURL    string `json:"mr_url,omitempty"`
	Commit   string `json:"commit"`
	State    string `json:"state"`
	// Fixes are the findings it closes, one per package and
	// vulnerability.
	Fixes      []ProposedFix `json:"fixes"`
	CreatedAt  time.Time     `json:"created_at"`
	UpdatedAt  time.Time     `json:"updated_at"`
	MergedAt   time.Time     `json:"merged_at,omitzero"`
	DeployedAt time.Time     `json:"deployed_at,omitzero"`
}

// ProposedFix is one finding a proposal closes.
type ProposedFix struct {
	Ecosystem     string        `json:"ecosystem"`
	Package       string        `json:"package"`
	From          string        `json:"from"`
	To            string        `json:"to"`
	Vulnerability string        `json:"vulnerability"`
	Priority      risk.Priority `json:"priority"`
	Due           time.Time     `json:"due,omitzero"`
	// DeployedAt is when an inventory of the service first showed To
	// (or later) of Package.
	DeployedAt time.Time `json:"deployed_at,omitzero"`
}

// Fixes lists the findings the upgrades close, once each.
func Fixes(ups []Upgrade) []ProposedFix {
	var out []ProposedFix
	seen := map[string]bool{}
	for _, u := range ups {
		for _, f := range u.Closes {
			k := u.Ecosystem + "\x00" + u.Package + "\x00" + f.Vulnerability
			if seen[k] {
				continue
			}
			seen[k] = true
			out = append(out, ProposedFix{Ecosystem: u.Ecosystem, Package: u.Package, From: u.From, To: u.To, Vulnerability: f.Vulnerability, Priority: f.Priority, Due: f.Due})
		}
	}
	return out
}

// Deploy marks the fixes of p that the inventory pkgs shows deployed (its
// package at To or later) at now, and p deployed when every fix is. It
// reports whether anything changed. A closed proposal is left as it is.
func Deploy(p *Proposal, pkgs []inventory.Package, now time.Time) bool {
	if p.State == StateClosed || p.State == StateDeployed {
		return false
	}
	have := map[match.Key][]string{}
	for _, pkg := range pkgs {
		k := match.KeyOf(pkg)
		have[k] = append(have[k], pkg.Version)
	}
	changed := false
	all := len(p.Fixes) > 0
	for i := range p.Fixes {
		f := &p.Fixes[i]
		if f.DeployedAt.IsZero() {
			k := match.KeyOf(inventory.Package{Ecosystem: f.Ecosystem, Name: f.Package})
			for _, v := range have[k] {
				if c, err := match.Compare(f.Ecosystem, trimV(f.Ecosystem, v), trimV(f.Ecosystem, f.To)); err == nil && c >= 0 {
					f.DeployedAt = now
					changed = true
					break
				}
			}
		}
		if f.DeployedAt.IsZero() {
			all = false
		}
	}
	if all {
		p.State, p.DeployedAt = StateDeployed, now
		if p.MergedAt.IsZero() {
			p.MergedAt = now // deployed from the default branch: it was merged
		}
		changed = true
	}
	return changed
}
