package server

import (
	"bytes"
	"errors"
	"net/http"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/api/templateapi"
	"github.com/patchbay/patchbay/scaffold"
)

func (s *Server) listTemplates(w http.ResponseWriter, r *http.Request, _ *caller) error {
	var out templateapi.TemplateList
	for _, t := range scaffold.Builtins() {
		out.Templates = append(out.Templates, t.Info())
	}
	return writeJSON(w, http.StatusOK, out)
}

// generateTemplate renders a built-in template into a .tar.gz of the
// repository (under a directory named after the template). Nothing is
// stored: it changes no state, so it is not audited.
func (s *Server) generateTemplate(w http.ResponseWriter, r *http.Request, _ *caller) error {
	name := r.PathValue("name")
	t, err := scaffold.Builtin(name)
	if err != nil {
		return &httpError{http.StatusNotFound, api.Error{Error: err.Error(), Code: api.CodeNotFound}}
	}
	var req templateapi.GenerateRequest
	if err := decode(r, &req, true); err != nil {
		return err
	}
	files, err := t.Render(req.Values)
	var pe *scaffold.ParamError
	switch {
	case errors.As(err, &pe):
		return errBadRequest("values."+pe.Error(), "values."+pe.Name)
	case err != nil:
		return err // a built-in template that renders invalid documents: a bug, logged
	}
	var b bytes.Buffer
	if err := scaffold.WriteTarGz(&b, t.Name, files, s.cfg.Now()); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/gzip")
	w.Header().Set("Content-Disposition", `attachment; filename="`+t.Name+`.tar.gz"`)
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(b.Bytes())
	return err
}
