// Package rollouttest holds the rollout policy documents (HostGroup,
// MaintenanceWindow, ApprovalRule, RolloutStrategy) that the server's
// rollout tests, the e2e rollout test and bench/rollout share, in one
// testdata file. Each scenario keeps beside them only the documents of its
// own (a strategy no other uses).
package rollouttest

import (
	_ "embed"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Policy is testdata/rollout.yaml: the groups staging (env=staging) and
// production (env=prod); the window nightly (22:00 UTC, four hours, both
// groups); the rule production-two-people (two people approve what goes to
// production); the strategy standard (staging, one host at a time, bakes an
// hour; then prod one host at a time; no error tolerated; reboot if
// required; automatic promotion; jobs time out after 30 minutes).
//
//go:embed testdata/rollout.yaml
var Policy string

// Documents returns the documents of Policy named by refs ("Kind/name",
// e.g. "HostGroup/production"), in the order given, as one YAML stream.
// It panics on a ref Policy does not hold: the set is fixed.
func Documents(refs ...string) string {
	byRef := map[string]string{}
	for _, doc := range split(Policy) {
		var env struct {
			Kind     string `yaml:"kind"`
			Metadata struct {
				Name string `yaml:"name"`
			} `yaml:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(doc), &env); err != nil {
			panic(fmt.Sprintf("rollouttest: testdata/rollout.yaml: %v", err))
		}
		byRef[env.Kind+"/"+env.Metadata.Name] = doc
	}
	var out []string
	for _, ref := range refs {
		doc, ok := byRef[ref]
		if !ok {
			panic(fmt.Sprintf("rollouttest: no document %s in testdata/rollout.yaml", ref))
		}
		out = append(out, doc)
	}
	return strings.Join(out, "---\n")
}

// split cuts a YAML stream at its "---" lines.
func split(stream string) []string {
	var docs []string
	var cur strings.Builder
	for line := range strings.Lines(stream) {
		if strings.TrimRight(line, "\n") == "---" {
			docs = append(docs, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteString(line)
	}
	return append(docs, cur.String())
}
