package policy

import (
	"fmt"
	"time"

	"github.com/patchbay/patchbay/fleet"
)

// Triage decides stored findings in their asset's context with a set of
// documents: the fleet.Triage of ingests, rematches and re-decisions.
type Triage struct{ Set *Set }

// Decide sets each finding's priority, SLA, due-date cap, state,
// exception, lane and reasons as the set decides them for asset a.
func (t Triage) Decide(a fleet.Asset, fs []fleet.Finding, now time.Time) {
	dec := t.Set.Decider(t.Set.Context(AssetOf(a)))
	for i := range fs {
		f := &fs[i]
		d := dec.Decide(InputsOf(*f), now)
		f.Priority, f.SLA, f.DueCap, f.State, f.Exception, f.Lane, f.Reasons =
			d.Priority, d.SLA, d.DueCap, d.State, d.Exception, d.Lane, d.Reasons
	}
}

// ContextKey says what Decide reads of an asset, so that assets with
// equal keys are decided alike. Without exceptions a decision reads the
// context's policy, tier and exposure (with where they came from: the
// reasons say it); exceptions also select by labels and services, so with
// them it is everything Set.Context reads: labels, service and whether the
// asset has an id (fleet.ContextKeyOf).
func (t Triage) ContextKey(a fleet.Asset) string {
	if len(t.Set.exceptions) > 0 {
		return fleet.ContextKeyOf(a)
	}
	c := t.Set.Context(AssetOf(a))
	return fmt.Sprintf("%s\x00%d\x00%s\x00%s\x00%s", c.Policy, c.Tier, c.TierFrom, c.Exposure, c.ExposureFrom)
}

// IdentityBlind says whether decisions read only a finding's decision
// points (exploitation, automatable, impact, cycle, KEV due date), not its
// vulnerability, package or version: true without exceptions.
func (t Triage) IdentityBlind() bool { return len(t.Set.exceptions) == 0 }

// AssetOf is a fleet asset as decisions see it.
func AssetOf(a fleet.Asset) Asset {
	return Asset{ID: a.ID, Labels: a.Labels, Service: a.Service}
}

// InputsOf are a stored finding's decision inputs: what a re-decision
// needs without reading the inventory or matching again.
func InputsOf(f fleet.Finding) Inputs {
	return Inputs{Vulnerability: f.Vulnerability, Ecosystem: f.Ecosystem, Package: f.Package, Version: f.Version,
		Exploitation: f.Exploitation, Automatable: f.Automatable, Impact: f.Impact, Cycle: f.Cycle, KEVDue: f.KEVDue}
}
