// Package fleet describes the hosts a server keeps and what is installed on
// each: hosts with their identity and facts, and their inventories, stored
// once per distinct package version and linked to hosts.
package fleet

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/patchbay/patchbay/inventory"
	"github.com/patchbay/patchbay/patch"
	"github.com/patchbay/patchbay/risk"
)

// Host is one enrolled machine.
type Host struct {
	ID        string            `json:"id"`
	MachineID string            `json:"machine_id"`
	Hostname  string            `json:"hostname"`
	Ecosystem string            `json:"ecosystem"` // the distro's OSV ecosystem: "Debian:12"
	Labels    map[string]string `json:"labels"`
	LastSeen  time.Time         `json:"last_seen,omitzero"`
	// InventoryHash identifies the inventory last stored (InventoryHash
	// of its packages): an agent whose inventory did not change sends only
	// the hash.
	InventoryHash string `json:"inventory_hash"`
	// UpdatesHash identifies the package manager's updates last stored.
	UpdatesHash string    `json:"updates_hash,omitempty"`
	Facts       Facts     `json:"facts"`
	EnrolledAt  time.Time `json:"enrolled_at"`
	// CloneOf names another host that enrolled with the same machine-id
	// (a cloned image): both are kept, never merged, and flagged.
	CloneOf string `json:"clone_of,omitempty"`
}

// Facts are what an agent reports of its host at every check-in.
type Facts struct {
	Hostname      string `json:"hostname"`
	MachineID     string `json:"machine_id"`
	OSID          string `json:"os_id"`      // os-release ID: debian
	OSVersion     string `json:"os_version"` // os-release VERSION_ID: 12
	OSPretty      string `json:"os_pretty,omitempty"`
	Ecosystem     string `json:"ecosystem"` // the OSV ecosystem: Debian:12
	KernelRunning string `json:"kernel_running,omitempty"`
	KernelNewest  string `json:"kernel_newest,omitempty"`
	// UptimeSeconds is 0 when unknown (a chroot host).
	UptimeSeconds  int64             `json:"uptime_seconds,omitempty"`
	RebootRequired bool              `json:"reboot_required"`
	RebootReasons  []string          `json:"reboot_reasons,omitempty"`
	Addresses      []string          `json:"addresses,omitempty"`
	Labels         map[string]string `json:"labels,omitempty"`
	AgentVersion   string            `json:"agent_version"`
	// PackageManager names the driver whose updates are reported ("apt"),
	// and Problem why its view is missing, when it is.
	PackageManager string `json:"package_manager,omitempty"`
	Problem        string `json:"problem,omitempty"`
}

// ValidateLabel checks one label: a key of letters, digits, '.', '_', '-'
// and '/', up to 63 bytes; a value up to 255 bytes.
func ValidateLabel(k, v string) error {
	if k == "" || len(k) > 63 {
		return fmt.Errorf("label key %q: want 1 to 63 bytes", k)
	}
	for _, r := range k {
		ok := r == '.' || r == '_' || r == '-' || r == '/' || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9')
		if !ok {
			return fmt.Errorf("label key %q: %q is not allowed (letters, digits, '.', '_', '-', '/')", k, r)
		}
	}
	if len(v) > 255 {
		return fmt.Errorf("label %s: value longer than 255 bytes", k)
	}
	return nil
}

// ServiceLabel names, on the asset that holds a service's uploaded
// inventory, the service.
const ServiceLabel = "patchbay.io/service"

// ServicePrefix starts the machine-id of a service's asset.
const ServicePrefix = "service:"

// IsService says whether the host is a service's uploaded inventory
// rather than a machine.
func (h Host) IsService() bool { return strings.HasPrefix(h.MachineID, ServicePrefix) }

// ServiceAssetID is the id of the asset holding a service's inventory.
func ServiceAssetID(service string) string { return "svc-" + service }

// EffectiveLabels are the labels a host is filtered by: the agent's,
// overridden by those set on the server.
func (h Host) EffectiveLabels() map[string]string {
	out := make(map[string]string, len(h.Facts.Labels)+len(h.Labels))
	for k, v := range h.Facts.Labels {
		out[k] = v
	}
	for k, v := range h.Labels {
		out[k] = v
	}
	return out
}

// ErrNotFound is returned for an unknown host.
var ErrNotFound = errors.New("not found")

// ErrInvalidPackage is returned for a package that cannot be stored.
var ErrInvalidPackage = errors.New("invalid package")

// Validate checks a package before it is stored (ValidatePackage): an
// ErrInvalidPackage naming it as packages[i].
func Validate(i int, p inventory.Package) error {
	if e := ValidatePackage(p); e != nil {
		return fmt.Errorf("%w: %w", ErrInvalidPackage, e.Under(fmt.Sprintf("packages[%d]", i)))
	}
	return nil
}

// InventoryHash is a stable digest of a package list, whatever its order:
// the SHA-256 of the sorted digests of the packages' fields.
func InventoryHash(pkgs []inventory.Package) string {
	sums := make([][sha256.Size]byte, len(pkgs))
	buf := make([]byte, 0, 256)
	for i, p := range pkgs {
		buf = buf[:0]
		for _, f := range [...]string{p.Ecosystem, p.Name, p.Version, p.SourceName, p.SourceVersion, p.Location} {
			buf = binary.AppendUvarint(buf, uint64(len(f)))
			buf = append(buf, f...)
		}
		sums[i] = sha256.Sum256(buf)
	}
	slices.SortFunc(sums, func(a, b [sha256.Size]byte) int { return bytes.Compare(a[:], b[:]) })
	h := sha256.New()
	for i := range sums {
		h.Write(sums[i][:])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Finding is a vulnerability of a package on a host, with its history: it
// opens when first seen and is closed with the time it was remediated when
// it no longer appears (the package was upgraded or removed). Closed
// findings are kept: they are what mean time to patch is computed from.
type Finding struct {
	ID            int64         `json:"id,omitempty"`
	HostID        string        `json:"host_id"`
	Ecosystem     string        `json:"ecosystem"`
	Package       string        `json:"package"`
	Vulnerability string        `json:"vulnerability"`
	Version       string        `json:"version"`
	Priority      risk.Priority `json:"priority"`
	Severity      string        `json:"severity,omitempty"`
	Fixed         string        `json:"fixed"`
	FirstSeen     time.Time     `json:"first_seen"`
	// Due is the SLA due date, counted from FirstSeen. A time that is
	// not there (zero) is omitted from the JSON, here and below, never
	// written as 0001-01-01.
	Due time.Time `json:"due,omitzero"`
	// KEVDue is CISA's due date when the vulnerability is in KEV: it caps
	// Due for P1 findings.
	KEVDue time.Time `json:"kev_due,omitzero"`
	// RemediatedAt is zero (omitted) while the finding is open.
	RemediatedAt time.Time `json:"remediated_at,omitzero"`
	// State is open, accepted (an exception) or not_affected (VEX) while
	// the finding is not remediated.
	State     State  `json:"state"`
	Exception string `json:"exception,omitempty"`
	Lane      Lane   `json:"lane,omitempty"`
	// Exploitation, Automatable and Impact are the vulnerability's decision
	// points; Cycle is the patch cycle (system or application).
	Exploitation risk.Exploitation `json:"exploitation"`
	Automatable  bool              `json:"automatable"`
	Impact       string            `json:"impact"`
	Cycle        patch.Cycle       `json:"cycle"`
	// SLA and DueCap are the decision's, when one was made: Due is
	// FirstSeen + SLA, no later than DueCap.
	SLA    time.Duration `json:"-"`
	DueCap time.Time     `json:"-"`
	// Reasons are the decision's, recorded with a change of priority or
	// state.
	Reasons []string `json:"reasons,omitempty"`
}

// State is an unremediated finding's: open, accepted (an exception
// accepts the risk) or not_affected (VEX).
type State string

// States of an unremediated finding.
const (
	StateOpen        State = "open"
	StateAccepted    State = "accepted"
	StateNotAffected State = "not_affected"
)

// Lane is the lane a finding's patch travels: the emergency lane (out of
// windows, after one approval) or the regular one ("").
type Lane string

// LaneEmergency is the emergency lane.
const LaneEmergency Lane = "emergency"

// FindingEvent is a change of a finding's priority or state.
type FindingEvent struct {
	At           time.Time     `json:"at"`
	PriorityFrom risk.Priority `json:"priority_from"`
	PriorityTo   risk.Priority `json:"priority_to"`
	StateFrom    State         `json:"state_from"`
	StateTo      State         `json:"state_to"`
	Cause        string        `json:"cause"`
	Reasons      []string      `json:"reasons"`
}

// Key identifies a finding across inventories: the same vulnerability in
// the same package stays one finding while the package moves between
// affected versions.
func (f Finding) Key() string {
	return f.Ecosystem + "\x00" + f.Package + "\x00" + f.Vulnerability
}

// UpdatesHash is a stable digest of a package manager's update list.
func UpdatesHash(ups []patch.Update) string {
	lines := make([]string, len(ups))
	for i, u := range ups {
		b, _ := json.Marshal(u)
		lines[i] = string(b)
	}
	sort.Strings(lines)
	h := sha256.New()
	for _, l := range lines {
		h.Write([]byte(l))
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil))
}
