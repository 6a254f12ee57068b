package match

import (
	"strings"

	"github.com/patchbay/patchbay/inventory"
)

// NormalizeName returns the form of a package name under which advisories
// and inventory are joined, per ecosystem:
//   - PyPI: PEP 503 (lower case, runs of "-", "_", "." become one "-");
//   - npm: lower case (npm names are lower case; old mixed-case names and
//     scopes compare case-insensitively), scope kept: "@types/node";
//   - Go: module paths are case-sensitive and kept, a trailing "/" dropped;
//   - Packagist, NuGet: case-insensitive, lower case;
//   - everything else as given.
func NormalizeName(ecosystem, name string) string {
	switch inventory.BaseEcosystem(ecosystem) {
	case "PyPI":
		return pep503(name)
	case "npm", "Packagist", "NuGet":
		return strings.ToLower(name)
	case "Go":
		return strings.TrimSuffix(name, "/")
	}
	return name
}

func pep503(name string) string {
	var b strings.Builder
	b.Grow(len(name))
	sep := false
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c == '-' || c == '_' || c == '.' {
			sep = true
			continue
		}
		if sep && b.Len() > 0 {
			b.WriteByte('-')
		}
		sep = false
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b.WriteByte(c)
	}
	return b.String()
}
