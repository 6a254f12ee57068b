package inventory

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Distro is the operating system release of a root, from its os-release file.
type Distro struct {
	ID         string `json:"id"`          // os-release ID: debian, ubuntu, alpine, rhel, …
	VersionID  string `json:"version_id"`  // os-release VERSION_ID: 12, 22.04, 3.20.3, 9.4
	Codename   string `json:"codename"`    // VERSION_CODENAME: bookworm, jammy
	PrettyName string `json:"pretty_name"` // PRETTY_NAME, for people
	// Ecosystem is the OSV ecosystem of the distro's packages: "Debian:12",
	// "Ubuntu:22.04:LTS", "Alpine:v3.20", "AlmaLinux:9", "Rocky Linux:9",
	// "Red Hat:enterprise_linux:9::baseos". Empty when the distro has no
	// OSV ecosystem.
	Ecosystem string `json:"ecosystem"`
}

// ErrNoOSRelease is returned by ReadDistro when the root has no os-release.
var ErrNoOSRelease = errors.New("no os-release file")

// ReadDistro reads etc/os-release (or usr/lib/os-release) under root.
func ReadDistro(root string) (Distro, error) {
	for _, p := range []string{"etc/os-release", "usr/lib/os-release"} {
		f, err := os.Open(filepath.Join(root, p))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return Distro{}, fmt.Errorf("read os-release: %w", err)
		}
		defer f.Close()
		fields, err := ParseOSRelease(f)
		if err != nil {
			return Distro{}, fmt.Errorf("read %s: %w", filepath.Join(root, p), err)
		}
		return DistroFromOSRelease(fields), nil
	}
	return Distro{}, fmt.Errorf("%s: %w", root, ErrNoOSRelease)
}

// ParseOSRelease parses the os-release(5) format: KEY=value lines, values
// optionally quoted.
func ParseOSRelease(r io.Reader) (map[string]string, error) {
	out := map[string]string{}
	s := bufio.NewScanner(r)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		// Control characters have no place in os-release values; drop them
		// so that nothing built from a value spans lines.
		v = strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f {
				return -1
			}
			return r
		}, v)
		out[strings.TrimSpace(k)] = v
	}
	return out, s.Err()
}

// DistroFromOSRelease maps os-release fields to a Distro and its OSV ecosystem.
func DistroFromOSRelease(f map[string]string) Distro {
	d := Distro{ID: f["ID"], VersionID: f["VERSION_ID"], Codename: f["VERSION_CODENAME"], PrettyName: f["PRETTY_NAME"]}
	major, _, _ := strings.Cut(d.VersionID, ".")
	switch d.ID {
	case "debian":
		d.Ecosystem = withSuffix("Debian", major)
	case "ubuntu":
		d.Ecosystem = withSuffix("Ubuntu", d.VersionID)
		if strings.Contains(f["VERSION"], "LTS") {
			d.Ecosystem += ":LTS"
		}
	case "alpine":
		parts := strings.SplitN(d.VersionID, ".", 3)
		if len(parts) >= 2 {
			d.Ecosystem = "Alpine:v" + parts[0] + "." + parts[1]
		} else {
			d.Ecosystem = "Alpine"
		}
	case "almalinux":
		d.Ecosystem = withSuffix("AlmaLinux", major)
	case "rocky":
		d.Ecosystem = withSuffix("Rocky Linux", major)
	case "rhel":
		// CPE_NAME="cpe:/o:redhat:enterprise_linux:9::baseos"
		if _, suffix, ok := strings.Cut(f["CPE_NAME"], ":redhat:"); ok {
			d.Ecosystem = "Red Hat:" + suffix
		} else {
			d.Ecosystem = "Red Hat"
		}
	case "wolfi":
		d.Ecosystem = "Wolfi"
	case "chainguard":
		d.Ecosystem = "Chainguard"
	case "opensuse-leap":
		d.Ecosystem = withSuffix("openSUSE", "Leap "+d.VersionID)
	case "sles":
		d.Ecosystem = withSuffix("SUSE", d.VersionID)
	}
	return d
}

func withSuffix(eco, suffix string) string {
	if suffix == "" || suffix == "Leap " {
		return eco
	}
	return eco + ":" + suffix
}
