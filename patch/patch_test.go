package patch

import (
	"slices"
	"testing"
)

func TestClassify(t *testing.T) {
	cases := []struct {
		name string
		f    Facts
		want []Type
	}{
		{"security pocket", Facts{Package: "liblzma5", Source: "xz-utils", Pocket: "security"}, []Type{Security}},
		{"CVE named by the changelog", Facts{Package: "curl", Pocket: "updates", CVEs: []string{"CVE-2024-1"}}, []Type{Security}},
		{"point release, nothing else known", Facts{Package: "systemd", Pocket: "release"}, []Type{BugFix}},
		{"stable update", Facts{Package: "systemd", Pocket: "updates"}, []Type{BugFix}},
		{"backport", Facts{Package: "golang", Pocket: "backports"}, []Type{Feature}},
		{"tzdata is regulatory, and security when from the security pocket", Facts{Package: "tzdata", Pocket: "security"}, []Type{Security, Regulatory}},
		{"ca-certificates", Facts{Package: "ca-certificates", Pocket: "updates"}, []Type{Regulatory}},
		{"locales", Facts{Package: "locales", Source: "glibc", Pocket: "updates"}, []Type{Localization}},
		{"language pack by glob", Facts{Package: "language-pack-fr", Pocket: "updates"}, []Type{Localization}},
		{"microcode", Facts{Package: "intel-microcode", Pocket: "security"}, []Type{Security, Compatibility}},
		{"dnf security advisory", Facts{Package: "openssl", AdvisoryType: "security"}, []Type{Security}},
		{"dnf bugfix advisory", Facts{Package: "openssl", AdvisoryType: "bugfix"}, []Type{BugFix}},
		{"dnf enhancement advisory", Facts{Package: "openssl", AdvisoryType: "enhancement"}, []Type{Feature}},
		{"rule on the source package", Facts{Package: "tzdata-legacy", Source: "tzdata", Pocket: "updates"}, []Type{Regulatory}},
	}
	for _, c := range cases {
		if got := Classify(c.f, DefaultRules); !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
