package match

import (
	"errors"
	"strings"
)

// debVersion is a Debian version split as dpkg splits it. It exists for
// speed: osv-scalibr's semantic.DebianVersion converts digit runs to big.Int
// on every comparison, which made Debian matching allocation-bound (a
// quarter of match time in BenchmarkMatch). The ordering is dpkg's
// (lib/dpkg/version.c verrevcmp); TestDebianVersionsAgainstDpkg checks it
// against dpkg itself and TestDebianFastPathAgreesWithSemantic against
// osv-scalibr on the same tens of thousands of real versions.
type debVersion struct {
	epoch    string // digits without leading zeros; "" for 0
	upstream string
	revision string
}

var errDebianEpoch = errors.New("epoch is not a number")

func parseDebian(s string) (debVersion, error) {
	s = strings.TrimSpace(s)
	var v debVersion
	if i := strings.IndexByte(s, ':'); i >= 0 {
		ep := s[:i]
		for j := 0; j < len(ep); j++ {
			if ep[j] < '0' || ep[j] > '9' {
				return v, errDebianEpoch
			}
		}
		v.epoch = strings.TrimLeft(ep, "0")
		s = s[i+1:]
	}
	if i := strings.LastIndexByte(s, '-'); i >= 0 {
		v.upstream, v.revision = s[:i], s[i+1:]
	} else {
		v.upstream = s
	}
	return v, nil
}

func (a debVersion) compare(b debVersion) int {
	// Epochs: numeric; digit strings without leading zeros compare by length
	// then lexically.
	if len(a.epoch) != len(b.epoch) {
		return sign(len(a.epoch) - len(b.epoch))
	}
	if a.epoch != b.epoch {
		return sign(strings.Compare(a.epoch, b.epoch))
	}
	if c := verrevcmp(a.upstream, b.upstream); c != 0 {
		return c
	}
	return verrevcmp(a.revision, b.revision)
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}

// order is dpkg's character weight: "~" below everything, even the end of
// the string; letters below non-letters.
func order(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return 0
	case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		return int(c)
	case c == '~':
		return -1
	case c != 0:
		return int(c) + 256
	}
	return 0
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// verrevcmp is dpkg's comparison of an upstream version or a revision.
func verrevcmp(a, b string) int {
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		firstDiff := 0
		for (i < len(a) && !isDigit(a[i])) || (j < len(b) && !isDigit(b[j])) {
			var ac, bc int
			if i < len(a) {
				ac = order(a[i])
			}
			if j < len(b) {
				bc = order(b[j])
			}
			if ac != bc {
				return sign(ac - bc)
			}
			i++
			j++
		}
		for i < len(a) && a[i] == '0' {
			i++
		}
		for j < len(b) && b[j] == '0' {
			j++
		}
		for i < len(a) && isDigit(a[i]) && j < len(b) && isDigit(b[j]) {
			if firstDiff == 0 {
				firstDiff = int(a[i]) - int(b[j])
			}
			i++
			j++
		}
		if i < len(a) && isDigit(a[i]) {
			return 1
		}
		if j < len(b) && isDigit(b[j]) {
			return -1
		}
		if firstDiff != 0 {
			return sign(firstDiff)
		}
	}
	return 0
}
