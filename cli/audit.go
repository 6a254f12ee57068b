package cli

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchbay/patchbay/store"

	"github.com/patchbay/patchbay/audit"
)

// actor names who runs the CLI, for audit entries.
func actor() string {
	if u, err := user.Current(); err == nil {
		return "cli:" + u.Username
	}
	return "cli"
}

// auditKey loads the Ed25519 key that signs checkpoints, creating it (mode
// 0600) in the data dir on first use.
func (e *env) auditKey() (ed25519.PrivateKey, error) {
	path := filepath.Join(e.dataDir, "audit-signing.key")
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		_, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(e.dataDir, 0o700); err != nil {
			return nil, err
		}
		if err := os.WriteFile(path, key.Seed(), 0o600); err != nil {
			return nil, fmt.Errorf("audit key: %w", err)
		}
		return key, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit key: %w", err)
	}
	if len(b) != ed25519.SeedSize {
		return nil, fmt.Errorf("audit key %s: want a %d-byte Ed25519 seed, found %d bytes", path, ed25519.SeedSize, len(b))
	}
	return ed25519.NewKeyFromSeed(b), nil
}

func newAuditCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Verify, checkpoint and export the tamper-evident audit log"}
	var cpFile string
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Recompute the hash chain (and check it against a checkpoint); name the first bad entry",
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.withDB(cmd, func(ctx context.Context, db *store.DB) error {
				es, err := db.Audit.Entries(ctx)
				if err != nil {
					return err
				}
				if cpFile == "" {
					if err := audit.Verify(es, nil); err != nil {
						return err
					}
					fmt.Fprintf(e.stdout, "audit chain intact: %d entries\n", len(es))
					return nil
				}
				f, err := os.Open(cpFile)
				if err != nil {
					return fmt.Errorf("--checkpoint: %w", err)
				}
				cps, err := audit.ReadCheckpoints(f)
				f.Close()
				if err != nil {
					return fmt.Errorf("--checkpoint %s: %w", cpFile, err)
				}
				key, err := e.auditKey()
				if err != nil {
					return err
				}
				pub := key.Public().(ed25519.PublicKey)
				for i, c := range cps {
					if err := c.VerifySignature(pub); err != nil {
						if len(cps) == 1 {
							return fmt.Errorf("--checkpoint %s: %w", cpFile, err)
						}
						return fmt.Errorf("--checkpoint %s: line %d (entry %d, %s): %w", cpFile, i+1, c.Seq, c.Time.Format(time.RFC3339), err)
					}
				}
				if err := audit.VerifyHistory(es, cps); err != nil {
					return err
				}
				last := cps[len(cps)-1]
				fmt.Fprintf(e.stdout, "audit chain intact: %d entries, reaches the checkpoint of entry %d (%s)", len(es), last.Seq, last.Time.Format(time.RFC3339))
				if len(cps) > 1 {
					fmt.Fprintf(e.stdout, " and the %d before it", len(cps)-1)
				}
				fmt.Fprintln(e.stdout)
				return nil
			})
		},
	}
	verify.Flags().StringVar(&cpFile, "checkpoint", "", "a checkpoint written by `patchbay audit checkpoint`, or the server's history audit-checkpoints.jsonl (the chain must reach every line)")

	var out string
	checkpoint := &cobra.Command{
		Use:   "checkpoint --out FILE",
		Short: "Sign the chain head and write it outside the database",
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return fmt.Errorf("--out: give the file to write the checkpoint to (outside the data dir)")
			}
			return e.withDB(cmd, func(ctx context.Context, db *store.DB) error {
				es, err := db.Audit.Entries(ctx)
				if err != nil {
					return err
				}
				if err := audit.Verify(es, nil); err != nil {
					return fmt.Errorf("refusing to checkpoint a broken chain: %w", err)
				}
				key, err := e.auditKey()
				if err != nil {
					return err
				}
				b, _ := json.MarshalIndent(audit.NewCheckpoint(es, time.Now(), key), "", "  ")
				tmp := out + ".tmp"
				if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
					return err
				}
				return os.Rename(tmp, out)
			})
		},
	}
	checkpoint.Flags().StringVar(&out, "out", "", "where to write the checkpoint")

	var exportTo, exportFormat string
	export := &cobra.Command{
		Use:   "export [--output-file FILE]",
		Short: "Write the audit log as JSON Lines",
		PreRunE: func(cmd *cobra.Command, args []string) error {
			return checkOutput(exportFormat, []string{"jsonl"})
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.withDB(cmd, func(ctx context.Context, db *store.DB) error {
				es, err := db.Audit.Entries(ctx)
				if err != nil {
					return err
				}
				w := e.stdout
				if exportTo != "" && exportTo != "-" {
					f, err := os.Create(exportTo)
					if err != nil {
						return err
					}
					defer f.Close()
					w = f
				}
				bw := bufio.NewWriter(w)
				enc := json.NewEncoder(bw)
				for _, en := range es {
					if err := enc.Encode(en); err != nil {
						return err
					}
				}
				return bw.Flush()
			})
		},
	}
	export.Flags().StringVar(&exportTo, "output-file", "", "file to write (default standard output)")
	outputFlag(export.Flags(), &exportFormat, []string{"jsonl"})
	cmd.AddCommand(verify, checkpoint, export)
	return cmd
}
