package inventory

import (
	"os"
	"strings"
	"testing"
)

func FuzzParseOSRelease(f *testing.F) {
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		f.Add(string(b))
	}
	f.Add("ID=ubuntu\nVERSION_ID=\"22.04\"\nVERSION=\"22.04.4 LTS (Jammy Jellyfish)\"\n")
	f.Add("ID='alpine'\nVERSION_ID=3.20.3\n# comment\n=\n")
	f.Add("ID=\"rhel\"\nCPE_NAME=\"cpe:/o:redhat:enterprise_linux:9::baseos\"\n")
	f.Fuzz(func(t *testing.T, s string) {
		fields, err := ParseOSRelease(strings.NewReader(s))
		if err != nil {
			return
		}
		d := DistroFromOSRelease(fields)
		if d.Ecosystem != "" && d.ID == "" {
			t.Fatalf("ecosystem %q without an ID", d.Ecosystem)
		}
		if strings.ContainsAny(d.Ecosystem, "\n\r") {
			t.Fatalf("ecosystem %q spans lines", d.Ecosystem)
		}
	})
}
