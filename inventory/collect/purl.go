package collect

import (
	"net/url"
	"slices"
	"strings"

	"github.com/google/osv-scalibr/purl"
	"github.com/package-url/packageurl-go"
)

// purlString renders a package URL exactly as packageurl-go's
// PackageURL.ToString does. That function builds a strings.Replacer on
// every percent-encoded component (four or more per package); profiles put
// the replacer's construction at 15–23% of collecting a large SBOM. Here
// the replacer is built once. TestPURLStringMatchesPackageURL compares the
// two on real and awkward inputs.
func purlString(p *purl.PackageURL) string {
	u := &url.URL{Scheme: "pkg", RawQuery: qualifiersString(p.Qualifiers)}
	paths := make([]string, 0, 4)
	paths = append(paths, p.Type)
	// Each namespace segment is encoded by itself, keeping the "/".
	for _, segment := range strings.Split(p.Namespace, "/") {
		if segment != "" {
			paths = append(paths, percentEncode(segment))
		}
	}
	nameWithVersion := percentEncode(p.Name)
	if p.Version != "" {
		nameWithVersion += "@" + percentEncode(p.Version)
	}
	paths = append(paths, nameWithVersion)
	u.Opaque = strings.Join(paths, "/")
	if p.Subpath == "" {
		return u.String()
	}
	var segments []string
	for _, segment := range strings.Split(p.Subpath, "/") {
		if segment != "" {
			segments = append(segments, percentEncode(segment))
		}
	}
	return u.String() + "#" + strings.Join(segments, "/")
}

// qualifiersString is packageurl-go's Qualifiers.String: key=value pairs in
// key order, values percent-encoded, joined with "&". (That method sorts
// the caller's slice; this one sorts a copy.)
func qualifiersString(qs purl.Qualifiers) string {
	if len(qs) == 0 {
		return ""
	}
	sorted := slices.Clone(packageurl.Qualifiers(qs))
	slices.SortFunc(sorted, func(a, b packageurl.Qualifier) int { return strings.Compare(a.Key, b.Key) })
	pairs := make([]string, len(sorted))
	for i, q := range sorted {
		pairs[i] = q.Key + "=" + percentEncode(q.Value)
	}
	return strings.Join(pairs, "&")
}

// purlFixer corrects url.QueryEscape's output to the purl specification: a
// colon is not encoded, a space is %20 rather than "+".
var purlFixer = strings.NewReplacer("%3A", ":", "+", "%20")

func percentEncode(s string) string { return purlFixer.Replace(url.QueryEscape(s)) }
