package fleet

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/patchbay/patchbay/inventory"
	"github.com/patchbay/patchbay/patch"
)

// Limits of what an agent (or a CI upload) reports: generous for real
// hosts, small enough that one report cannot fill the database. Lengths
// are in bytes. docs/fleet.md lists them.
const (
	MaxMachineID      = 128
	MaxHostname       = 255
	MaxOSField        = 64 // os_id, os_version
	MaxOSPretty       = 256
	MaxEcosystem      = 128
	MaxKernel         = 256 // kernel_running, kernel_newest
	MaxAgentVersion   = 64
	MaxPackageManager = 32
	MaxProblem        = 4096
	MaxRebootReasons  = 64
	MaxRebootReason   = 1024
	MaxAddresses      = 1024
	MaxAddress        = 128
	// MaxLabels bounds the labels an agent reports and, apart, those set
	// on the server.
	MaxLabels = 128

	// MaxPackages bounds an inventory; a package's fields are bounded by
	// MaxEcosystem, MaxPackageName, MaxVersion, MaxLocation and MaxPURL.
	MaxPackages    = 250_000
	MaxPackageName = 512 // name, source_name
	MaxVersion     = 256 // version, source_version, installed, candidate
	MaxLocation    = 4096
	MaxPURL        = 4096

	// MaxUpdates bounds the package manager's updates of a host.
	MaxUpdates     = 50_000
	MaxOrigin      = 512 // origin, pocket, advisory
	MaxCVEs        = 10_000
	MaxCVE         = 64
	MaxUpdateTypes = 16
	MaxTag         = 32 // a type or a cycle
)

// FieldError is a reported value refused, named by its JSON path.
type FieldError struct {
	Field   string
	Problem string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Problem }

// Under names the field inside prefix: inventory[3] + name.
func (e *FieldError) Under(prefix string) *FieldError {
	return &FieldError{Field: prefix + "." + e.Field, Problem: e.Problem}
}

func tooLong(field, s string, limit int) *FieldError {
	if len(s) <= limit {
		return nil
	}
	return &FieldError{field, fmt.Sprintf("%d bytes, at most %d", len(s), limit)}
}

func tooMany(field string, n, limit int) *FieldError {
	if n <= limit {
		return nil
	}
	return &FieldError{field, fmt.Sprintf("%d entries, at most %d", n, limit)}
}

// firstOf is the first refusal of a list of checks.
func firstOf(es ...*FieldError) error {
	for _, e := range es {
		if e != nil {
			return e
		}
	}
	return nil
}

func eachTooLong(field string, ss []string, limit int) *FieldError {
	for i, s := range ss {
		if e := tooLong(field+"["+strconv.Itoa(i)+"]", s, limit); e != nil {
			return e
		}
	}
	return nil
}

// ValidateFacts checks what an agent reports before it is stored: the
// identity is present, and every field is within its limit.
func ValidateFacts(f Facts) error {
	switch {
	case f.MachineID == "":
		return &FieldError{"facts.machine_id", "missing"}
	case f.Hostname == "":
		return &FieldError{"facts.hostname", "missing"}
	case f.UptimeSeconds < 0:
		return &FieldError{"facts.uptime_seconds", fmt.Sprintf("%d: negative", f.UptimeSeconds)}
	}
	if err := firstOf(
		tooLong("facts.machine_id", f.MachineID, MaxMachineID),
		tooLong("facts.hostname", f.Hostname, MaxHostname),
		tooLong("facts.os_id", f.OSID, MaxOSField),
		tooLong("facts.os_version", f.OSVersion, MaxOSField),
		tooLong("facts.os_pretty", f.OSPretty, MaxOSPretty),
		tooLong("facts.ecosystem", f.Ecosystem, MaxEcosystem),
		tooLong("facts.kernel_running", f.KernelRunning, MaxKernel),
		tooLong("facts.kernel_newest", f.KernelNewest, MaxKernel),
		tooLong("facts.agent_version", f.AgentVersion, MaxAgentVersion),
		tooLong("facts.package_manager", f.PackageManager, MaxPackageManager),
		tooLong("facts.problem", f.Problem, MaxProblem),
		tooMany("facts.reboot_reasons", len(f.RebootReasons), MaxRebootReasons),
		eachTooLong("facts.reboot_reasons", f.RebootReasons, MaxRebootReason),
		tooMany("facts.addresses", len(f.Addresses), MaxAddresses),
		eachTooLong("facts.addresses", f.Addresses, MaxAddress),
		tooMany("facts.labels", len(f.Labels), MaxLabels),
	); err != nil {
		return err
	}
	keys := make([]string, 0, len(f.Labels))
	for k := range f.Labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if err := ValidateLabel(k, f.Labels[k]); err != nil {
			return &FieldError{"facts.labels", err.Error()}
		}
	}
	return nil
}

// ValidateLabels checks the labels set on the server for a host.
func ValidateLabels(labels map[string]string) error {
	if e := tooMany("labels", len(labels), MaxLabels); e != nil {
		return e
	}
	for k, v := range labels {
		if err := ValidateLabel(k, v); err != nil {
			return &FieldError{"labels." + k, err.Error()}
		}
	}
	return nil
}

// ValidatePackage checks one package: the fields the store needs are
// present and every field is within its limit. The field is named
// inside the package (name, version).
func ValidatePackage(p inventory.Package) *FieldError {
	switch {
	case p.Ecosystem == "":
		return &FieldError{"ecosystem", "missing"}
	case p.Name == "":
		return &FieldError{"name", "missing"}
	case p.Version == "":
		return &FieldError{"version", "missing"}
	case p.Line < 0:
		return &FieldError{"line", fmt.Sprintf("%d: negative", p.Line)}
	}
	for _, e := range [...]*FieldError{
		tooLong("ecosystem", p.Ecosystem, MaxEcosystem),
		tooLong("name", p.Name, MaxPackageName),
		tooLong("version", p.Version, MaxVersion),
		tooLong("source_name", p.SourceName, MaxPackageName),
		tooLong("source_version", p.SourceVersion, MaxVersion),
		tooLong("location", p.Location, MaxLocation),
		tooLong("purl", p.PURL, MaxPURL),
	} {
		if e != nil {
			return e
		}
	}
	return nil
}

// ValidateInventory checks an inventory: at most MaxPackages packages,
// each valid. Fields are named under name: inventory[3].name.
func ValidateInventory(name string, pkgs []inventory.Package) error {
	if e := tooMany(name, len(pkgs), MaxPackages); e != nil {
		return e
	}
	for i, p := range pkgs {
		if e := ValidatePackage(p); e != nil {
			return e.Under(name + "[" + strconv.Itoa(i) + "]")
		}
	}
	return nil
}

// ValidateUpdates checks the updates a package manager offers: at most
// MaxUpdates, each within its limits. Fields are named updates[3].name.
func ValidateUpdates(us []patch.Update) error {
	if e := tooMany("updates", len(us), MaxUpdates); e != nil {
		return e
	}
	for i, u := range us {
		at := "updates[" + strconv.Itoa(i) + "]"
		var types []string
		for _, t := range u.Types {
			types = append(types, string(t))
		}
		if e := firstOf(
			tooLong("ecosystem", u.Ecosystem, MaxEcosystem),
			tooLong("name", u.Name, MaxPackageName),
			tooLong("source_name", u.SourceName, MaxPackageName),
			tooLong("source_version", u.SourceVersion, MaxVersion),
			tooLong("installed", u.Installed, MaxVersion),
			tooLong("candidate", u.Candidate, MaxVersion),
			tooLong("origin", u.Origin, MaxOrigin),
			tooLong("pocket", u.Pocket, MaxOrigin),
			tooLong("advisory", u.Advisory, MaxOrigin),
			tooMany("cves", len(u.CVEs), MaxCVEs),
			eachTooLong("cves", u.CVEs, MaxCVE),
			tooMany("types", len(u.Types), MaxUpdateTypes),
			eachTooLong("types", types, MaxTag),
			tooLong("cycle", string(u.Cycle), MaxTag),
		); e != nil {
			return e.(*FieldError).Under(at)
		}
	}
	return nil
}
