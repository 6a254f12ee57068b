package match

import (
	"fmt"

	"github.com/google/osv-scalibr/semantic"

	"github.com/patchbay/patchbay/advisory"
	"github.com/patchbay/patchbay/inventory"
)

// Version is a version parsed with its ecosystem's ordering rules.
type Version struct {
	raw string
	v   semantic.Version
	// deb is set for Debian and Ubuntu ECOSYSTEM versions (see debVersion).
	deb   debVersion
	isDeb bool
}

// ParseVersion parses s with the ordering of the ecosystem, or of SemVer
// for a SEMVER range (whatever the ecosystem, as OSV specifies).
func ParseVersion(ecosystem, rangeType, s string) (Version, error) {
	v, err := parseVersion(ecosystem, rangeType, s)
	if err != nil {
		return Version{}, fmt.Errorf("version %q (%s): %w", s, ecosystem, err)
	}
	return v, nil
}

// parseVersion is ParseVersion without the formatted error, for look-ups.
func parseVersion(ecosystem, rangeType, s string) (Version, error) {
	var (
		v   semantic.Version
		err error
	)
	if rangeType == advisory.RangeSemver {
		v = semantic.ParseSemverVersion(s)
	} else if isDebianFamily(ecosystem) {
		d, err := parseDebian(s)
		if err != nil {
			return Version{}, err
		}
		return Version{raw: s, deb: d, isDeb: true}, nil
	} else {
		v, err = semantic.Parse(s, ecosystem)
	}
	if err != nil {
		return Version{}, err
	}
	return Version{raw: s, v: v}, nil
}

// String returns the version as written.
func (v Version) String() string { return v.raw }

// Compare returns -1, 0 or +1 as v is less than, equal to or greater than w.
// Both must come from the same ecosystem and range type.
func (v Version) Compare(w Version) int {
	if v.isDeb && w.isDeb {
		return v.deb.compare(w.deb)
	}
	if v.v == nil || w.v == nil {
		return textCompare(v.raw, w.raw)
	}
	c, err := v.v.Compare(w.v)
	if err != nil {
		// Different concrete types: a programming error in the caller, who
		// mixed ecosystems. Order them by text so the result is stable.
		return textCompare(v.raw, w.raw)
	}
	return c
}

func textCompare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func isDebianFamily(ecosystem string) bool {
	base := inventory.BaseEcosystem(ecosystem)
	return base == "Debian" || base == "Ubuntu"
}

// Compare compares two version strings of an ecosystem.
func Compare(ecosystem, a, b string) (int, error) {
	va, err := ParseVersion(ecosystem, advisory.RangeEcosystem, a)
	if err != nil {
		return 0, err
	}
	vb, err := ParseVersion(ecosystem, advisory.RangeEcosystem, b)
	if err != nil {
		return 0, err
	}
	return va.Compare(vb), nil
}
