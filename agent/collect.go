package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
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
	// CachedChangelogsOnly reads the CVEs of apt updates from the
	// changelog cache only and downloads nothing: the updates are listed at
	// once, those whose changelog is not cached yet without CVEs
	// (Snapshot.PendingChangelogs counts them).
	CachedChangelogsOnly bool
	// Progress, when set, is told how the changelog downloads go.
	Progress func(done, total int)
	// ChangelogClient downloads the changelogs' .debs; nil is
	// http.DefaultClient.
	ChangelogClient *http.Client
	Version         string
}

// Snapshot is what a collection saw.
type Snapshot struct {
	Facts     fleet.Facts
	Inventory []inventory.Package
	Updates   []patch.Update
	// PendingChangelogs counts the updates whose CVEs were not read yet
	// (CachedChangelogsOnly); UnreadChangelogs those whose changelog could
	// not be read, FirstUnread why the first could not.
	PendingChangelogs, UnreadChangelogs int
	FirstUnread                         string
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
		v := SystemUpdatesWith(ctx, root, inv.Distro, UpdateOptions{CacheDir: c.CacheDir, Refresh: c.Refresh, CachedChangelogsOnly: c.CachedChangelogsOnly, Progress: c.Progress, Client: c.ChangelogClient})
		f.PackageManager = v.Manager
		if v.Problem != "" {
			f.Problem = strings.TrimPrefix(f.Problem+"; "+v.Manager+": "+v.Problem, "; ")
		}
		if v.Pending > 0 {
			f.Problem = strings.TrimPrefix(f.Problem+"; "+fmt.Sprintf("%s: the CVEs of %d updates are not read yet (their changelogs come with a later report)", v.Manager, v.Pending), "; ")
		}
		if v.Updates != nil {
			s.Updates = v.Updates
		}
		s.PendingChangelogs, s.UnreadChangelogs, s.FirstUnread = v.Pending, v.Unread, v.FirstUnread
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
	v := SystemUpdatesWith(ctx, root, distro, UpdateOptions{CacheDir: cacheDir, Refresh: refresh})
	return v.Manager, v.Updates, v.Problem
}

// UpdateOptions tune SystemUpdatesWith.
type UpdateOptions struct {
	// CacheDir keeps the changelogs read (apt), one file per source
	// version, so each is downloaded once.
	CacheDir string
	// Refresh runs apt-get update first.
	Refresh bool
	// CachedChangelogsOnly downloads no changelog: updates whose changelog
	// is not cached are listed without CVEs and counted in Pending.
	CachedChangelogsOnly bool
	// Progress is told how the changelog downloads go.
	Progress func(done, total int)
	// Client downloads the changelogs' .debs; nil is http.DefaultClient.
	Client *http.Client
}

// SystemView is the package manager's view of a root.
type SystemView struct {
	// Manager is "apt", or "" when the root has none patchbay drives.
	Manager string
	Updates []patch.Update
	// Problem says why the view could not be had (Updates is nil then).
	Problem string
	// Pending counts updates whose CVEs were not read (CachedChangelogsOnly);
	// Unread those whose changelog could not be read (offline, say).
	Pending, Unread int
	// FirstUnread is the reason of the first unread changelog.
	FirstUnread string
}

// SystemUpdatesWith is SystemUpdates with options, and it says how many
// updates lack their CVEs and why.
func SystemUpdatesWith(ctx context.Context, root string, distro *inventory.Distro, o UpdateOptions) SystemView {
	var v SystemView
	if distro == nil {
		return v
	}
	switch inventory.BaseEcosystem(distro.Ecosystem) {
	case "Debian", "Ubuntu":
	default:
		return v
	}
	if _, err := os.Stat(filepath.Join(root, "usr/bin/apt-get")); err != nil {
		return v
	}
	v.Manager = "apt"
	r := &pkgmgr.Runner{Root: root}
	if r.Root != "/" && os.Geteuid() != 0 {
		v.Problem = "the package manager's view of a chroot needs root; run as root or pass --no-package-manager"
		return v
	}
	a := &pkgmgr.Apt{R: r, Changelogs: &pkgmgr.Changelogs{CacheDir: o.CacheDir, CachedOnly: o.CachedChangelogsOnly, Progress: o.Progress, Client: o.Client}}
	if o.Refresh {
		if err := a.Refresh(ctx); err != nil {
			v.Problem = err.Error()
			return v
		}
	}
	ups, err := a.Updates(ctx)
	if err != nil {
		v.Problem = err.Error()
		return v
	}
	v.Updates = make([]patch.Update, 0, len(ups))
	for _, u := range ups {
		switch {
		case u.Pending:
			v.Pending++
		case u.Problem != "":
			if v.Unread == 0 {
				v.FirstUnread = u.Problem
			}
			v.Unread++
		}
		su := patch.Update{
			Ecosystem: distro.Ecosystem, Name: u.Name, SourceName: u.SourceName, SourceVersion: u.SourceVersion,
			Installed: u.Installed, Candidate: u.Candidate, Origin: u.Origin, Pocket: u.Pocket,
			CVEs: u.CVEs, Cycle: patch.CycleSystem, Held: u.Held,
		}
		if su.CVEs == nil {
			su.CVEs = []string{}
		}
		su.Types = patch.Classify(patch.Facts{Package: u.Name, Source: u.SourceName, Pocket: u.Pocket, CVEs: u.CVEs}, patch.DefaultRules)
		v.Updates = append(v.Updates, su)
	}
	return v
}
