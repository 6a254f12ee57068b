// Command schedules measures the autopilot's schedule evaluation at fleet
// scale: N hosts (default 10,000) with a pending security update written
// directly in a fresh database, S PatchSchedules (default 50) each with
// its own one-hour window, the windows spread over the week, and an
// in-process server with an injected clock. It prints the leader's cost
// of one evaluation tick when no opening is due, when the openings open
// now have run already, and when an emergency lane looks at the fleet;
// and the time of the tick that plans an opening for every host (the
// plan of N hosts resolved, stored and started).
//
// Usage:
//
//	go run ./bench/schedules                      # 10,000 hosts, 50 schedules, embedded database
//	go run ./bench/schedules -hosts 2000 -schedules 200 -db postgres://…/fresh
package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/api/policyapi"
	"github.com/patchbay/patchbay/auth"
	"github.com/patchbay/patchbay/duration"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/kinds"
	"github.com/patchbay/patchbay/patch"
	"github.com/patchbay/patchbay/rollout"
	"github.com/patchbay/patchbay/server"
	"github.com/patchbay/patchbay/store"
)

func main() {
	hosts := flag.Int("hosts", 10000, "simulated hosts")
	schedules := flag.Int("schedules", 50, "PatchSchedules, each with its own window")
	ticks := flag.Int("ticks", 20, "evaluations measured per case")
	dsn := flag.String("db", "", "database (default: a SQLite file in a temporary directory; give a fresh PostgreSQL database to measure it)")
	flag.Parse()
	if err := run(*hosts, *schedules, *ticks, *dsn); err != nil {
		fmt.Fprintln(os.Stderr, "schedules:", err)
		os.Exit(1)
	}
}

// policyOf: one host group of every host, a rule that approves on its
// own, a one-ring strategy; schedule k runs in window k, opening
// k × spacing(n) into the week (from Sunday 00:00 UTC) for
// windowOf(n); schedule 0 also has an emergency lane.
func policyOf(n int) string {
	var b strings.Builder
	b.WriteString(`apiVersion: patchbay/v1
kind: HostGroup
metadata: {name: production}
spec: {selector: env=prod}
---
apiVersion: patchbay/v1
kind: ApprovalRule
metadata: {name: automatic}
spec: {approve: automatic}
---
apiVersion: patchbay/v1
kind: RolloutStrategy
metadata: {name: fleet}
spec:
  rings: [{name: all, share: 100%, maxConcurrency: 10%, errorThreshold: 5%}]
  reboot: never
  promote: automatic
`)
	for k := range n {
		at := k * int(spacing(n)/time.Minute) // minutes into the week
		fmt.Fprintf(&b, `---
apiVersion: patchbay/v1
kind: MaintenanceWindow
metadata: {name: w%02d}
spec: {schedule: "%d %d * * %d", duration: %s, timeZone: UTC, hostGroups: [production]}
---
apiVersion: patchbay/v1
kind: PatchSchedule
metadata: {name: s%02d}
spec:
  selector: {types: [security]}
  strategy: fleet
  windows: [w%02d]
  minAge: {bugfix: 7d}
  emergency: %v
`, k, at%60, at/60%24, at/60/24, duration.Duration(windowOf(n)), k, k, k == 0)
	}
	return b.String()
}

// spacing is the time between two schedules' openings: the week shared.
func spacing(n int) time.Duration {
	return (7 * 24 * time.Hour / time.Duration(n)).Truncate(time.Minute)
}

// windowOf is how long each window stays open: an hour, or 15 minutes
// when the windows are closer than an hour.
func windowOf(n int) time.Duration {
	if spacing(n) > time.Hour {
		return time.Hour
	}
	return 15 * time.Minute
}

func run(n, schedules, ticks int, dsn string) error {
	if spacing(schedules) <= windowOf(schedules) {
		return fmt.Errorf("%d schedules: at most 600 (their windows would overlap)", schedules)
	}
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "patchbay-bench-schedules-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if dsn == "" {
		dsn = filepath.Join(dir, "patchbay.db")
	}
	db, err := store.Open(ctx, dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	start := time.Now()
	// Between schedule 0's window (Sunday 00:00 UTC) and schedule 1's, no
	// window is open.
	var clock atomic.Pointer[time.Time]
	set := func(t time.Time) { clock.Store(&t) }
	week := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	set(week.Add(windowOf(schedules) + (spacing(schedules)-windowOf(schedules))/2))
	now := func() time.Time { return *clock.Load() }
	for i := range n {
		id := fmt.Sprintf("%024x", i+1)
		name := fmt.Sprintf("host-%05d", i)
		facts := fleet.Facts{Hostname: name, MachineID: fmt.Sprintf("%032x", i+1), OSID: "debian", OSVersion: "12", Ecosystem: "Debian:12", AgentVersion: "bench",
			Labels: map[string]string{"env": "prod"}}
		h := fleet.Host{ID: id, MachineID: facts.MachineID, Hostname: name, Ecosystem: facts.Ecosystem, Labels: map[string]string{}, LastSeen: now(), Facts: facts, EnrolledAt: now()}
		_, _, hash, err := auth.NewSecret()
		if err != nil {
			return err
		}
		tok := auth.Token{ID: fmt.Sprintf("c%023x", i+1), Kind: auth.KindHost, Role: auth.Agent, Name: name, Created: now(), UsesLeft: -1, Subject: id}
		if _, err := db.Fleet.Enroll(ctx, h, tok, hash, ""); err != nil {
			return err
		}
		ups := []patch.Update{{Ecosystem: "Debian:12", Name: "libssl3", SourceName: "openssl", Installed: "3.0.15-1~deb12u1", Candidate: "3.0.17-1~deb12u2",
			Origin: "bookworm-security", Pocket: "security", CVEs: []string{}, Types: []patch.Type{patch.Security}, Cycle: patch.CycleSystem}}
		if err := db.Fleet.SetUpdates(ctx, id, fleet.UpdatesHash(ups), ups); err != nil {
			return err
		}
	}
	fmt.Printf("fleet of %d hosts written in %s (%s)\n", n, time.Since(start).Round(time.Millisecond), db.Backend)

	_, jobKey, err := ed25519.GenerateKey(nil)
	if err != nil {
		return err
	}
	srv, err := server.New(server.Config{DB: db, Kinds: kinds.All(), ReplicaID: "bench", JobKey: jobKey, Now: now, AgentStale: 365 * 24 * time.Hour, EmergencyEvery: time.Nanosecond})
	if err != nil {
		return err
	}
	secret, id, hash, err := auth.NewSecret()
	if err != nil {
		return err
	}
	if err := db.Tokens.Create(ctx, auth.Token{ID: id, Kind: auth.KindAPI, Role: auth.Admin, Name: "bench", Created: time.Now(), UsesLeft: -1}, hash); err != nil {
		return err
	}
	body, _ := json.Marshal(policyapi.ApplyRequest{Files: []policyapi.PolicyFile{{Name: "bench.yaml", Content: policyOf(schedules)}}})
	req := httptest.NewRequest("POST", api.Prefix+"/policy/apply", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+secret)
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		return fmt.Errorf("apply: %d %s", rec.Code, rec.Body)
	}
	fence := rollout.Fence{}
	measure := func(what string, setup func()) error {
		var ds []time.Duration
		for range ticks {
			if setup != nil {
				setup()
			}
			t := time.Now()
			if _, err := srv.EvaluateSchedules(ctx, fence); err != nil {
				return err
			}
			ds = append(ds, time.Since(t))
		}
		slices.Sort(ds)
		fmt.Printf("%-62s median %8s  max %8s  (%d ticks)\n", what, ds[len(ds)/2].Round(10*time.Microsecond), ds[len(ds)-1].Round(10*time.Microsecond), len(ds))
		return nil
	}
	// The emergency lane of schedule 0 looks at every tick here
	// (EmergencyEvery 1ns; in service once a minute): for the hosts with
	// an open emergency-lane finding, none in this fleet.
	if err := measure("tick, no opening due, emergency lane looking (no such finding)", nil); err != nil {
		return err
	}
	srv2, err := server.New(server.Config{DB: db, Kinds: kinds.All(), ReplicaID: "bench2", JobKey: jobKey, Now: now, AgentStale: 365 * 24 * time.Hour, EmergencyEvery: time.Hour})
	if err != nil {
		return err
	}
	srv2.EvaluateSchedules(ctx, fence) // its one emergency look
	srv = srv2
	if err := measure(fmt.Sprintf("tick, no opening due (%d schedules)", schedules), nil); err != nil {
		return err
	}
	// Schedule 1's window opens: one opening, every host.
	set(week.Add(spacing(schedules) + 30*time.Second))
	t := time.Now()
	r, err := srv.EvaluateSchedules(ctx, fence)
	if err != nil {
		return err
	}
	took := time.Since(t)
	if r.Planned != 1 || r.Started != 1 {
		req := httptest.NewRequest("GET", api.Prefix+"/schedules/s01", nil)
		req.Header.Set("Authorization", "Bearer "+secret)
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, req)
		return fmt.Errorf("the opening: %+v: %.2000s", r, rec.Body)
	}
	fmt.Printf("%-62s %8s\n", fmt.Sprintf("tick planning an opening: plan of %d hosts resolved, stored, started", n), took.Round(time.Millisecond))
	if err := measure("tick, the open window's opening planned already", nil); err != nil {
		return err
	}
	return nil
}
