package fleet

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/inventory"
	"github.com/patchbay/patchbay/patch"
)

func okFacts() Facts {
	return Facts{Hostname: "web-1", MachineID: "m-1", OSID: "debian", OSVersion: "12", OSPretty: "Debian GNU/Linux 12 (bookworm)", Ecosystem: "Debian:12",
		KernelRunning: "6.1.0-18-amd64", AgentVersion: "1.0", Addresses: []string{"10.0.0.1", "fe80::1%eth0"}, Labels: map[string]string{"env": "prod"}}
}

func okPackage() inventory.Package {
	return inventory.Package{Ecosystem: "Debian:12", Name: "bash", Version: "5.2.15-2+b2", SourceName: "bash", SourceVersion: "5.2.15-2", Location: "/var/lib/dpkg/status"}
}

func okUpdate() patch.Update {
	return patch.Update{Ecosystem: "Debian:12", Name: "bash", Installed: "5.2.15-2+b2", Candidate: "5.2.15-2+b7", Origin: "Debian", Pocket: "bookworm-security",
		CVEs: []string{"CVE-2022-3715"}, Types: []patch.Type{patch.Security}, Cycle: patch.CycleSystem}
}

// wantRefused checks err is a FieldError naming field with problem.
func wantRefused(t *testing.T, err error, field, problem string) {
	t.Helper()
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != field || !strings.Contains(fe.Problem, problem) {
		t.Errorf("got %v; want %s: %s", err, field, problem)
	}
}

func TestFactLimits(t *testing.T) {
	if err := ValidateFacts(okFacts()); err != nil {
		t.Fatalf("real facts refused: %v", err)
	}
	many := func(n int, s string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = s
		}
		return out
	}
	labels := map[string]string{}
	for i := range MaxLabels + 1 {
		labels[fmt.Sprintf("k%d", i)] = "v"
	}
	for _, c := range []struct {
		field, problem string
		mod            func(*Facts)
	}{
		// A string's length.
		{"facts.os_pretty", "60000000 bytes, at most 256", func(f *Facts) { f.OSPretty = strings.Repeat("x", 60_000_000) }},
		{"facts.hostname", "256 bytes, at most 255", func(f *Facts) { f.Hostname = strings.Repeat("h", 256) }},
		{"facts.machine_id", "at most 128", func(f *Facts) { f.MachineID = strings.Repeat("m", 129) }},
		{"facts.os_id", "at most 64", func(f *Facts) { f.OSID = strings.Repeat("o", 65) }},
		{"facts.os_version", "at most 64", func(f *Facts) { f.OSVersion = strings.Repeat("o", 65) }},
		{"facts.ecosystem", "at most 128", func(f *Facts) { f.Ecosystem = strings.Repeat("e", 129) }},
		{"facts.kernel_running", "at most 256", func(f *Facts) { f.KernelRunning = strings.Repeat("k", 257) }},
		{"facts.kernel_newest", "at most 256", func(f *Facts) { f.KernelNewest = strings.Repeat("k", 257) }},
		{"facts.agent_version", "at most 64", func(f *Facts) { f.AgentVersion = strings.Repeat("a", 65) }},
		{"facts.package_manager", "at most 32", func(f *Facts) { f.PackageManager = strings.Repeat("p", 33) }},
		{"facts.problem", "at most 4096", func(f *Facts) { f.Problem = strings.Repeat("p", 4097) }},
		// A list's length, and its entries'.
		{"facts.addresses", "2000000 entries, at most 1024", func(f *Facts) { f.Addresses = many(2_000_000, "10.0.0.1") }},
		{"facts.addresses[1]", "129 bytes, at most 128", func(f *Facts) { f.Addresses = []string{"10.0.0.1", strings.Repeat("a", 129)} }},
		{"facts.reboot_reasons", "65 entries, at most 64", func(f *Facts) { f.RebootReasons = many(65, "kernel") }},
		{"facts.reboot_reasons[0]", "at most 1024", func(f *Facts) { f.RebootReasons = []string{strings.Repeat("r", 1025)} }},
		// Labels: their number, and each label.
		{"facts.labels", "129 entries, at most 128", func(f *Facts) { f.Labels = labels }},
		{"facts.labels", "value longer than 255 bytes", func(f *Facts) { f.Labels = map[string]string{"env": strings.Repeat("v", 256)} }},
		// A number.
		{"facts.uptime_seconds", "negative", func(f *Facts) { f.UptimeSeconds = -1 }},
		{"facts.machine_id", "missing", func(f *Facts) { f.MachineID = "" }},
	} {
		f := okFacts()
		c.mod(&f)
		wantRefused(t, ValidateFacts(f), c.field, c.problem)
	}
	full := okFacts()
	full.Addresses, full.RebootReasons = many(MaxAddresses, strings.Repeat("a", MaxAddress)), many(MaxRebootReasons, "r")
	full.Labels = map[string]string{}
	for i := range MaxLabels {
		full.Labels[fmt.Sprintf("k%d", i)] = "v"
	}
	if err := ValidateFacts(full); err != nil {
		t.Errorf("facts at the limits refused: %v", err)
	}
	wantRefused(t, ValidateLabels(labels), "labels", "129 entries, at most 128")
}

func TestInventoryLimits(t *testing.T) {
	if err := ValidateInventory("inventory", []inventory.Package{okPackage()}); err != nil {
		t.Fatalf("a real package refused: %v", err)
	}
	wantRefused(t, ValidateInventory("inventory", make([]inventory.Package, MaxPackages+1)), "inventory", "250001 entries, at most 250000")
	for _, c := range []struct {
		field, problem string
		mod            func(*inventory.Package)
	}{
		{"ecosystem", "at most 128", func(p *inventory.Package) { p.Ecosystem = strings.Repeat("e", 129) }},
		{"name", "513 bytes, at most 512", func(p *inventory.Package) { p.Name = strings.Repeat("n", 513) }},
		{"version", "at most 256", func(p *inventory.Package) { p.Version = strings.Repeat("1", 257) }},
		{"source_name", "at most 512", func(p *inventory.Package) { p.SourceName = strings.Repeat("n", 513) }},
		{"source_version", "at most 256", func(p *inventory.Package) { p.SourceVersion = strings.Repeat("1", 257) }},
		{"location", "at most 4096", func(p *inventory.Package) { p.Location = strings.Repeat("/", 4097) }},
		{"purl", "at most 4096", func(p *inventory.Package) { p.PURL = strings.Repeat("p", 4097) }},
		{"line", "negative", func(p *inventory.Package) { p.Line = -1 }},
		{"version", "missing", func(p *inventory.Package) { p.Version = "" }},
	} {
		p := okPackage()
		c.mod(&p)
		wantRefused(t, ValidateInventory("inventory", []inventory.Package{okPackage(), p}), "inventory[1]."+c.field, c.problem)
		if err := Validate(3, p); !errors.Is(err, ErrInvalidPackage) || !strings.Contains(err.Error(), "packages[3]."+c.field) {
			t.Errorf("Validate: %v; want ErrInvalidPackage naming packages[3].%s", err, c.field)
		}
	}
}

func TestUpdateLimits(t *testing.T) {
	if err := ValidateUpdates([]patch.Update{okUpdate()}); err != nil {
		t.Fatalf("a real update refused: %v", err)
	}
	wantRefused(t, ValidateUpdates(make([]patch.Update, MaxUpdates+1)), "updates", "50001 entries, at most 50000")
	for _, c := range []struct {
		field, problem string
		mod            func(*patch.Update)
	}{
		{"name", "at most 512", func(u *patch.Update) { u.Name = strings.Repeat("n", 513) }},
		{"candidate", "at most 256", func(u *patch.Update) { u.Candidate = strings.Repeat("1", 257) }},
		{"pocket", "at most 512", func(u *patch.Update) { u.Pocket = strings.Repeat("p", 513) }},
		{"cves", "10001 entries, at most 10000", func(u *patch.Update) { u.CVEs = make([]string, MaxCVEs+1) }},
		{"cves[1]", "65 bytes, at most 64", func(u *patch.Update) { u.CVEs = []string{"CVE-1", strings.Repeat("c", 65)} }},
		{"types", "17 entries, at most 16", func(u *patch.Update) { u.Types = make([]patch.Type, 17) }},
		{"cycle", "at most 32", func(u *patch.Update) { u.Cycle = patch.Cycle(strings.Repeat("c", 33)) }},
	} {
		u := okUpdate()
		c.mod(&u)
		wantRefused(t, ValidateUpdates([]patch.Update{u}), "updates[0]."+c.field, c.problem)
	}
}
