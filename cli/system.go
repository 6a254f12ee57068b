package cli

import (
	"context"
	"os"
	"path/filepath"

	"github.com/patchbay/patchbay/inventory"
	"github.com/patchbay/patchbay/patch"
	"github.com/patchbay/patchbay/pkgmgr"
	"github.com/patchbay/patchbay/scan"
)

// systemUpdates asks the root's package manager which updates it offers,
// with the CVEs each fixes and its classification. It returns the
// manager's name ("" when the root has none patchbay drives) and a reason
// when the view could not be had.
func (e *env) systemUpdates(ctx context.Context, root string, distro *inventory.Distro, refresh bool) (string, []scan.Update, string) {
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
	a := &pkgmgr.Apt{R: r, Changelogs: &pkgmgr.Changelogs{CacheDir: filepath.Join(e.dataDir, "cache")}}
	if refresh {
		if err := a.Refresh(ctx); err != nil {
			return "apt", nil, err.Error()
		}
	}
	ups, err := a.Updates(ctx)
	if err != nil {
		return "apt", nil, err.Error()
	}
	out := make([]scan.Update, 0, len(ups))
	for _, u := range ups {
		su := scan.Update{
			Ecosystem: distro.Ecosystem, Name: u.Name, SourceName: u.SourceName, SourceVersion: u.SourceVersion,
			Installed: u.Installed, Candidate: u.Candidate, Origin: u.Origin, Pocket: u.Pocket,
			CVEs: u.CVEs, Cycle: string(inventory.CycleSystem), Held: u.Held,
		}
		su.Types = patch.Classify(patch.Facts{Package: u.Name, Source: u.SourceName, Pocket: u.Pocket, CVEs: u.CVEs}, patch.DefaultRules)
		out = append(out, su)
	}
	return "apt", out, ""
}
