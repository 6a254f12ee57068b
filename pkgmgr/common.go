package pkgmgr

import (
	"fmt"
	"strings"
)

// byName indexes installed packages by name.
func byName(inst []Installed) map[string]Installed {
	out := make(map[string]Installed, len(inst))
	for _, p := range inst {
		out[p.Name] = p
	}
	return out
}

// refuseRemovals fails when a simulated install removes packages: a removal
// is never done silently.
func refuseRemovals(sim []Change, targets []Target) error {
	var removals []string
	for _, ch := range sim {
		if ch.Action == ActionRemove {
			removals = append(removals, ch.Name)
		}
	}
	if len(removals) == 0 {
		return nil
	}
	return fmt.Errorf("installing %s would remove %s; refused (allow removals to proceed)", joinTargets(targets), strings.Join(removals, ", "))
}

// verifyTargets checks, after an install, that every target is at its version.
func verifyTargets(after []Installed, targets []Target) error {
	now := byName(after)
	for _, t := range targets {
		if p := now[t.Name]; p.Version != t.Version {
			return fmt.Errorf("after install %s is at %q, not %s", t.Name, p.Version, t.Version)
		}
	}
	return nil
}

func joinTargets(ts []Target) string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = t.String()
	}
	return strings.Join(s, " ")
}
