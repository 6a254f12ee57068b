package inventory

import (
	"strings"
	"testing"
)

func TestDistroEcosystems(t *testing.T) {
	cases := []struct {
		osRelease, want string
	}{
		{"ID=debian\nVERSION_ID=\"12\"\n", "Debian:12"},
		{"ID=debian\nVERSION_ID=\"11\"\n", "Debian:11"},
		{"ID=ubuntu\nVERSION_ID=\"22.04\"\nVERSION=\"22.04.4 LTS (Jammy Jellyfish)\"\n", "Ubuntu:22.04:LTS"},
		{"ID=ubuntu\nVERSION_ID=\"23.10\"\nVERSION=\"23.10 (Mantic Minotaur)\"\n", "Ubuntu:23.10"},
		{"ID=alpine\nVERSION_ID=3.20.3\n", "Alpine:v3.20"},
		{"ID=\"almalinux\"\nVERSION_ID=\"9.4\"\n", "AlmaLinux:9"},
		{"ID=\"rocky\"\nVERSION_ID=\"9.3\"\n", "Rocky Linux:9"},
		{"ID=\"rhel\"\nVERSION_ID=\"9.4\"\nCPE_NAME=\"cpe:/o:redhat:enterprise_linux:9::baseos\"\n", "Red Hat:enterprise_linux:9::baseos"},
		{"ID=wolfi\n", "Wolfi"},
		{"ID=arch\n", ""},
	}
	for _, c := range cases {
		f, err := ParseOSRelease(strings.NewReader(c.osRelease))
		if err != nil {
			t.Fatal(err)
		}
		if got := DistroFromOSRelease(f).Ecosystem; got != c.want {
			t.Errorf("%q → %q, want %q", c.osRelease, got, c.want)
		}
	}
}
