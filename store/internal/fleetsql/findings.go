// Host findings: the store, its dialect and the open-finding row
// that syncs read.

package fleetsql

import (
	"context"
	"database/sql"
	"fmt"
	"sync"

	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/risk"
)

// FindingsDialect holds one database's SQL for host findings.
type FindingsDialect struct {
	LockHost  string // (host_id) → open_counts, serialising syncs of one host
	SetCounts string // (open_counts, host_id)
	Open      string // (host_id) → OpenColumns
	// Rebind turns '?' placeholders into the database's.
	Rebind func(string) string
	// ForUpdate is the row-locking clause of a SELECT ("" for SQLite,
	// whose transactions lock the whole database).
	ForUpdate string
	// WriteLock: see Dialect.WriteLock.
	WriteLock *sync.Mutex
	// UpdateFromValues batches many rows' updates into one UPDATE … FROM
	// (VALUES …) (PostgreSQL, where each statement is a round trip);
	// without it rows are updated one by one with a prepared statement
	// (SQLite, in process, where the join form is an order slower).
	UpdateFromValues bool
	// BeforeUpdateFromValues are run in the transaction first: PostgreSQL
	// plans the join from statistics that lag behind bulk changes, and a
	// hash join over every open finding costs ten times the look-ups by
	// primary key it replaces.
	BeforeUpdateFromValues []string
	// BoolType is the column type of a boolean (BulkRedecide's temporary
	// tables must join on equal types).
	BoolType string
	// AnalyzeTemp: temporary tables need ANALYZE before they are joined
	// (PostgreSQL, whose planner has no statistics of them otherwise).
	AnalyzeTemp bool
}

// Fencer checks a leader's term inside a transaction.
type Fencer interface {
	FenceTx(ctx context.Context, tx *sql.Tx, name string, term int64) error
}

// Findings keeps host findings and their history.
type Findings struct {
	DB     *sql.DB
	D      *FindingsDialect
	Fencer Fencer
	// BulkChunk is how many hosts BulkRedecide decides per transaction
	// (0: 1,000).
	BulkChunk int
}

type openRow struct {
	id                                 int64
	priority, version, severity, fixed string
	state, exception, lane             string
	exploitation, impact, cycle        string
	automatable                        bool
	firstSeen, due, kevDue             int64
}

// OpenColumns are what Open returns, in order.
const OpenColumns = "id, ecosystem, package, vulnerability, priority, first_seen, version, severity, fixed, due, state, exception, lane, exploitation, automatable, impact, cycle, kev_due"

func scanOpen(r scanner, o *openRow, f *fleet.Finding) error {
	return r.Scan(&o.id, &f.Ecosystem, &f.Package, &f.Vulnerability, &o.priority, &o.firstSeen, &o.version, &o.severity, &o.fixed, &o.due,
		&o.state, &o.exception, &o.lane, &o.exploitation, &o.automatable, &o.impact, &o.cycle, &o.kevDue)
}

// stateOpen is the stored state of an open finding.
const stateOpen = string(fleet.StateOpen)

// priorityCol scans a stored priority ("P1".."P4"; "" for none) into a
// risk.Priority: the column holds its text.
type priorityCol struct{ p *risk.Priority }

func (c priorityCol) Scan(v any) error {
	var s string
	switch v := v.(type) {
	case string:
		s = v
	case []byte:
		s = string(v)
	case nil:
	default:
		return fmt.Errorf("priority: stored as %T", v)
	}
	return c.p.UnmarshalText([]byte(s))
}
