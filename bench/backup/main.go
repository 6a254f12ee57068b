// Command backup measures a backup and a restore of a data dir, such as
// the one `patchbay dev simulate --agents 10000 --keep` leaves: the time
// and size of `backup create` (encrypted with a fresh age key, keys
// included), of `backup verify`, and of a restore into a new data dir up
// to the restored database answering the hosts list (what a server needs
// to serve); then it checks that the restored database holds the same
// hosts, open findings, vulnerabilities and audit head.
//
// Usage:
//
//	patchbay --data-dir /tmp/sim dev simulate --agents 10000 --keep
//	go run ./bench/backup -data-dir /tmp/sim/…  # the data dir it kept
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"filippo.io/age"

	"github.com/patchbay/patchbay/backup"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/store"
)

func main() {
	dataDir := flag.String("data-dir", "", "the data dir to back up (holds patchbay.db)")
	work := flag.String("work", "", "where the archive and the restore go (default a temp dir)")
	flag.Parse()
	if err := run(*dataDir, *work); err != nil {
		fmt.Fprintln(os.Stderr, "bench/backup:", err)
		os.Exit(1)
	}
}

// counts is what a restore must give back.
type counts struct {
	hosts, open, vulns int
	head               int64
}

func countsOf(ctx context.Context, db *store.DB) (counts, error) {
	var c counts
	hs, err := db.Fleet.Hosts(ctx, fleet.HostFilter{})
	if err != nil {
		return c, err
	}
	c.hosts = len(hs)
	for _, h := range hs {
		c.open += h.OpenTotal()
	}
	vs, err := db.Findings.Vulnerabilities(ctx)
	if err != nil {
		return c, err
	}
	c.vulns = len(vs)
	es, err := db.Audit.Entries(ctx)
	if err != nil {
		return c, err
	}
	if len(es) > 0 {
		c.head = es[len(es)-1].Seq
	}
	return c, nil
}

func run(dataDir, work string) error {
	if dataDir == "" {
		return fmt.Errorf("-data-dir: the data dir to back up")
	}
	ctx := context.Background()
	if work == "" {
		var err error
		if work, err = os.MkdirTemp("", "bench-backup-"); err != nil {
			return err
		}
		defer os.RemoveAll(work)
	} else if err := os.MkdirAll(work, 0o700); err != nil {
		return err
	}
	db, err := store.Open(ctx, filepath.Join(dataDir, "patchbay.db"))
	if err != nil {
		return err
	}
	defer db.Close()
	before, err := countsOf(ctx, db)
	if err != nil {
		return err
	}
	st, _ := os.Stat(filepath.Join(dataDir, "patchbay.db"))
	fmt.Printf("source: %d hosts, %d open findings, %d vulnerabilities, audit head %d, database %.1f MiB\n",
		before.hosts, before.open, before.vulns, before.head, float64(st.Size())/(1<<20))
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return err
	}
	path := filepath.Join(work, "bench.pbk")
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	t0 := time.Now()
	m, err := backup.Create(ctx, f, backup.Options{DB: db, DataDir: dataDir, Recipients: []age.Recipient{id.Recipient()}, TempDir: work})
	if err == nil {
		err = f.Sync()
	}
	f.Close()
	if err != nil {
		return err
	}
	create := time.Since(t0)
	ast, _ := os.Stat(path)
	fmt.Printf("backup create: %s, archive %.1f MiB (%s)\n", create.Round(time.Millisecond), float64(ast.Size())/(1<<20), m.Method)

	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	t0 = time.Now()
	c, err := backup.Check(ctx, bytes.NewReader(b), work, []age.Identity{id})
	if err != nil {
		return err
	}
	verify := time.Since(t0)
	fmt.Printf("backup verify: %s\n", verify.Round(time.Millisecond))
	c.Close()

	t0 = time.Now()
	c, err = backup.Check(ctx, bytes.NewReader(b), work, []age.Identity{id})
	if err != nil {
		return err
	}
	target := filepath.Join(work, "restored")
	if _, err := backup.Restore(ctx, c, backup.RestoreOptions{DataDir: target}); err != nil {
		return err
	}
	c.Close()
	rdb, err := store.Open(ctx, filepath.Join(target, "patchbay.db"))
	if err != nil {
		return err
	}
	defer rdb.Close()
	if _, err := rdb.Fleet.Hosts(ctx, fleet.HostFilter{Hostname: "none"}); err != nil {
		return err
	}
	restore := time.Since(t0)
	fmt.Printf("backup restore to serving (verify, write, open, first query): %s\n", restore.Round(time.Millisecond))
	after, err := countsOf(ctx, rdb)
	if err != nil {
		return err
	}
	// The restore adds its own audit entry after the backup's head.
	if after.hosts != before.hosts || after.open != before.open || after.vulns != before.vulns || after.head != m.AuditHead.Seq+1 {
		return fmt.Errorf("the restore differs: before %+v (head %d in the archive), after %+v", before, m.AuditHead.Seq, after)
	}
	fmt.Printf("restored: the same %d hosts, %d open findings, %d vulnerabilities; audit head %d + the restore's entry\n", after.hosts, after.open, after.vulns, m.AuditHead.Seq)
	return nil
}
