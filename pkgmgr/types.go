package pkgmgr

import (
	"context"
	"fmt"
	"regexp"
)

// Installed is one installed package as the package manager sees it.
type Installed struct {
	Name          string `json:"name"`
	Arch          string `json:"arch"`
	Version       string `json:"version"`
	SourceName    string `json:"source_name"`
	SourceVersion string `json:"source_version"`
	// Status is the manager's state: dpkg's "ii", "iU" (unpacked, not
	// configured), "hi" (held) …
	Status string `json:"status"`
	Held   bool   `json:"held"`
}

// Update is an available update of an installed package.
type Update struct {
	Name          string `json:"name"`
	Arch          string `json:"arch,omitempty"`
	SourceName    string `json:"source_name,omitempty"`
	SourceVersion string `json:"source_version,omitempty"` // installed source version
	Installed     string `json:"installed"`
	Candidate     string `json:"candidate"`
	// Origin names where the candidate comes from: for apt the archive
	// ("bookworm-security"), for dnf the repository, for apk the repository.
	Origin string `json:"origin"`
	// Pocket is "security", "updates", "backports" or "release".
	Pocket string `json:"pocket"`
	// Advisory is the manager's advisory for the update (dnf updateinfo).
	Advisory *Advisory `json:"advisory,omitempty"`
	// CVEs the update fixes, from the advisory or the changelog.
	CVEs []string `json:"cves"`
	// Held updates are not installed by Install.
	Held bool `json:"held"`
	// Problem says why CVEs could not be read, when they could not.
	Problem string `json:"problem,omitempty"`
	// Pending is set when the CVEs were not read yet: the changelog is
	// not cached and Changelogs.CachedOnly asked for no download.
	Pending bool `json:"pending,omitempty"`
}

// Advisory is a package manager advisory (dnf updateinfo).
type Advisory struct {
	ID       string   `json:"id"`
	Type     string   `json:"type"` // security, bugfix, enhancement
	Severity string   `json:"severity,omitempty"`
	CVEs     []string `json:"cves,omitempty"`
}

// Target is a package to bring to an exact version.
type Target struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

func (t Target) String() string { return t.Name + "=" + t.Version }

// Action is what a change does to a package.
type Action string

// Actions.
const (
	ActionUpgrade   Action = "upgrade"
	ActionDowngrade Action = "downgrade"
	ActionInstall   Action = "install"
	ActionRemove    Action = "remove"
	ActionReinstall Action = "reinstall"
)

// Change is one change an install makes or would make.
type Change struct {
	Action Action `json:"action"` // upgrade, downgrade, install, remove, reinstall
	Name   string `json:"name"`
	From   string `json:"from,omitempty"`
	To     string `json:"to,omitempty"`
}

// Skip is a target that was not acted on, and why.
type Skip struct {
	Target Target `json:"target"`
	Reason string `json:"reason"`
}

// Result is what an install did.
type Result struct {
	// Changes are the changes made, as verified afterwards.
	Changes []Change `json:"changes"`
	// Unchanged are targets already at their version (nothing to do).
	Unchanged []Target `json:"unchanged"`
	Skipped   []Skip   `json:"skipped"`
	// Recovered is set when an interrupted earlier run was finished first.
	Recovered bool `json:"recovered"`
}

// Driver is what every package manager driver does for its root.
type Driver interface {
	// Installed lists the installed packages.
	Installed(ctx context.Context) ([]Installed, error)
	// Updates lists the available updates with their origin.
	Updates(ctx context.Context) ([]Update, error)
	// Simulate reports what installing the targets would change.
	Simulate(ctx context.Context, targets []Target) ([]Change, error)
	// Install brings the targets to their exact versions (upgrades and
	// downgrades alike).
	Install(ctx context.Context, targets []Target, opts InstallOptions) (Result, error)
}

var (
	_ Driver = (*Apt)(nil)
	_ Driver = (*Dnf)(nil)
	_ Driver = (*Apk)(nil)
)

// InstallOptions tune Install.
type InstallOptions struct {
	// AllowRemovals lets an install remove packages; otherwise an install
	// whose simulation removes anything is refused before it runs.
	AllowRemovals bool
}

var (
	debName    = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?$`)
	debVersion = regexp.MustCompile(`^([0-9]+:)?[0-9][A-Za-z0-9.+~:-]*$`)
)

// ValidateDebian refuses names and versions that are not valid for dpkg,
// before any command runs.
func ValidateDebian(ts []Target) error {
	return validate(ts, "Debian", debName, debVersion, "Debian version")
}

// validate refuses the first target whose name or version does not have the
// manager's syntax; no command ever sees it.
func validate(ts []Target, manager string, name, version *regexp.Regexp, versionForm string) error {
	for _, t := range ts {
		if !name.MatchString(t.Name) {
			return fmt.Errorf("package name %q is not a valid %s package name", t.Name, manager)
		}
		if !version.MatchString(t.Version) {
			return fmt.Errorf("version %q of %s is not a valid %s", t.Version, t.Name, versionForm)
		}
	}
	return nil
}
