package report

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"

	"github.com/patchbay/patchbay/risk"
	"github.com/patchbay/patchbay/scan"
)

// SARIF 2.1.0 wire types: the subset patchbay writes.
type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool    sarifTool     `json:"tool"`
	Results []sarifResult `json:"results"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	Version        string      `json:"version,omitempty"`
	InformationURI string      `json:"informationUri"`
	Rules          []sarifRule `json:"rules"`
}

type sarifText struct {
	Text     string `json:"text"`
	Markdown string `json:"markdown,omitempty"`
}

type sarifRule struct {
	ID               string         `json:"id"`
	Name             string         `json:"name,omitempty"`
	ShortDescription sarifText      `json:"shortDescription"`
	FullDescription  sarifText      `json:"fullDescription"`
	HelpURI          string         `json:"helpUri,omitempty"`
	Help             sarifText      `json:"help"`
	DefaultConfig    sarifConfig    `json:"defaultConfiguration"`
	Properties       map[string]any `json:"properties"`
}

type sarifConfig struct {
	Level string `json:"level"`
}

type sarifResult struct {
	RuleID              string            `json:"ruleId"`
	Level               string            `json:"level"`
	Message             sarifText         `json:"message"`
	Locations           []sarifLocation   `json:"locations"`
	PartialFingerprints map[string]string `json:"partialFingerprints"`
	Properties          map[string]any    `json:"properties,omitempty"`
}

type sarifLocation struct {
	PhysicalLocation sarifPhysical `json:"physicalLocation"`
}

type sarifPhysical struct {
	ArtifactLocation sarifArtifact `json:"artifactLocation"`
	Region           *sarifRegion  `json:"region,omitempty"`
}

type sarifArtifact struct {
	URI string `json:"uri"`
}

type sarifRegion struct {
	StartLine int `json:"startLine"`
}

func sarifLevel(p risk.Priority) string {
	switch p {
	case risk.P1, risk.P2:
		return "error"
	case risk.P3:
		return "warning"
	}
	return "note"
}

// SARIF writes a SARIF 2.1.0 log: one rule per vulnerability, one result
// per (finding, location).
func SARIF(w io.Writer, res scan.Result, meta Meta) error {
	rules := map[string]*sarifRule{}
	var results []sarifResult
	lines := lineIndex(res)
	for _, f := range res.Findings {
		if _, ok := rules[f.Vulnerability]; !ok {
			summary := f.Summary
			if summary == "" {
				summary = f.Vulnerability
			}
			r := &sarifRule{
				ID:               f.Vulnerability,
				Name:             strings.ReplaceAll(f.Vulnerability, "-", ""),
				ShortDescription: sarifText{Text: summary},
				FullDescription:  sarifText{Text: summary + " (" + strings.Join(append([]string{f.Vulnerability}, f.Aliases...), ", ") + ")"},
				HelpURI:          f.URL,
				Help:             sarifText{Text: "Upgrade to a fixed version.", Markdown: "**Priority " + f.Priority.String() + "**: " + strings.Join(f.Reasons, "; ")},
				DefaultConfig:    sarifConfig{Level: sarifLevel(f.Priority)},
				Properties:       map[string]any{"tags": []string{"security", "vulnerability"}, "precision": "very-high"},
			}
			if f.CVSS != nil {
				r.Properties["security-severity"] = fmt.Sprintf("%.1f", f.CVSS.Score)
			}
			rules[f.Vulnerability] = r
		}
		fix := "no fixed version is known"
		if f.Fixed != "" {
			fix = "upgrade to " + f.Fixed
		}
		msg := fmt.Sprintf("%s %s (%s) is affected by %s [%s]: %s. %s.", f.Package, f.Version, f.Ecosystem, f.Vulnerability, f.Priority, fix, strings.Join(f.Reasons, "; "))
		for _, loc := range f.Locations {
			l := sarifLocation{PhysicalLocation: sarifPhysical{ArtifactLocation: sarifArtifact{URI: sarifURI(loc)}}}
			if n := lines[f.Ecosystem+"\x00"+f.Package+"\x00"+f.Version+"\x00"+loc]; n > 0 {
				l.PhysicalLocation.Region = &sarifRegion{StartLine: n}
			}
			results = append(results, sarifResult{
				RuleID:              f.Vulnerability,
				Level:               sarifLevel(f.Priority),
				Message:             sarifText{Text: msg},
				Locations:           []sarifLocation{l},
				PartialFingerprints: map[string]string{"patchbay/v1": f.Ecosystem + "/" + f.Package + "@" + f.Version + "/" + f.Vulnerability},
				Properties:          map[string]any{"priority": f.Priority.String(), "fixed": f.Fixed},
			})
		}
	}
	ids := make([]string, 0, len(rules))
	for id := range rules {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	driver := sarifDriver{Name: "patchbay", Version: meta.ToolVersion, InformationURI: "https://github.com/patchbay/patchbay", Rules: []sarifRule{}}
	for _, id := range ids {
		driver.Rules = append(driver.Rules, *rules[id])
	}
	if results == nil {
		results = []sarifResult{}
	}
	log := sarifLog{
		Schema:  "https://json.schemastore.org/sarif-2.1.0.json",
		Version: "2.1.0",
		Runs:    []sarifRun{{Tool: sarifTool{Driver: driver}, Results: results}},
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(log)
}

// lineIndex maps (ecosystem, match name, match version, location) to the
// declaring line, where extractors reported one.
func lineIndex(res scan.Result) map[string]int {
	out := map[string]int{}
	for _, p := range res.Inventory.Packages {
		if p.Line > 0 {
			out[p.Ecosystem+"\x00"+p.MatchName()+"\x00"+p.MatchVersion()+"\x00"+p.Location] = p.Line
		}
	}
	return out
}

// sarifURI turns a path into a SARIF artifact URI: relative paths stay
// relative (code scanning resolves them against the repository root).
func sarifURI(p string) string {
	if filepath.IsAbs(p) {
		return "file://" + filepath.ToSlash(p)
	}
	return strings.TrimPrefix(filepath.ToSlash(filepath.Clean(p)), "./")
}
