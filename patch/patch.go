// Package patch names the kinds of patch people think in and classifies
// available updates into them, and into the system or application cycle.
//
// The rules here are the defaults; the policy documents will make them
// configurable.
package patch

import (
	"path"
	"slices"
	"strings"
)

// Type is one of the seven kinds of patch.
type Type string

// The seven patch types.
const (
	Security      Type = "security"
	BugFix        Type = "bugfix"
	Feature       Type = "feature"
	Compatibility Type = "compatibility"
	Performance   Type = "performance"
	Regulatory    Type = "regulatory"
	Localization  Type = "localization"
)

// Types lists every type in a stable order.
var Types = []Type{Security, BugFix, Feature, Compatibility, Performance, Regulatory, Localization}

// TypeNames lists the types, comma-separated, for messages.
func TypeNames() string {
	ss := make([]string, len(Types))
	for i, t := range Types {
		ss[i] = string(t)
	}
	return strings.Join(ss, ", ")
}

// Facts are what is known about an available update.
type Facts struct {
	Package string // binary package name
	Source  string // source package name, when known
	// Pocket is where the candidate comes from: "security", "updates",
	// "backports" or "release" (a point release).
	Pocket string
	// AdvisoryType is the package manager's advisory type (dnf updateinfo:
	// security, bugfix, enhancement, newpackage).
	AdvisoryType string
	// CVEs the update fixes (changelog, advisory or matching feed records).
	CVEs []string
}

// Rule adds a type to updates whose package or source name matches one of
// the glob patterns.
type Rule struct {
	Type     Type
	Patterns []string
}

// DefaultRules: data whose changes are mandated (time zones, trusted
// certificate authorities) is regulatory; locale and language data is
// localization; microcode and firmware fix hardware behaviour
// (compatibility).
var DefaultRules = []Rule{
	{Regulatory, []string{"tzdata", "tzdata-*", "ca-certificates", "ca-certificates-*", "publicsuffix", "distro-info-data"}},
	{Localization, []string{"locales", "locales-all", "language-pack-*", "*-l10n", "*-l10n-*", "*-i18n", "hunspell-*", "aspell-*", "myspell-*", "glibc-langpack-*", "langpacks-*", "fonts-*"}},
	{Compatibility, []string{"intel-microcode", "amd64-microcode", "firmware-*", "linux-firmware"}},
}

// Classify returns the types of an update: security when it comes from the
// security pocket, carries a security advisory or fixes a CVE; the
// advisory's own type (bugfix, enhancement → feature); the name rules; and
// bugfix for a stable update that nothing else explains (Debian's
// -updates and point releases only take fixes).
func Classify(f Facts, rules []Rule) []Type {
	var out []Type
	add := func(t Type) {
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	if f.Pocket == "security" || strings.EqualFold(f.AdvisoryType, "security") || len(f.CVEs) > 0 {
		add(Security)
	}
	switch strings.ToLower(f.AdvisoryType) {
	case "bugfix":
		add(BugFix)
	case "enhancement", "newpackage":
		add(Feature)
	}
	for _, r := range rules {
		for _, p := range r.Patterns {
			if m, _ := path.Match(p, f.Package); m {
				add(r.Type)
			} else if f.Source != "" {
				if m, _ := path.Match(p, f.Source); m {
					add(r.Type)
				}
			}
		}
	}
	if len(out) == 0 {
		switch f.Pocket {
		case "backports":
			add(Feature)
		default:
			add(BugFix)
		}
	}
	slices.SortFunc(out, func(a, b Type) int { return slices.Index(Types, a) - slices.Index(Types, b) })
	return out
}
