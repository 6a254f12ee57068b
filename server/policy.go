package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/patchbay/patchbay/advisory"
	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/api/policyapi"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/inventory"
	"github.com/patchbay/patchbay/policy"
	"github.com/patchbay/patchbay/risk"
	"github.com/patchbay/patchbay/rollout"
	"github.com/patchbay/patchbay/scan"
)

// policyCache holds the applied policy, reloaded when another replica
// changes it (its revision is checked at most every two seconds).
type policyCache struct {
	mu      sync.Mutex
	set     *policy.Set
	checked time.Time
	// exceptionsChecked is when the leader last compared the exceptions
	// findings were decided with against the policy's.
	exceptionsChecked time.Time
}

// Policy returns the applied policy set.
func (s *Server) Policy(ctx context.Context) (*policy.Set, error) {
	s.pol.mu.Lock()
	defer s.pol.mu.Unlock()
	if s.pol.set != nil && time.Since(s.pol.checked) < 2*time.Second {
		return s.pol.set, nil
	}
	rev, err := s.db.Policy.Revision(ctx)
	if err != nil {
		return nil, err
	}
	if s.pol.set != nil && s.pol.set.Revision() == rev {
		s.pol.checked = time.Now()
		return s.pol.set, nil
	}
	applied, err := s.db.Policy.Documents(ctx, s.cfg.Kinds)
	if err != nil {
		return nil, err
	}
	docs := make([]*policy.Document, len(applied))
	for i, a := range applied {
		docs[i] = a.Doc
	}
	set, err := policy.NewSet(docs)
	if err != nil {
		// Applies are validated as a whole; a stored set that fails is a
		// bug, not the users' input.
		return nil, fmt.Errorf("applied policy (revision %d): %w", rev, err)
	}
	s.pol.set, s.pol.checked = set.WithRevision(rev), time.Now()
	return s.pol.set, nil
}

func (s *Server) invalidatePolicy() {
	s.pol.mu.Lock()
	s.pol.set = nil
	s.pol.mu.Unlock()
}

// triage decides findings with a policy set.
// triage returns the decider of the current policy.
func (s *Server) triage(ctx context.Context) (fleet.Triage, error) {
	set, err := s.Policy(ctx)
	if err != nil {
		return nil, err
	}
	return policy.Triage{Set: set}, nil
}

// Reprioritize decides the findings in scope again with the current
// policy; with the whole fleet in scope and no new evidence, it records
// the policy revision as decided.
func (s *Server) Reprioritize(ctx context.Context, scope fleet.Scope, cause string) (fleet.ReprioritizeResult, error) {
	if scope.HostIDs == nil && scope.Evidence == nil {
		// One fleet-wide pass at a time in this process (an apply's and
		// the leader's would only slow each other down).
		select {
		case s.fleetWide <- struct{}{}:
			defer func() { <-s.fleetWide }()
		case <-ctx.Done():
			return fleet.ReprioritizeResult{}, ctx.Err()
		}
	}
	set, err := s.Policy(ctx)
	if err != nil {
		return fleet.ReprioritizeResult{}, err
	}
	start := time.Now()
	r, err := s.matcher(policy.Triage{Set: set}).Reprioritize(ctx, scope, s.cfg.Now().UTC(), cause)
	if err != nil {
		return r, fmt.Errorf("re-decide findings: %w", err)
	}
	s.log.Info("findings decided again", "cause", cause, "hosts", r.Hosts, "findings", r.Findings, "changed", r.Changed, "took", time.Since(start))
	if scope.HostIDs == nil && scope.Evidence == nil {
		err = s.db.Policy.SetDecided(ctx, set.Revision())
	}
	return r, err
}

// applyPolicy validates every document of every file, then applies them
// (and the deletions) in one transaction, and decides the findings again.
func (s *Server) applyPolicy(w http.ResponseWriter, r *http.Request, c *caller) error {
	var req policyapi.ApplyRequest
	if err := decode(r, &req, true); err != nil {
		return err
	}
	var docs []*policy.Document
	var problems policy.Errors
	for i, f := range req.Files {
		if f.Name == "" {
			return errBadRequest(fmt.Sprintf("files[%d].name: missing", i), fmt.Sprintf("files[%d].name", i))
		}
		ds, err := s.cfg.Kinds.ParseFile(f.Name, []byte(f.Content))
		if es := policy.AsErrors(err); es != nil {
			problems = append(problems, es...)
			continue
		} else if err != nil {
			return err
		}
		for _, d := range ds {
			if d.Kind == rollout.KindPatchPlan {
				problems = append(problems, &policy.FieldError{Pos: policy.Pos{File: f.Name}, Path: "kind",
					Message: "PatchPlan/" + d.Metadata.Name + " is not policy: create the plan with `patchbay plan create -f " + f.Name + "`"})
			}
		}
		docs = append(docs, ds...)
	}
	var deletes []string
	for i, ref := range req.Delete {
		kind, name, ok := strings.Cut(ref, "/")
		k, err := s.cfg.Kinds.Canonical(kind)
		if !ok || err != nil || name == "" {
			return errBadRequest(fmt.Sprintf("delete[%d]: %q: want Kind/name", i, ref), fmt.Sprintf("delete[%d]", i))
		}
		deletes = append(deletes, k+"/"+name)
	}
	if len(problems) > 0 {
		return invalidPolicy(problems)
	}
	if len(docs)+len(deletes) == 0 {
		return errBadRequest("nothing to apply: no documents in the files, no deletions", "files")
	}
	ctx := r.Context()
	current, err := s.db.Policy.Documents(ctx, s.cfg.Kinds)
	if err != nil {
		return err
	}
	changes, _, err := policy.Diff(current, docs, deletes)
	if es := policy.AsErrors(err); es != nil {
		return invalidPolicy(es)
	} else if err != nil {
		return err
	}
	resp := policyapi.ApplyResponse{DryRun: req.DryRun, Changes: changes}
	if req.DryRun {
		return writeJSON(w, http.StatusOK, resp)
	}
	if err := s.db.Policy.Apply(ctx, changes, c.actor(), s.cfg.Now().UTC()); errors.Is(err, policy.ErrConflict) {
		return errConflict(api.CodeConflict, err.Error())
	} else if err != nil {
		return err
	}
	s.invalidatePolicy()
	// The cause names what decides priorities first: policies, then
	// exceptions, services, host groups and teams.
	rank := map[string]int{policy.KindPolicy: 0, policy.KindException: 1, policy.KindService: 2, policy.KindHostGroup: 3, policy.KindTeam: 4}
	ordered := slices.Clone(changes)
	slices.SortStableFunc(ordered, func(a, b policy.Change) int { return rank[a.Kind] - rank[b.Kind] })
	var changed []string
	for _, ch := range ordered {
		if ch.Action != policy.Unchanged {
			changed = append(changed, fmt.Sprintf("%s %s (v%d)", ch.Ref(), ch.Action, ch.Version))
		}
	}
	if len(changed) > 0 {
		// Findings are decided again in the request, up to a minute; a
		// larger fleet's leader finishes (Reconcile) and the response says
		// so.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ApplyWait)
		defer cancel()
		rr, err := s.Reprioritize(rctx, fleet.Scope{}, fmt.Sprintf("policy applied by %s: %s", c.actor(), shortList(changed, 5)))
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			resp.Pending = true
		case err != nil:
			return fmt.Errorf("policy applied, but %w (the leader retries)", err)
		}
		resp.Reprioritized = &rr
	}
	s.markScores(r.Context(), "policy")
	return writeJSON(w, http.StatusOK, resp)
}

func shortList(xs []string, n int) string {
	if len(xs) <= n {
		return strings.Join(xs, ", ")
	}
	return strings.Join(xs[:n], ", ") + fmt.Sprintf(" and %d more", len(xs)-n)
}

func invalidPolicy(es policy.Errors) error {
	msg := fmt.Sprintf("%d problem(s) in the policy documents; nothing was applied", len(es))
	problems := make([]api.Problem, len(es))
	for i, e := range es {
		problems[i] = api.Problem{Pos: api.Pos{File: e.Pos.File, Line: e.Pos.Line, Column: e.Pos.Column}, Path: e.Path, Message: e.Message}
	}
	return &httpError{http.StatusBadRequest, api.Error{Error: msg, Code: api.CodeInvalidPolicy, Problems: problems}}
}

// listPolicy returns applied documents: ?kind= and ?name= narrow.
func (s *Server) listPolicy(w http.ResponseWriter, r *http.Request, _ *caller) error {
	q := r.URL.Query()
	kind := q.Get("kind")
	if kind != "" {
		k, err := s.cfg.Kinds.Canonical(kind)
		if err != nil {
			return errBadRequest(err.Error(), "query.kind")
		}
		kind = k
	}
	name := q.Get("name")
	applied, err := s.db.Policy.Documents(r.Context(), s.cfg.Kinds)
	if err != nil {
		return err
	}
	out := policyapi.PolicyList{Documents: []policyapi.PolicyDocument{}}
	if out.Revision, err = s.db.Policy.Revision(r.Context()); err != nil {
		return err
	}
	if out.Decided, err = s.db.Policy.Decided(r.Context()); err != nil {
		return err
	}
	for _, a := range applied {
		if (kind != "" && a.Doc.Kind != kind) || (name != "" && a.Doc.Metadata.Name != name) {
			continue
		}
		canon, err := policy.Canonical(a.Doc)
		if err != nil {
			return err
		}
		out.Documents = append(out.Documents, policyapi.PolicyDocument{Kind: a.Doc.Kind, Name: a.Doc.Metadata.Name, Version: a.Version,
			AppliedAt: a.AppliedAt, AppliedBy: a.AppliedBy, Document: canon})
	}
	if name != "" && len(out.Documents) == 0 {
		return errNotFound(fmt.Sprintf("%s/%s: not applied", kind, name))
	}
	return writeJSON(w, http.StatusOK, out)
}

// policyHistory returns every version of a kind's documents (?name=).
func (s *Server) policyHistory(w http.ResponseWriter, r *http.Request, _ *caller) error {
	q := r.URL.Query()
	kind, err := s.cfg.Kinds.Canonical(q.Get("kind"))
	if err != nil {
		return errBadRequest(err.Error(), "query.kind")
	}
	vs, err := s.db.Policy.History(r.Context(), kind, q.Get("name"))
	if err != nil {
		return err
	}
	out := policyapi.PolicyHistory{Versions: []policyapi.PolicyVersion{}}
	for _, v := range vs {
		pv := policyapi.PolicyVersion{Kind: v.Kind, Name: v.Name, Version: v.Version, Action: v.Action, AppliedAt: v.AppliedAt, AppliedBy: v.AppliedBy}
		if v.Doc != "" {
			pv.Document = []byte(v.Doc)
		}
		out.Versions = append(out.Versions, pv)
	}
	return writeJSON(w, http.StatusOK, out)
}

// getFinding explains one finding.
func (s *Server) getFinding(w http.ResponseWriter, r *http.Request, _ *caller) error {
	ctx := r.Context()
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return errBadRequest(fmt.Sprintf("finding id %q: want a positive integer", r.PathValue("id")), "path.id")
	}
	f, history, err := s.db.Findings.Finding(ctx, id)
	if err != nil {
		return err
	}
	h, err := s.db.Fleet.HostSummary(ctx, f.HostID)
	if err != nil {
		return err
	}
	set, err := s.Policy(ctx)
	if err != nil {
		return err
	}
	a := fleet.AssetOf(h.Host)
	pc := set.Context(policy.AssetOf(a))
	d := policyapi.FindingDetail{Finding: f, Hostname: h.Hostname, Context: pc, Decision: set.Decide(policy.InputsOf(f), pc, s.cfg.Now()), History: history}
	// The vulnerability's own evidence, as the scan assesses it today.
	pkg := inventory.Package{Ecosystem: f.Ecosystem, Name: f.Package, Version: f.Version, SourceName: f.Package, SourceVersion: f.Version}
	res, err := scan.Run(ctx, s.index, inventory.Result{Packages: []inventory.Package{pkg}}, s.cfg.Now())
	if err != nil {
		return err
	}
	for _, sf := range res.Findings {
		if sf.Vulnerability == f.Vulnerability {
			d.Evidence, d.Aliases, d.Summary = sf.Reasons, sf.Aliases, sf.Summary
		}
	}
	if d.Evidence == nil {
		d.Evidence = []string{"the advisories no longer name this version (it is closed at the next rematch)"}
	}
	if h.IsService() {
		if d.Fix, err = s.findingFix(ctx, strings.TrimPrefix(h.MachineID, fleet.ServicePrefix), f); err != nil {
			return err
		}
	} else if set.Claims() {
		pkgs, err := s.db.Fleet.Inventory(ctx, f.HostID)
		if err != nil {
			return err
		}
		if c, ok := claimOf(set, a.Labels, pkgs, f); ok {
			d.Claim = &policyapi.FindingClaim{Service: c.Service, Path: c.Path, Location: c.Location}
			if d.Fix, err = s.findingFix(ctx, c.Service, f); err != nil {
				return err
			}
		}
	}
	return writeJSON(w, http.StatusOK, d)
}

// uploadServiceInventory stores the application inventory of a service
// (uploaded from CI) and matches it like a host's.
func (s *Server) uploadServiceInventory(w http.ResponseWriter, r *http.Request, c *caller) error {
	ctx := r.Context()
	name := r.PathValue("name")
	set, err := s.Policy(ctx)
	if err != nil {
		return err
	}
	if set.Service(name) == nil {
		return errNotFound(fmt.Sprintf("no Service named %q: apply its Service document first", name))
	}
	var req api.ServiceInventory
	if err := decode(r, &req, true); err != nil {
		return err
	}
	if err := fleet.ValidateInventory("packages", req.Packages); err != nil {
		return refused(err)
	}
	now := s.cfg.Now().UTC()
	h, err := s.db.Fleet.EnsureService(ctx, name, now)
	if err != nil {
		return err
	}
	res, err := s.matcher(policy.Triage{Set: set}).Ingest(ctx, h, req.Packages, now)
	if err != nil {
		return err
	}
	if _, err := s.db.Audit.Append(ctx, c.actor(), "service.inventory", "service/"+name,
		map[string]any{"packages": len(req.Packages), "hash": fleet.InventoryHash(req.Packages)}); err != nil {
		return err
	}
	if err := s.deployFixes(ctx, name, req.Packages, c.actor()); err != nil {
		return err
	}
	s.markScores(ctx, "inventory")
	open := res.Findings
	if !res.Changed {
		sum, err := s.db.Fleet.HostSummary(ctx, h.ID)
		if err != nil {
			return err
		}
		open = sum.OpenTotal()
	}
	return writeJSON(w, http.StatusOK, api.ServiceInventoryResponse{Service: name, HostID: h.ID, Packages: len(req.Packages),
		Open: open, Opened: res.Opened, Closed: res.Closed})
}

// ReassessExploitation compares the exploitation evidence findings were
// decided with against the KEV catalog and EPSS scores now imported, and
// decides again the findings of every vulnerability whose evidence moved
// (added to or removed from KEV, EPSS crossing the "likely" threshold),
// recording which change caused it.
func (s *Server) ReassessExploitation(ctx context.Context) (fleet.ReprioritizeResult, error) {
	stored, err := s.db.Findings.Evidence(ctx)
	if err != nil {
		return fleet.ReprioritizeResult{}, err
	}
	var cves []string
	for v := range stored {
		if strings.HasPrefix(v, "CVE-") {
			cves = append(cves, v)
		}
	}
	kev, epss, err := s.db.Exploitation(ctx, cves)
	if err != nil {
		return fleet.ReprioritizeResult{}, err
	}
	evidence := map[string]fleet.Evidence{}
	var causes []string
	for _, cve := range cves {
		var k *advisory.KEVEntry
		if e, ok := kev[cve]; ok {
			k = &e
		}
		var p *advisory.EPSSScore
		if e, ok := epss[cve]; ok {
			p = &e
		}
		now := fleet.Evidence{Exploitation: risk.ExploitationOf(k, p)}
		if k != nil {
			now.KEVDue = k.DueDate
		}
		for _, was := range stored[cve] {
			if was.Exploitation == now.Exploitation && was.KEVDue.Equal(now.KEVDue) {
				continue
			}
			evidence[cve] = now
			switch {
			case k != nil && was.Exploitation != risk.ExploitActive:
				causes = append(causes, fmt.Sprintf("%s added to CISA KEV on %s", cve, k.DateAdded.Format(time.DateOnly)))
			case k != nil:
				causes = append(causes, fmt.Sprintf("CISA KEV due date of %s now %s", cve, k.DueDate.Format(time.DateOnly)))
			case was.Exploitation == risk.ExploitActive:
				causes = append(causes, cve+" removed from CISA KEV")
			case p != nil:
				causes = append(causes, fmt.Sprintf("EPSS of %s now %.3f (exploitation %s)", cve, p.Probability, now.Exploitation))
			default:
				causes = append(causes, cve+" has no EPSS score any more")
			}
			break
		}
	}
	if len(evidence) == 0 {
		return fleet.ReprioritizeResult{}, nil
	}
	// What the scans of this replica see (the explanations) must agree.
	s.index.Invalidate()
	slices.Sort(causes)
	return s.Reprioritize(ctx, fleet.Scope{Evidence: evidence}, "exploitation evidence: "+shortList(causes, 5))
}

// Reconcile brings findings in line with the policy when something moved
// without a request to trigger it: the policy changed and the findings
// were not all decided with it (an apply whose re-decision failed), or an
// accepted risk expired (or its exception was deleted), which reopens its
// findings. The leader runs it on every tick.
func (s *Server) Reconcile(ctx context.Context) (_ fleet.ReprioritizeResult, err error) {
	set, err := s.Policy(ctx)
	if err != nil {
		return fleet.ReprioritizeResult{}, err
	}
	decided, err := s.db.Policy.Decided(ctx)
	if err != nil {
		return fleet.ReprioritizeResult{}, err
	}
	if decided < set.Revision() {
		if len(s.fleetWide) > 0 {
			return fleet.ReprioritizeResult{}, nil // an apply is on it; the next tick checks again
		}
		return s.Reprioritize(ctx, fleet.Scope{}, fmt.Sprintf("policy revision %d not yet applied to every finding", set.Revision()))
	}
	now := s.cfg.Now()
	// Scanning findings for their exceptions is needed once per leader,
	// then only when an accepted risk ends (a deleted exception is a new
	// policy revision: everything was decided again above).
	s.pol.mu.Lock()
	checked := s.pol.exceptionsChecked
	s.pol.mu.Unlock()
	if next := set.NextExpiry(checked); !checked.IsZero() && (next.IsZero() || next.After(now)) {
		return fleet.ReprioritizeResult{}, nil
	}
	inUse, err := s.db.Findings.Exceptions(ctx)
	if err != nil {
		return fleet.ReprioritizeResult{}, err
	}
	defer func() {
		if err == nil {
			s.pol.mu.Lock()
			s.pol.exceptionsChecked = now
			s.pol.mu.Unlock()
		}
	}()
	var ended []string
	for _, x := range inUse {
		if !set.ExceptionActive(x, now) {
			ended = append(ended, x)
		}
	}
	if len(ended) == 0 {
		return fleet.ReprioritizeResult{}, nil
	}
	slices.Sort(ended)
	hosts, err := s.db.Findings.HostsDecidedBy(ctx, ended)
	if err != nil {
		return fleet.ReprioritizeResult{}, err
	}
	causes := make([]string, len(ended))
	for i, x := range ended {
		causes[i] = "Exception/" + x
	}
	return s.Reprioritize(ctx, fleet.Scope{HostIDs: hosts}, "exception expired or deleted: "+shortList(causes, 5))
}

// withReasons adds to each unremediated finding of a page the reasons of
// its decision under the current policy (the one it was decided with).
func (s *Server) withReasons(ctx context.Context, rows []fleet.FindingRow) error {
	if len(rows) == 0 {
		return nil
	}
	set, err := s.Policy(ctx)
	if err != nil {
		return err
	}
	var ids []string
	for _, r := range rows {
		if !slices.Contains(ids, r.HostID) {
			ids = append(ids, r.HostID)
		}
	}
	assets, err := s.db.Fleet.AssetsOf(ctx, ids)
	if err != nil {
		return err
	}
	deciders := map[string]*policy.Decider{}
	now := s.cfg.Now()
	for i := range rows {
		f := &rows[i].Finding
		if !f.RemediatedAt.IsZero() {
			continue
		}
		d, ok := deciders[f.HostID]
		if !ok {
			d = set.Decider(set.Context(policy.AssetOf(assets[f.HostID])))
			deciders[f.HostID] = d
		}
		f.Reasons = d.Decide(policy.InputsOf(*f), now).Reasons
	}
	return nil
}

// teamServiceHosts resolves the team and service filters of a finding
// query to the assets they cover.
func (s *Server) teamServiceHosts(ctx context.Context, team, service string) ([]string, error) {
	set, err := s.Policy(ctx)
	if err != nil {
		return nil, err
	}
	if service != "" && set.Service(service) == nil {
		return nil, errBadRequest(fmt.Sprintf("service %q: no such Service", service), "query.service")
	}
	if team != "" && set.TeamOf(team) == nil {
		return nil, errBadRequest(fmt.Sprintf("team %q: no such Team", team), "query.team")
	}
	assets, err := s.db.Fleet.Assets(ctx)
	if err != nil {
		return nil, err
	}
	ids := []string{}
	for id, a := range assets {
		c := set.Context(policy.AssetOf(a))
		if team != "" && c.Team != team && !slices.ContainsFunc(c.Services, func(sv string) bool { return set.Service(sv).Owner == team }) {
			continue
		}
		if service != "" && !slices.Contains(c.Services, service) {
			continue
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}
