package advisory

import "testing"

func TestVendorRatingAppliesTo(t *testing.T) {
	rh := VendorRating{CVE: "CVE-2024-1086", Vendor: "Red Hat", Ecosystem: "Red Hat", Package: "kernel", Rating: "important"}
	deb := VendorRating{CVE: "CVE-2024-1086", Vendor: "Debian", Ecosystem: "Debian:12", Package: "linux", Rating: "high"}
	for _, c := range []struct {
		v        VendorRating
		eco, pkg string
		want     bool
	}{
		{rh, "Red Hat:enterprise_linux:9::baseos", "kernel", true},
		{rh, "Rocky Linux:9", "kernel", true},
		{rh, "AlmaLinux:8", "kernel", true},
		{rh, "AlmaLinux:8", "kernel-rt", false},
		{rh, "Debian:12", "kernel", false},
		{rh, "openSUSE:Leap 15.5", "kernel", false},
		{deb, "Debian:12", "linux", true},
		{deb, "Debian:11", "linux", false},
		{VendorRating{Vendor: "Red Hat", Ecosystem: "Red Hat", Rating: "low"}, "Rocky Linux:9", "curl", true},
	} {
		if got := c.v.AppliesTo(c.eco, c.pkg); got != c.want {
			t.Errorf("%s rating in %s/%s: applies %v, want %v", c.v.Vendor, c.eco, c.pkg, got, c.want)
		}
	}
}
