package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/api/fixapi"
	"github.com/patchbay/patchbay/api/policyapi"
	"github.com/patchbay/patchbay/duration"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/forge"
	"github.com/patchbay/patchbay/inventory"
	"github.com/patchbay/patchbay/inventory/collect"
	"github.com/patchbay/patchbay/policy"
	"github.com/patchbay/patchbay/remedy"
	"github.com/patchbay/patchbay/remedy/edit"
	"github.com/patchbay/patchbay/risk"
	"github.com/patchbay/patchbay/scan"
)

// FixConfig is how the server delivers application fixes.
type FixConfig struct {
	// Tokens are the forges' API tokens by forge (github, gitlab), from
	// the server's configuration or environment; never stored.
	Tokens map[string]string
	// Git is the git command ("git" when empty); GitEnv is added to its
	// environment (GIT_SSH_COMMAND, a credential helper).
	Git    string
	GitEnv []string
	// Tools are the go and npm commands the rewrite may run.
	Tools edit.Options
	// Every is how often the leader delivers every repo Service's weekly
	// fix (and the urgent one when a P1 patch is in it); 0: never, fixes
	// are delivered when asked. PollEvery is how often the leader reads
	// the forge's state of the proposed merge requests (0: never).
	Every, PollEvery time.Duration
}

func (s *Server) forgeOf(r *policy.ServiceRepo) (forge.Forge, error) {
	tok := s.cfg.Fix.Tokens[r.Forge]
	switch r.Forge {
	case "", "none":
		return nil, nil
	case "github":
		if tok == "" {
			return nil, errBadRequest("no GitHub token configured on the server (PATCHBAY_GITHUB_TOKEN)", "")
		}
		api := r.API
		if api == "" {
			api = "https://api.github.com"
		}
		return &forge.GitHub{API: api, Repo: r.Project, Token: tok}, nil
	case "gitlab":
		if tok == "" {
			return nil, errBadRequest("no GitLab token configured on the server (PATCHBAY_GITLAB_TOKEN)", "")
		}
		api := r.API
		if api == "" {
			api = "https://gitlab.com"
		}
		return &forge.GitLab{API: api, Project: r.Project, Token: tok}, nil
	}
	return nil, errBadRequest(fmt.Sprintf("forge %q: want github, gitlab or none", r.Forge), "")
}

// proposeFix is POST /services/{name}/fixes.
func (s *Server) proposeFix(w http.ResponseWriter, r *http.Request, c *caller) error {
	var req fixapi.Request
	if err := decodeOptional(r, &req); err != nil {
		return err
	}
	resp, err := s.deliverFix(r.Context(), r.PathValue("name"), req, c.actor())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, resp)
}

// deliverFix delivers a service's fix: clone, rewrite, re-scan, push the
// branch, open or update the merge request, and record the proposal on
// behalf of actor.
func (s *Server) deliverFix(ctx context.Context, name string, req fixapi.Request, actor string) (fixapi.Delivery, error) {
	var resp fixapi.Delivery
	opts := remedy.Options{Strategy: remedy.InPlace, Now: s.cfg.Now().UTC()}
	if req.Strategy != "" {
		st, err := remedy.ParseStrategy(req.Strategy)
		if err != nil {
			return resp, errBadRequest(err.Error(), "strategy")
		}
		opts.Strategy = st
	}
	if req.Priority != "" {
		p, err := risk.ParsePriority(req.Priority)
		if err != nil {
			return resp, errBadRequest(err.Error(), "priority")
		}
		opts.Priority = p
	}
	if req.MinAge != "" {
		d, err := duration.Parse(req.MinAge)
		if err != nil {
			return resp, errBadRequest("min_age: "+err.Error(), "min_age")
		}
		opts.MinAge = time.Duration(d)
	}
	group := req.Group
	if group == "" {
		group = "weekly"
	}
	set, err := s.Policy(ctx)
	if err != nil {
		return resp, err
	}
	svc := set.Service(name)
	if svc == nil {
		return resp, errNotFound(fmt.Sprintf("no Service named %q: apply its Service document first", name))
	}
	spec := svc
	if spec.Repo == nil {
		return resp, errBadRequest(fmt.Sprintf("Service %s names no repo: add spec.repo (url, base, forge, project)", name), "")
	}
	f, err := s.forgeOf(spec.Repo)
	if err != nil {
		return resp, err
	}
	// The service's own decisions (priority, SLA due date) replace the
	// scan's defaults in the merge request.
	h, err := s.db.Fleet.EnsureService(ctx, name, opts.Now)
	if err != nil {
		return resp, err
	}
	stored, err := s.db.Findings.List(ctx, h.ID)
	if err != nil {
		return resp, err
	}
	type pv struct{ pkg, vuln string }
	decided := map[pv]scan.Finding{}
	for _, sf := range stored {
		if sf.RemediatedAt.IsZero() {
			decided[pv{sf.Package, sf.Vulnerability}] = scan.Finding{Priority: sf.Priority, Due: sf.Due}
		}
	}
	var plan remedy.Plan
	branch := forge.BranchName(name, group)
	change := func(ctx context.Context, dir string) (forge.Proposed, error) {
		inv, err := collect.Collect(ctx, collect.Options{Paths: []string{dir}})
		if err != nil {
			return forge.Proposed{}, err
		}
		before, err := scan.Run(ctx, s.db, inv, opts.Now)
		if err != nil {
			return forge.Proposed{}, err
		}
		for i := range before.Findings {
			if d, ok := decided[pv{before.Findings[i].Package, before.Findings[i].Vulnerability}]; ok {
				before.Findings[i].Priority, before.Findings[i].Due = d.Priority, d.Due
			}
		}
		if plan, err = remedy.Propose(ctx, s.db, before, opts); err != nil {
			return forge.Proposed{}, err
		}
		if req.Urgent && len(plan.Upgrades) > 0 {
			u := plan.Upgrades[0]
			plan.Upgrades = plan.Upgrades[:1]
			branch = forge.BranchName(name, u.Package+"-"+u.To)
		}
		rw, err := edit.Rewrite(ctx, plan, s.cfg.Fix.Tools)
		if err != nil {
			return forge.Proposed{}, err
		}
		chk, err := edit.Verify(ctx, s.db, before, rw, opts.Now)
		if err != nil {
			return forge.Proposed{}, err
		}
		if len(chk.Opened) > 0 {
			o := chk.Opened[0]
			return forge.Proposed{}, fmt.Errorf("the rewrite would open %s in %s %s: not proposed", o.Vulnerability, o.Package, o.Version)
		}
		if err := edit.Apply(rw.Changes); err != nil {
			return forge.Proposed{}, err
		}
		// Only what the re-scan closed is claimed.
		closed := map[pv]bool{}
		for _, cf := range chk.Closed {
			closed[pv{cf.Package, cf.Vulnerability}] = true
		}
		for i := range plan.Upgrades {
			u := &plan.Upgrades[i]
			kept := u.Closes[:0]
			for _, cf := range u.Closes {
				if closed[pv{cf.Package, cf.Vulnerability}] {
					kept = append(kept, cf)
				}
			}
			u.Closes = kept
		}
		return forge.Proposed{Title: forge.Title(name, plan.Upgrades), Body: forge.Body(name, plan.Upgrades, plan.Unfixed), Branch: branch}, nil
	}
	git := forge.Git{Command: s.cfg.Fix.Git, Env: s.cfg.Fix.GitEnv}
	got, err := forge.Deliver(ctx, git, f, forge.Delivery{URL: spec.Repo.URL, Base: spec.Repo.BaseBranch(), Branch: branch}, change)
	if err != nil {
		var he *httpError
		if errors.As(err, &he) {
			return resp, err
		}
		return resp, &httpError{http.StatusBadGateway, apiErrorOf("fix of " + name + ": " + err.Error())}
	}
	resp = fixapi.Delivery{Unfixed: plan.Unfixed, Created: got.Created}
	if resp.Unfixed == nil {
		resp.Unfixed = []remedy.Unfixed{}
	}
	if got.Commit == "" {
		resp.Nothing = "nothing to fix: no upgrade the feeds know closes a finding of " + name
		return resp, nil
	}
	p := remedy.Proposal{Service: name, Branch: branch, Forge: forgeName(spec.Repo), MRNumber: got.MergeRequest.Number, MRURL: got.MergeRequest.URL,
		Commit: got.Commit, State: remedy.StateProposed, Fixes: remedy.Fixes(plan.Upgrades), CreatedAt: opts.Now, UpdatedAt: opts.Now}
	if p.Fixes == nil {
		p.Fixes = []remedy.ProposedFix{}
	}
	if p.ID, err = s.db.Fixes.Save(ctx, p); err != nil {
		return resp, err
	}
	var bypassed []string
	for _, u := range plan.Upgrades {
		if u.AgeBypass != "" {
			bypassed = append(bypassed, u.Package+" "+u.To+" for "+u.AgeBypass)
		}
	}
	if _, err := s.db.Audit.Append(ctx, actor, "fix.propose", "service/"+name,
		map[string]any{"branch": branch, "commit": got.Commit, "merge_request": got.MergeRequest.URL, "created": got.Created, "fixes": len(p.Fixes), "release_age_bypassed": bypassed}); err != nil {
		return resp, err
	}
	stored2, err := s.db.Fixes.Get(ctx, p.ID)
	if err != nil {
		return resp, err
	}
	resp.Proposal = stored2
	return resp, nil
}

func forgeName(r *policy.ServiceRepo) string {
	if r.Forge == "" {
		return "none"
	}
	return r.Forge
}

// listFixes is GET /fixes?service=NAME.
func (s *Server) listFixes(w http.ResponseWriter, r *http.Request, c *caller) error {
	ps, err := s.db.Fixes.List(r.Context(), r.URL.Query().Get("service"))
	if err != nil {
		return err
	}
	if ps == nil {
		ps = []remedy.Proposal{}
	}
	return writeJSON(w, http.StatusOK, fixapi.List{Proposals: ps})
}

// refreshFix is POST /fixes/{id}/refresh: the merge request's state from
// the forge (merged, closed).
func (s *Server) refreshFix(w http.ResponseWriter, r *http.Request, c *caller) error {
	ctx := r.Context()
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return errBadRequest("id: want a number", "id")
	}
	p, err := s.db.Fixes.Get(ctx, id)
	if errors.Is(err, remedy.ErrNoProposal) {
		return errNotFound(err.Error())
	}
	if err != nil {
		return err
	}
	p, err = s.refreshProposal(ctx, p, c.actor())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, p)
}

// refreshProposal reads the merge request's state from the forge and
// records a change (merged, closed) on behalf of actor.
func (s *Server) refreshProposal(ctx context.Context, p remedy.Proposal, actor string) (remedy.Proposal, error) {
	set, err := s.Policy(ctx)
	if err != nil {
		return p, err
	}
	spec := set.Service(p.Service)
	if spec == nil || spec.Repo == nil || p.MRNumber == 0 {
		return p, nil
	}
	f, err := s.forgeOf(spec.Repo)
	if err != nil || f == nil {
		return p, err
	}
	mr, err := f.Get(ctx, p.MRNumber)
	if err != nil {
		return p, &httpError{http.StatusBadGateway, apiErrorOf(err.Error())}
	}
	now := s.cfg.Now().UTC()
	old := p.State
	switch {
	case mr.State == "merged" && p.State == remedy.StateProposed:
		p.State, p.MergedAt = remedy.StateMerged, now
	case mr.State == "closed" && p.State == remedy.StateProposed:
		p.State = remedy.StateClosed
	}
	if p.State != old {
		p.UpdatedAt = now
		if _, err := s.db.Fixes.Save(ctx, p); err != nil {
			return p, err
		}
		if _, err := s.db.Audit.Append(ctx, actor, "fix."+p.State, "service/"+p.Service, map[string]any{"branch": p.Branch, "merge_request": p.MRURL}); err != nil {
			return p, err
		}
	}
	return p, nil
}

// DeliverFixes is the leader's scheduled fix delivery: for every Service
// naming a repo, the weekly merge request is prepared or updated and, when
// it closes a P1 or known-exploited finding, the most urgent patch is
// also proposed at once on its own branch. One service's failure is
// logged and does not stop the others; the count of deliveries that
// pushed a commit is returned.
func (s *Server) DeliverFixes(ctx context.Context) (int, error) {
	set, err := s.Policy(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, d := range set.Documents() {
		if d.Kind != "Service" {
			continue
		}
		name := d.Metadata.Name
		if sp := set.Service(name); sp == nil || sp.Repo == nil {
			continue
		}
		got, err := s.deliverFix(ctx, name, fixapi.Request{}, s.actor())
		if err != nil {
			if ctx.Err() != nil {
				return n, ctx.Err()
			}
			s.log.Warn("scheduled fix", "service", name, "err", err)
			continue
		}
		if got.Proposal.ID == 0 {
			continue
		}
		n++
		if !urgent(got.Proposal.Fixes) {
			continue
		}
		if _, err := s.deliverFix(ctx, name, fixapi.Request{Urgent: true}, s.actor()); err != nil {
			if ctx.Err() != nil {
				return n, ctx.Err()
			}
			s.log.Warn("urgent fix", "service", name, "err", err)
			continue
		}
		n++
	}
	return n, nil
}

// urgent: a fix closes a finding the policy decided P1 (where known
// exploitation, CISA KEV, counts as the policy says).
func urgent(fs []remedy.ProposedFix) bool {
	for _, f := range fs {
		if f.Priority == risk.P1 {
			return true
		}
	}
	return false
}

// PollFixes reads the forge's state of every proposed merge request, so a
// merge shows without anyone asking. It returns how many changed.
func (s *Server) PollFixes(ctx context.Context) (int, error) {
	ps, err := s.db.Fixes.List(ctx, "")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, p := range ps {
		if p.State != remedy.StateProposed || p.MRNumber == 0 {
			continue
		}
		got, err := s.refreshProposal(ctx, p, s.actor())
		if err != nil {
			if ctx.Err() != nil {
				return n, ctx.Err()
			}
			s.log.Warn("merge request state", "service", p.Service, "merge_request", p.MRURL, "err", err)
			continue
		}
		if got.State != p.State {
			n++
		}
	}
	return n, nil
}

// deployFixes marks the service's proposals deployed as far as the
// uploaded inventory shows the fixed versions.
func (s *Server) deployFixes(ctx context.Context, service string, inv []inventory.Package, actor string) error {
	ps, err := s.db.Fixes.List(ctx, service)
	if err != nil {
		return err
	}
	now := s.cfg.Now().UTC()
	for i := range ps {
		p := &ps[i]
		if !remedy.Deploy(p, inv, now) {
			continue
		}
		p.UpdatedAt = now
		if _, err := s.db.Fixes.Save(ctx, *p); err != nil {
			return err
		}
		if p.State == remedy.StateDeployed {
			if _, err := s.db.Audit.Append(ctx, actor, "fix.deployed", "service/"+service, map[string]any{"branch": p.Branch, "merge_request": p.MRURL}); err != nil {
				return err
			}
		}
	}
	return nil
}

// apiErrorOf is the body of a forge's or git's refusal, passed on (502).
func apiErrorOf(msg string) api.Error { return api.Error{Error: msg, Code: CodeUpstream} }

// CodeUpstream: git or the forge refused or failed.
const CodeUpstream = "upstream"

// findingFix is the state of the fix of a service's finding: of the
// proposals that fix it, the furthest along (deployed, merged, proposed;
// closed only when no other), the newest among equals.
func (s *Server) findingFix(ctx context.Context, service string, f fleet.Finding) (*policyapi.FindingFix, error) {
	ps, err := s.db.Fixes.List(ctx, service)
	if err != nil {
		return nil, err
	}
	return fixOf(ps, f), nil
}

// fixOf is the most advanced of a service's proposals fixing a finding.
func fixOf(ps []remedy.Proposal, f fleet.Finding) *policyapi.FindingFix {
	rank := map[string]int{remedy.StateClosed: 0, remedy.StateProposed: 1, remedy.StateMerged: 2, remedy.StateDeployed: 3}
	var best *policyapi.FindingFix
	var bestAt time.Time
	for _, p := range ps {
		for _, fx := range p.Fixes {
			if fx.Package != f.Package || fx.Vulnerability != f.Vulnerability || fx.From != f.Version {
				continue
			}
			st := p.State
			if !fx.DeployedAt.IsZero() {
				st = remedy.StateDeployed
			} else if st == remedy.StateDeployed {
				st = remedy.StateMerged
			}
			if best == nil || rank[st] > rank[best.State] || (rank[st] == rank[best.State] && p.UpdatedAt.After(bestAt)) {
				best = &policyapi.FindingFix{ProposalID: p.ID, State: st, Branch: p.Branch, To: fx.To, MergeRequest: p.MRURL, DeployedAt: fx.DeployedAt}
				bestAt = p.UpdatedAt
			}
		}
	}
	return best
}
