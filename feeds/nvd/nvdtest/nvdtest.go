// Package nvdtest serves NVD CVE records the way the CVE API 2.0 pages them,
// for tests of the NVD client and of feed syncs (on loopback, under
// httptest).
package nvdtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/patchbay/patchbay/feeds/nvd"
)

// APIServer serves NVD CVE objects the way the CVE API 2.0 pages them
// (startIndex, resultsPerPage, lastModStartDate/lastModEndDate, at most
// nvd.MaxWindow apart, both or neither), for tests of Fetch and of feed
// syncs: it is an http.Handler to run under httptest on loopback.
type APIServer struct {
	mu sync.Mutex
	// cves are raw cve objects with their lastModified, sorted by it.
	cves []apiCVE
	// MaxPage caps resultsPerPage, as the API does (2000).
	MaxPage int
	// Requests counts the requests served.
	Requests int
	// Queries records each request's query string.
	Queries []string
}

type apiCVE struct {
	id  string
	mod time.Time
	raw json.RawMessage
}

// NewAPIServer serves the cve objects of an API 2.0 document.
func NewAPIServer(doc []byte) (*APIServer, error) {
	var w struct {
		Vulnerabilities []struct {
			CVE json.RawMessage `json:"cve"`
		} `json:"vulnerabilities"`
	}
	if err := json.Unmarshal(doc, &w); err != nil {
		return nil, err
	}
	s := &APIServer{MaxPage: 2000}
	for _, v := range w.Vulnerabilities {
		if err := s.put(v.CVE); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Put adds or replaces a cve object.
func (s *APIServer) Put(raw json.RawMessage) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.put(raw)
}

func (s *APIServer) put(raw json.RawMessage) error {
	var head struct {
		ID           string `json:"id"`
		LastModified string `json:"lastModified"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return err
	}
	mod, err := nvd.ParseTime(head.LastModified)
	if err != nil {
		return fmt.Errorf("%s: %w", head.ID, err)
	}
	for i, c := range s.cves {
		if c.id == head.ID {
			s.cves = append(s.cves[:i], s.cves[i+1:]...)
			break
		}
	}
	s.cves = append(s.cves, apiCVE{id: head.ID, mod: mod, raw: raw})
	sort.SliceStable(s.cves, func(i, j int) bool { return s.cves[i].mod.Before(s.cves[j].mod) })
	return nil
}

func (s *APIServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Requests++
	q := r.URL.Query()
	s.Queries = append(s.Queries, r.URL.RawQuery)
	bad := func(msg string) {
		w.Header().Set("Message", msg)
		w.WriteHeader(http.StatusNotFound) // what NVD answers to bad parameters
	}
	start, err := strconv.Atoi(q.Get("startIndex"))
	if err != nil || start < 0 {
		start = 0
	}
	size, err := strconv.Atoi(q.Get("resultsPerPage"))
	if err != nil || size <= 0 || size > s.MaxPage {
		size = s.MaxPage
	}
	var from, to time.Time
	if (q.Get("lastModStartDate") == "") != (q.Get("lastModEndDate") == "") {
		bad("Both lastModStartDate and lastModEndDate are required when either is present.")
		return
	}
	if q.Get("lastModStartDate") != "" {
		if from, err = nvd.ParseTime(q.Get("lastModStartDate")); err != nil {
			bad("Invalid lastModStartDate")
			return
		}
		if to, err = nvd.ParseTime(q.Get("lastModEndDate")); err != nil {
			bad("Invalid lastModEndDate")
			return
		}
		if to.Sub(from) > nvd.MaxWindow {
			bad("The lastMod date range must not exceed 120 days.")
			return
		}
	}
	var sel []json.RawMessage
	for _, c := range s.cves {
		if !from.IsZero() && (c.mod.Before(from) || c.mod.After(to)) {
			continue
		}
		sel = append(sel, c.raw)
	}
	page := []map[string]json.RawMessage{}
	for i := start; i < len(sel) && i < start+size; i++ {
		page = append(page, map[string]json.RawMessage{"cve": sel[i]})
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"resultsPerPage": len(page), "startIndex": start, "totalResults": len(sel),
		"format": "NVD_CVE", "version": "2.0", "timestamp": time.Now().UTC().Format("2006-01-02T15:04:05.000"),
		"vulnerabilities": page,
	})
}
