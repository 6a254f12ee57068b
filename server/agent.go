package server

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"sync"
	"time"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/auth"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/store"
)

func newHostID() (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// enroll exchanges an enrollment token for a host and its credential.
func (s *Server) enroll(w http.ResponseWriter, r *http.Request, c *caller) error {
	var req api.EnrollRequest
	if err := decode(r, &req, false); err != nil {
		return err
	}
	if err := fleet.ValidateFacts(req.Facts); err != nil {
		return refused(err)
	}
	ctx := r.Context()
	now := s.cfg.Now().UTC()
	id, err := newHostID()
	if err != nil {
		return err
	}
	cred, credID, credHash, err := auth.NewSecret()
	if err != nil {
		return err
	}
	h := fleet.Host{ID: id, MachineID: req.Facts.MachineID, Hostname: req.Facts.Hostname, Ecosystem: req.Facts.Ecosystem,
		Labels: map[string]string{}, LastSeen: now, Facts: req.Facts, EnrolledAt: now}
	tok := auth.Token{ID: credID, Kind: auth.KindHost, Role: auth.Agent, Name: req.Facts.Hostname, Created: now, UsesLeft: -1, Subject: id}
	// One use of the token is spent in the enrollment's transaction: a
	// racing enrollment may have taken the last one, and a failed
	// enrollment spends none.
	cloneOf, err := s.db.Fleet.Enroll(ctx, h, tok, credHash, auth.HashOf(c.secret))
	if errors.Is(err, auth.ErrExhausted) {
		why := auth.ErrExhausted
		if _, aerr := s.db.Tokens.Authenticate(ctx, c.secret, now); aerr != nil {
			why = aerr
		}
		return errUnauthorized("enrollment token refused: " + why.Error())
	}
	if err != nil {
		return err
	}
	if _, err := s.db.Audit.Append(ctx, c.actor(), "host.enroll", "host/"+id,
		map[string]any{"hostname": h.Hostname, "machine_id": h.MachineID, "credential": credID, "clone_of": cloneOf}); err != nil {
		return err
	}
	if cloneOf != "" {
		s.log.Warn("host enrolled with the machine-id of another host: flagged as a clone", "host", id, "hostname", h.Hostname, "clone_of", cloneOf)
	}
	s.metrics.enrollments.Inc()
	key, err := s.JobKey(ctx)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, api.EnrollResponse{HostID: id, Credential: cred, CloneOf: cloneOf,
		JobKey: base64.StdEncoding.EncodeToString(key.Public().(ed25519.PublicKey))})
}

// refused is the 400 of a reported value refused by the fleet's checks,
// naming its field.
func refused(err error) error {
	var fe *fleet.FieldError
	if errors.As(err, &fe) {
		return errBadRequest(err.Error(), fe.Field)
	}
	return errBadRequest(err.Error(), "")
}

// maxHash bounds the inventory and updates hashes a report names (a
// SHA-256 in hex is 64 bytes).
const maxHash = 128

// checkin applies an agent's report: facts, then the inventory and the
// package manager's updates when they changed.
func (s *Server) checkin(w http.ResponseWriter, r *http.Request, c *caller) error {
	var rep api.Report
	if err := decode(r, &rep, false); err != nil {
		return err
	}
	if err := fleet.ValidateFacts(rep.Facts); err != nil {
		return refused(err)
	}
	for _, h := range [...]struct{ field, value string }{{"inventory_hash", rep.InventoryHash}, {"updates_hash", rep.UpdatesHash}} {
		if len(h.value) > maxHash {
			return errBadRequest(fmt.Sprintf("%s: %d bytes, at most %d", h.field, len(h.value), maxHash), h.field)
		}
	}
	ctx := r.Context()
	hostID := c.tok.Subject
	h, err := s.db.Fleet.HostSummary(ctx, hostID)
	if err != nil {
		return err
	}
	if rep.Facts.MachineID != h.MachineID {
		s.log.Warn("a host credential was presented by another machine", "host", hostID, "enrolled_machine_id", h.MachineID, "presented_machine_id", rep.Facts.MachineID)
		return errConflict(api.CodeMachineMismatch, "this credential belongs to host "+hostID+" with another machine-id; a copied state dir? enroll this machine with its own enrollment (remove the state dir's credential)")
	}
	now := s.cfg.Now().UTC()
	// A report kept on disk is applied at the time it was collected, but
	// never after now nor before the host's last report.
	at := now
	if !rep.CollectedAt.IsZero() && rep.CollectedAt.Before(now) {
		at = rep.CollectedAt.UTC()
	}
	if at.Before(h.LastSeen) {
		at = h.LastSeen
	}
	resp := api.CheckinResponse{HostID: hostID, Inventory: "unchanged", Updates: "unchanged", Open: h.OpenTotal(),
		NextCheckinSeconds: int(s.cfg.Checkin / time.Second)}

	invChanged := rep.InventoryHash != h.InventoryHash
	if invChanged && rep.Inventory == nil {
		return errConflict(api.CodeInventoryRequired, "the server does not have inventory "+rep.InventoryHash+": send it in full")
	}
	updChanged := rep.UpdatesHash != h.UpdatesHash
	if updChanged && rep.Updates == nil {
		return errConflict(api.CodeUpdatesRequired, "the server does not have updates "+rep.UpdatesHash+": send them in full")
	}
	if invChanged {
		pkgs := *rep.Inventory
		if err := fleet.ValidateInventory("inventory", pkgs); err != nil {
			return refused(err)
		}
		if got := fleet.InventoryHash(pkgs); got != rep.InventoryHash {
			return errBadRequest("inventory_hash "+rep.InventoryHash+" is not the hash of the inventory sent ("+got+")", "inventory_hash")
		}
	}
	if updChanged {
		if err := fleet.ValidateUpdates(*rep.Updates); err != nil {
			return refused(err)
		}
		if got := fleet.UpdatesHash(*rep.Updates); got != rep.UpdatesHash {
			return errBadRequest("updates_hash "+rep.UpdatesHash+" is not the hash of the updates sent ("+got+")", "updates_hash")
		}
	}
	factsChanged := !reflect.DeepEqual(normFacts(rep.Facts), normFacts(h.Facts))
	switch {
	case factsChanged || invChanged || updChanged:
		if err := s.db.Fleet.CheckIn(ctx, hostID, rep.Facts, at); err != nil {
			return err
		}
	default:
		s.touches.add(hostID, at)
	}
	kind := "unchanged"
	if factsChanged {
		kind = "facts"
		s.markScores(ctx, "host facts")
	}
	if updChanged {
		if err := s.db.Fleet.SetUpdates(ctx, hostID, rep.UpdatesHash, *rep.Updates); err != nil {
			return err
		}
		seen := make([][2]string, 0, len(*rep.Updates))
		for _, u := range *rep.Updates {
			seen = append(seen, [2]string{u.Name, u.Candidate})
		}
		if err := s.db.Rollouts.SeeUpdates(ctx, rep.Facts.Ecosystem, seen, at); err != nil {
			return err
		}
		resp.Updates, kind = "stored", "updates"
	}
	if invChanged {
		start := time.Now()
		h.Host.Ecosystem = rep.Facts.Ecosystem
		tr, err := s.triage(ctx)
		if err != nil {
			return err
		}
		h.Host.Facts = rep.Facts
		res, err := s.matcher(tr).Ingest(ctx, h.Host, *rep.Inventory, at)
		if err != nil {
			return err
		}
		s.metrics.ingestRows.Add(float64(len(*rep.Inventory)))
		s.metrics.ingestSeconds.Observe(time.Since(start).Seconds())
		resp.Inventory, kind = "stored", "inventory"
		s.markScores(ctx, "inventory")
		resp.Open, resp.Opened, resp.Closed = res.Findings, res.Opened, res.Closed
	}
	// Labels the agent reports are part of the host's context: when they
	// change, so may its priorities (a new inventory was decided with
	// them already).
	if factsChanged && !invChanged {
		before, after := h.EffectiveLabels(), (fleet.Host{Labels: h.Labels, Facts: rep.Facts}).EffectiveLabels()
		if !maps.Equal(before, after) {
			if _, err := s.Reprioritize(ctx, fleet.Scope{HostIDs: []string{hostID}},
				fmt.Sprintf("labels reported by %s changed: %s", rep.Facts.Hostname, labelList(after))); err != nil {
				return err
			}
		}
	}
	s.metrics.checkins.WithLabelValues(kind).Inc()
	return writeJSON(w, http.StatusOK, resp)
}

// normFacts makes empty and missing collections compare equal.
func normFacts(f fleet.Facts) fleet.Facts {
	if len(f.Labels) == 0 {
		f.Labels = nil
	}
	if len(f.Addresses) == 0 {
		f.Addresses = nil
	}
	if len(f.RebootReasons) == 0 {
		f.RebootReasons = nil
	}
	// Uptime changes at every check-in: it is written with the next
	// change or, for an unchanged host, not at all (last_seen tells more).
	f.UptimeSeconds = 0
	return f
}

// toucher batches the check-in times of unchanged hosts: one transaction
// a second instead of one write per check-in.
type toucher struct {
	db   *store.DB
	mu   sync.Mutex
	seen map[string]time.Time
}

func (t *toucher) add(id string, at time.Time) {
	t.mu.Lock()
	if at.After(t.seen[id]) {
		t.seen[id] = at
	}
	t.mu.Unlock()
}

func (t *toucher) flush(ctx context.Context) error {
	t.mu.Lock()
	batch := t.seen
	t.seen = map[string]time.Time{}
	t.mu.Unlock()
	if err := t.db.Fleet.Touch(ctx, batch); err != nil {
		// Keep them for the next flush.
		t.mu.Lock()
		for id, at := range batch {
			if at.After(t.seen[id]) {
				t.seen[id] = at
			}
		}
		t.mu.Unlock()
		return err
	}
	return nil
}
