package scorecard

import (
	"maps"
	"slices"
	"time"

	"github.com/patchbay/patchbay/policy"
)

// TeamRollup is a team's standing on a scorecard: the average and the
// worst of its services.
type TeamRollup struct {
	Team     string  `json:"team"`
	Services int     `json:"services"`
	Average  float64 `json:"average"`
	Worst    float64 `json:"worst"`
	// WorstLevel is the lowest level among its services ("": one has
	// none).
	WorstLevel string `json:"worst_level"`
	// Levels count its services by level ("" for none).
	Levels map[string]int `json:"levels"`
}

// Rollups are the team roll-ups of results on a scorecard.
func Rollups(card *Spec, set *policy.Set, results []Result) []TeamRollup {
	by := map[string]*TeamRollup{}
	sums := map[string]float64{}
	for _, r := range results {
		svc := set.Service(r.Entity)
		if svc == nil {
			continue
		}
		t := by[svc.Owner]
		if t == nil {
			t = &TeamRollup{Team: svc.Owner, Worst: r.Score, WorstLevel: r.Level, Levels: map[string]int{}}
			by[svc.Owner] = t
		}
		t.Services++
		sums[svc.Owner] += r.Score
		t.Worst = min(t.Worst, r.Score)
		if card.levelIndex(r.Level) < card.levelIndex(t.WorstLevel) {
			t.WorstLevel = r.Level
		}
		t.Levels[r.Level]++
	}
	out := []TeamRollup{}
	for _, k := range slices.Sorted(maps.Keys(by)) {
		t := by[k]
		t.Average = float64(int(sums[k]/float64(t.Services)*10+0.5)) / 10
		out = append(out, *t)
	}
	return out
}

// Summary is a scorecard in a list: its ladder and how the services
// stand on it.
type Summary struct {
	Name        string         `json:"name"`
	Description string         `json:"description,omitempty"`
	Levels      []string       `json:"levels"`
	Rules       int            `json:"rules"`
	Services    int            `json:"services"`
	Average     float64        `json:"average"`
	ByLevel     map[string]int `json:"by_level"`
}

// Summarize is a scorecard's summary from its current results.
func Summarize(name string, card *Spec, results []Result) Summary {
	s := Summary{Name: name, Description: card.Description, Levels: card.levelNames(), Rules: len(card.Rules), ByLevel: map[string]int{}}
	var sum float64
	for _, r := range results {
		s.Services++
		sum += r.Score
		s.ByLevel[r.Level]++
	}
	if s.Services > 0 {
		s.Average = float64(int(sum/float64(s.Services)*10+0.5)) / 10
	}
	return s
}

// Detail is a scorecard with every service's result and the team
// roll-ups.
type Detail struct {
	Summary
	Spec    *Spec        `json:"spec"`
	Results []Result     `json:"results"`
	Teams   []TeamRollup `json:"teams"`
}

// CatalogHost is a host a service runs on.
type CatalogHost struct {
	ID       string         `json:"id"`
	Hostname string         `json:"hostname"`
	OS       string         `json:"os"`
	LastSeen time.Time      `json:"last_seen"`
	Open     map[string]int `json:"open"`
	Reboot   bool           `json:"reboot_required"`
}

// PatchGroup is the open findings one patch (a package to a fixed
// version) closes.
type PatchGroup struct {
	Ecosystem       string   `json:"ecosystem"`
	Package         string   `json:"package"`
	Fixed           string   `json:"fixed"`
	Priority        string   `json:"priority"` // the most urgent
	Findings        int      `json:"findings"`
	Hosts           int      `json:"hosts"`
	Vulnerabilities []string `json:"vulnerabilities"`
}

// Touch is a rollout that touched a service's hosts.
type Touch struct {
	Plan     string    `json:"plan"`
	Strategy string    `json:"strategy"`
	State    string    `json:"state"`
	Created  time.Time `json:"created"`
	Hosts    int       `json:"hosts"` // of the service's
}

// ServiceView is a service's catalog page.
type ServiceView struct {
	Name string              `json:"name"`
	Spec *policy.ServiceSpec `json:"spec"`
	Team *policy.TeamSpec    `json:"team"`
	// Facts are the built-in and pushed facts the scorecards read.
	Facts map[string]any `json:"facts"`
	// Custom are the pushed facts with their time.
	Custom      []CustomFact  `json:"custom"`
	Hosts       []CatalogHost `json:"hosts"`
	Inventory   *InventoryAge `json:"inventory,omitempty"`
	Patches     []PatchGroup  `json:"patches"`
	KPI         any           `json:"kpi"`
	Scores      []Result      `json:"scores"`
	Initiatives []string      `json:"initiatives"`
	Rollouts    []Touch       `json:"rollouts"`
}

// InventoryAge is a service's uploaded application inventory.
type InventoryAge struct {
	Packages int       `json:"packages"`
	Uploaded time.Time `json:"uploaded"`
	AgeDays  int       `json:"age_days"`
}

// TeamView is a team's catalog page.
type TeamView struct {
	Name     string           `json:"name"`
	Spec     *policy.TeamSpec `json:"spec"`
	Services []TeamService    `json:"services"`
	// Rollups are its standing on each scorecard.
	Rollups     map[string]TeamRollup `json:"rollups"`
	Initiatives []TeamProgressOf      `json:"initiatives"`
	KPI         any                   `json:"kpi"`
}

// TeamService is one of a team's services with its scores.
type TeamService struct {
	Name   string   `json:"name"`
	Tier   int      `json:"tier"`
	Hosts  int      `json:"hosts"`
	Open   int      `json:"open"`
	Scores []Result `json:"scores"`
}

// TeamProgressOf is a team's share of an initiative.
type TeamProgressOf struct {
	Initiative string `json:"initiative"`
	State      string `json:"state"`
	Target     string `json:"target"`
	TeamProgress
}
