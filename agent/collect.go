package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/inventory"
	"github.com/patchbay/patchbay/inventory/collect"
	"github.com/patchbay/patchbay/patch"
	"github.com/patchbay/patchbay/pkgmgr"
)

// Collector looks at one host: this machine (Root "/") or a chroot.
type Collector struct {
	Root string
	// Paths are application dependency files and directories to collect
	// besides the OS packages (lockfiles, Go binaries, SBOMs).
	Paths  []string
	Labels map[string]string
	// CacheDir keeps downloaded changelogs (the CVEs of apt updates).
	CacheDir string
	// Refresh runs the package manager's index update before asking for
	// updates (apt-get update).
	Refresh bool
	// NoPackageManager skips the package manager's view.
	NoPackageManager bool
	Version          string
}

// Snapshot is what a collection saw.
type Snapshot struct {
	Facts     fleet.Facts
	Inventory []inventory.Package
	Updates   []patch.Update
}

// MachineID reads the host's machine-id (systemd's, or D-Bus's).
func MachineID(root string) (string, error) {
	for _, p := range []string{"etc/machine-id", "var/lib/dbus/machine-id"} {
		b, err := os.ReadFile(filepath.Join(root, p))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("machine-id: %w", err)
		}
		if id := strings.TrimSpace(string(b)); id != "" {
			return id, nil
		}
	}
	return "", fmt.Errorf("%s has no machine-id (etc/machine-id); create one with systemd-machine-id-setup --root %s", root, root)
}

func (c *Collector) root() string {
	if c.Root == "" {
		return "/"
	}
	return c.Root
}

func (c *Collector) hostname() (string, error) {
	if c.root() == "/" {
		return os.Hostname()
	}
	b, err := os.ReadFile(filepath.Join(c.root(), "etc/hostname"))
	if err == nil && strings.TrimSpace(string(b)) != "" {
		return strings.TrimSpace(string(b)), nil
	}
	return filepath.Base(c.root()), nil
}

// Collect reads facts, the inventory and the package manager's updates.
// The package manager's view failing is reported in Facts.Problem, not an
// error: the inventory is still worth sending.
func (c *Collector) Collect(ctx context.Context) (Snapshot, error) {
	var s Snapshot
	root := c.root()
	mid, err := MachineID(root)
	if err != nil {
		return s, err
	}
	host, err := c.hostname()
	if err != nil {
		return s, err
	}
	f := fleet.Facts{Hostname: host, MachineID: mid, Labels: c.Labels, AgentVersion: c.Version}
	inv, err := collect.Collect(ctx, collect.Options{Root: root, Paths: c.Paths})
	if err != nil {
		return s, err
	}
	if d := inv.Distro; d != nil {
		f.OSID, f.OSVersion, f.OSPretty, f.Ecosystem = d.ID, d.VersionID, d.PrettyName, d.Ecosystem
	}
	rb := &pkgmgr.Reboot{R: &pkgmgr.Runner{Root: root}}
	if st, err := rb.Status(ctx); err == nil {
		f.KernelRunning, f.KernelNewest, f.RebootRequired, f.RebootReasons = st.RunningKernel, st.NewestKernel, st.Required, st.Reasons
	} else {
		f.Problem = "reboot status: " + err.Error()
	}
	if root == "/" {
		f.UptimeSeconds = uptime()
		f.Addresses = addresses()
	}
	s.Inventory = inv.Packages
	if s.Inventory == nil {
		s.Inventory = []inventory.Package{}
	}
	s.Updates = []patch.Update{}
	if !c.NoPackageManager {
		manager, ups, why := SystemUpdates(ctx, root, inv.Distro, c.CacheDir, c.Refresh)
		f.PackageManager = manager
		if why != "" {
			f.Problem = strings.TrimPrefix(f.Problem+"; "+manager+": "+why, "; ")
		}
		if ups != nil {
			s.Updates = ups
		}
	}
	s.Facts = f
	return s, nil
}

func uptime() int64 {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0
	}
	fs := strings.Fields(string(b))
	if len(fs) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(fs[0], 64)
	return int64(v)
}

func addresses() []string {
	as, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []string
	for _, a := range as {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.IsLoopback() || ipn.IP.IsLinkLocalUnicast() {
			continue
		}
		out = append(out, ipn.IP.String())
	}
	sort.Strings(out)
	return out
}

// SystemUpdates asks the root's package manager which updates it offers,
// with the CVEs each fixes and its classification. It returns the
// manager's name ("" when the root has none patchbay drives) and a reason
// when the view could not be had.
func SystemUpdates(ctx context.Context, root string, distro *inventory.Distro, cacheDir string, refresh bool) (string, []patch.Update, string) {
	if distro == nil {
		return "", nil, ""
	}
	switch inventory.BaseEcosystem(distro.Ecosystem) {
	case "Debian", "Ubuntu":
	default:
		return "", nil, ""
	}
	if _, err := os.Stat(filepath.Join(root, "usr/bin/apt-get")); err != nil {
		return "", nil, ""
	}
	r := &pkgmgr.Runner{Root: root}
	if r.Root != "/" && os.Geteuid() != 0 {
		return "apt", nil, "the package manager's view of a chroot needs root; run as root or pass --no-package-manager"
	}
	a := &pkgmgr.Apt{R: r, Changelogs: &pkgmgr.Changelogs{CacheDir: cacheDir}}
	if refresh {
		if err := a.Refresh(ctx); err != nil {
			return "apt", nil, err.Error()
		}
	}
	ups, err := a.Updates(ctx)
	if err != nil {
		return "apt", nil, err.Error()
	}
	out := make([]patch.Update, 0, len(ups))
	for _, u := range ups {
		su := patch.Update{
			Ecosystem: distro.Ecosystem, Name: u.Name, SourceName: u.SourceName, SourceVersion: u.SourceVersion,
			Installed: u.Installed, Candidate: u.Candidate, Origin: u.Origin, Pocket: u.Pocket,
			CVEs: u.CVEs, Cycle: patch.CycleSystem, Held: u.Held,
		}
		if su.CVEs == nil {
			su.CVEs = []string{}
		}
		su.Types = patch.Classify(patch.Facts{Package: u.Name, Source: u.SourceName, Pocket: u.Pocket, CVEs: u.CVEs}, patch.DefaultRules)
		out = append(out, su)
	}
	return "apt", out, ""
}
