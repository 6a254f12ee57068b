package web

import (
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/patchbay/patchbay/api/templateapi"
	"github.com/patchbay/patchbay/scaffold"
)

// templateField is one parameter of the form, with the value shown.
type templateField struct {
	scaffold.ParamInfo
	Value string
	Bad   bool
}

type templatesData struct {
	Templates []scaffold.Info
	Current   *scaffold.Info
	Fields    []templateField
	// Error is the API's refusal of the last generation.
	Error string
	// Command is the patchbay init line that writes the same repository.
	Command string
}

// templates lists the templates of `patchbay init` and shows the form of
// one (?name=, the first by default) to generate a repository from.
func (u *UI) templates(w http.ResponseWriter, r *http.Request, s *session) error {
	d, err := u.templatesData(r, s, r.URL.Query().Get("name"))
	if err != nil {
		return err
	}
	if d.Current != nil {
		d.Command = initCommand(d.Current.Name, d.Fields)
	}
	u.render(w, r, s, http.StatusOK, "templates", "Templates", d)
	return nil
}

func (u *UI) templatesData(r *http.Request, s *session, name string) (*templatesData, error) {
	var tl templateapi.TemplateList
	if err := u.call(r.Context(), s, "GET", "/api/v1/templates", nil, nil, &tl); err != nil {
		return nil, err
	}
	d := &templatesData{Templates: tl.Templates}
	for i := range tl.Templates {
		if tl.Templates[i].Name == name || (name == "" && i == 0) {
			d.Current = &tl.Templates[i]
		}
	}
	if d.Current == nil && name != "" {
		return nil, badInput{"no template " + url.QueryEscape(name)}
	}
	if d.Current != nil {
		for _, p := range d.Current.Parameters {
			f := templateField{ParamInfo: p}
			if p.Default != nil {
				f.Value = *p.Default
			}
			d.Fields = append(d.Fields, f)
		}
	}
	return d, nil
}

// generateTemplate sends the form's values to the API and answers the
// repository as a download; a refused value shows the form again with
// the values entered and the parameter marked.
func (u *UI) generateTemplate(w http.ResponseWriter, r *http.Request, s *session) error {
	name := r.PathValue("name")
	d, err := u.templatesData(r, s, name)
	if err != nil {
		return err
	}
	if d.Current == nil {
		return badInput{"no template " + name}
	}
	values := map[string]string{}
	for i := range d.Fields {
		f := &d.Fields[i]
		v := strings.TrimSpace(r.PostFormValue("p." + f.Name))
		f.Value = v
		if v != "" || f.Default == nil {
			values[f.Name] = v
		}
	}
	raw, err := u.callRaw(r.Context(), s, "POST", "/api/v1/templates/"+url.PathEscape(name)+"/generate", nil, templateapi.GenerateRequest{Values: values})
	if ae, ok := refusal(err); ok && ae.Status == http.StatusBadRequest {
		d.Error = strings.TrimPrefix(ae.Body.Error, "values.") // the API's field path; people know the parameter
		bad := strings.TrimPrefix(ae.Body.Field, "values.")
		for i := range d.Fields {
			d.Fields[i].Bad = d.Fields[i].Name == bad
		}
		d.Command = initCommand(name, d.Fields)
		u.render(w, r, s, http.StatusBadRequest, "templates", "Templates", d)
		return nil
	} else if err != nil {
		return err
	}
	u.log.Info("template generated", "template", name, "user", s.User)
	w.Header().Set("Content-Type", "application/gzip")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`.tar.gz"`)
	w.Write(raw)
	return nil
}

// initCommand is the patchbay init command line of the values that are
// not the defaults, shell-quoted where they need it.
func initCommand(name string, fields []templateField) string {
	var sets []string
	for _, f := range fields {
		if f.Default != nil && f.Value == *f.Default {
			continue
		}
		kv := f.Name + "=" + f.Value
		if strings.ContainsAny(kv, " *#?'\"$;&|<>()[]{}\\") {
			kv = "'" + strings.ReplaceAll(kv, "'", `'\''`) + "'"
		}
		sets = append(sets, "--set "+kv)
	}
	sort.Strings(sets)
	return strings.TrimSpace("patchbay init " + name + "/ --template " + name + " " + strings.Join(sets, " "))
}
