package scorecard

import (
	"maps"
	"slices"

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
