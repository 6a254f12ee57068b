package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/patchbay/patchbay/api/rolloutapi"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/job"
	"github.com/patchbay/patchbay/policy"
	"github.com/patchbay/patchbay/rollout"
)

// DefaultAlertWindow: an alert that starts within it after a job started
// on its host is linked to that job.
const DefaultAlertWindow = 30 * time.Minute

// receiveAlerts is Alertmanager's webhook receiver: each alert is stored
// (once per fingerprint and start; a later delivery updates its status)
// and, when it names a host (host, hostname, nodename or instance label)
// or a service (service label) and started within the alert window after
// a job on one of those hosts, linked to that job and its rollout: an
// audit entry and an alert.linked notification.
func (s *Server) receiveAlerts(w http.ResponseWriter, r *http.Request, c *caller) error {
	var p rolloutapi.AlertmanagerPayload
	if err := decode(r, &p, false); err != nil {
		return err
	}
	ctx := r.Context()
	now := s.cfg.Now().UTC()
	window := s.cfg.AlertWindow
	var set *policy.Set
	var hosts []fleet.HostSummary
	var out rolloutapi.AlertsReceived
	var evs []rollout.Event
	for i, a := range p.Alerts {
		if a.StartsAt.IsZero() || a.Labels["alertname"] == "" {
			return errBadRequest(fmt.Sprintf("alerts[%d]: want labels.alertname and startsAt", i), fmt.Sprintf("alerts[%d]", i))
		}
		al := rollout.Alert{Fingerprint: a.Fingerprint, Name: a.Labels["alertname"], Status: a.Status, Labels: a.Labels, StartsAt: a.StartsAt.UTC(), ReceivedAt: now}
		if al.Fingerprint == "" {
			al.Fingerprint = labelKey(a.Labels)
		}
		if a.Status == "resolved" && !a.EndsAt.IsZero() && a.EndsAt.Year() > 1 {
			al.EndsAt = a.EndsAt.UTC()
		}
		if hosts == nil {
			var err error
			if hosts, err = s.db.Fleet.Hosts(ctx, fleet.HostFilter{}); err != nil {
				return err
			}
		}
		var cands []fleet.HostSummary
		if hn := rollout.AlertHostname(a.Labels); hn != "" {
			for _, h := range hosts {
				if strings.EqualFold(h.Hostname, hn) || h.ID == hn {
					cands = append(cands, h)
				}
			}
		} else if sv := a.Labels["service"]; sv != "" {
			if set == nil {
				var err error
				if set, err = s.Policy(ctx); err != nil {
					return err
				}
			}
			for _, h := range hosts {
				if slices.Contains(set.Context(policy.AssetOf(fleet.AssetOf(h.Host))).Services, sv) {
					cands = append(cands, h)
				}
			}
		}
		var jobs []rollout.JobRef
		names := map[string]string{}
		for _, h := range cands {
			names[h.ID] = h.Hostname
			js, err := s.db.Rollouts.HostJobs(ctx, h.ID, al.StartsAt.Add(-window))
			if err != nil {
				return err
			}
			jobs = append(jobs, js...)
		}
		if len(cands) == 1 {
			al.Host, al.Hostname = cands[0].ID, cands[0].Hostname
		}
		if rollout.Correlate(&al, jobs, window) {
			al.Hostname = names[al.Host]
			out.Linked++
			row, err := s.db.Rollouts.Plan(ctx, al.Plan, false)
			if err != nil {
				return err
			}
			detail := map[string]any{"alert": al.Name, "status": al.Status, "host": al.Hostname, "labels": al.Labels,
				"starts_at": al.StartsAt, "job_started": al.JobStarted, "after": al.StartsAt.Sub(al.JobStarted).String()}
			evs = append(evs, rollout.Event{Actor: c.actor(), Action: "alert.linked", Object: "job/" + job.ID(al.Plan, al.Host), Change: detail,
				Notify: "alert.linked", Targets: s.notifyTargets(), Payload: rollout.NewPlanEvent("alert.linked", row.Plan, detail)})
			s.log.Info("alert linked to a job", "alert", al.Name, "host", al.Hostname, "host_id", al.Host, "plan_id", al.Plan, "rollout_id", al.Plan, "job_id", job.ID(al.Plan, al.Host))
		}
		out.Alerts = append(out.Alerts, al)
	}
	if err := s.db.Rollouts.RecordAlerts(ctx, out.Alerts, now, evs...); err != nil {
		return err
	}
	out.Received = len(out.Alerts)
	return writeJSON(w, http.StatusOK, out)
}

// labelKey stands for a fingerprint when the sender gave none.
func labelKey(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%q,", k, l[k])
	}
	return b.String()
}

// listAlerts lists received alerts (?host=, ?rollout=), newest first.
func (s *Server) listAlerts(w http.ResponseWriter, r *http.Request, _ *caller) error {
	ctx := r.Context()
	f, err := s.eventFilter(ctx, r)
	if err != nil {
		return err
	}
	as, err := s.db.Rollouts.Alerts(ctx, f)
	if err != nil {
		return err
	}
	if as == nil {
		as = []rollout.Alert{}
	}
	return writeJSON(w, http.StatusOK, map[string]any{"alerts": as})
}

func (s *Server) eventFilter(ctx context.Context, r *http.Request) (rollout.AlertFilter, error) {
	q := r.URL.Query()
	var f rollout.AlertFilter
	if h := q.Get("host"); h != "" {
		hs, err := s.resolveHost(ctx, h, "query.host")
		if err != nil {
			return f, err
		}
		f.Host = hs.ID
	}
	f.Plan = q.Get("rollout")
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return f, errBadRequest(fmt.Sprintf("since %q: want an RFC 3339 time", v), "query.since")
		}
		f.Since = t
	}
	return f, nil
}

// listEvents is one timeline of a host (?host=) or a rollout (?rollout=):
// check-ins, jobs started and reported, their checks and reboots, the
// alerts received and the rollout's gates, oldest first, after ?since=.
func (s *Server) listEvents(w http.ResponseWriter, r *http.Request, _ *caller) error {
	ctx := r.Context()
	f, err := s.eventFilter(ctx, r)
	if err != nil {
		return err
	}
	if f.Host == "" && f.Plan == "" {
		return errBadRequest("name a host (?host=) or a rollout (?rollout=)", "query")
	}
	var evs []rolloutapi.Event
	names := map[string]string{}
	var jobs []rollout.JobRef
	if f.Host != "" {
		h, err := s.db.Fleet.HostSummary(ctx, f.Host)
		if err != nil {
			return err
		}
		names[h.ID] = h.Hostname
		if !h.LastSeen.IsZero() {
			evs = append(evs, rolloutapi.Event{Time: h.LastSeen, Kind: "checkin", Host: h.ID, Summary: "last check-in"})
		}
		if jobs, err = s.db.Rollouts.HostJobs(ctx, f.Host, time.Time{}); err != nil {
			return err
		}
		if f.Plan != "" {
			jobs = slices.DeleteFunc(jobs, func(j rollout.JobRef) bool { return j.Plan != f.Plan })
		}
	} else {
		row, err := s.db.Rollouts.Plan(ctx, f.Plan, false)
		if err != nil {
			return err
		}
		hs, err := s.db.Rollouts.Hosts(ctx, f.Plan)
		if err != nil {
			return err
		}
		for _, h := range hs {
			names[h.ID] = h.Hostname
		}
		if jobs, err = s.db.Rollouts.PlanJobs(ctx, f.Plan); err != nil {
			return err
		}
		if m := row.Machine; m != nil {
			for _, g := range m.GateStates {
				if g.Last.IsZero() {
					continue
				}
				sum := fmt.Sprintf("gate %s (%s %s, ring %d): %s, %d taken, %d failed", g.Gate, g.Kind, g.Phase, g.Ring, g.Result, g.Taken, g.Failures)
				if g.Reason != "" {
					sum += ": " + g.Reason
				}
				evs = append(evs, rolloutapi.Event{Time: g.Last, Kind: "gate", Rollout: f.Plan, Summary: sum})
			}
			if m.State == rollout.Halted && !m.HaltedAt.IsZero() {
				evs = append(evs, rolloutapi.Event{Time: m.HaltedAt, Kind: "halt", Rollout: f.Plan, Summary: m.Why})
			}
		}
	}
	for _, j := range jobs {
		sum := fmt.Sprintf("job attempt %d started", j.Attempt)
		if j.Revert {
			sum = fmt.Sprintf("job started; attempt %d reverts it (the rollout halted)", j.Attempt)
		}
		evs = append(evs, rolloutapi.Event{Time: j.Started, Kind: "job.started", Host: j.Host, Rollout: j.Plan, Summary: sum})
		if j.Outcome == "" || j.ReportedAt.IsZero() {
			continue
		}
		var res job.Result
		_ = json.Unmarshal(j.Result, &res) // settled without a report (timed out, no agent): no result
		sum = "job " + j.Outcome
		if res.Reason != "" {
			sum += ": " + res.Reason
		}
		evs = append(evs, rolloutapi.Event{Time: j.ReportedAt, Kind: "job.reported", Host: j.Host, Rollout: j.Plan, Summary: sum})
		for _, c := range res.Checks {
			ok := "ok"
			if !c.OK {
				ok = "failed"
			}
			at := res.Finished
			if at.IsZero() {
				at = j.ReportedAt
			}
			evs = append(evs, rolloutapi.Event{Time: at, Kind: "check", Host: j.Host, Rollout: j.Plan, Summary: fmt.Sprintf("%s check %s %s %s", c.Phase, checkName(c.Check), ok, c.Detail)})
		}
		if res.Reboot != "" {
			evs = append(evs, rolloutapi.Event{Time: j.ReportedAt, Kind: "reboot", Host: j.Host, Rollout: j.Plan, Summary: "reboot " + string(res.Reboot)})
		}
	}
	as, err := s.db.Rollouts.Alerts(ctx, rollout.AlertFilter{Host: f.Host, Plan: f.Plan})
	if err != nil {
		return err
	}
	for _, a := range as {
		if f.Plan != "" && a.Plan != f.Plan {
			continue // a host's timeline within a rollout: its linked alerts
		}
		sum := fmt.Sprintf("alert %s %s", a.Name, a.Status)
		if a.Plan != "" {
			sum += fmt.Sprintf(", %s after the job of %s", a.StartsAt.Sub(a.JobStarted).Round(time.Second), a.Plan)
		}
		evs = append(evs, rolloutapi.Event{Time: a.StartsAt, Kind: "alert", Host: a.Host, Hostname: a.Hostname, Rollout: a.Plan, Summary: sum})
	}
	out := evs[:0]
	for _, e := range evs {
		if e.Time.Before(f.Since) || !f.Since.IsZero() && e.Time.Equal(f.Since) {
			continue
		}
		if e.Hostname == "" {
			e.Hostname = names[e.Host]
		}
		out = append(out, e)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	if out == nil {
		out = []rolloutapi.Event{}
	}
	return writeJSON(w, http.StatusOK, rolloutapi.Events{Events: out})
}

func checkName(h job.HealthCheck) string {
	switch {
	case h.HTTP != "":
		return "http " + h.HTTP
	case h.TCP != "":
		return "tcp " + h.TCP
	case h.Systemd != "":
		return "systemd " + h.Systemd
	}
	return "command " + strings.Join(h.Command, " ")
}
