// Package inventory describes what is installed on a host or pinned by a
// service: packages, their ecosystem and where they were found, and the
// distribution of a root (its os-release and OSV ecosystem).
//
// It holds value types only and imports nothing beyond the standard
// library and patch, so that every package can speak of packages without
// reaching the collectors; inventory/collect collects them from OS package
// databases, lockfiles, binaries and SBOMs.
package inventory

import (
	"fmt"
	"strings"

	"github.com/patchbay/patchbay/patch"
)

// Package is one installed or pinned package.
type Package struct {
	// Ecosystem is the OSV ecosystem string: "Debian:12", "PyPI", "Go", …
	Ecosystem string `json:"ecosystem"`
	// Name is the package's own name (the binary package for OS packages).
	Name string `json:"name"`
	// Version is the installed or pinned version, as the ecosystem writes it.
	Version string `json:"version"`
	// SourceName and SourceVersion are set for OS packages built from a
	// source package (dpkg's Source: field, apk's origin, rpm's source RPM).
	// Debian and Ubuntu advisories name source packages.
	SourceName    string `json:"source_name,omitempty"`
	SourceVersion string `json:"source_version,omitempty"`
	// Location is the file the package was found in (lockfile, package
	// database, binary, SBOM), as a path the user can open.
	Location string `json:"location"`
	// Line is the line in Location that declares the package, when known.
	Line int `json:"line,omitempty"`
	// PURL is the package URL, when the extractor knows it.
	PURL string `json:"purl,omitempty"`
}

// Cycle returns the patch cycle of the package.
func (p Package) Cycle() patch.Cycle {
	if IsOSEcosystem(p.Ecosystem) {
		return patch.CycleSystem
	}
	return patch.CycleApplication
}

// MatchName is the name advisories use for the package: the source package
// for Debian, Ubuntu and Alpine, the package name otherwise.
func (p Package) MatchName() string {
	if p.SourceName != "" && usesSourceNames(p.Ecosystem) {
		return p.SourceName
	}
	return p.Name
}

// MatchVersion is the version advisories compare: the source version for
// Debian and Ubuntu (a binNMU's binary version "1.2-3+b1" belongs to source
// "1.2-3"), the package version otherwise.
func (p Package) MatchVersion() string {
	if p.SourceVersion != "" && usesSourceNames(p.Ecosystem) {
		return p.SourceVersion
	}
	return p.Version
}

func usesSourceNames(ecosystem string) bool {
	switch BaseEcosystem(ecosystem) {
	case "Debian", "Ubuntu", "Alpine":
		return true
	}
	return false
}

// BaseEcosystem strips the release suffix: "Debian:12" → "Debian".
func BaseEcosystem(ecosystem string) string {
	base, _, _ := strings.Cut(ecosystem, ":")
	return base
}

// IsOSEcosystem reports whether the ecosystem is an OS distribution.
func IsOSEcosystem(ecosystem string) bool {
	switch BaseEcosystem(ecosystem) {
	case "Debian", "Ubuntu", "Alpine", "AlmaLinux", "Rocky Linux", "Red Hat", "SUSE", "openSUSE", "Wolfi", "Chainguard", "Photon OS", "Mageia", "openEuler", "Azure Linux":
		return true
	}
	return false
}

// String renders the package for messages: "openssl 3.0.11-1~deb12u2 (Debian:12)".
func (p Package) String() string {
	return fmt.Sprintf("%s %s (%s)", p.Name, p.Version, p.Ecosystem)
}
