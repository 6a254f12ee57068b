package web

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/patchbay/patchbay/api/rolloutapi"
)

// schedules lists the PatchSchedules.
func (u *UI) schedules(w http.ResponseWriter, r *http.Request, s *session) error {
	var list rolloutapi.ScheduleList
	if err := u.call(r.Context(), s, "GET", "/api/v1/schedules", nil, nil, &list); err != nil {
		return err
	}
	u.render(w, r, s, http.StatusOK, "schedules", "Schedules", list)
	return nil
}

// schedule shows a schedule: its next openings with what each would
// patch now and why the rest is left out, its emergency lane, its runs,
// and the pause and resume buttons.
func (u *UI) schedule(w http.ResponseWriter, r *http.Request, s *session) error {
	var st rolloutapi.ScheduleStatus
	name := r.PathValue("name")
	if err := u.call(r.Context(), s, "GET", "/api/v1/schedules/"+url.PathEscape(name), nil, nil, &st); err != nil {
		return err
	}
	u.render(w, r, s, http.StatusOK, "schedule", "Schedule "+st.Name, st)
	return nil
}

// scheduleAction pauses or resumes a schedule through the API as the
// logged-in person, with the reason given.
func (u *UI) scheduleAction(w http.ResponseWriter, r *http.Request, s *session) error {
	name, action := r.PathValue("name"), r.PathValue("action")
	if action != "pause" && action != "resume" {
		return badInput{"schedule action " + action + ": want pause or resume"}
	}
	body := map[string]string{"reason": strings.TrimSpace(r.PostFormValue("reason"))}
	if err := u.call(r.Context(), s, "POST", "/api/v1/schedules/"+url.PathEscape(name)+"/"+action, nil, body, nil); err != nil {
		return err
	}
	u.log.Info("schedule action", "schedule", name, "action", action, "user", s.User)
	http.Redirect(w, r, "/schedules/"+url.PathEscape(name), http.StatusSeeOther)
	return nil
}
