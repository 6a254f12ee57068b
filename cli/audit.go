package cli

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/audit"
	"github.com/patchbay/patchbay/internal/table"
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
func (e *env) auditKey() (ed25519.PrivateKey, error) { return e.loadAuditKey(true) }

// loadAuditKey loads the data dir's audit key; without create, a key that
// does not exist is an error (nothing is written).
func (e *env) loadAuditKey(create bool) (ed25519.PrivateKey, error) {
	path := filepath.Join(e.dataDir, "audit-signing.key")
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if !create {
			return nil, fmt.Errorf("audit key %s: none (it is made by the server or `patchbay audit checkpoint` that signs with it)", path)
		}
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

// auditEntries reads the whole audit log: the server's export, or the
// local database's.
func auditEntries(ctx context.Context, tg *target) ([]audit.Entry, error) {
	if tg.api == nil {
		es, err := tg.db.Audit.Entries(ctx)
		if err != nil {
			return nil, fmt.Errorf("audit log: %w", err)
		}
		return es, nil
	}
	var buf bytes.Buffer
	if err := tg.api.Do(ctx, http.MethodGet, api.Prefix+"/audit", nil, &buf); err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	var es []audit.Entry
	dec := json.NewDecoder(&buf)
	for {
		var en audit.Entry
		err := dec.Decode(&en)
		if errors.Is(err, io.EOF) {
			return es, nil
		}
		if err != nil {
			return nil, fmt.Errorf("audit log from the server: entry %d: %w", len(es)+1, err)
		}
		es = append(es, en)
	}
}

// auditPublicKey is the key checkpoints are checked against: the server's
// (GET /audit/key) or the data dir's.
func (e *env) auditPublicKey(ctx context.Context, tg *target) (ed25519.PublicKey, error) {
	if tg.api == nil {
		key, err := e.loadAuditKey(false)
		if err != nil {
			return nil, err
		}
		return key.Public().(ed25519.PublicKey), nil
	}
	var k api.AuditKey
	if err := tg.api.Do(ctx, http.MethodGet, api.Prefix+"/audit/key", nil, &k); err != nil {
		return nil, fmt.Errorf("the server's audit key: %w", err)
	}
	b, err := hex.DecodeString(k.PublicKey)
	if k.Algorithm != "ed25519" || err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("the server's audit key: want an Ed25519 public key in hex, got %s %q", k.Algorithm, k.PublicKey)
	}
	return ed25519.PublicKey(b), nil
}

func newAuditCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Verify, checkpoint and export the tamper-evident audit log (the server's, or --local)",
		Long: `audit acts on the server configured with --server or PATCHBAY_SERVER (with an
admin token in PATCHBAY_TOKEN), or, with --local or when no server is
configured, on the local database (--data-dir, --db) directly. Against a server, verify downloads the log
and recomputes the hash chain here: the verdict does not rest on the server's
word, and --checkpoint files are checked against the server's signing key
(GET /api/v1/audit/key).`,
	}
	var m modeFlags
	m.bind(cmd)
	var cpFile string
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Recompute the hash chain (and check it against a checkpoint); name the first bad entry",
		RunE: func(cmd *cobra.Command, args []string) error {
			var cps []audit.Checkpoint
			if cpFile != "" {
				f, err := os.Open(cpFile)
				if err != nil {
					return fmt.Errorf("--checkpoint: %w", err)
				}
				cps, err = audit.ReadCheckpoints(f)
				f.Close()
				if err != nil {
					return fmt.Errorf("--checkpoint %s: %w", cpFile, err)
				}
			}
			tg, err := e.open(cmd, &m)
			if err != nil {
				return err
			}
			defer tg.close()
			ctx := cmd.Context()
			es, err := auditEntries(ctx, tg)
			if err != nil {
				return err
			}
			if cpFile == "" {
				if err := audit.Verify(es, nil); err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "audit chain intact: %s\n", table.Plural(len(es), "entry", "entries"))
				return nil
			}
			pub, err := e.auditPublicKey(ctx, tg)
			if err != nil {
				return err
			}
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
			fmt.Fprintf(e.stdout, "audit chain intact: %s, reaches the checkpoint of entry %d (%s)", table.Plural(len(es), "entry", "entries"), last.Seq, last.Time.Format(time.RFC3339))
			if len(cps) > 1 {
				fmt.Fprintf(e.stdout, " and the %d before it", len(cps)-1)
			}
			fmt.Fprintln(e.stdout)
			return nil
		},
	}
	verify.Flags().StringVar(&cpFile, "checkpoint", "", "a checkpoint `FILE` written by patchbay audit checkpoint, or the server's history audit-checkpoints.jsonl (the chain must reach every line)")

	var out string
	checkpoint := &cobra.Command{
		Use:   "checkpoint --out FILE",
		Short: "Sign the chain head and write it outside the database (the server signs it, or with --local the data dir's key)",
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return fmt.Errorf("--out: give the file to write the checkpoint to (outside the data dir)")
			}
			tg, err := e.open(cmd, &m)
			if err != nil {
				return err
			}
			defer tg.close()
			ctx := cmd.Context()
			var cp audit.Checkpoint
			if tg.api != nil {
				if err := tg.api.Do(ctx, http.MethodPost, api.Prefix+"/audit/checkpoint", nil, &cp); err != nil {
					return fmt.Errorf("checkpoint: %w", err)
				}
			} else {
				es, err := auditEntries(ctx, tg)
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
				cp = audit.NewCheckpoint(es, time.Now(), key)
			}
			b, err := json.MarshalIndent(cp, "", "  ")
			if err != nil {
				return err
			}
			tmp := out + ".tmp"
			if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
				return fmt.Errorf("--out: %w", err)
			}
			if err := os.Rename(tmp, out); err != nil {
				return fmt.Errorf("--out: %w", err)
			}
			head := cp.Hash
			if head == "" {
				head = "none: the log is empty"
			}
			fmt.Fprintf(e.stdout, "wrote %s: checkpoint of entry %d (head hash %s), signed %s\n", out, cp.Seq, head, cp.Time.Format(time.RFC3339))
			return nil
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
			tg, err := e.open(cmd, &m)
			if err != nil {
				return err
			}
			defer tg.close()
			es, err := auditEntries(cmd.Context(), tg)
			if err != nil {
				return err
			}
			w := e.stdout
			var f *outputFile
			if exportTo != "" && exportTo != "-" {
				if f, err = createOutput(exportTo); err != nil {
					return err
				}
				defer f.abort()
				w = f
			}
			bw := bufio.NewWriter(w)
			enc := json.NewEncoder(bw)
			for _, en := range es {
				if err := enc.Encode(en); err != nil {
					return err
				}
			}
			if err := bw.Flush(); err != nil {
				return fmt.Errorf("--output-file: %w", err)
			}
			if f != nil {
				if err := f.commit(); err != nil {
					return err
				}
				fmt.Fprintf(e.stderr, "wrote %s to %s\n", table.Plural(len(es), "entry", "entries"), exportTo)
			}
			return nil
		},
	}
	export.Flags().StringVar(&exportTo, "output-file", "", "file to write (default standard output)")
	outputFlag(export.Flags(), &exportFormat, []string{"jsonl"})
	cmd.AddCommand(verify, checkpoint, export)
	return cmd
}
