package web

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/patchbay/patchbay/api/policyapi"
)

type policyDoc struct {
	policyapi.PolicyDocument
	Pretty string
}

type policyVersion struct {
	policyapi.PolicyVersion
	Pretty string
	// Diff is the change from the version before, line by line.
	Diff []diffLine
}

type policyData struct {
	Revision, Decided int64
	Docs              []policyDoc
	Kind, Name        string
	History           []policyVersion
}

func pretty(raw json.RawMessage) string {
	var b bytes.Buffer
	if len(raw) == 0 || json.Indent(&b, raw, "", "  ") != nil {
		return string(raw)
	}
	return b.String()
}

func (u *UI) policy(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	var pl policyapi.PolicyList
	if err := u.call(ctx, s, "GET", "/api/v1/policy", nil, nil, &pl); err != nil {
		return err
	}
	d := policyData{Revision: pl.Revision, Decided: pl.Decided}
	for _, doc := range pl.Documents {
		d.Docs = append(d.Docs, policyDoc{PolicyDocument: doc, Pretty: pretty(doc.Document)})
	}
	q := r.URL.Query()
	if d.Kind, d.Name = q.Get("kind"), q.Get("name"); d.Kind != "" {
		var h policyapi.PolicyHistory
		if err := u.call(ctx, s, "GET", "/api/v1/policy/history", url.Values{"kind": {d.Kind}, "name": {d.Name}}, nil, &h); err != nil {
			return err
		}
		prev := map[string]string{}
		for _, v := range h.Versions {
			pv := policyVersion{PolicyVersion: v, Pretty: pretty(v.Document)}
			k := v.Kind + "/" + v.Name
			pv.Diff = lineDiff(prev[k], pv.Pretty)
			prev[k] = pv.Pretty
			d.History = append(d.History, pv)
		}
		// Newest first.
		for i, j := 0, len(d.History)-1; i < j; i, j = i+1, j-1 {
			d.History[i], d.History[j] = d.History[j], d.History[i]
		}
	}
	u.render(w, r, s, http.StatusOK, "policy", "Policy", d)
	return nil
}

// diffLine is one line of a diff: Op is "+", "-" or " ".
type diffLine struct {
	Op, Text string
}

// lineDiff is the line diff of a and b (longest common subsequence;
// policy documents are small), with unchanged lines kept for context.
func lineDiff(a, b string) []diffLine {
	if a == "" {
		return nil
	}
	x, y := strings.Split(a, "\n"), strings.Split(b, "\n")
	if len(x)*len(y) > 4_000_000 {
		return []diffLine{{"-", "(too large to compare line by line)"}}
	}
	lcs := make([][]int, len(x)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(y)+1)
	}
	for i := len(x) - 1; i >= 0; i-- {
		for j := len(y) - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out []diffLine
	i, j := 0, 0
	for i < len(x) || j < len(y) {
		switch {
		case i < len(x) && j < len(y) && x[i] == y[j]:
			out = append(out, diffLine{" ", x[i]})
			i, j = i+1, j+1
		case j < len(y) && (i == len(x) || lcs[i][j+1] >= lcs[i+1][j]):
			out = append(out, diffLine{"+", y[j]})
			j++
		default:
			out = append(out, diffLine{"-", x[i]})
			i++
		}
	}
	return out
}
