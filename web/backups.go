package web

import (
	"net/http"

	"github.com/patchbay/patchbay/api"
)

// backups shows the scheduled backups: the schedule, the last success
// and error, every archive with its verification; an admin takes one
// now. The API allows both to admins only.
func (u *UI) backups(w http.ResponseWriter, r *http.Request, s *session) error {
	var st api.BackupStatus
	if err := u.call(r.Context(), s, "GET", "/api/v1/backups", nil, nil, &st); err != nil {
		return err
	}
	u.render(w, r, s, http.StatusOK, "backups", "Backups", st)
	return nil
}

// backupNow takes a backup through the API and shows the list again.
func (u *UI) backupNow(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := u.call(r.Context(), s, "POST", "/api/v1/backups", nil, nil, nil); err != nil {
		return err
	}
	u.log.Info("backup taken", "user", s.User)
	http.Redirect(w, r, "/backups", http.StatusSeeOther)
	return nil
}
