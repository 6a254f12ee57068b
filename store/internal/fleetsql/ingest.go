// Inventory ingest in one transaction with its findings, and group
// commit of concurrent ingests on a database with one writer.

package fleetsql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/inventory"
)

// txq runs a transaction's statements; with prepare set each distinct
// query is prepared once for the transaction's life (SQLite, in
// process, where preparing costs as much as a small statement runs; a
// group commit runs the same few statements for dozens of hosts).
// Without it statements go straight to the transaction (PostgreSQL,
// whose driver caches prepared statements per connection).
type txq struct {
	tx      *sql.Tx
	prepare bool
	stmts   map[string]*sql.Stmt
}

func (q *txq) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := q.stmts[query]; ok {
		return st, nil
	}
	st, err := q.tx.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if q.stmts == nil {
		q.stmts = map[string]*sql.Stmt{}
	}
	q.stmts[query] = st
	return st, nil
}

func (q *txq) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if !q.prepare {
		return q.tx.ExecContext(ctx, query, args...)
	}
	st, err := q.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

func (q *txq) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if !q.prepare {
		return q.tx.QueryContext(ctx, query, args...)
	}
	st, err := q.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// scan runs a query of one row into dest; sql.ErrNoRows when none.
func (q *txq) scan(ctx context.Context, query string, args []any, dest ...any) error {
	if !q.prepare {
		return q.tx.QueryRowContext(ctx, query, args...).Scan(dest...)
	}
	st, err := q.stmt(ctx, query)
	if err != nil {
		return err
	}
	return st.QueryRowContext(ctx, args...).Scan(dest...)
}

func (q *txq) close() {
	for _, st := range q.stmts {
		st.Close()
	}
}

// ingestOp is one host's inventory and findings, ready to be written.
type ingestOp struct {
	hostID, hash string
	want         map[link]bool // the inventory's links
	current      []fleet.Finding
	now          time.Time
	cause        string
	seq          int64 // the host's key, found or made in the transaction
	// inventoryOnly writes the inventory and leaves the findings alone
	// (ReplaceInventory).
	inventoryOnly bool
}

type ingestRes struct {
	changed        bool
	opened, closed int
	err            error
}

// IngestInventory replaces a host's inventory and makes its open findings
// those of current (matched from that inventory), in one transaction:
// either both are stored or neither, so a host is never left with a new
// inventory and the findings of the old one. It does nothing and returns
// false when the inventory hash is unchanged.
//
// On SQLite (one writer) concurrent ingests are group-committed: the
// first waiting one writes the queued ones, up to maxGroup, in one
// transaction, each under a savepoint (a failing ingest is rolled back
// alone and answered its error, the others are kept), and every ingest
// returns only after that transaction committed.
func (s *Store) IngestInventory(ctx context.Context, hostID string, pkgs []inventory.Package, current []fleet.Finding, now time.Time, cause string) (changed bool, opened, closed int, err error) {
	if s.Findings == nil {
		return false, 0, 0, errors.New("ingest inventory: the fleet store has no findings store")
	}
	op, err := s.prepareIngest(ctx, hostID, pkgs)
	if op == nil || err != nil {
		return false, 0, 0, err
	}
	op.current, op.now, op.cause = current, now, cause
	r := s.ingest(ctx, op)
	return r.changed, r.opened, r.closed, r.err
}

// ReplaceInventory replaces a host's inventory, leaving its findings as
// they are: the inventory half of IngestInventory, written the same way
// (group-committed on SQLite); a failed ingest leaves the previous
// inventory intact. It returns false when the hash is unchanged. Only the
// links that changed are written: an upgrade of a few packages costs a
// few rows.
func (s *Store) ReplaceInventory(ctx context.Context, hostID string, pkgs []inventory.Package) (changed bool, err error) {
	op, err := s.prepareIngest(ctx, hostID, pkgs)
	if op == nil || err != nil {
		return false, err
	}
	op.inventoryOnly = true
	r := s.ingest(ctx, op)
	return r.changed, r.err
}

// prepareIngest validates an inventory and resolves, outside any write
// transaction, the keys of its software and locations; nil when the
// stored inventory already has its hash.
func (s *Store) prepareIngest(ctx context.Context, hostID string, pkgs []inventory.Package) (*ingestOp, error) {
	hash := fleet.InventoryHash(pkgs)
	for i, p := range pkgs {
		if err := fleet.Validate(i, p); err != nil {
			return nil, fmt.Errorf("ingest inventory of %s: %w", hostID, err)
		}
	}
	var cur string
	if err := s.DB.QueryRowContext(ctx, s.D.HostHash, hostID).Scan(&cur); errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("host %s: %w", hostID, fleet.ErrNotFound)
	} else if err != nil {
		return nil, fmt.Errorf("ingest inventory of %s: %w", hostID, err)
	} else if cur == hash {
		return nil, nil
	}
	ids, err := s.softwareIDs(ctx, pkgs)
	if err != nil {
		return nil, fmt.Errorf("ingest inventory of %s: %w", hostID, err)
	}
	want := make(map[link]bool, len(pkgs))
	for i, p := range pkgs {
		loc, err := s.keyOf(ctx, &s.locs, s.D.LocationID, s.D.EnsureLocation, p.Location)
		if err != nil {
			return nil, fmt.Errorf("ingest inventory of %s: %w", hostID, err)
		}
		want[link{ids[i], loc}] = true
	}
	return &ingestOp{hostID: hostID, hash: hash, want: want}, nil
}

// ingest writes op group-committed with others: in one lane on SQLite
// (one writer), in the host's lane of GroupLanes on PostgreSQL; in its own
// transaction when the dialect has neither.
func (s *Store) ingest(ctx context.Context, op *ingestOp) ingestRes {
	lanes := s.D.GroupLanes
	if s.D.WriteLock != nil {
		lanes = 1
	}
	if lanes <= 0 {
		return s.ingestAlone(ctx, op)
	}
	s.groupsOnce.Do(func() { s.groups = make([]groupCommit, lanes) })
	h := fnv.New32a()
	h.Write([]byte(op.hostID))
	return s.groups[int(h.Sum32()%uint32(lanes))].submit(ctx, s, op)
}

// ingestAlone writes one ingest in its own transaction.
func (s *Store) ingestAlone(ctx context.Context, op *ingestOp) (r ingestRes) {
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return ingestRes{err: fmt.Errorf("ingest inventory of %s: %w", op.hostID, err)}
	}
	defer tx.Rollback()
	q := &txq{tx: tx}
	defer q.close()
	if r = s.ingestTx(ctx, q, op); r.err != nil {
		return r
	}
	if err := tx.Commit(); err != nil {
		return ingestRes{err: fmt.Errorf("ingest inventory of %s: %w", op.hostID, err)}
	}
	s.rememberSeq(op)
	return r
}

func (s *Store) rememberSeq(op *ingestOp) {
	if op.seq == 0 {
		return
	}
	s.mu.Lock()
	if s.seqs == nil {
		s.seqs = map[string]int64{}
	}
	s.seqs[op.hostID] = op.seq
	s.mu.Unlock()
}

// ingestTx writes one host's inventory links, hash and findings in q's
// transaction. The host row is locked first, then its key is found or
// made: every statement touches that host's rows only, so concurrent
// ingests (PostgreSQL) cannot deadlock.
func (s *Store) ingestTx(ctx context.Context, q *txq, op *ingestOp) ingestRes {
	fail := func(err error) ingestRes {
		return ingestRes{err: fmt.Errorf("ingest inventory of %s: %w", op.hostID, err)}
	}
	var cur string
	if err := q.scan(ctx, s.D.LockHost, []any{op.hostID}, &cur); errors.Is(err, sql.ErrNoRows) {
		return ingestRes{err: fmt.Errorf("host %s: %w", op.hostID, fleet.ErrNotFound)}
	} else if err != nil {
		return fail(err)
	}
	if cur == op.hash {
		return ingestRes{}
	}
	s.mu.Lock()
	seq, ok := s.seqs[op.hostID]
	s.mu.Unlock()
	if !ok {
		err := q.scan(ctx, s.D.HostSeq, []any{op.hostID}, &seq)
		if errors.Is(err, sql.ErrNoRows) {
			if _, err := q.exec(ctx, s.D.EnsureHostSeq, op.hostID); err != nil {
				return fail(err)
			}
			err = q.scan(ctx, s.D.HostSeq, []any{op.hostID}, &seq)
		}
		if err != nil {
			return fail(err)
		}
		op.seq = seq
	}
	want := make(map[link]bool, len(op.want))
	for l := range op.want {
		want[l] = true
	}
	var gone []link
	if cur != "" {
		rows, err := q.query(ctx, s.D.Links, seq)
		if err != nil {
			return fail(err)
		}
		for rows.Next() {
			var l link
			if err := rows.Scan(&l.id, &l.location); err != nil {
				rows.Close()
				return fail(err)
			}
			if want[l] {
				delete(want, l)
			} else {
				gone = append(gone, l)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fail(err)
		}
	}
	for _, l := range gone {
		if _, err := q.exec(ctx, s.D.DeleteLink, seq, l.id, l.location); err != nil {
			return fail(err)
		}
	}
	added := make([]link, 0, len(want))
	for l := range want {
		added = append(added, l)
	}
	// In key order: neighbouring rows share pages.
	sort.Slice(added, func(a, b int) bool {
		if added[a].id != added[b].id {
			return added[a].id < added[b].id
		}
		return added[a].location < added[b].location
	})
	const batch = 200
	for start := 0; start < len(added); start += batch {
		chunk := added[start:min(start+batch, len(added))]
		args := make([]any, 0, 3*len(chunk))
		for _, l := range chunk {
			args = append(args, seq, l.id, l.location)
		}
		if _, err := q.exec(ctx, s.D.InsertLinks(len(chunk)), args...); err != nil {
			return fail(err)
		}
	}
	if _, err := q.exec(ctx, s.D.SetHash, op.hash, op.hostID); err != nil {
		return fail(err)
	}
	if op.inventoryOnly {
		return ingestRes{changed: true}
	}

	f := s.Findings
	var b string
	if err := q.scan(ctx, f.D.LockHost, []any{op.hostID}, &b); err != nil {
		return fail(err)
	}
	counts, err := parseCounts(op.hostID, b)
	if err != nil {
		return fail(err)
	}
	rows, err := q.query(ctx, f.D.Open, op.hostID)
	if err != nil {
		return fail(err)
	}
	open, err := readOpenRows(rows)
	if err != nil {
		return fail(err)
	}
	sy := &syncer{tx: q.tx, d: f.D, now: op.now, cause: op.cause, ex: q.exec}
	if err := sy.apply(ctx, op.hostID, open, op.current, counts); err != nil {
		return ingestRes{err: err}
	}
	if _, err := q.exec(ctx, f.D.SetCounts, countsJSON(counts), op.hostID); err != nil {
		return fail(err)
	}
	return ingestRes{changed: true, opened: sy.opened, closed: sy.closed}
}

// maxGroup bounds the ingests of one group commit.
const maxGroup = 64

// groupCommit queues ingests for one writer at a time: the first to find
// nobody writing leads, writes the queue in one transaction, answers
// those it wrote and, once its own is written, hands the lead to the
// next waiting one. No goroutine outlives the ingests.
type groupCommit struct {
	mu      sync.Mutex
	pending []*ingestReq
	busy    bool // a leader is writing
}

type ingestReq struct {
	ctx  context.Context
	op   *ingestOp
	wake chan bool // true: lead now; false: res is set
	res  ingestRes
}

func (g *groupCommit) submit(ctx context.Context, s *Store, op *ingestOp) ingestRes {
	r := &ingestReq{ctx: ctx, op: op, wake: make(chan bool, 1)}
	g.mu.Lock()
	g.pending = append(g.pending, r)
	lead := !g.busy
	g.busy = true
	g.mu.Unlock()
	// A waiting ingest cannot leave early: it may be in a transaction
	// being committed. Its context ending keeps it out of a group not yet
	// begun.
	if !lead && !<-r.wake {
		return r.res
	}
	for {
		g.mu.Lock()
		n := min(len(g.pending), maxGroup)
		group := make([]*ingestReq, n)
		copy(group, g.pending)
		g.pending = append(g.pending[:0:0], g.pending[n:]...)
		g.mu.Unlock()
		g.write(ctx, s, group)
		mine := false
		for _, w := range group {
			if w == r {
				mine = true
			} else {
				w.wake <- false
			}
		}
		if mine {
			g.mu.Lock()
			if len(g.pending) > 0 {
				g.pending[0].wake <- true
			} else {
				g.busy = false
			}
			g.mu.Unlock()
			return r.res
		}
	}
}

// write writes a group; should it panic, the group's waiting ingests are
// answered and the lead handed on before the panic goes on, so that the
// other ingests are not left waiting for ever.
func (g *groupCommit) write(ctx context.Context, s *Store, group []*ingestReq) {
	done := false
	defer func() {
		if done {
			return
		}
		g.mu.Lock()
		for _, w := range group {
			w.res = ingestRes{err: fmt.Errorf("ingest inventory of %s: the group commit failed", w.op.hostID)}
			// The leader's own channel is never read again: buffered, the
			// send does not block.
			w.wake <- false
		}
		if len(g.pending) > 0 {
			g.pending[0].wake <- true
		} else {
			g.busy = false
		}
		g.mu.Unlock()
	}()
	s.writeGroup(ctx, group)
	done = true
}

// writeGroup writes the ingests of group in one transaction, each under a
// savepoint, and sets each one's result; a result without an error means
// committed.
func (s *Store) writeGroup(ctx context.Context, group []*ingestReq) {
	failAll := func(err error) {
		for _, r := range group {
			r.res = ingestRes{err: fmt.Errorf("ingest inventory of %s: %w", r.op.hostID, err)}
		}
	}
	// Host rows are locked in id order, as in every multi-host
	// transaction (two lanes' groups cannot deadlock); a host's ingests
	// keep their order.
	group = slices.Clone(group)
	slices.SortStableFunc(group, func(a, b *ingestReq) int { return strings.Compare(a.op.hostID, b.op.hostID) })
	defer lockWrites(s.D.WriteLock)()
	// The leader's request ending must not end the others' transaction.
	ctx = context.WithoutCancel(ctx)
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		failAll(err)
		return
	}
	defer tx.Rollback()
	q := &txq{tx: tx, prepare: s.D.PrepareInGroup}
	defer q.close()
	for _, r := range group {
		if err := r.ctx.Err(); err != nil {
			r.res = ingestRes{err: fmt.Errorf("ingest inventory of %s: %w", r.op.hostID, err)}
			continue
		}
		if _, err := tx.ExecContext(ctx, "SAVEPOINT ingest"); err != nil {
			failAll(err)
			return
		}
		r.res = s.ingestTx(ctx, q, r.op)
		if r.res.err != nil {
			if _, err := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT ingest"); err != nil {
				failAll(err)
				return
			}
		}
		if _, err := tx.ExecContext(ctx, "RELEASE SAVEPOINT ingest"); err != nil {
			failAll(err)
			return
		}
	}
	if err := tx.Commit(); err != nil {
		failAll(err)
		return
	}
	for _, r := range group {
		if r.res.err == nil {
			s.rememberSeq(r.op)
		}
	}
}
