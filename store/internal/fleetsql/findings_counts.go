// Host findings: the open counts kept on each host row, read with a
// lock and written back by syncs and re-decisions.

package fleetsql

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/patchbay/patchbay/fleet"
)

func (s *Findings) lockHost(ctx context.Context, tx *sql.Tx, hostID string) (map[string]int, error) {
	var b string
	if err := tx.QueryRowContext(ctx, s.D.LockHost, hostID).Scan(&b); errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("host %s: %w", hostID, fleet.ErrNotFound)
	} else if err != nil {
		return nil, fmt.Errorf("sync findings of %s: %w", hostID, err)
	}
	return parseCounts(hostID, b)
}

// parseCounts reads a host's stored open counts.
func parseCounts(hostID, b string) (map[string]int, error) {
	counts := map[string]int{}
	if err := json.Unmarshal([]byte(b), &counts); err != nil {
		return nil, fmt.Errorf("host %s counts: %w", hostID, err)
	}
	return counts, nil
}

// countsJSON is the stored form of open counts, without the empty ones
// (dropped from counts).
func countsJSON(counts map[string]int) string {
	for p, n := range counts {
		if n <= 0 {
			delete(counts, p)
		}
	}
	b, _ := json.Marshal(counts)
	return string(b)
}

func (s *Findings) setCounts(ctx context.Context, tx *sql.Tx, hostID string, counts map[string]int) error {
	if _, err := tx.ExecContext(ctx, s.D.SetCounts, countsJSON(counts), hostID); err != nil {
		return fmt.Errorf("sync findings of %s: %w", hostID, err)
	}
	return nil
}

// lockCounts reads (and locks) hosts' open counts: q returns id, open_counts.
func (s *Findings) lockCounts(ctx context.Context, tx *sql.Tx, q string, args []any) (map[string]map[string]int, error) {
	rows, err := tx.QueryContext(ctx, s.D.Rebind(q), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	counts := map[string]map[string]int{}
	for rows.Next() {
		var id, b string
		if err := rows.Scan(&id, &b); err != nil {
			return nil, err
		}
		c := map[string]int{}
		if err := json.Unmarshal([]byte(b), &c); err != nil {
			return nil, fmt.Errorf("host %s counts: %w", id, err)
		}
		counts[id] = c
	}
	return counts, rows.Err()
}

// writeCounts stores the counts of the hosts named, in one statement.
func (s *Findings) writeCounts(ctx context.Context, tx *sql.Tx, hosts []string, counts map[string]map[string]int) error {
	if len(hosts) == 0 {
		return nil
	}
	var b strings.Builder
	args := make([]any, 0, 3*len(hosts))
	b.WriteString("UPDATE hosts SET open_counts = CASE id")
	for _, id := range hosts {
		c := counts[id]
		for p, n := range c {
			if n <= 0 {
				delete(c, p)
			}
		}
		js, _ := json.Marshal(c)
		b.WriteString(" WHEN ? THEN ?")
		args = append(args, id, string(js))
	}
	b.WriteString(" END WHERE id IN (" + strings.TrimSuffix(strings.Repeat("?,", len(hosts)), ",") + ")")
	for _, id := range hosts {
		args = append(args, id)
	}
	_, err := tx.ExecContext(ctx, s.D.Rebind(b.String()), args...)
	return err
}
