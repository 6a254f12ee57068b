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
	"sync"

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
	keys, n := keysOf(p)
	return keys[:n:n]
}

// keysOf is Keys without an allocation, for the look-up path.
func keysOf(p inventory.Package) ([2]Key, int) {
	k := KeyOf(p)
	keys := [2]Key{k, {Ecosystem: inventory.BaseEcosystem(k.Ecosystem), Name: k.Name}}
	if keys[1].Ecosystem == k.Ecosystem {
		return keys, 1
	}
	return keys, 2
}

// Index holds compiled advisories by key. Add must not run concurrently
// with Match; concurrent Match calls are safe.
//
// Per key, every version an event or an explicit `versions` list names is
// parsed once and ranked; a look-up parses the installed version once,
// finds its rank by binary search, and then evaluates every range of every
// advisory of the key with integer comparisons. A key with thousands of
// advisories (Debian's linux) costs a dozen version comparisons, not
// thousands.
type Index struct {
	keys map[Key]*keyIndex
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

// rankedEvent is an event whose version is points[typ][rank].
type rankedEvent struct {
	kind eventKind
	zero bool // introduced: "0", below everything
	rank int32
	v    Version // until ranked
}

type compiledRange struct {
	typ    int // index into keyIndex.points: 0 ECOSYSTEM, 1 SEMVER
	events []rankedEvent
}

type entry struct {
	adv      *advisory.Advisory
	affected *advisory.Affected
	ranges   []compiledRange
	// versions are the explicit versions as written, and their ranks among
	// the ECOSYSTEM points (for versions written differently: "1.0" vs
	// "1.0.0" in PEP 440).
	versions     map[string]bool
	versionList  []Version
	versionRanks []int32 // sorted
}

// keyIndex holds the advisories of one key.
type keyIndex struct {
	ecosystem string
	entries   []*entry
	once      sync.Once
	points    [2][]Version // sorted distinct versions per range type
	used      [2]bool      // whether any range (or versions list) has the type
}

const (
	typEcosystem = 0
	typSemver    = 1
)

func typeIndex(rangeType string) int {
	if rangeType == advisory.RangeSemver {
		return typSemver
	}
	return typEcosystem
}

// NewIndex returns an empty index.
func NewIndex() *Index { return &Index{keys: map[Key]*keyIndex{}} }

// Add compiles every affected entry of a.
func (ix *Index) Add(a *advisory.Advisory) {
	mine := make(map[Key]*entry, len(a.Affected))
	for i := range a.Affected {
		af := &a.Affected[i]
		k := Key{Ecosystem: af.Ecosystem, Name: NormalizeName(af.Ecosystem, af.Name)}
		ki := ix.keys[k]
		if ki == nil {
			ki = &keyIndex{ecosystem: af.Ecosystem}
			ix.keys[k] = ki
		}
		ki.once = sync.Once{} // (re)rank at the next look-up
		// Several affected entries of one advisory for the same package are
		// one entry with their ranges and versions combined.
		e := mine[k]
		if e == nil {
			e = &entry{adv: a, affected: af}
			ki.entries = append(ki.entries, e)
			mine[k] = e
		}
		// Explicit versions always match by their text. Only where they
		// are the sole source (no ECOSYSTEM or SEMVER range: GIT-only
		// records) are they also parsed, so that a version written
		// differently ("1.0" for "1.0.0") still matches; next to ranges they
		// enumerate what the ranges already say, and parsing hundreds of
		// them per record would dominate a scan.
		for _, v := range af.Versions {
			if e.versions == nil {
				e.versions = map[string]bool{}
			}
			e.versions[v] = true
			if len(af.Ranges) == 0 {
				if pv, err := ParseVersion(af.Ecosystem, advisory.RangeEcosystem, v); err == nil {
					e.versionList = append(e.versionList, pv)
				}
			}
		}
		for _, r := range af.Ranges {
			cr := compiledRange{typ: typeIndex(r.Type)}
			for _, ev := range r.Events {
				if ce, ok := ix.compileEvent(af.Ecosystem, r.Type, ev, a.ID); ok {
					cr.events = append(cr.events, ce)
				}
			}
			e.ranges = append(e.ranges, cr)
		}
	}
}

func (ix *Index) compileEvent(eco, typ string, ev advisory.Event, id string) (rankedEvent, bool) {
	var (
		kind eventKind
		s    string
	)
	switch {
	case ev.Introduced != "":
		kind, s = evIntroduced, ev.Introduced
		if s == "0" {
			return rankedEvent{kind: kind, zero: true}, true
		}
	case ev.Fixed != "":
		kind, s = evFixed, ev.Fixed
	case ev.LastAffected != "":
		kind, s = evLastAffected, ev.LastAffected
	case ev.Limit != "":
		kind, s = evLimit, ev.Limit
		if s == "*" {
			return rankedEvent{}, false // unbounded limit: no bound
		}
	default:
		return rankedEvent{}, false
	}
	v, err := ParseVersion(eco, typ, s)
	if err != nil {
		ix.Problems = append(ix.Problems, id+": "+err.Error())
		return rankedEvent{}, false
	}
	return rankedEvent{kind: kind, v: v}, true
}

// rank sorts the key's versions and turns every event into a rank.
func (ki *keyIndex) rank() {
	for t := range ki.points {
		ki.points[t] = ki.points[t][:0]
	}
	ki.used = [2]bool{}
	for _, e := range ki.entries {
		if len(e.versionList) > 0 {
			ki.used[typEcosystem] = true
		}
		for _, r := range e.ranges {
			ki.used[r.typ] = true
			for _, ev := range r.events {
				if !ev.zero {
					ki.points[r.typ] = append(ki.points[r.typ], ev.v)
				}
			}
		}
		ki.points[typEcosystem] = append(ki.points[typEcosystem], e.versionList...)
	}
	for t := range ki.points {
		ps := ki.points[t]
		sort.SliceStable(ps, func(i, j int) bool { return ps[i].Compare(ps[j]) < 0 })
		out := ps[:0]
		for i, v := range ps {
			if i == 0 || v.Compare(out[len(out)-1]) != 0 {
				out = append(out, v)
			}
		}
		ki.points[t] = out
	}
	find := func(t int, v Version) int32 {
		ps := ki.points[t]
		return int32(sort.Search(len(ps), func(i int) bool { return ps[i].Compare(v) >= 0 }))
	}
	for _, e := range ki.entries {
		for ri := range e.ranges {
			r := &e.ranges[ri]
			for i := range r.events {
				if !r.events[i].zero {
					r.events[i].rank = find(r.typ, r.events[i].v)
				}
			}
			// Sort by version: "introduced 0" first, then by rank; at equal
			// versions keep the record's order.
			sort.SliceStable(r.events, func(i, j int) bool {
				a, b := r.events[i], r.events[j]
				if a.zero || b.zero {
					return a.zero && !b.zero
				}
				return a.rank < b.rank
			})
		}
		e.versionRanks = e.versionRanks[:0]
		for _, v := range e.versionList {
			e.versionRanks = append(e.versionRanks, find(typEcosystem, v))
		}
		slices.Sort(e.versionRanks)
	}
}

// Hit is one advisory that affects a package.
type Hit struct {
	Advisory *advisory.Advisory
	Affected *advisory.Affected
	// Fixed is the smallest fixed version above the installed one, "" when
	// the advisory names no fix.
	Fixed string
}

// position is where the installed version falls among a key's points of
// one range type: lo points are below it, and eq says whether points[lo]
// equals it. ok is false when the version does not parse.
type position struct {
	lo int32
	eq bool
	ok bool
}

func (p position) atLeast(rank int32) bool { return rank < p.lo || (p.eq && rank == p.lo) }
func (p position) above(rank int32) bool   { return rank < p.lo }

// Match returns the advisories that affect p, one hit per advisory.
func (ix *Index) Match(p inventory.Package) []Hit { return ix.AppendMatches(nil, p) }

// AppendMatches appends the advisories that affect p to hits, one hit per
// advisory, so a caller can reuse a buffer across look-ups.
func (ix *Index) AppendMatches(hits []Hit, p inventory.Package) []Hit {
	q := NewQuery(p)
	return ix.AppendQuery(hits, &q)
}

// Query is a package prepared for look-ups: its keys, and its version
// parsed once per ordering (ecosystem and range type) on first need and
// kept, so that looking it up again — in this index or another — parses
// nothing. A Query is not safe for concurrent use; an Index is.
type Query struct {
	keys [2]Key
	n    int
	ver  string
	// parsed holds the versions parsed so far: at most two keys of two
	// range types.
	parsed  [4]parsedVersion
	nparsed int
}

type parsedVersion struct {
	ecosystem string
	typ       int
	v         Version
	ok        bool
}

// NewQuery prepares p for look-ups. It parses nothing yet.
func NewQuery(p inventory.Package) Query {
	keys, n := keysOf(p)
	return Query{keys: keys, n: n, ver: p.MatchVersion()}
}

// version returns the installed version parsed with the ordering of the
// ecosystem and range type, parsing it at the first call only.
func (q *Query) version(ecosystem string, t int) (Version, bool) {
	for i := range q.parsed[:q.nparsed] {
		if pv := &q.parsed[i]; pv.typ == t && pv.ecosystem == ecosystem {
			return pv.v, pv.ok
		}
	}
	typ := advisory.RangeEcosystem
	if t == typSemver {
		typ = advisory.RangeSemver
	}
	v, err := parseVersion(ecosystem, typ, q.ver)
	if q.nparsed < len(q.parsed) {
		q.parsed[q.nparsed] = parsedVersion{ecosystem: ecosystem, typ: t, v: v, ok: err == nil}
		q.nparsed++
	}
	return v, err == nil
}

// AppendQuery is AppendMatches for a prepared package.
func (ix *Index) AppendQuery(hits []Hit, q *Query) []Hit {
	start := len(hits)
	for i, k := range q.keys[:q.n] {
		ki := ix.keys[k]
		if ki == nil {
			continue
		}
		ki.once.Do(ki.rank)
		var pos [2]position
		for t := range pos {
			if !ki.used[t] {
				continue
			}
			v, ok := q.version(ki.ecosystem, t)
			if !ok {
				continue
			}
			ps := ki.points[t]
			lo := sort.Search(len(ps), func(i int) bool { return ps[i].Compare(v) >= 0 })
			pos[t] = position{lo: int32(lo), eq: lo < len(ps) && ps[lo].Compare(v) == 0, ok: true}
		}
		for _, e := range ki.entries {
			fixed, ok := e.affects(ki, q.ver, &pos)
			if !ok || (i > 0 && slices.ContainsFunc(hits[start:], func(h Hit) bool { return h.Advisory.ID == e.adv.ID })) {
				continue
			}
			hits = append(hits, Hit{Advisory: e.adv, Affected: e.affected, Fixed: fixed})
		}
	}
	return hits
}

// affects reports whether the installed version (at pos) is affected by
// the entry, and the smallest fixed version above it.
func (e *entry) affects(ki *keyIndex, ver string, pos *[2]position) (string, bool) {
	hit := false
	for ri := range e.ranges {
		r := &e.ranges[ri]
		if p := pos[r.typ]; p.ok && r.contains(p) {
			hit = true
			break
		}
	}
	if !hit && e.versions != nil {
		if p := pos[typEcosystem]; p.ok {
			if p.eq {
				_, hit = slices.BinarySearch(e.versionRanks, p.lo)
			}
		}
		if !hit {
			hit = e.versions[ver]
		}
	}
	if !hit {
		return "", false
	}
	best, bestTyp := int32(-1), 0
	for ri := range e.ranges {
		r := &e.ranges[ri]
		p := pos[r.typ]
		if !p.ok {
			continue
		}
		for _, ev := range r.events {
			if ev.kind == evFixed && !p.atLeast(ev.rank) && (best < 0 || ev.rank < best) {
				best, bestTyp = ev.rank, r.typ
			}
		}
	}
	if best < 0 {
		return "", true
	}
	return ki.points[bestTyp][best].String(), true
}

// contains applies the OSV range algorithm to a sorted event list.
func (r *compiledRange) contains(p position) bool {
	affected := false
	for _, ev := range r.events {
		switch ev.kind {
		case evIntroduced:
			if ev.zero || p.atLeast(ev.rank) {
				affected = true
			}
		case evFixed, evLimit:
			if p.atLeast(ev.rank) {
				affected = false
			}
		case evLastAffected:
			if p.above(ev.rank) {
				affected = false
			}
		}
	}
	return affected
}
