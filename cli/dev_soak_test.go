package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/fleet"
)

// TestSimReadHostsPages: the soak's read-back asks for pages the server
// allows (at most 1000) and reads every host of a fleet larger than one.
func TestSimReadHostsPages(t *testing.T) {
	t.Parallel()
	const n = 2345
	var pages int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limit, err1 := strconv.Atoi(r.URL.Query().Get("limit"))
		offset, err2 := strconv.Atoi(r.URL.Query().Get("offset"))
		if r.URL.Path != api.Prefix+"/hosts" || err1 != nil || err2 != nil || limit < 1 || limit > 1000 || offset < 0 {
			http.Error(w, `{"error":"bad page"}`, http.StatusBadRequest)
			return
		}
		pages++
		total := n
		hl := api.HostList{Total: &total, Offset: offset, Hosts: []fleet.HostSummary{}}
		for i := offset; i < min(n, offset+limit); i++ {
			hl.Hosts = append(hl.Hosts, fleet.HostSummary{Host: fleet.Host{ID: fmt.Sprintf("h%d", i)}})
		}
		json.NewEncoder(w).Encode(hl)
	}))
	defer srv.Close()
	seen, err := simReadHosts(context.Background(), &api.Client{Base: srv.URL, Token: "t", HTTP: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != n || pages != 3 {
		t.Fatalf("read %d hosts in %d pages, want %d in 3", len(seen), pages, n)
	}
	if _, ok := seen["h2344"]; !ok {
		t.Fatal("the last page was not read")
	}
}
