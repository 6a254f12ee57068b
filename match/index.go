// Package match decides which advisories affect which packages.
//
// An Index holds advisories compiled for fast look-up by (ecosystem, name):
// every range event version is parsed once with the ecosystem's ordering
// (osv-scalibr's semantic package). Matching follows the OSV schema:
//
//   - ECOSYSTEM and SEMVER ranges; events sorted by version, "introduced: 0"
//     lowest; a version is affected when the last event at or below it is an
//     introduced event. fixed and limit end a range at their version
//     (exclusive), last_affected after it (inclusive). Several ranges per
//     package are OR-ed.
//   - An explicit `versions` list also makes a version affected.
//   - GIT ranges are not evaluated (they are dropped when records are
//     parsed): patchbay matches released versions, not commits.
//
// Debian, Ubuntu and Alpine packages are matched on their source package
// name and version (inventory.Package.MatchName / MatchVersion).
package match

import (
	"slices"
	"sort"

	"github.com/patchbay/patchbay/advisory"
	"github.com/patchbay/patchbay/inventory"
)

// Key identifies the packages an advisory entry is about.
type Key struct {
	Ecosystem string // as in OSV: "Debian:12", "PyPI"
	Name      string // NormalizeName(Ecosystem, name)
}

// KeyOf returns the index key under which a package's advisories are found.
func KeyOf(p inventory.Package) Key {
	return Key{Ecosystem: p.Ecosystem, Name: NormalizeName(p.Ecosystem, p.MatchName())}
}

// Keys returns the keys to look up for a package: its own and, for an
// ecosystem with a release suffix, the bare ecosystem ("Debian:12" and
// "Debian"), since a few databases publish release-less records.
func Keys(p inventory.Package) []Key {
	k := KeyOf(p)
	if base := inventory.BaseEcosystem(k.Ecosystem); base != k.Ecosystem {
		return []Key{k, {Ecosystem: base, Name: k.Name}}
	}
	return []Key{k}
}

// Index holds compiled advisories by key. It is not safe for concurrent
// writes; concurrent Match calls on a built index are safe.
type Index struct {
	entries map[Key][]*entry
	// Problems lists event versions that could not be parsed; their events
	// are ignored.
	Problems []string
}

type eventKind uint8

const (
	evIntroduced eventKind = iota
	evFixed
	evLastAffected
	evLimit
)

type event struct {
	kind eventKind
	zero bool // introduced: "0", below everything
	v    Version
}

type compiledRange struct {
	typ    string
	events []event
}

type entry struct {
	adv      *advisory.Advisory
	affected *advisory.Affected
	ranges   []compiledRange
	versions map[string]bool
}

// NewIndex returns an empty index.
func NewIndex() *Index { return &Index{entries: map[Key][]*entry{}} }

// Add compiles every affected entry of a.
func (ix *Index) Add(a *advisory.Advisory) {
	for i := range a.Affected {
		af := &a.Affected[i]
		e := &entry{adv: a, affected: af}
		if len(af.Versions) > 0 {
			e.versions = make(map[string]bool, len(af.Versions))
			for _, v := range af.Versions {
				e.versions[v] = true
			}
		}
		for _, r := range af.Ranges {
			cr := compiledRange{typ: r.Type}
			for _, ev := range r.Events {
				ce, ok := ix.compileEvent(af.Ecosystem, r.Type, ev, a.ID)
				if ok {
					cr.events = append(cr.events, ce)
				}
			}
			sort.SliceStable(cr.events, func(i, j int) bool {
				a, b := cr.events[i], cr.events[j]
				if a.zero || b.zero {
					return a.zero && !b.zero
				}
				return a.v.Compare(b.v) < 0
			})
			e.ranges = append(e.ranges, cr)
		}
		k := Key{Ecosystem: af.Ecosystem, Name: NormalizeName(af.Ecosystem, af.Name)}
		ix.entries[k] = append(ix.entries[k], e)
	}
}

func (ix *Index) compileEvent(eco, typ string, ev advisory.Event, id string) (event, bool) {
	var (
		kind eventKind
		s    string
	)
	switch {
	case ev.Introduced != "":
		kind, s = evIntroduced, ev.Introduced
		if s == "0" {
			return event{kind: kind, zero: true}, true
		}
	case ev.Fixed != "":
		kind, s = evFixed, ev.Fixed
	case ev.LastAffected != "":
		kind, s = evLastAffected, ev.LastAffected
	case ev.Limit != "":
		kind, s = evLimit, ev.Limit
		if s == "*" {
			return event{}, false // unbounded limit: no bound
		}
	default:
		return event{}, false
	}
	v, err := ParseVersion(eco, typ, s)
	if err != nil {
		ix.Problems = append(ix.Problems, id+": "+err.Error())
		return event{}, false
	}
	return event{kind: kind, v: v}, true
}

// Len returns the number of compiled affected entries.
func (ix *Index) Len() int {
	n := 0
	for _, es := range ix.entries {
		n += len(es)
	}
	return n
}

// Hit is one advisory that affects a package.
type Hit struct {
	Advisory *advisory.Advisory
	Affected *advisory.Affected
	// Fixed is the smallest fixed version above the installed one, "" when
	// the advisory names no fix.
	Fixed string
}

// Match returns the advisories that affect p, one hit per advisory.
func (ix *Index) Match(p inventory.Package) []Hit {
	var hits []Hit
	for _, k := range Keys(p) {
		es := ix.entries[k]
		if len(es) == 0 {
			continue
		}
		ver := p.MatchVersion()
		parsed := map[string]*Version{} // by range type
		for _, e := range es {
			fixed, ok := e.affects(ver, parsed)
			if !ok || slices.ContainsFunc(hits, func(h Hit) bool { return h.Advisory.ID == e.adv.ID }) {
				continue
			}
			hits = append(hits, Hit{Advisory: e.adv, Affected: e.affected, Fixed: fixed})
		}
	}
	return hits
}

// affects reports whether version ver is affected by the entry, and the
// smallest fixed version above it.
func (e *entry) affects(ver string, parsed map[string]*Version) (string, bool) {
	hit := e.versions[ver]
	var best *Version
	for _, r := range e.ranges {
		v := parsedFor(e.affected.Ecosystem, r.typ, ver, parsed)
		if v == nil {
			continue
		}
		if r.contains(*v) {
			hit = true
		}
		for i := range r.events {
			ev := &r.events[i]
			if ev.kind == evFixed && ev.v.Compare(*v) > 0 && (best == nil || ev.v.Compare(*best) < 0) {
				best = &ev.v
			}
		}
	}
	if !hit && len(e.versions) > 0 {
		// Explicit versions may be written differently ("1.0" vs "1.0.0").
		if v := parsedFor(e.affected.Ecosystem, advisory.RangeEcosystem, ver, parsed); v != nil {
			for s := range e.versions {
				if w, err := ParseVersion(e.affected.Ecosystem, advisory.RangeEcosystem, s); err == nil && w.Compare(*v) == 0 {
					hit = true
					break
				}
			}
		}
	}
	if !hit {
		return "", false
	}
	if best == nil {
		return "", true
	}
	return best.String(), true
}

func parsedFor(eco, typ, ver string, cache map[string]*Version) *Version {
	if v, ok := cache[typ]; ok {
		return v
	}
	var out *Version
	if v, err := ParseVersion(eco, typ, ver); err == nil {
		out = &v
	}
	cache[typ] = out
	return out
}

// contains applies the OSV range algorithm to a sorted event list.
func (r *compiledRange) contains(v Version) bool {
	affected := false
	for i := range r.events {
		ev := &r.events[i]
		switch ev.kind {
		case evIntroduced:
			if ev.zero || v.Compare(ev.v) >= 0 {
				affected = true
			}
		case evFixed, evLimit:
			if v.Compare(ev.v) >= 0 {
				affected = false
			}
		case evLastAffected:
			if v.Compare(ev.v) > 0 {
				affected = false
			}
		}
	}
	return affected
}
