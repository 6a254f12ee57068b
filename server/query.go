package server

import (
	"bufio"
	"cmp"
	"context"
	"crypto/ed25519"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/patchbay/patchbay/advisory"
	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/audit"
	"github.com/patchbay/patchbay/auth"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/inventory"
	"github.com/patchbay/patchbay/patch"
	"github.com/patchbay/patchbay/policy"
	"github.com/patchbay/patchbay/risk"
)

//go:embed openapi.json
var openAPIDoc []byte

func (s *Server) openapi(w http.ResponseWriter, r *http.Request, _ *caller) error {
	w.Header().Set("Content-Type", "application/json")
	_, err := w.Write(openAPIDoc)
	return err
}

// labelWant says what a label filter is, in the errors refusing one.
const labelWant = "want key=value, the key 1 to 63 bytes of letters, digits, '.', '_', '-', '/' (as a label's), each key once"

// labelsParam parses repeated label=k=v parameters: the key is what a
// label's may be (fleet.ValidateLabel), the value anything after the
// first '=' (values are free text: env==x is the value "=x"). A filter
// that no host could match for its form alone is refused, never
// answered with nothing.
func labelsParam(q url.Values) (map[string]string, error) {
	out := map[string]string{}
	for _, l := range q["label"] {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return nil, errBadRequest(fmt.Sprintf("label %q: %s", l, labelWant), "query.label")
		}
		if err := fleet.ValidateLabel(k, v); err != nil {
			return nil, errBadRequest(fmt.Sprintf("label %q: %v; %s", l, err, labelWant), "query.label")
		}
		if prev, dup := out[k]; dup {
			return nil, errBadRequest(fmt.Sprintf("label %q: key %s given twice (also %s=%s); %s", l, k, k, prev, labelWant), "query.label")
		}
		out[k] = v
	}
	return out, nil
}

func timeParam(q url.Values, name string) (time.Time, error) {
	v := q.Get(name)
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return t, errBadRequest(fmt.Sprintf("%s %q: want an RFC 3339 time (2026-11-22T10:00:00Z)", name, v), "query."+name)
	}
	return t, nil
}

func intParam(q url.Values, name string, def, max int) (int, error) {
	v := q.Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || (max > 0 && n > max) {
		return 0, errBadRequest(fmt.Sprintf("%s %q: want a whole number from 0 to %d", name, v, max), "query."+name)
	}
	return n, nil
}

func priorityList(q url.Values) ([]string, error) {
	var out []string
	for _, v := range q["priority"] {
		for _, p := range strings.Split(v, ",") {
			pr, err := risk.ParsePriority(strings.TrimSpace(p))
			if err != nil {
				return nil, errBadRequest(fmt.Sprintf("priority %q: want P1, P2, P3 or P4", p), "query.priority")
			}
			out = append(out, pr.String())
		}
	}
	return out, nil
}

func (s *Server) listHosts(w http.ResponseWriter, r *http.Request, _ *caller) error {
	q := r.URL.Query()
	var f fleet.HostFilter
	var err error
	if f.Labels, err = labelsParam(q); err != nil {
		return err
	}
	f.Ecosystem = q.Get("os")
	if f.SeenAfter, err = timeParam(q, "seen_after"); err != nil {
		return err
	}
	if f.SeenBefore, err = timeParam(q, "seen_before"); err != nil {
		return err
	}
	if f.MinOpen, err = intParam(q, "min_open", 0, 1<<30); err != nil {
		return err
	}
	if ps, err := priorityList(q); err != nil {
		return err
	} else if len(ps) > 1 {
		return errBadRequest("priority: one priority for hosts", "query.priority")
	} else if len(ps) == 1 {
		f.Priority = ps[0]
	}
	f.Clones = q.Get("clones") == "true"
	reboot := q.Get("reboot")
	if reboot != "" && reboot != "true" && reboot != "false" {
		return errBadRequest(fmt.Sprintf("reboot %q: want true or false", reboot), "query.reboot")
	}
	sortBy := q.Get("sort")
	if sortBy != "" && sortBy != "hostname" && sortBy != "open" && sortBy != "last_seen" {
		return errBadRequest(fmt.Sprintf("sort %q: want hostname, open or last_seen", sortBy), "query.sort")
	}
	paged := q.Has("limit") || q.Has("offset")
	limit, err := intParam(q, "limit", 100, 1000)
	if err != nil {
		return err
	}
	offset, err := intParam(q, "offset", 0, 1<<30)
	if err != nil {
		return err
	}
	hosts, err := s.db.Fleet.Hosts(r.Context(), f)
	if err != nil {
		return err
	}
	if reboot != "" {
		want := reboot == "true"
		hosts = slices.DeleteFunc(hosts, func(h fleet.HostSummary) bool { return h.Facts.RebootRequired != want })
	}
	switch sortBy {
	case "open":
		slices.SortStableFunc(hosts, func(a, b fleet.HostSummary) int { return cmp.Compare(b.OpenTotal(), a.OpenTotal()) })
	case "last_seen":
		slices.SortStableFunc(hosts, func(a, b fleet.HostSummary) int { return a.LastSeen.Compare(b.LastSeen) })
	}
	if !paged {
		return writeJSON(w, http.StatusOK, api.HostList{Hosts: hosts})
	}
	// A page: limit hosts after offset, with how many there are.
	total := len(hosts)
	page := hosts[min(offset, total):min(offset+limit, total)]
	return writeJSON(w, http.StatusOK, api.HostList{Hosts: page, Total: &total, Offset: offset})
}

// resolveHost finds the host a path or a query names: by its id, or else
// by its hostname (without regard to case). A hostname several hosts
// share is a conflict naming them, never a guess.
func (s *Server) resolveHost(ctx context.Context, ref, field string) (fleet.HostSummary, error) {
	h, err := s.db.Fleet.HostSummary(ctx, ref)
	if !errors.Is(err, fleet.ErrNotFound) {
		return h, err
	}
	hs, err := s.db.Fleet.Hosts(ctx, fleet.HostFilter{Hostname: ref, Kind: "all"})
	if err != nil {
		return h, err
	}
	switch len(hs) {
	case 0:
		return h, &httpError{http.StatusNotFound, api.Error{Error: fmt.Sprintf("no host with the id or hostname %q", ref), Code: api.CodeNotFound, Field: field}}
	case 1:
		return hs[0], nil
	}
	ids := make([]string, len(hs))
	for i, c := range hs {
		ids[i] = fmt.Sprintf("%s (last seen %s)", c.ID, c.LastSeen.Format(time.RFC3339))
	}
	return h, &httpError{http.StatusConflict, api.Error{Error: fmt.Sprintf("hostname %q names %d hosts: %s; give the id", ref, len(hs), strings.Join(ids, ", ")),
		Code: api.CodeAmbiguous, Field: field}}
}

func (s *Server) getHost(w http.ResponseWriter, r *http.Request, _ *caller) error {
	ctx := r.Context()
	h, err := s.resolveHost(ctx, r.PathValue("id"), "path.id")
	if err != nil {
		return err
	}
	id := h.ID
	d := fleet.HostDetail{HostSummary: h}
	if d.Packages, err = s.db.Fleet.Inventory(ctx, id); err != nil {
		return err
	}
	if d.Packages == nil {
		d.Packages = []inventory.Package{}
	}
	if d.Findings, err = s.db.Findings.List(ctx, id); err != nil {
		return err
	}
	if d.Updates, err = s.db.Fleet.Updates(ctx, id); err != nil {
		return err
	}
	// The policy's classification rules add their types to the agent's.
	set, err := s.Policy(ctx)
	if err != nil {
		return err
	}
	rules := set.ClassRules(set.Context(policy.AssetOf(fleet.AssetOf(h.Host))))
	for i := range d.Updates {
		u := &d.Updates[i]
		for _, t := range patch.Classify(patch.Facts{Package: u.Name, Source: u.SourceName, Pocket: u.Pocket, CVEs: u.CVEs}, rules) {
			if !slices.Contains(u.Types, t) {
				u.Types = append(u.Types, t)
			}
		}
		slices.SortFunc(u.Types, func(a, b patch.Type) int { return slices.Index(patch.Types, a) - slices.Index(patch.Types, b) })
	}
	return writeJSON(w, http.StatusOK, d)
}

func (s *Server) setLabels(w http.ResponseWriter, r *http.Request, c *caller) error {
	var req api.Labels
	if err := decode(r, &req, true); err != nil {
		return err
	}
	// Every label is replaced: clearing them takes {"labels": {}}, never
	// a body that only forgot them (null, {}).
	if req.Labels == nil {
		return errBadRequest(`labels: missing; send {"labels": {...}} (every label of the host; {"labels": {}} clears them)`, "labels")
	}
	if err := fleet.ValidateLabels(req.Labels); err != nil {
		return refused(err)
	}
	target, err := s.resolveHost(r.Context(), r.PathValue("id"), "path.id")
	if err != nil {
		return err
	}
	id := target.ID
	if err := s.db.Fleet.SetLabels(r.Context(), id, req.Labels); err != nil {
		return err
	}
	if _, err := s.db.Audit.Append(r.Context(), c.actor(), "host.labels", "host/"+id, req.Labels); err != nil {
		return err
	}
	if _, err := s.Reprioritize(context.WithoutCancel(r.Context()), fleet.Scope{HostIDs: []string{id}},
		fmt.Sprintf("labels of host %s set by %s: %s", id, c.actor(), labelList(req.Labels))); err != nil {
		return err
	}
	h, err := s.db.Fleet.HostSummary(r.Context(), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, h)
}

// revokeHost revokes a host's credentials: its next check-in is refused.
func (s *Server) revokeHost(w http.ResponseWriter, r *http.Request, c *caller) error {
	ctx := r.Context()
	h, err := s.resolveHost(ctx, r.PathValue("id"), "path.id")
	if err != nil {
		return err
	}
	id := h.ID
	toks, err := s.db.Tokens.List(ctx)
	if err != nil {
		return err
	}
	var revoked []string
	for _, t := range toks {
		if t.Kind == auth.KindHost && t.Subject == id && !t.Revoked {
			if err := s.db.Tokens.RevokeAt(ctx, t.ID, s.cfg.Now().UTC()); errors.Is(err, auth.ErrRevoked) {
				continue // revoked meanwhile, by another request
			} else if err != nil {
				return err
			}
			revoked = append(revoked, t.ID)
		}
	}
	if _, err := s.db.Audit.Append(ctx, c.actor(), "host.revoke", "host/"+id, map[string]any{"credentials": revoked}); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"host_id": id, "revoked": revoked})
}

func (s *Server) listFindings(w http.ResponseWriter, r *http.Request, _ *caller) error {
	q := r.URL.Query()
	f := fleet.FindingFilter{Status: fleet.FindingStatus(q.Get("status")), HostID: q.Get("host"), Ecosystem: q.Get("ecosystem"),
		Vulnerability: q.Get("vuln"), Package: q.Get("package"), Overdue: q.Get("overdue") == "true", Now: s.cfg.Now(), After: q.Get("cursor"),
		Lane: q.Get("lane"), Team: q.Get("team"), Service: q.Get("service")}
	switch f.Status {
	case "", fleet.StatusOpen, fleet.StatusOverdue, fleet.StatusAccepted, fleet.StatusNotAffected, fleet.StatusUnremediated, fleet.StatusRemediated, fleet.StatusAll:
	default:
		return errBadRequest(fmt.Sprintf("status %q: want open, overdue, accepted, not_affected, unremediated, remediated or all", f.Status), "query.status")
	}
	switch f.Lane {
	case "", "emergency":
	default:
		return errBadRequest(fmt.Sprintf("lane %q: want emergency", f.Lane), "query.lane")
	}
	sortBy, ok := fleet.ParseFindingSort(q.Get("sort"))
	if !ok {
		return errBadRequest(fmt.Sprintf("sort %q: want urgency, priority, due, first_seen or -first_seen", q.Get("sort")), "query.sort")
	}
	f.Sort = sortBy
	if f.HostID != "" {
		h, err := s.resolveHost(r.Context(), f.HostID, "query.host")
		if err != nil {
			return err
		}
		f.HostID = h.ID
	}
	var err error
	if f.Priorities, err = priorityList(q); err != nil {
		return err
	}
	if f.Limit, err = intParam(q, "limit", 100, 1000); err != nil {
		return err
	}
	labels, err := labelsParam(q)
	if err != nil {
		return err
	}
	var hostIDs []string
	if len(labels) > 0 {
		hosts, err := s.db.Fleet.Hosts(r.Context(), fleet.HostFilter{Labels: labels, Kind: "all"})
		if err != nil {
			return err
		}
		hostIDs = make([]string, 0, len(hosts))
		for _, h := range hosts {
			hostIDs = append(hostIDs, h.ID)
		}
	}
	if f.Team != "" || f.Service != "" {
		ids, err := s.teamServiceHosts(r.Context(), f.Team, f.Service)
		if err != nil {
			return err
		}
		if hostIDs != nil {
			ids = slices.DeleteFunc(ids, func(id string) bool { return !slices.Contains(hostIDs, id) })
		}
		hostIDs = ids
	}
	page, err := s.db.Findings.Query(r.Context(), f, hostIDs)
	if errors.Is(err, fleet.ErrBadCursor) {
		return errBadRequest("cursor: not a cursor this server returned", "query.cursor")
	}
	if err != nil {
		return err
	}
	if err := s.withReasons(r.Context(), page.Findings); err != nil {
		return err
	}
	if err := s.withServices(r.Context(), page.Findings); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, page)
}

func labelList(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		keys[i] = k + "=" + m[k]
	}
	if len(keys) == 0 {
		return "(none)"
	}
	return strings.Join(keys, ",")
}

// exploitation adds KEV and EPSS to vulnerabilities named by a CVE.
func (s *Server) exploitation(r *http.Request, vs []fleet.Vulnerability) error {
	var cves []string
	for _, v := range vs {
		if c := advisory.CVEOf(v.ID); c != "" {
			cves = append(cves, c)
		}
	}
	kev, epss, err := s.db.Exploitation(r.Context(), cves)
	if err != nil {
		return err
	}
	for i := range vs {
		c := advisory.CVEOf(vs[i].ID)
		if e, ok := kev[c]; ok {
			vs[i].KEV = true
			if !e.DueDate.IsZero() {
				vs[i].KEVDue = e.DueDate.Format(time.DateOnly)
			}
		}
		if e, ok := epss[c]; ok {
			p, pc := e.Probability, e.Percentile
			vs[i].EPSS, vs[i].Percentile = &p, &pc
		}
	}
	return nil
}

func (s *Server) listVulns(w http.ResponseWriter, r *http.Request, _ *caller) error {
	q := r.URL.Query()
	limit, err := intParam(q, "limit", 0, 1<<30)
	if err != nil {
		return err
	}
	vs, err := s.db.Findings.Vulnerabilities(r.Context())
	if err != nil {
		return err
	}
	if ps, err := priorityList(q); err != nil {
		return err
	} else if len(ps) > 0 {
		keep := vs[:0]
		for _, v := range vs {
			for _, p := range ps {
				if v.Priority == p {
					keep = append(keep, v)
					break
				}
			}
		}
		vs = keep
	}
	if limit > 0 && len(vs) > limit {
		vs = vs[:limit]
	}
	if err := s.exploitation(r, vs); err != nil {
		return err
	}
	if q.Get("kev") == "true" {
		keep := vs[:0]
		for _, v := range vs {
			if v.KEV {
				keep = append(keep, v)
			}
		}
		vs = keep
	}
	return writeJSON(w, http.StatusOK, api.VulnList{Vulnerabilities: vs})
}

func (s *Server) getVuln(w http.ResponseWriter, r *http.Request, _ *caller) error {
	id := r.PathValue("id")
	v, ok, err := s.db.Findings.Vulnerability(r.Context(), id)
	if err != nil {
		return err
	}
	if !ok {
		return errNotFound("vulnerability " + id + ": no host has or had it")
	}
	if len(v.HostIDs) > 0 {
		hs, err := s.db.Fleet.Hosts(r.Context(), fleet.HostFilter{Kind: "all"})
		if err != nil {
			return err
		}
		names := make(map[string]string, len(hs))
		for _, h := range hs {
			names[h.ID] = h.Hostname
		}
		for _, id := range v.HostIDs {
			v.AffectedHosts = append(v.AffectedHosts, fleet.HostRef{ID: id, Hostname: names[id]})
		}
	}
	vs := []fleet.Vulnerability{v}
	if err := s.exploitation(r, vs); err != nil {
		return err
	}
	d := api.VulnDetail{Vulnerability: vs[0]}
	if c := advisory.CVEOf(v.ID); c != "" {
		enr, err := s.db.Enrichment(r.Context(), []string{c})
		if err != nil {
			return err
		}
		if e, ok := enr[c]; ok {
			d.Enrichment = &e
		}
	}
	return writeJSON(w, http.StatusOK, d)
}

func (s *Server) feedStatus(w http.ResponseWriter, r *http.Request, _ *caller) error {
	srcs, err := s.db.Sources(r.Context())
	if err != nil {
		return err
	}
	counts, err := s.db.EcosystemCounts(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"sources": srcs, "ecosystems": counts})
}

// refreshNow refreshes the feeds and rematches, on this replica, now.
// Imports are idempotent and transactional, so a refresh racing the
// leader's does no harm. The caller is the actor of its audit entry.
func (s *Server) refreshNow(w http.ResponseWriter, r *http.Request, c *caller) error {
	if !s.feedSource().enabled() {
		return errConflict("no_feeds", "this server has no feed source (start it with --feeds-dir, --feeds-sync or --feeds-mirror)")
	}
	res, err := s.refreshFeedsAs(r.Context(), fleet.Fence{}, c.actor())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, res)
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request, _ *caller) error {
	toks, err := s.db.Tokens.List(r.Context())
	if err != nil {
		return err
	}
	if toks == nil {
		toks = []auth.Token{}
	}
	return writeJSON(w, http.StatusOK, map[string]any{"tokens": toks})
}

// maxTTLSeconds bounds a token's lifetime: 10 years (a longer one would
// overflow time.Duration and expire in the past).
const maxTTLSeconds = 10 * 365 * 24 * 60 * 60

// maxTokenName bounds a token's name.
const maxTokenName = 255

func (s *Server) createToken(w http.ResponseWriter, r *http.Request, c *caller) error {
	var req api.TokenRequest
	if err := decode(r, &req, true); err != nil {
		return err
	}
	if len(req.Name) > maxTokenName {
		return errBadRequest(fmt.Sprintf("name: %d bytes, at most %d", len(req.Name), maxTokenName), "name")
	}
	now := s.cfg.Now().UTC()
	t := auth.Token{Kind: req.Kind, Name: req.Name, Created: now, UsesLeft: -1}
	switch req.Kind {
	case "", auth.KindAPI:
		t.Kind = auth.KindAPI
		role, err := auth.ParseRole(string(req.Role))
		if err != nil || role == auth.Agent {
			return errBadRequest(fmt.Sprintf("role %q: want admin, operator or viewer", req.Role), "role")
		}
		t.Role = role
	case auth.KindEnrollment:
		t.Role = auth.Agent
		if req.Uses == 0 || req.Uses < -1 {
			return errBadRequest(fmt.Sprintf("uses %d: want a positive number, or -1 for unlimited", req.Uses), "uses")
		}
		t.UsesLeft = req.Uses
		if req.TTLSeconds == 0 {
			req.TTLSeconds = int64((24 * time.Hour) / time.Second)
		}
	default:
		return errBadRequest(fmt.Sprintf("kind %q: want api or enrollment", req.Kind), "kind")
	}
	if req.TTLSeconds < 0 || req.TTLSeconds > maxTTLSeconds {
		return errBadRequest(fmt.Sprintf("ttl_seconds %d: want 0 (no expiry; 24 hours for an enrollment token) to %d (10 years)", req.TTLSeconds, int64(maxTTLSeconds)), "ttl_seconds")
	}
	if req.TTLSeconds > 0 {
		t.Expires = now.Add(time.Duration(req.TTLSeconds) * time.Second)
	}
	secret, id, hash, err := auth.NewSecret()
	if err != nil {
		return err
	}
	t.ID = id
	if err := s.db.Tokens.Create(r.Context(), t, hash); err != nil {
		return err
	}
	if _, err := s.db.Audit.Append(r.Context(), c.actor(), "token.create", "token/"+id, t); err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, api.TokenResponse{Token: t, Secret: secret})
}

// revokeToken revokes a token once: revoking it again is a conflict that
// says when it was revoked (the caller may have the wrong id, or raced a
// colleague), with no second audit entry; an unknown id is not found.
func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request, c *caller) error {
	id := r.PathValue("id")
	var already *auth.AlreadyRevokedError
	if err := s.db.Tokens.RevokeAt(r.Context(), id, s.cfg.Now().UTC()); errors.Is(err, auth.ErrUnknown) {
		return errNotFound("token " + id + ": no such token")
	} else if errors.As(err, &already) {
		return errConflict(api.CodeConflict, already.Error())
	} else if err != nil {
		return err
	}
	if _, err := s.db.Audit.Append(r.Context(), c.actor(), "token.revoke", "token/"+id, nil); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// exportAudit writes the audit log as JSON Lines.
func (s *Server) exportAudit(w http.ResponseWriter, r *http.Request, _ *caller) error {
	es, err := s.db.Audit.Entries(r.Context())
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/jsonl")
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	for _, e := range es {
		if err := enc.Encode(e); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// auditKey returns the public key this server signs checkpoints with, so
// a client verifies them itself.
func (s *Server) auditKey(w http.ResponseWriter, r *http.Request, _ *caller) error {
	if s.cfg.AuditKey == nil {
		return errConflict("no_audit_key", "this server has no audit-signing key")
	}
	pub := s.cfg.AuditKey.Public().(ed25519.PublicKey)
	return writeJSON(w, http.StatusOK, api.AuditKey{Algorithm: "ed25519", PublicKey: hex.EncodeToString(pub)})
}

// checkpointNow signs the chain head now and returns the checkpoint, for
// the caller to keep outside the server. A broken chain is not signed.
func (s *Server) checkpointNow(w http.ResponseWriter, r *http.Request, _ *caller) error {
	if s.cfg.AuditKey == nil {
		return errConflict("no_audit_key", "this server has no audit-signing key")
	}
	es, err := s.db.Audit.Entries(r.Context())
	if err != nil {
		return err
	}
	if err := audit.Verify(es, nil); err != nil {
		return errConflict("audit_broken", "refusing to checkpoint a broken chain: "+err.Error())
	}
	return writeJSON(w, http.StatusOK, audit.NewCheckpoint(es, s.cfg.Now().UTC(), s.cfg.AuditKey))
}
