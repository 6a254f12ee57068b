package cli

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/patchbay/patchbay/api"
)

// newFingerprintCmd prints the pin of the server's certificate, read from
// its file (never made here): what clients and agents give --pin.
func newFingerprintCmd(e *env) *cobra.Command {
	var certFile string
	cmd := &cobra.Command{
		Use:   "fingerprint [--tls-cert FILE]",
		Short: "Print the fingerprint clients pin (--pin, PATCHBAY_PIN) of the server's certificate",
		Long: `fingerprint reads the server's certificate — --tls-cert, or the
self-signed one in the data dir (tls-cert.pem) — and prints the value
clients and agents pin with --pin or PATCHBAY_PIN. Run it where the server
runs; it never makes a certificate.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			path := certFile
			if path == "" {
				path = filepath.Join(e.dataDir, "tls-cert.pem")
			}
			b, err := os.ReadFile(path)
			if errors.Is(err, fs.ErrNotExist) && certFile == "" {
				return fmt.Errorf("no server certificate in %s (the server makes tls-cert.pem there on its first start; give --data-dir of the server, or --tls-cert FILE)", e.dataDir)
			}
			if err != nil {
				return err
			}
			blk, _ := pem.Decode(b)
			if blk == nil || blk.Type != "CERTIFICATE" {
				return fmt.Errorf("%s: no PEM certificate in it", path)
			}
			if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			_, err = fmt.Fprintln(e.stdout, api.Fingerprint(blk.Bytes))
			return err
		},
	}
	cmd.Flags().StringVar(&certFile, "tls-cert", "", "the server's certificate (PEM); default tls-cert.pem in the data dir")
	return cmd
}
