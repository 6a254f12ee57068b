package web

import (
	"net/http"

	"github.com/patchbay/patchbay/feeds"
)

type feedsData struct {
	Sources    []feeds.SourceState `json:"sources"`
	Ecosystems map[string]int      `json:"ecosystems"`
}

func (u *UI) feeds(w http.ResponseWriter, r *http.Request, s *session) error {
	var d feedsData
	if err := u.call(r.Context(), s, "GET", "/api/v1/feeds", nil, nil, &d); err != nil {
		return err
	}
	u.render(w, r, s, http.StatusOK, "feeds", "Feeds", d)
	return nil
}
