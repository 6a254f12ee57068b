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

	"github.com/patchbay/patchbay/auth"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/inventory"
	"github.com/patchbay/patchbay/match"
	"github.com/patchbay/patchbay/patch"
)

// Dialect holds one database's SQL for hosts and inventories.
type Dialect struct {
	UpsertHost string // (id, machine_id, hostname, ecosystem, labels, last_seen)
	LockHost   string // (id) → inventory_hash, locking the host row for the transaction
	EnsureSW   string // (ecosystem, name, version, source_name, source_version, match_name): insert if missing
	SoftwareID string // (ecosystem, name, version, source_name, source_version) → id
	HostHash   string // (id) → inventory_hash, without locking
	// HostSeq and EnsureHostSeq give a host its integer key: (host_id).
	HostSeq, EnsureHostSeq string
	// LocationID and EnsureLocation store each file path once: (path).
	LocationID, EnsureLocation string
	Links                      string // (host_seq) → software_id, location_id
	DeleteLink                 string // (host_seq, software_id, location_id)
	// InsertLinks inserts n (host_seq, software_id, location_id) rows.
	InsertLinks func(n int) string
	SetHash     string // (inventory_hash, host_id)
	Inventory   string // (host_id) → ecosystem, name, version, source_name, source_version, location
	CountSW     string // → count of software rows
	// SoftwareWith lists the hosts with software of a key, with the
	// software: (match_name, ecosystem, ecosystem LIKE pattern) → host_id,
	// ecosystem, name, version, source_name, source_version, location.
	SoftwareWith string

	// InsertHost enrolls a host: (id, machine_id, hostname, ecosystem,
	// labels, last_seen, facts, enrolled_at, clone_of).
	InsertHost string
	// OtherByMachine finds another host with a machine-id: (machine_id, id) → id.
	OtherByMachine string
	// MarkClone sets clone_of where unset: (clone_of, id).
	MarkClone string
	// InsertToken is the token store's insert, for enrollment's transaction.
	InsertToken string
	// UseEnrollment is the token store's spending of one use of an
	// enrollment token, for enrollment's transaction: (hash, now); one row
	// when a use was left.
	UseEnrollment string
	// CheckIn stores facts: (hostname, ecosystem, facts, last_seen, id).
	CheckIn string
	// Touch updates last_seen only when it grows: (last_seen, id, last_seen).
	Touch string
	// SetUpdates: (updates_hash, updates, updates_count, id).
	SetUpdates string
	// Updates: (id) → updates.
	Updates string
	// SetLabels: (labels, id).
	SetLabels string
	// Hosts lists every host: → HostColumns.
	Hosts string
	// HostSummary reads one host: (id) → HostColumns.
	HostSummary string
	// Rebind turns '?' placeholders into the database's.
	Rebind func(string) string
	// WriteLock, when set, serialises this process's big write
	// transactions (SQLite has one writer: queueing in Go is fair and
	// cheap, where busy-waiting on the database lock is neither).
	WriteLock *sync.Mutex
	// GroupLanes is how many group commits of ingests may run at once
	// (PostgreSQL: row locks let them run in parallel); with WriteLock set
	// there is one.
	GroupLanes int
	// PrepareInGroup prepares a group's statements once for its
	// transaction (SQLite, in process, where preparing costs as much as a
	// small statement runs; PostgreSQL's driver caches prepared
	// statements per connection already).
	PrepareInGroup bool
}

func lockWrites(mu *sync.Mutex) func() {
	if mu == nil {
		return func() {}
	}
	mu.Lock()
	return mu.Unlock
}

// HostColumns is the column list of Hosts and HostSummary, in order.
const HostColumns = "id, machine_id, hostname, ecosystem, labels, last_seen, inventory_hash, updates_hash, facts, enrolled_at, clone_of, open_counts, updates_count"

// Store keeps hosts and inventories.
type Store struct {
	DB *sql.DB
	D  *Dialect

	// ids caches software ids. Software rows are never deleted or
	// renumbered, so an id once committed stays right.
	mu  sync.Mutex
	ids map[swKey]int64
	// swMu serialises the look-up of software rows not cached.
	swMu sync.Mutex
	// seqs and locs cache host keys and location ids, never renumbered.
	seqs map[string]int64
	locs map[string]int64

	// Findings keeps the hosts' findings: IngestInventory writes them in
	// the inventory's transaction.
	Findings *Findings
	// groups queue IngestInventory's writes: one lane on a database with
	// one writer, GroupLanes of them (a host always in the same one)
	// where writers run in parallel.
	groups     []groupCommit
	groupsOnce sync.Once
}

// keyOf returns the id of name in a table of names (host keys, locations),
// inserting it when missing, through a process-wide cache.
func (s *Store) keyOf(ctx context.Context, cache *map[string]int64, get, ensure, name string) (int64, error) {
	s.mu.Lock()
	id, ok := (*cache)[name]
	s.mu.Unlock()
	if ok {
		return id, nil
	}
	err := s.DB.QueryRowContext(ctx, get, name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		if _, err := s.DB.ExecContext(ctx, ensure, name); err != nil {
			return 0, err
		}
		err = s.DB.QueryRowContext(ctx, get, name).Scan(&id)
	}
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	if *cache == nil {
		*cache = map[string]int64{}
	}
	(*cache)[name] = id
	s.mu.Unlock()
	return id, nil
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
	h, err := s.HostSummary(ctx, id)
	return h.Host, err
}

// HostSummary returns one host with its counts.
func (s *Store) HostSummary(ctx context.Context, id string) (fleet.HostSummary, error) {
	h, err := scanHost(s.DB.QueryRowContext(ctx, s.D.HostSummary, id))
	if errors.Is(err, sql.ErrNoRows) {
		return h, fmt.Errorf("host %s: %w", id, fleet.ErrNotFound)
	}
	if err != nil {
		return h, fmt.Errorf("read host %s: %w", id, err)
	}
	return h, nil
}

type scanner interface{ Scan(...any) error }

func scanHost(r scanner) (fleet.HostSummary, error) {
	var h fleet.HostSummary
	var labels, facts, counts string
	var seen, enrolled int64
	if err := r.Scan(&h.ID, &h.MachineID, &h.Hostname, &h.Ecosystem, &labels, &seen, &h.InventoryHash, &h.UpdatesHash,
		&facts, &enrolled, &h.CloneOf, &counts, &h.Updates); err != nil {
		return h, err
	}
	h.LastSeen = time.Unix(0, seen).UTC()
	if enrolled != 0 {
		h.EnrolledAt = time.Unix(0, enrolled).UTC()
	}
	if err := json.Unmarshal([]byte(labels), &h.Labels); err != nil {
		return h, fmt.Errorf("host %s labels: %w", h.ID, err)
	}
	if err := json.Unmarshal([]byte(facts), &h.Facts); err != nil {
		return h, fmt.Errorf("host %s facts: %w", h.ID, err)
	}
	if err := json.Unmarshal([]byte(counts), &h.Open); err != nil {
		return h, fmt.Errorf("host %s counts: %w", h.ID, err)
	}
	if h.Labels == nil {
		h.Labels = map[string]string{}
	}
	if h.Open == nil {
		h.Open = map[string]int{}
	}
	return h, nil
}

// Hosts lists the hosts a filter selects, by hostname.
func (s *Store) Hosts(ctx context.Context, f fleet.HostFilter) ([]fleet.HostSummary, error) {
	rows, err := s.DB.QueryContext(ctx, s.D.Hosts)
	if err != nil {
		return nil, fmt.Errorf("list hosts: %w", err)
	}
	defer rows.Close()
	out := []fleet.HostSummary{}
	for rows.Next() {
		h, err := scanHost(rows)
		if err != nil {
			return nil, fmt.Errorf("list hosts: %w", err)
		}
		if f.Match(h) {
			out = append(out, h)
		}
	}
	return out, rows.Err()
}

// Enroll stores a new host and its credential in one transaction, and
// spends in it one use of the enrollment token whose secret hashes to
// enrollment (none for ""; a host seeded directly): an enrollment that
// fails leaves the token's uses as they were, and of N concurrent
// enrollments with M uses left exactly min(N, M) succeed. A token with no
// use left (or expired, or revoked) is auth.ErrExhausted. When another
// host has the same machine-id, both are flagged as clones of each other
// (never merged); the new host's CloneOf is returned.
func (s *Store) Enroll(ctx context.Context, h fleet.Host, cred auth.Token, credHash, enrollment string) (cloneOf string, err error) {
	labels, err := json.Marshal(h.Labels)
	if err != nil {
		return "", err
	}
	facts, err := json.Marshal(h.Facts)
	if err != nil {
		return "", err
	}
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return "", err
	}
	defer tx.Rollback()
	if enrollment != "" {
		res, err := tx.ExecContext(ctx, s.D.UseEnrollment, enrollment, h.EnrolledAt.UnixNano())
		if err != nil {
			return "", fmt.Errorf("enroll %s: spend the enrollment token: %w", h.Hostname, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return "", fmt.Errorf("enroll %s: spend the enrollment token: %w", h.Hostname, err)
		} else if n != 1 {
			return "", fmt.Errorf("enroll %s: enrollment token: %w", h.Hostname, auth.ErrExhausted)
		}
	}
	var other string
	if err := tx.QueryRowContext(ctx, s.D.OtherByMachine, h.MachineID, h.ID).Scan(&other); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("enroll %s: %w", h.Hostname, err)
	}
	if _, err := tx.ExecContext(ctx, s.D.InsertHost, h.ID, h.MachineID, h.Hostname, h.Ecosystem, string(labels), h.LastSeen.UnixNano(),
		string(facts), h.EnrolledAt.UnixNano(), other); err != nil {
		return "", fmt.Errorf("enroll %s: %w", h.Hostname, err)
	}
	if other != "" {
		if _, err := tx.ExecContext(ctx, s.D.MarkClone, h.ID, other); err != nil {
			return "", fmt.Errorf("enroll %s: %w", h.Hostname, err)
		}
	}
	if _, err := tx.ExecContext(ctx, s.D.InsertToken, cred.ID, credHash, string(cred.Kind), string(cred.Role), cred.Name,
		cred.Created.UnixNano(), int64(0), cred.UsesLeft, false, cred.Subject); err != nil {
		return "", fmt.Errorf("enroll %s: %w", h.Hostname, err)
	}
	return other, tx.Commit()
}

// CheckIn stores a host's facts and the time it was seen.
func (s *Store) CheckIn(ctx context.Context, id string, f fleet.Facts, seen time.Time) error {
	facts, err := json.Marshal(f)
	if err != nil {
		return err
	}
	// Queued with the ingests' group commits (SQLite): busy-waiting on
	// the database lock, a small write loses to them for seconds.
	defer lockWrites(s.D.WriteLock)()
	res, err := s.DB.ExecContext(ctx, s.D.CheckIn, f.Hostname, f.Ecosystem, string(facts), seen.UnixNano(), id)
	if err != nil {
		return fmt.Errorf("check-in of %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("host %s: %w", id, fleet.ErrNotFound)
	}
	return nil
}

// Touch records that hosts were seen, in one transaction; a host's
// last_seen never goes back.
func (s *Store) Touch(ctx context.Context, seen map[string]time.Time) error {
	if len(seen) == 0 {
		return nil
	}
	defer lockWrites(s.D.WriteLock)()
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	st, err := tx.PrepareContext(ctx, s.D.Touch)
	if err != nil {
		return err
	}
	defer st.Close()
	// Rows are locked in id order, as every multi-host transaction
	// does: two of them cannot deadlock.
	ids := make([]string, 0, len(seen))
	for id := range seen {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		t := seen[id]
		if _, err := st.ExecContext(ctx, t.UnixNano(), id, t.UnixNano()); err != nil {
			return fmt.Errorf("record check-ins: %w", err)
		}
	}
	return tx.Commit()
}

// SetUpdates stores the updates a host's package manager offers.
func (s *Store) SetUpdates(ctx context.Context, id, hash string, ups []patch.Update) error {
	if ups == nil {
		ups = []patch.Update{}
	}
	b, err := json.Marshal(ups)
	if err != nil {
		return err
	}
	defer lockWrites(s.D.WriteLock)()
	if _, err := s.DB.ExecContext(ctx, s.D.SetUpdates, hash, string(b), len(ups), id); err != nil {
		return fmt.Errorf("store updates of %s: %w", id, err)
	}
	return nil
}

// Updates returns the updates a host's package manager offers.
func (s *Store) Updates(ctx context.Context, id string) ([]patch.Update, error) {
	var b string
	if err := s.DB.QueryRowContext(ctx, s.D.Updates, id).Scan(&b); errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("host %s: %w", id, fleet.ErrNotFound)
	} else if err != nil {
		return nil, fmt.Errorf("read updates of %s: %w", id, err)
	}
	var ups []patch.Update
	if err := json.Unmarshal([]byte(b), &ups); err != nil {
		return nil, fmt.Errorf("updates of %s: %w", id, err)
	}
	return ups, nil
}

// SetLabels replaces the labels set on the server for a host.
func (s *Store) SetLabels(ctx context.Context, id string, labels map[string]string) error {
	b, err := json.Marshal(labels)
	if err != nil {
		return err
	}
	res, err := s.DB.ExecContext(ctx, s.D.SetLabels, string(b), id)
	if err != nil {
		return fmt.Errorf("set labels of %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("host %s: %w", id, fleet.ErrNotFound)
	}
	return nil
}

// softwareIDs returns the id of every package's software row, inserting
// the missing ones first. Software rows are shared and never change, so
// they are inserted outside the inventory's transaction, one autocommit
// statement each, in a stable order: concurrent ingests cannot deadlock
// on them, and a failed ingest leaves at most unused rows behind.
func (s *Store) softwareIDs(ctx context.Context, pkgs []inventory.Package) ([]int64, error) {
	ids := make([]int64, len(pkgs))
	var missing []int
	for i, p := range pkgs {
		if id, ok := s.cached(swKey{p.Ecosystem, p.Name, p.Version, p.SourceName, p.SourceVersion}); ok {
			ids[i] = id
		} else {
			missing = append(missing, i)
		}
	}
	if len(missing) == 0 {
		return ids, nil
	}
	// One ingest at a time looks missing rows up: the first hosts of a
	// fleet share most of their packages, and 64 of them resolving the
	// same 1,400 rows at once cost 64 times the statements (seconds of
	// round trips on PostgreSQL); after the first, the others find them
	// cached.
	s.swMu.Lock()
	defer s.swMu.Unlock()
	still := missing[:0]
	for _, i := range missing {
		p := pkgs[i]
		if id, ok := s.cached(swKey{p.Ecosystem, p.Name, p.Version, p.SourceName, p.SourceVersion}); ok {
			ids[i] = id
		} else {
			still = append(still, i)
		}
	}
	if missing = still; len(missing) == 0 {
		return ids, nil
	}
	sort.Slice(missing, func(a, b int) bool {
		pa, pb := pkgs[missing[a]], pkgs[missing[b]]
		return swLess(swKey{pa.Ecosystem, pa.Name, pa.Version, pa.SourceName, pa.SourceVersion}, swKey{pb.Ecosystem, pb.Name, pb.Version, pb.SourceName, pb.SourceVersion})
	})
	getID, err := s.DB.PrepareContext(ctx, s.D.SoftwareID)
	if err != nil {
		return nil, err
	}
	defer getID.Close()
	ensure, err := s.DB.PrepareContext(ctx, s.D.EnsureSW)
	if err != nil {
		return nil, err
	}
	defer ensure.Close()
	fresh := map[swKey]int64{}
	for _, i := range missing {
		p := pkgs[i]
		k := swKey{p.Ecosystem, p.Name, p.Version, p.SourceName, p.SourceVersion}
		if id, ok := fresh[k]; ok {
			ids[i] = id
			continue
		}
		args := []any{p.Ecosystem, p.Name, p.Version, p.SourceName, p.SourceVersion}
		var id int64
		err := getID.QueryRowContext(ctx, args...).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			if _, err := ensure.ExecContext(ctx, append(args, match.KeyOf(p).Name)...); err != nil {
				return nil, err
			}
			err = getID.QueryRowContext(ctx, args...).Scan(&id)
		}
		if err != nil {
			return nil, err
		}
		fresh[k], ids[i] = id, id
	}
	s.remember(fresh)
	return ids, nil
}

func swLess(a, b swKey) bool {
	switch {
	case a.eco != b.eco:
		return a.eco < b.eco
	case a.name != b.name:
		return a.name < b.name
	case a.version != b.version:
		return a.version < b.version
	case a.srcName != b.srcName:
		return a.srcName < b.srcName
	}
	return a.srcVersion < b.srcVersion
}

type link struct {
	id       int64
	location int64
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

// SoftwareWith returns, per host, its packages named by any of the keys.
func (s *Store) SoftwareWith(ctx context.Context, keys []match.Key) (map[string][]inventory.Package, error) {
	out := map[string][]inventory.Package{}
	seen := map[match.Key]bool{}
	for _, k := range keys {
		if seen[k] {
			continue
		}
		seen[k] = true
		like := k.Ecosystem
		if !strings.Contains(k.Ecosystem, ":") {
			like = k.Ecosystem + ":%"
		}
		rows, err := s.DB.QueryContext(ctx, s.D.SoftwareWith, k.Name, k.Ecosystem, like)
		if err != nil {
			return nil, fmt.Errorf("software of %s/%s: %w", k.Ecosystem, k.Name, err)
		}
		for rows.Next() {
			var id string
			var p inventory.Package
			if err := rows.Scan(&id, &p.Ecosystem, &p.Name, &p.Version, &p.SourceName, &p.SourceVersion, &p.Location); err != nil {
				rows.Close()
				return nil, err
			}
			out[id] = append(out[id], p)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// SoftwareCount counts the distinct package versions stored.
func (s *Store) SoftwareCount(ctx context.Context) (int, error) {
	var n int
	err := s.DB.QueryRowContext(ctx, s.D.CountSW).Scan(&n)
	return n, err
}

// Assets returns every host with its effective labels.
func (s *Store) Assets(ctx context.Context) (map[string]fleet.Asset, error) {
	hosts, err := s.Hosts(ctx, fleet.HostFilter{Kind: "all"})
	if err != nil {
		return nil, err
	}
	out := make(map[string]fleet.Asset, len(hosts))
	for _, h := range hosts {
		out[h.ID] = fleet.AssetOf(h.Host)
	}
	return out, nil
}

// EnsureService returns the asset that holds a service's uploaded
// inventory, creating it the first time.
func (s *Store) EnsureService(ctx context.Context, name string, now time.Time) (fleet.Host, error) {
	id := fleet.ServiceAssetID(name)
	labels := map[string]string{fleet.ServiceLabel: name}
	facts, err := json.Marshal(fleet.Facts{Hostname: name, MachineID: fleet.ServicePrefix + name, Labels: labels})
	if err != nil {
		return fleet.Host{}, err
	}
	if _, err := s.DB.ExecContext(ctx, s.D.Rebind(`INSERT INTO hosts(id, machine_id, hostname, ecosystem, labels, last_seen, inventory_hash, facts, enrolled_at, clone_of)
		VALUES(?,?,?,'','{}',?,'',?,?,'') ON CONFLICT(id) DO NOTHING`), id, fleet.ServicePrefix+name, name, now.UnixNano(), string(facts), now.UnixNano()); err != nil {
		return fleet.Host{}, fmt.Errorf("service %s: %w", name, err)
	}
	if _, err := s.DB.ExecContext(ctx, s.D.Rebind(`UPDATE hosts SET last_seen = ? WHERE id = ?`), now.UnixNano(), id); err != nil {
		return fleet.Host{}, fmt.Errorf("service %s: %w", name, err)
	}
	h, err := s.HostSummary(ctx, id)
	return h.Host, err
}

// AssetsOf returns the named hosts with their effective labels.
func (s *Store) AssetsOf(ctx context.Context, ids []string) (map[string]fleet.Asset, error) {
	out := make(map[string]fleet.Asset, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	rows, err := s.DB.QueryContext(ctx, s.D.Rebind(`SELECT `+HostColumns+` FROM hosts WHERE id IN (`+strings.TrimSuffix(strings.Repeat("?,", len(ids)), ",")+`)`), args...)
	if err != nil {
		return nil, fmt.Errorf("hosts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		h, err := scanHost(rows)
		if err != nil {
			return nil, fmt.Errorf("hosts: %w", err)
		}
		out[h.ID] = fleet.AssetOf(h.Host)
	}
	return out, rows.Err()
}
