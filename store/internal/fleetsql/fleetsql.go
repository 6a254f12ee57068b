// Package fleetsql keeps hosts and their inventories on database/sql,
// shared by the SQLite and PostgreSQL stores, each with its own SQL.
package fleetsql

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/inventory"
	"github.com/patchbay/patchbay/match"
)

// Dialect holds one database's SQL for hosts and inventories.
type Dialect struct {
	UpsertHost  string // (id, machine_id, hostname, ecosystem, labels, last_seen)
	Host        string // (id) → id, machine_id, hostname, ecosystem, labels, last_seen, inventory_hash
	LockHost    string // (id) → inventory_hash, locking the host row for the transaction
	EnsureSW    string // (ecosystem, name, version, source_name, source_version, match_name): insert if missing
	SoftwareID  string // (ecosystem, name, version, source_name, source_version) → id
	DeleteLinks string // (host_id)
	// InsertLinks inserts n (host_id, software_id, location) rows.
	InsertLinks func(n int) string
	SetHash     string // (inventory_hash, host_id)
	Inventory   string // (host_id) → ecosystem, name, version, source_name, source_version, location
	CountSW     string // → count of software rows
	// HostsWith lists the hosts with software of a key: (match_name,
	// ecosystem, ecosystem LIKE pattern) → host_id.
	HostsWith string
}

// Store keeps hosts and inventories.
type Store struct {
	DB *sql.DB
	D  *Dialect

	// ids caches software ids. Software rows are never deleted or
	// renumbered, so an id once committed stays right.
	mu  sync.Mutex
	ids map[swKey]int64
}

type swKey struct{ eco, name, version, srcName, srcVersion string }

func (s *Store) cached(k swKey) (int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.ids[k]
	return id, ok
}

func (s *Store) remember(fresh map[swKey]int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ids == nil {
		s.ids = map[swKey]int64{}
	}
	for k, id := range fresh {
		s.ids[k] = id
	}
}

// UpsertHost creates or updates a host's identity and facts.
func (s *Store) UpsertHost(ctx context.Context, h fleet.Host) error {
	labels, err := json.Marshal(h.Labels)
	if err != nil {
		return err
	}
	if _, err := s.DB.ExecContext(ctx, s.D.UpsertHost, h.ID, h.MachineID, h.Hostname, h.Ecosystem, string(labels), h.LastSeen.UnixNano()); err != nil {
		return fmt.Errorf("store host %s: %w", h.ID, err)
	}
	return nil
}

// Host returns one host.
func (s *Store) Host(ctx context.Context, id string) (fleet.Host, error) {
	var h fleet.Host
	var labels string
	var seen int64
	err := s.DB.QueryRowContext(ctx, s.D.Host, id).Scan(&h.ID, &h.MachineID, &h.Hostname, &h.Ecosystem, &labels, &seen, &h.InventoryHash)
	if errors.Is(err, sql.ErrNoRows) {
		return h, fmt.Errorf("host %s: %w", id, fleet.ErrNotFound)
	}
	if err != nil {
		return h, fmt.Errorf("read host %s: %w", id, err)
	}
	h.LastSeen = time.Unix(0, seen).UTC()
	if err := json.Unmarshal([]byte(labels), &h.Labels); err != nil {
		return h, fmt.Errorf("host %s labels: %w", id, err)
	}
	return h, nil
}

// ReplaceInventory replaces a host's inventory in one transaction: a
// failed ingest leaves the previous inventory intact. It does nothing and
// returns false when the inventory hash is unchanged.
func (s *Store) ReplaceInventory(ctx context.Context, hostID string, pkgs []inventory.Package) (changed bool, err error) {
	hash := fleet.InventoryHash(pkgs)
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	var cur string
	if err := tx.QueryRowContext(ctx, s.D.LockHost, hostID).Scan(&cur); errors.Is(err, sql.ErrNoRows) {
		return false, fmt.Errorf("host %s: %w", hostID, fleet.ErrNotFound)
	} else if err != nil {
		return false, fmt.Errorf("ingest inventory of %s: %w", hostID, err)
	}
	if cur == hash {
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, s.D.DeleteLinks, hostID); err != nil {
		return false, fmt.Errorf("ingest inventory of %s: %w", hostID, err)
	}
	ensure, err := tx.PrepareContext(ctx, s.D.EnsureSW)
	if err != nil {
		return false, err
	}
	defer ensure.Close()
	getID, err := tx.PrepareContext(ctx, s.D.SoftwareID)
	if err != nil {
		return false, err
	}
	defer getID.Close()
	type link struct {
		id       int64
		location string
	}
	links := make([]link, 0, len(pkgs))
	fresh := map[swKey]int64{} // inserted by this transaction: cached after commit
	for i, p := range pkgs {
		if err := fleet.Validate(i, p); err != nil {
			return false, fmt.Errorf("ingest inventory of %s: %w", hostID, err)
		}
		// Most software is already known (fleets share versions): a
		// process-wide cache, then a look-up, then an insert.
		k := swKey{p.Ecosystem, p.Name, p.Version, p.SourceName, p.SourceVersion}
		id, ok := s.cached(k)
		if !ok {
			args := []any{p.Ecosystem, p.Name, p.Version, p.SourceName, p.SourceVersion}
			err := getID.QueryRowContext(ctx, args...).Scan(&id)
			if errors.Is(err, sql.ErrNoRows) {
				if _, err := ensure.ExecContext(ctx, append(args, match.KeyOf(p).Name)...); err != nil {
					return false, fmt.Errorf("ingest inventory of %s: %w", hostID, err)
				}
				err = getID.QueryRowContext(ctx, args...).Scan(&id)
			}
			if err != nil {
				return false, fmt.Errorf("ingest inventory of %s: %w", hostID, err)
			}
			fresh[k] = id
		}
		links = append(links, link{id, p.Location})
	}
	// Links in multi-row statements.
	const batch = 200
	for start := 0; start < len(links); start += batch {
		chunk := links[start:min(start+batch, len(links))]
		args := make([]any, 0, 3*len(chunk))
		for _, l := range chunk {
			args = append(args, hostID, l.id, l.location)
		}
		if _, err := tx.ExecContext(ctx, s.D.InsertLinks(len(chunk)), args...); err != nil {
			return false, fmt.Errorf("ingest inventory of %s: %w", hostID, err)
		}
	}
	defer func() {
		if err == nil {
			s.remember(fresh)
		}
	}()
	if _, err := tx.ExecContext(ctx, s.D.SetHash, hash, hostID); err != nil {
		return false, fmt.Errorf("ingest inventory of %s: %w", hostID, err)
	}
	return true, tx.Commit()
}

// Inventory returns a host's packages, sorted.
func (s *Store) Inventory(ctx context.Context, hostID string) ([]inventory.Package, error) {
	rows, err := s.DB.QueryContext(ctx, s.D.Inventory, hostID)
	if err != nil {
		return nil, fmt.Errorf("read inventory of %s: %w", hostID, err)
	}
	defer rows.Close()
	var out []inventory.Package
	for rows.Next() {
		var p inventory.Package
		if err := rows.Scan(&p.Ecosystem, &p.Name, &p.Version, &p.SourceName, &p.SourceVersion, &p.Location); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// HostsWith returns the hosts that have software named by any of the keys
// (a key of a bare ecosystem, "Debian", also names "Debian:12" software).
func (s *Store) HostsWith(ctx context.Context, keys []match.Key) ([]string, error) {
	set := map[string]bool{}
	for _, k := range keys {
		like := k.Ecosystem
		if !strings.Contains(k.Ecosystem, ":") {
			like = k.Ecosystem + ":%"
		}
		rows, err := s.DB.QueryContext(ctx, s.D.HostsWith, k.Name, k.Ecosystem, like)
		if err != nil {
			return nil, fmt.Errorf("hosts with %s/%s: %w", k.Ecosystem, k.Name, err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, err
			}
			set[id] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	out := make([]string, 0, len(set))
	for id := range set {
		out = append(out, id)
	}
	sort.Strings(out)
	return out, nil
}

// SoftwareCount counts the distinct package versions stored.
func (s *Store) SoftwareCount(ctx context.Context) (int, error) {
	var n int
	err := s.DB.QueryRowContext(ctx, s.D.CountSW).Scan(&n)
	return n, err
}

// FindingsDialect holds one database's SQL for host findings.
type FindingsDialect struct {
	LockHost string // (host_id): serialise syncs of one host
	Open     string // (host_id) → id, ecosystem, package, vulnerability
	Insert   string // (host_id, ecosystem, package, vulnerability, version, priority, fixed, first_seen)
	Update   string // (version, priority, fixed, id)
	Close    string // (remediated_at, id)
	List     string // (host_id) → ecosystem, package, vulnerability, version, priority, fixed, first_seen, remediated_at
}

// Findings keeps host findings and their history.
type Findings struct {
	DB *sql.DB
	D  *FindingsDialect
}

// Sync makes the host's open findings those of current: new ones open
// (first seen now), those still present are updated, and those gone are
// closed as remediated now. It returns how many opened and closed.
func (s *Findings) Sync(ctx context.Context, hostID string, current []fleet.Finding, now time.Time) (opened, closed int, err error) {
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return 0, 0, err
	}
	defer tx.Rollback()
	var hash string
	if err := tx.QueryRowContext(ctx, s.D.LockHost, hostID).Scan(&hash); errors.Is(err, sql.ErrNoRows) {
		return 0, 0, fmt.Errorf("host %s: %w", hostID, fleet.ErrNotFound)
	} else if err != nil {
		return 0, 0, fmt.Errorf("sync findings of %s: %w", hostID, err)
	}
	rows, err := tx.QueryContext(ctx, s.D.Open, hostID)
	if err != nil {
		return 0, 0, fmt.Errorf("sync findings of %s: %w", hostID, err)
	}
	open := map[string]int64{}
	for rows.Next() {
		var id int64
		var f fleet.Finding
		if err := rows.Scan(&id, &f.Ecosystem, &f.Package, &f.Vulnerability); err != nil {
			rows.Close()
			return 0, 0, err
		}
		open[f.Key()] = id
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, 0, err
	}
	seen := map[string]bool{}
	for _, f := range current {
		k := f.Key()
		if seen[k] {
			continue
		}
		seen[k] = true
		if id, ok := open[k]; ok {
			if _, err := tx.ExecContext(ctx, s.D.Update, f.Version, f.Priority, f.Fixed, id); err != nil {
				return 0, 0, fmt.Errorf("sync findings of %s: %w", hostID, err)
			}
			continue
		}
		if _, err := tx.ExecContext(ctx, s.D.Insert, hostID, f.Ecosystem, f.Package, f.Vulnerability, f.Version, f.Priority, f.Fixed, now.UnixNano()); err != nil {
			return 0, 0, fmt.Errorf("sync findings of %s: %w", hostID, err)
		}
		opened++
	}
	for k, id := range open {
		if seen[k] {
			continue
		}
		if _, err := tx.ExecContext(ctx, s.D.Close, now.UnixNano(), id); err != nil {
			return 0, 0, fmt.Errorf("sync findings of %s: %w", hostID, err)
		}
		closed++
	}
	return opened, closed, tx.Commit()
}

// List returns a host's findings, open and closed, oldest first.
func (s *Findings) List(ctx context.Context, hostID string) ([]fleet.Finding, error) {
	rows, err := s.DB.QueryContext(ctx, s.D.List, hostID)
	if err != nil {
		return nil, fmt.Errorf("list findings of %s: %w", hostID, err)
	}
	defer rows.Close()
	var out []fleet.Finding
	for rows.Next() {
		f := fleet.Finding{HostID: hostID}
		var first, rem int64
		if err := rows.Scan(&f.Ecosystem, &f.Package, &f.Vulnerability, &f.Version, &f.Priority, &f.Fixed, &first, &rem); err != nil {
			return nil, err
		}
		f.FirstSeen = time.Unix(0, first).UTC()
		if rem != 0 {
			f.RemediatedAt = time.Unix(0, rem).UTC()
		}
		out = append(out, f)
	}
	return out, rows.Err()
}
