package fleet

import (
	"testing"
	"time"
)

// TestHostFilterMatch: each filter field, and labels set on the server
// overriding the agent's.
func TestHostFilterMatch(t *testing.T) {
	seen := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	h := HostSummary{
		Host: Host{Ecosystem: "Debian:12", LastSeen: seen, Labels: map[string]string{"env": "prod"},
			Facts: Facts{Labels: map[string]string{"env": "staging", "team": "web"}}},
		Open: map[string]int{"P2": 3, "P4": 10},
	}
	for _, c := range []struct {
		f    HostFilter
		want bool
	}{
		{HostFilter{}, true},
		{HostFilter{Ecosystem: "Debian"}, true},
		{HostFilter{Ecosystem: "Debian:11"}, false},
		{HostFilter{Ecosystem: "Deb"}, false},
		{HostFilter{Labels: map[string]string{"env": "prod", "team": "web"}}, true},
		{HostFilter{Labels: map[string]string{"env": "staging"}}, false}, // the server's label wins
		{HostFilter{SeenAfter: seen.Add(-time.Hour)}, true},
		{HostFilter{SeenAfter: seen.Add(time.Hour)}, false},
		{HostFilter{SeenBefore: seen}, false},
		{HostFilter{SeenBefore: seen.Add(time.Second)}, true},
		{HostFilter{MinOpen: 13}, true},
		{HostFilter{MinOpen: 14}, false},
		{HostFilter{Priority: "P2", MinOpen: 3}, true},
		{HostFilter{Priority: "P2", MinOpen: 4}, false},
		{HostFilter{Priority: "P1"}, false},
		{HostFilter{Clones: true}, false},
	} {
		if got := c.f.Match(h); got != c.want {
			t.Errorf("%+v: %v, want %v", c.f, got, c.want)
		}
	}
}
