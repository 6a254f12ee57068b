package advisory

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ossf/osv-schema/bindings/go/osvschema"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

var osvUnmarshal = protojson.UnmarshalOptions{DiscardUnknown: true}

// ParseOSV parses one OSV JSON record. The error says what is wrong; the
// caller adds the file name.
func ParseOSV(data []byte) (*Advisory, error) {
	var v osvschema.Vulnerability
	if err := osvUnmarshal.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("parse OSV JSON: %w", err)
	}
	return fromOSV(&v)
}

// ErrInvalidRecord marks records that parse as JSON but break the OSV schema.
var ErrInvalidRecord = errors.New("invalid OSV record")

func fromOSV(v *osvschema.Vulnerability) (*Advisory, error) {
	if v.GetId() == "" {
		return nil, fmt.Errorf("%w: missing id", ErrInvalidRecord)
	}
	a := &Advisory{
		ID:        v.GetId(),
		Aliases:   v.GetAliases(),
		Modified:  ts(v.GetModified()),
		Published: ts(v.GetPublished()),
		Withdrawn: ts(v.GetWithdrawn()),
		Summary:   v.GetSummary(),
		Severity:  severities(v.GetSeverity()),
	}
	if a.Summary == "" {
		a.Summary = firstLine(v.GetDetails())
	}
	a.SeverityWord = severityWord(v.GetDatabaseSpecific())
	a.URL = stringField(v.GetDatabaseSpecific(), "url")
	if a.URL == "" {
		for _, r := range v.GetReferences() {
			if r.GetType().String() == "ADVISORY" {
				a.URL = r.GetUrl()
				break
			}
		}
	}
	for i, af := range v.GetAffected() {
		pkg := af.GetPackage()
		if pkg.GetName() == "" || pkg.GetEcosystem() == "" {
			return nil, fmt.Errorf("%w: affected[%d].package: missing name or ecosystem", ErrInvalidRecord, i)
		}
		out := Affected{
			Ecosystem: pkg.GetEcosystem(),
			Name:      pkg.GetName(),
			Versions:  af.GetVersions(),
			Severity:  severities(af.GetSeverity()),
		}
		out.SeverityWord = severityWord(af.GetEcosystemSpecific())
		if out.SeverityWord == "" {
			out.SeverityWord = severityWord(af.GetDatabaseSpecific())
		}
		for j, r := range af.GetRanges() {
			typ := r.GetType()
			if typ == osvschema.Range_GIT {
				continue // commit ranges: patchbay matches versions only
			}
			if typ != osvschema.Range_SEMVER && typ != osvschema.Range_ECOSYSTEM {
				return nil, fmt.Errorf("%w: affected[%d].ranges[%d].type: unknown range type", ErrInvalidRecord, i, j)
			}
			rg := Range{Type: typ.String()}
			for _, e := range r.GetEvents() {
				rg.Events = append(rg.Events, Event{Introduced: e.GetIntroduced(), Fixed: e.GetFixed(), LastAffected: e.GetLastAffected(), Limit: e.GetLimit()})
			}
			if len(rg.Events) == 0 {
				return nil, fmt.Errorf("%w: affected[%d].ranges[%d].events: empty", ErrInvalidRecord, i, j)
			}
			out.Ranges = append(out.Ranges, rg)
		}
		a.Affected = append(a.Affected, out)
	}
	return a, nil
}

func ts(t *timestamppb.Timestamp) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.AsTime().UTC()
}

func severities(in []*osvschema.Severity) []Severity {
	var out []Severity
	for _, s := range in {
		if s.GetScore() == "" || s.GetType() == osvschema.Severity_UNSPECIFIED {
			continue
		}
		out = append(out, Severity{Type: s.GetType().String(), Score: s.GetScore()})
	}
	return out
}

// severityWord reads a textual severity from a database_specific or
// ecosystem_specific object: GHSA's "severity", Debian's "urgency".
func severityWord(s *structpb.Struct) string {
	for _, k := range []string{"severity", "urgency"} {
		if w := stringField(s, k); w != "" {
			return w
		}
	}
	return ""
}

func stringField(s *structpb.Struct, key string) string {
	if s == nil {
		return ""
	}
	if v, ok := s.GetFields()[key]; ok {
		return v.GetStringValue()
	}
	return ""
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
