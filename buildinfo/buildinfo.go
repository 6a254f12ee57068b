// Package buildinfo says which patchbay this is: the version, the VCS
// revision it was built from and when. The Go toolchain records the
// revision and its commit time in every binary built from a git checkout
// (go build, go install); -ldflags -X sets any of the three explicitly,
// and wins:
//
//	go build -ldflags "-X github.com/patchbay/patchbay/buildinfo.version=v1.4.0 \
//	  -X github.com/patchbay/patchbay/buildinfo.built=$(date -u +%FT%TZ)" ./cmd/patchbay
package buildinfo

import (
	"runtime/debug"
	"strings"
	"sync"
)

// Set with -ldflags "-X github.com/patchbay/patchbay/buildinfo.NAME=VALUE".
var (
	version  string
	revision string
	built    string
)

// Info identifies a build.
type Info struct {
	// Version is the release (v1.4.0), the module version go install
	// recorded, or "dev".
	Version string `json:"version"`
	// Revision is the VCS commit, "" when the build recorded none (go run,
	// -buildvcs=false, a source tree without git).
	Revision string `json:"revision,omitempty"`
	// Modified says the working tree had uncommitted changes.
	Modified bool `json:"modified,omitempty"`
	// Time is the build time when -ldflags set it, else the commit time.
	Time string `json:"time,omitempty"`
	// TimeIsCommit says Time is the commit's time, not the build's.
	TimeIsCommit bool   `json:"time_is_commit,omitempty"`
	GoVersion    string `json:"go_version"`
}

var (
	once sync.Once
	info Info
)

// Get returns this binary's build information.
func Get() Info {
	once.Do(func() { info = read(debug.ReadBuildInfo) })
	return info
}

func read(readBuild func() (*debug.BuildInfo, bool)) Info {
	in := Info{Version: version, Revision: revision, Time: built}
	if bi, ok := readBuild(); ok {
		in.GoVersion = bi.GoVersion
		if in.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			in.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if in.Revision == "" {
					in.Revision = s.Value
				}
			case "vcs.time":
				if in.Time == "" {
					in.Time, in.TimeIsCommit = s.Value, true
				}
			case "vcs.modified":
				in.Modified = s.Value == "true"
			}
		}
	}
	if in.Version == "" {
		in.Version = "dev"
	}
	return in
}

// Short is the version and the abbreviated revision, for user agents and
// one-line identifications: "v1.4.0", "dev+4a33067d3449", "dev+4a33067d3449.dirty".
func (i Info) Short() string {
	s := i.Version
	if i.Revision != "" && !strings.Contains(i.Version, abbrev(i.Revision)) {
		s += "+" + abbrev(i.Revision)
		if i.Modified {
			s += ".dirty"
		}
	}
	return s
}

// String is the full identification: "patchbay dev (revision 4a33067d3449,
// modified; commit time 2026-12-01T11:12:20Z; go1.26.8)".
func (i Info) String() string {
	var parts []string
	if i.Revision != "" {
		r := "revision " + abbrev(i.Revision)
		if i.Modified {
			r += ", modified"
		}
		parts = append(parts, r)
	} else {
		parts = append(parts, "no VCS revision recorded (go run or -buildvcs=false)")
	}
	if i.Time != "" {
		if i.TimeIsCommit {
			parts = append(parts, "commit time "+i.Time)
		} else {
			parts = append(parts, "built "+i.Time)
		}
	}
	if i.GoVersion != "" {
		parts = append(parts, i.GoVersion)
	}
	return i.Version + " (" + strings.Join(parts, "; ") + ")"
}

func abbrev(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}
