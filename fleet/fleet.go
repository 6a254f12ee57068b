// Package fleet describes the hosts a server keeps and what is installed on
// each: hosts with their identity and facts, and their inventories, stored
// once per distinct package version and linked to hosts.
package fleet

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/patchbay/patchbay/inventory"
)

// Host is one enrolled machine.
type Host struct {
	ID        string            `json:"id"`
	MachineID string            `json:"machine_id"`
	Hostname  string            `json:"hostname"`
	Ecosystem string            `json:"ecosystem"` // the distro's OSV ecosystem: "Debian:12"
	Labels    map[string]string `json:"labels"`
	LastSeen  time.Time         `json:"last_seen"`
	// InventoryHash identifies the inventory last stored (InventoryHash
	// of its packages): an agent whose inventory did not change sends only
	// the hash.
	InventoryHash string `json:"inventory_hash"`
}

// ErrNotFound is returned for an unknown host.
var ErrNotFound = errors.New("not found")

// ErrInvalidPackage is returned for a package that cannot be stored.
var ErrInvalidPackage = errors.New("invalid package")

// Validate checks a package before it is stored.
func Validate(i int, p inventory.Package) error {
	switch {
	case p.Ecosystem == "":
		return fmt.Errorf("%w: packages[%d] (%s): missing ecosystem", ErrInvalidPackage, i, p.Name)
	case p.Name == "":
		return fmt.Errorf("%w: packages[%d]: missing name", ErrInvalidPackage, i)
	case p.Version == "":
		return fmt.Errorf("%w: packages[%d] (%s): missing version", ErrInvalidPackage, i, p.Name)
	}
	return nil
}

// InventoryHash is a stable digest of a package list, whatever its order.
func InventoryHash(pkgs []inventory.Package) string {
	lines := make([]string, len(pkgs))
	for i, p := range pkgs {
		lines[i] = fmt.Sprintf("%q %q %q %q %q %q", p.Ecosystem, p.Name, p.Version, p.SourceName, p.SourceVersion, p.Location)
	}
	sort.Strings(lines)
	h := sha256.New()
	for _, l := range lines {
		h.Write([]byte(l))
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Finding is a vulnerability of a package on a host, with its history: it
// opens when first seen and is closed with the time it was remediated when
// it no longer appears (the package was upgraded or removed). Closed
// findings are kept: they are what mean time to patch is computed from.
type Finding struct {
	HostID        string    `json:"host_id"`
	Ecosystem     string    `json:"ecosystem"`
	Package       string    `json:"package"`
	Vulnerability string    `json:"vulnerability"`
	Version       string    `json:"version"`
	Priority      string    `json:"priority"`
	Fixed         string    `json:"fixed"`
	FirstSeen     time.Time `json:"first_seen"`
	// RemediatedAt is zero while the finding is open.
	RemediatedAt time.Time `json:"remediated_at,omitempty"`
}

// Key identifies a finding across inventories: the same vulnerability in
// the same package stays one finding while the package moves between
// affected versions.
func (f Finding) Key() string {
	return f.Ecosystem + "\x00" + f.Package + "\x00" + f.Vulnerability
}
