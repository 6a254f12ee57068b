package fleet

import (
	"errors"
	"strings"
	"time"

	"github.com/patchbay/patchbay/inventory"
	"github.com/patchbay/patchbay/patch"
)

// HostFilter selects hosts. Zero fields select everything.
type HostFilter struct {
	// Labels must all match the host's effective labels.
	Labels map[string]string
	// Ecosystem is the OS: "Debian:12", or a bare "Debian" for every
	// release; compared without regard to case ("debian" is Debian).
	Ecosystem string
	// Hostname keeps the hosts of this hostname, compared without regard
	// to case.
	Hostname string
	// SeenAfter and SeenBefore bound LastSeen (stale hosts: SeenBefore).
	SeenAfter, SeenBefore time.Time
	// MinOpen keeps hosts with at least this many open findings;
	// Priority counts only findings of that priority.
	MinOpen  int
	Priority string
	// Clones keeps only hosts flagged as clones.
	Clones bool
	// Kind is "" or "host" for hosts, "service" for the inventories
	// uploaded for services, "all" for both.
	Kind string
}

// Match applies the filter to a host.
func (f HostFilter) Match(h HostSummary) bool {
	switch f.Kind {
	case "", "host":
		if h.IsService() {
			return false
		}
	case "service":
		if !h.IsService() {
			return false
		}
	}
	if f.Ecosystem != "" && !strings.EqualFold(h.Ecosystem, f.Ecosystem) &&
		!(len(h.Ecosystem) > len(f.Ecosystem) && h.Ecosystem[len(f.Ecosystem)] == ':' && strings.EqualFold(h.Ecosystem[:len(f.Ecosystem)], f.Ecosystem)) {
		return false
	}
	if f.Hostname != "" && !strings.EqualFold(h.Hostname, f.Hostname) {
		return false
	}
	if !f.SeenAfter.IsZero() && h.LastSeen.Before(f.SeenAfter) {
		return false
	}
	if !f.SeenBefore.IsZero() && !h.LastSeen.Before(f.SeenBefore) {
		return false
	}
	if f.Clones && h.CloneOf == "" {
		return false
	}
	if len(f.Labels) > 0 {
		eff := h.EffectiveLabels()
		for k, v := range f.Labels {
			if eff[k] != v {
				return false
			}
		}
	}
	n := h.OpenTotal()
	if f.Priority != "" {
		n = h.Open[f.Priority]
		if n == 0 {
			return false
		}
	}
	return n >= f.MinOpen
}

// HostSummary is a host in a list: its record and open finding counts.
type HostSummary struct {
	Host
	// Open counts open findings by priority ("P1".."P4").
	Open map[string]int `json:"open"`
	// Updates is how many updates the package manager offers.
	Updates int `json:"updates_count"`
}

// OpenTotal is the number of open findings.
func (h HostSummary) OpenTotal() int {
	n := 0
	for _, c := range h.Open {
		n += c
	}
	return n
}

// HostDetail is one host with its packages, findings and available patches.
type HostDetail struct {
	HostSummary
	Packages []inventory.Package `json:"packages"`
	Findings []Finding           `json:"findings"`
	Updates  []patch.Update      `json:"updates"`
}

// FindingSort orders a finding list.
type FindingSort string

// Orders; every one ends with the finding's id, so pages are stable.
const (
	SortUrgency   FindingSort = "urgency"    // overdue first, then by priority
	SortPriority  FindingSort = "priority"   // P1 first, then oldest
	SortDue       FindingSort = "due"        // soonest due first
	SortFirstSeen FindingSort = "first_seen" // oldest first
	SortNewest    FindingSort = "-first_seen"
)

// ParseFindingSort checks a sort name.
func ParseFindingSort(s string) (FindingSort, bool) {
	switch FindingSort(s) {
	case "":
		return SortUrgency, true
	case SortUrgency, SortPriority, SortDue, SortFirstSeen, SortNewest:
		return FindingSort(s), true
	}
	return "", false
}

// FindingStatus selects findings by state.
type FindingStatus string

// Statuses.
const (
	StatusOpen         FindingStatus = "open"    // to fix: not remediated, no exception
	StatusOverdue      FindingStatus = "overdue" // open and past due
	StatusAccepted     FindingStatus = "accepted"
	StatusNotAffected  FindingStatus = "not_affected"
	StatusUnremediated FindingStatus = "unremediated" // open, accepted or not affected
	StatusRemediated   FindingStatus = "remediated"
	StatusAll          FindingStatus = "all"
)

// FindingFilter selects findings across the fleet.
type FindingFilter struct {
	Status        FindingStatus
	Priorities    []string
	HostID        string
	Labels        map[string]string
	Ecosystem     string // exact, or bare ("Debian") for every release
	Vulnerability string
	Package       string
	// Overdue keeps open findings whose due date is before Now.
	Overdue bool
	// Lane keeps the findings of one lane ("emergency").
	Lane string
	// Team and Service keep the findings of their hosts (resolved by the
	// caller with the applied policy).
	Team    string
	Service string
	Now     time.Time
	Sort    FindingSort
	// Limit is the page size; After is the cursor of the previous page.
	Limit int
	After string
}

// FindingRow is a finding in a fleet-wide list, with its host's name.
type FindingRow struct {
	Finding
	Hostname string `json:"hostname"`
	// Service is the service the finding belongs to: the one whose
	// inventory was uploaded, or the one claiming the path of the host's
	// package (ServicePath, the claimed path; Location, the file).
	Service     string `json:"service,omitempty"`
	ServicePath string `json:"service_path,omitempty"`
	Location    string `json:"location,omitempty"`
	// Fix is the state of the fix proposed for a service's finding
	// (proposed, merged, deployed, closed; empty: none proposed).
	Fix string `json:"fix,omitempty"`
}

// FindingPage is one page of findings; Next is the cursor of the next
// page, empty on the last.
type FindingPage struct {
	Findings []FindingRow `json:"findings"`
	Next     string       `json:"next,omitempty"`
}

// Vulnerability is one vulnerability across the fleet.
type Vulnerability struct {
	ID string `json:"id"`
	// Hosts counts hosts with an open finding of it; Remediated counts
	// findings of it closed so far.
	Hosts      int      `json:"hosts"`
	Open       int      `json:"open"`
	Remediated int      `json:"remediated"`
	Priority   string   `json:"priority"` // the highest among open findings
	Severity   string   `json:"severity,omitempty"`
	Packages   []string `json:"packages"` // ecosystem/name
	Fixed      []string `json:"fixed"`    // fixed versions, distinct
	KEV        bool     `json:"kev"`
	KEVDue     string   `json:"kev_due,omitempty"`
	EPSS       *float64 `json:"epss,omitempty"`
	Percentile *float64 `json:"epss_percentile,omitempty"`
	// HostIDs lists the affected hosts (in the detail view only).
	HostIDs []string `json:"host_ids,omitempty"`
	// AffectedHosts names them, in the same order (detail view only).
	AffectedHosts []HostRef `json:"affected_hosts,omitempty"`
}

// HostRef names a host: its id and its hostname.
type HostRef struct {
	ID       string `json:"id"`
	Hostname string `json:"hostname"`
}

// ErrBadCursor is returned for a page cursor the store did not make.
var ErrBadCursor = errors.New("invalid cursor")
