package storetest

import (
	"context"
	"testing"

	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/leader"
	"github.com/patchbay/patchbay/store/internal/fixsql"
	"github.com/patchbay/patchbay/store/internal/rolloutsql"
	"github.com/patchbay/patchbay/store/internal/scoresql"
	"github.com/patchbay/patchbay/store/internal/usersql"
)

// Backend is one store implementation under test, part by part.
type Backend struct {
	Feeds    FeedStore
	Audit    AuditStore
	Tamper   Tamper
	Leases   leader.Store
	Tokens   TokenStore
	Fleet    FleetStore
	Findings FindingStore
	Policy   PolicyStore
	Users    *usersql.Store
	Rollouts *rolloutsql.Store
	Scores   *scoresql.Store
	Fixes    *fixsql.Store
	// Fault makes the database refuse, inside the transaction, to store
	// a finding of the vulnerability named (a trigger).
	Fault func(vuln string)
}

// Run runs every contract against the backend; open returns a fresh,
// empty backend each call.
func Run(t *testing.T, open func(t *testing.T) Backend) {
	t.Run("feeds", func(t *testing.T) { Feeds(t, func(t *testing.T) FeedStore { return open(t).Feeds }) })
	t.Run("audit", func(t *testing.T) {
		Audit(t, func(t *testing.T) (AuditStore, Tamper) { b := open(t); return b.Audit, b.Tamper })
	})
	t.Run("leases", func(t *testing.T) { Leases(t, func(t *testing.T) leader.Store { return open(t).Leases }) })
	t.Run("tokens", func(t *testing.T) { Tokens(t, func(t *testing.T) TokenStore { return open(t).Tokens }) })
	t.Run("users", func(t *testing.T) { Users(t, func(t *testing.T) *usersql.Store { return open(t).Users }) })
	t.Run("schedules", func(t *testing.T) {
		Schedules(t, func(t *testing.T) (*rolloutsql.Store, AuditStore) { b := open(t); return b.Rollouts, b.Audit })
	})
	t.Run("scores", func(t *testing.T) {
		Scores(t, func(t *testing.T) (*scoresql.Store, AuditStore) { b := open(t); return b.Scores, b.Audit })
	})
	t.Run("fixes", func(t *testing.T) { Fixes(t, func(t *testing.T) *fixsql.Store { return open(t).Fixes }) })
	t.Run("fleet", func(t *testing.T) { Fleet(t, func(t *testing.T) FleetStore { return open(t).Fleet }) })
	t.Run("policy", func(t *testing.T) {
		Policy(t, func(t *testing.T) (PolicyStore, AuditStore) { b := open(t); return b.Policy, b.Audit })
	})
	t.Run("ingest", func(t *testing.T) {
		Ingest(t, func(t *testing.T) (IngestStore, FindingStore, func(string)) {
			b := open(t)
			s, ok := b.Fleet.(IngestStore)
			if !ok {
				t.Fatalf("%T does not ingest inventories with their findings", b.Fleet)
			}
			return s, b.Findings, b.Fault
		})
	})
	t.Run("redecide", func(t *testing.T) {
		Redecide(t, func(t *testing.T) RedecideStore { return redecideOf(t, open(t)) })
	})
	t.Run("findings", func(t *testing.T) {
		Findings(t, func(t *testing.T) FindingStore {
			b := open(t)
			if err := b.Fleet.UpsertHost(context.Background(), fleet.Host{ID: "h1", MachineID: "m1"}); err != nil {
				t.Fatal(err)
			}
			return b.Findings
		})
	})
}
