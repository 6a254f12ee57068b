// Package templateapi holds the wire types of the template endpoints: the
// built-in templates of `patchbay init` and a repository generated from
// one.
package templateapi

import "github.com/patchbay/patchbay/scaffold"

// TemplateList is the answer of GET /templates.
type TemplateList struct {
	Templates []scaffold.Info `json:"templates"`
}

// GenerateRequest is the body of POST /templates/{name}/generate: the
// parameters' values as `--set` writes them; the others take their
// defaults.
type GenerateRequest struct {
	Values map[string]string `json:"values"`
}
