package pkgmgr

import (
	"errors"
	"strings"
	"testing"
)

func TestParseSimulation(t *testing.T) {
	c := Command{Args: []string{"apt-get", "-s", "install"}, Output: `NOTE: This is only a simulation!
Reading package lists...
Inst liblzma5 [5.4.1-1+deb12u1] (5.4.1-1+deb12u2 Debian-Security:12/oldstable-security [amd64])
Inst apt [2.6.2] (2.6.1 Debian:12.12/oldstable [amd64])
Inst libfoo1 (1.0-1 Debian:12.12/oldstable [amd64])
Remv libbar2 [2.0-3]
Conf liblzma5 (5.4.1-1+deb12u2 Debian-Security:12/oldstable-security [amd64])
`}
	got, err := parseSimulation(c)
	if err != nil {
		t.Fatal(err)
	}
	want := []Change{
		{Action: ActionUpgrade, Name: "liblzma5", From: "5.4.1-1+deb12u1", To: "5.4.1-1+deb12u2"},
		{Action: ActionDowngrade, Name: "apt", From: "2.6.2", To: "2.6.1"},
		{Action: ActionInstall, Name: "libfoo1", To: "1.0-1"},
		{Action: ActionRemove, Name: "libbar2", From: "2.0-3"},
	}
	if len(got) != len(want) {
		t.Fatalf("%+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%d: %+v, want %+v", i, got[i], want[i])
		}
	}
	_, err = parseSimulation(Command{Args: []string{"apt-get", "-s", "install"}, Output: "Inst garbage line\n"})
	var pe *ParseError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), `apt-get -s install`) || !strings.Contains(err.Error(), `"Inst garbage line"`) {
		t.Errorf("err = %v", err)
	}
}

func TestPocketAndOrigin(t *testing.T) {
	for archive, want := range map[string]string{
		"bookworm-security/main": "security", "jammy-security/main": "security", "bookworm-updates/main": "updates",
		"bookworm-backports/main": "backports", "bookworm/main": "release", "bookworm-proposed-updates/main": "updates",
	} {
		if got := pocketOf(archive); got != want {
			t.Errorf("%s: %s, want %s", archive, got, want)
		}
	}
	if got := bestOrigin([]string{"bookworm/main", "bookworm-security/main", "bookworm-updates/main"}); got != "bookworm-security" {
		t.Errorf("best origin %s", got)
	}
}

func TestParseChangelog(t *testing.T) {
	es, err := ParseChangelog(`pcre2 (10.42-1+deb12u2) bookworm-security; urgency=high

  * GHSA-r9hj-j2rw-4q3m: Fix large JIT stack allocation (CVE-2026-103111)

 -- Salvatore Bonaccorso <carnil@debian.org>  Sat, 03 Oct 2026 15:07:41 +0200

pcre2 (10.42-1) unstable; urgency=medium

  * Fix CVE-2022-41409 and CVE-2022-1587, again CVE-2022-41409.

 -- Matthew Vernon <matthew@debian.org>  Mon, 12 Dec 2022 10:00:00 +0000
`)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || es[0].Version != "10.42-1+deb12u2" || strings.Join(es[0].CVEs, ",") != "CVE-2026-103111" || strings.Join(es[1].CVEs, ",") != "CVE-2022-41409,CVE-2022-1587" {
		t.Errorf("%+v", es)
	}
	u := Update{Installed: "10.42-1", Candidate: "10.42-1+deb12u2"}
	if got := entriesCVEs(es, u); strings.Join(got, ",") != "CVE-2026-103111" {
		t.Errorf("CVEs above the installed version: %v", got)
	}
	if _, err := ParseChangelog("this is not a changelog\n"); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("err = %v", err)
	}
}
