package patch

// Cycle says on which patch cycle a package's updates travel: system
// patches (OS packages, installed by the agents) and application patches
// (language dependencies, changed in the service's repository) run on
// different cycles.
type Cycle string

// The two cycles.
const (
	// CycleSystem is the cycle of OS packages (apt, dnf, apk).
	CycleSystem Cycle = "system"
	// CycleApplication is the cycle of language dependencies.
	CycleApplication Cycle = "application"
)

// Valid reports whether c is one of the two cycles.
func (c Cycle) Valid() bool { return c == CycleSystem || c == CycleApplication }

// Update is an update the OS package manager offers for an installed
// package: the system cycle's patches.
type Update struct {
	Ecosystem  string `json:"ecosystem"`
	Name       string `json:"name"`
	SourceName string `json:"source_name,omitempty"`
	// SourceVersion is the installed source version (what feeds compare).
	SourceVersion string   `json:"source_version,omitempty"`
	Installed     string   `json:"installed"`
	Candidate     string   `json:"candidate"`
	Origin        string   `json:"origin"` // archive, repository or advisory source
	Pocket        string   `json:"pocket"`
	Advisory      string   `json:"advisory,omitempty"`
	CVEs          []string `json:"cves"`
	Types         []Type   `json:"types"`
	Cycle         Cycle    `json:"cycle"`
	Held          bool     `json:"held"`
}

// SourceOf is the package advisories name: the source package when known.
func (u Update) SourceOf() string {
	if u.SourceName != "" {
		return u.SourceName
	}
	return u.Name
}

// InstalledSourceVersion is the installed version advisories compare: the
// source version when known.
func (u Update) InstalledSourceVersion() string {
	if u.SourceVersion != "" {
		return u.SourceVersion
	}
	return u.Installed
}
