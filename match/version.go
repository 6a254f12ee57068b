package match

import (
	"fmt"

	"github.com/google/osv-scalibr/semantic"

	"github.com/patchbay/patchbay/advisory"
)

// Version is a version parsed with its ecosystem's ordering rules.
type Version struct {
	raw string
	v   semantic.Version
}

// ParseVersion parses s with the ordering of the ecosystem, or of SemVer
// for a SEMVER range (whatever the ecosystem, as OSV specifies).
func ParseVersion(ecosystem, rangeType, s string) (Version, error) {
	var (
		v   semantic.Version
		err error
	)
	if rangeType == advisory.RangeSemver {
		v = semantic.ParseSemverVersion(s)
	} else {
		v, err = semantic.Parse(s, ecosystem)
	}
	if err != nil {
		return Version{}, fmt.Errorf("version %q (%s): %w", s, ecosystem, err)
	}
	return Version{raw: s, v: v}, nil
}

// String returns the version as written.
func (v Version) String() string { return v.raw }

// Compare returns -1, 0 or +1 as v is less than, equal to or greater than w.
// Both must come from the same ecosystem and range type.
func (v Version) Compare(w Version) int {
	c, err := v.v.Compare(w.v)
	if err != nil {
		// Different concrete types: a programming error in the caller, who
		// mixed ecosystems. Order them by text so the result is stable.
		switch {
		case v.raw < w.raw:
			return -1
		case v.raw > w.raw:
			return 1
		}
		return 0
	}
	return c
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
