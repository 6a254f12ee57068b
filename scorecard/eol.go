package scorecard

import (
	"strings"
	"time"
)

// EOLSource is where the end-of-life table comes from, and as of when.
const EOLSource = "endoflife.date (debian, ubuntu, rhel, alpine, rocky-linux, almalinux), checked 2026-11-30"

// eolTable is the end of (standard) security support of OS releases by
// os-release ID and VERSION_ID (major for RHEL-likes, major.minor for
// Alpine). A release not listed is not known to be past its end.
var eolTable = map[string]string{
	"debian/9": "2020-07-06", "debian/10": "2022-09-10", "debian/11": "2024-08-14", "debian/12": "2026-06-10", "debian/13": "2028-08-09",
	"ubuntu/18.04": "2023-05-31", "ubuntu/20.04": "2025-05-29", "ubuntu/22.04": "2027-06-01", "ubuntu/24.04": "2029-05-31",
	"rhel/7": "2024-06-30", "rhel/8": "2029-05-31", "rhel/9": "2032-05-31",
	"rocky/8": "2029-05-31", "rocky/9": "2032-05-31", "almalinux/8": "2029-03-01", "almalinux/9": "2032-05-31",
	"centos/7": "2024-06-30", "centos/8": "2021-12-31",
	"alpine/3.17": "2024-11-22", "alpine/3.18": "2025-05-09", "alpine/3.19": "2025-11-01", "alpine/3.20": "2026-04-01", "alpine/3.21": "2026-11-01", "alpine/3.22": "2027-05-01",
}

// EndOfLife is the end of support of an OS release (zero when unknown).
func EndOfLife(osID, version string) time.Time {
	v := version
	switch osID {
	case "rhel", "rocky", "almalinux", "centos":
		v, _, _ = strings.Cut(version, ".")
	case "alpine":
		if p := strings.Split(version, "."); len(p) >= 2 {
			v = p[0] + "." + p[1]
		}
	}
	s, ok := eolTable[osID+"/"+v]
	if !ok {
		return time.Time{}
	}
	t, _ := time.Parse(time.DateOnly, s)
	return t
}
