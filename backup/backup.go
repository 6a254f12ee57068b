// Package backup writes, verifies and restores patchbay's backup
// archives: a consistent snapshot of the database taken while the server
// goes on writing (SQLite's VACUUM INTO; PostgreSQL's pg_dump in one
// exported snapshot), the data dir's keys, certificate and audit
// checkpoints, the audit chain as of the snapshot and a manifest (schema
// version, patchbay version, time, the SHA-256 of every part, the audit
// head). An archive is a tar stream compressed with zstd and, with
// recipients, encrypted with age; keys are left out of an unencrypted
// archive unless the operator asks for them in clear.
//
// A restore verifies the whole archive before it writes anything, writes
// next to the target and renames into place, migrates an older schema and
// refuses a newer one, and pauses every rollout that was active with an
// audit entry saying why: jobs the agents ran after the backup come back
// from the agents (each (job id, attempt) runs at most once in the
// agent's journal, and the agent sends its kept result again when the
// job is delivered again).
package backup

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"

	"github.com/patchbay/patchbay/audit"
)

// Format is the archive layout's version.
const Format = 1

// Part names inside an archive.
const (
	ManifestName    = "manifest.json"
	ManifestSumName = "manifest.sha256"
	AuditName       = "audit.jsonl"
	SQLiteName      = "database/patchbay.db"
	PostgresName    = "database/patchbay.pgdump"
)

// The data dir's files an archive carries: secret keys (kept only
// encrypted, or in clear when asked), and public ones.
var (
	keyFiles    = []string{"audit-signing.key", "job-signing.key", "tls-key.pem"}
	publicFiles = []string{"tls-cert.pem"}
)

// Part is one file of an archive.
type Part struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Secret: a key (only in an encrypted archive unless asked for).
	Secret bool `json:"secret,omitempty"`
}

// Manifest describes an archive; it is its last part but one, followed
// by its own SHA-256.
type Manifest struct {
	Format   int       `json:"format"`
	Backend  string    `json:"backend"` // sqlite or postgres
	Schema   int64     `json:"schema"`  // the goose version of the database
	Patchbay string    `json:"patchbay"`
	Created  time.Time `json:"created"`
	// Method says how the database was copied.
	Method string `json:"method"`
	// AuditHead is the audit chain's head in the snapshot, signed with
	// the data dir's audit key when it is there.
	AuditHead audit.Checkpoint `json:"audit_head"`
	Encrypted bool             `json:"encrypted"`
	// KeysIncluded: the data dir's keys are in the archive.
	KeysIncluded bool `json:"keys_included"`
	// KeysLeftOut names the keys found and not written (an unencrypted
	// archive without --include-keys-plaintext).
	KeysLeftOut []string `json:"keys_left_out,omitempty"`
	Parts       []Part   `json:"parts"`
}

// Part returns the manifest's part of that name.
func (m *Manifest) Part(name string) (Part, bool) {
	for _, p := range m.Parts {
		if p.Name == name {
			return p, true
		}
	}
	return Part{}, false
}

// DatabasePart is the name of the database's part.
func (m *Manifest) DatabasePart() string {
	if m.Backend == "postgres" {
		return PostgresName
	}
	return SQLiteName
}

// CorruptError says which part of an archive is wrong.
type CorruptError struct {
	Part string // the part (or "encryption", "compression", "archive")
	Why  string
	Err  error
}

func (e *CorruptError) Error() string {
	s := fmt.Sprintf("backup archive: %s: %s", e.Part, e.Why)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *CorruptError) Unwrap() error { return e.Err }

func corrupt(part, why string, err error) error { return &CorruptError{Part: part, Why: why, Err: err} }

// writer writes parts into a compressed, maybe encrypted tar stream and
// keeps their hashes.
type writer struct {
	closers []io.Closer
	tw      *tar.Writer
	parts   []Part
	now     time.Time
}

func newWriter(w io.Writer, recipients []age.Recipient, now time.Time, tee io.Writer) (*writer, error) {
	aw := &writer{now: now}
	if len(recipients) > 0 {
		ew, err := age.Encrypt(w, recipients...)
		if err != nil {
			return nil, fmt.Errorf("encrypt: %w", err)
		}
		aw.closers = append(aw.closers, ew)
		w = ew
	}
	if tee != nil {
		w = io.MultiWriter(w, tee)
	}
	zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedDefault))
	if err != nil {
		return nil, err
	}
	aw.closers = append(aw.closers, zw)
	aw.tw = tar.NewWriter(zw)
	return aw, nil
}

// add writes a part of size bytes read from r.
func (aw *writer) add(name string, size int64, r io.Reader, secret bool) error {
	hdr := &tar.Header{Name: name, Mode: 0o600, Size: size, ModTime: aw.now, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
	if err := aw.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	h := sha256.New()
	n, err := io.Copy(aw.tw, io.TeeReader(r, h))
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if n != size {
		return fmt.Errorf("write %s: %d bytes, %d expected (it changed while read)", name, n, size)
	}
	aw.parts = append(aw.parts, Part{Name: name, Size: size, SHA256: hex.EncodeToString(h.Sum(nil)), Secret: secret})
	return nil
}

func (aw *writer) addBytes(name string, b []byte, secret bool) error {
	return aw.add(name, int64(len(b)), bytes.NewReader(b), secret)
}

func (aw *writer) addFile(name, file string, secret bool) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	// A file appended to meanwhile (the checkpoint history) is taken as
	// it was when it was measured.
	return aw.add(name, st.Size(), io.LimitReader(f, st.Size()), secret)
}

// finish writes the manifest and its sum and closes the stream.
func (aw *writer) finish(m *Manifest) error {
	m.Parts = aw.parts
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := aw.addBytes(ManifestName, b, false); err != nil {
		return err
	}
	sum := sha256.Sum256(b)
	if err := aw.addBytes(ManifestSumName, []byte(hex.EncodeToString(sum[:])+"\n"), false); err != nil {
		return err
	}
	if err := aw.tw.Close(); err != nil {
		return err
	}
	for i := len(aw.closers) - 1; i >= 0; i-- {
		if err := aw.closers[i].Close(); err != nil {
			return err
		}
	}
	return nil
}

// ageMagic starts every age file.
const ageMagic = "age-encryption.org/v1"

// Extract reads an archive into dir (which it creates), checking every
// part against the manifest: a flipped byte, a truncated stream, a wrong
// key or a part missing, added or changed is a *CorruptError naming the
// part. identities decrypt an encrypted archive.
func Extract(r io.Reader, dir string, identities []age.Identity) (*Manifest, error) {
	return extract(r, dir, identities, false)
}

// extract is Extract; plainOfEncrypted takes the unencrypted stream of an
// encrypted archive (Options.Tee).
func extract(r io.Reader, dir string, identities []age.Identity, plainOfEncrypted bool) (*Manifest, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, _ := br.Peek(len(ageMagic))
	var in io.Reader = br
	encrypted := string(head) == ageMagic
	if encrypted {
		if len(identities) == 0 {
			return nil, corrupt("encryption", "the archive is encrypted (age): give the identity file of one of its recipients (--identity)", nil)
		}
		dr, err := age.Decrypt(br, identities...)
		if err != nil {
			var nm *age.NoIdentityMatchError
			if errors.As(err, &nm) {
				return nil, corrupt("encryption", "none of the identities given is a recipient of the archive (wrong key)", err)
			}
			return nil, corrupt("encryption", "unreadable age header", err)
		}
		in = dr
	}
	zb := bufio.NewReader(in)
	magic, err := zb.Peek(4)
	if err != nil && encrypted {
		return nil, corrupt("encryption", "unreadable"+readHint(err, encrypted), err)
	}
	if !bytes.Equal(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}) {
		return nil, corrupt("compression", "not a patchbay backup archive (no zstd stream"+map[bool]string{true: " inside the encryption", false: ""}[encrypted]+")", err)
	}
	zr, err := zstd.NewReader(zb)
	if err != nil {
		return nil, corrupt("compression", "not a patchbay backup archive (zstd)", err)
	}
	defer zr.Close()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	tr := tar.NewReader(zr)
	got := map[string]Part{}
	var order []string
	var manifestRaw, sumRaw []byte
	last := "the start of the archive"
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, corrupt("archive", "unreadable after "+last+readHint(err, encrypted), err)
		}
		name := path.Clean(hdr.Name)
		if hdr.Typeflag != tar.TypeReg || strings.HasPrefix(name, "../") || path.IsAbs(name) || name == "." {
			return nil, corrupt(hdr.Name, "not a regular file inside the archive", nil)
		}
		if _, dup := got[name]; dup {
			return nil, corrupt(name, "appears twice", nil)
		}
		h := sha256.New()
		var n int64
		switch name {
		case ManifestName, ManifestSumName:
			b, err := io.ReadAll(io.LimitReader(io.TeeReader(tr, h), 16<<20))
			if err != nil {
				return nil, corrupt(name, "unreadable"+readHint(err, encrypted), err)
			}
			n = int64(len(b))
			if name == ManifestName {
				manifestRaw = b
			} else {
				sumRaw = b
			}
		default:
			dst := filepath.Join(dir, filepath.FromSlash(name))
			if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
				return nil, err
			}
			f, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
			if err != nil {
				return nil, err
			}
			n, err = io.Copy(f, io.TeeReader(tr, h))
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return nil, corrupt(name, "unreadable"+readHint(err, encrypted), err)
			}
		}
		got[name] = Part{Name: name, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}
		order = append(order, name)
		last = "part " + name
	}
	// The zstd frame's checksum is read at its end.
	// A damaged frame shows at its end: the parts that do not match the
	// manifest are named first when the manifest still reads.
	var streamErr error
	if _, err := io.Copy(io.Discard, zr); err != nil {
		streamErr = corrupt("compression", "the stream after "+last+" is damaged", err)
	}
	m, err := checkManifest(manifestRaw, sumRaw, got, order, encrypted, plainOfEncrypted, last)
	if err != nil {
		return nil, err
	}
	if streamErr != nil {
		return nil, streamErr
	}
	return m, nil
}

// checkManifest checks the manifest's sum and every part it lists.
func checkManifest(manifestRaw, sumRaw []byte, got map[string]Part, order []string, encrypted, plainOfEncrypted bool, last string) (*Manifest, error) {
	if manifestRaw == nil {
		return nil, corrupt(ManifestName, "missing: the archive ends after "+last+" (truncated?)", nil)
	}
	if sumRaw == nil {
		return nil, corrupt(ManifestSumName, "missing: the archive ends after "+last+" (truncated?)", nil)
	}
	sum := sha256.Sum256(manifestRaw)
	if strings.TrimSpace(string(sumRaw)) != hex.EncodeToString(sum[:]) {
		return nil, corrupt(ManifestName, "its SHA-256 does not match "+ManifestSumName+" (the manifest was changed)", nil)
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(manifestRaw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, corrupt(ManifestName, "not a manifest", err)
	}
	if m.Format != Format {
		return nil, corrupt(ManifestName, fmt.Sprintf("archive format %d: this patchbay reads format %d", m.Format, Format), nil)
	}
	if m.Encrypted != encrypted && !plainOfEncrypted {
		return nil, corrupt("encryption", fmt.Sprintf("the manifest says encrypted=%t, the archive is %s", m.Encrypted, map[bool]string{true: "encrypted", false: "not encrypted"}[encrypted]), nil)
	}
	want := map[string]bool{}
	for _, p := range m.Parts {
		want[p.Name] = true
		if p.Name == ManifestName || p.Name == ManifestSumName {
			continue
		}
		g, ok := got[p.Name]
		switch {
		case !ok:
			return nil, corrupt(p.Name, "listed in the manifest, missing from the archive", nil)
		case g.Size != p.Size:
			return nil, corrupt(p.Name, fmt.Sprintf("%d bytes, the manifest says %d", g.Size, p.Size), nil)
		case g.SHA256 != p.SHA256:
			return nil, corrupt(p.Name, "its SHA-256 does not match the manifest (changed or damaged)", nil)
		}
	}
	sort.Strings(order)
	for _, name := range order {
		if !want[name] && name != ManifestName && name != ManifestSumName {
			return nil, corrupt(name, "in the archive, not in the manifest", nil)
		}
	}
	if _, ok := m.Part(m.DatabasePart()); !ok {
		return nil, corrupt(m.DatabasePart(), "the manifest lists no database", nil)
	}
	return &m, nil
}

func readHint(err error, encrypted bool) string {
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return " (truncated)"
	case encrypted:
		return " (damaged: the encrypted stream does not authenticate)"
	}
	return " (damaged)"
}

// ReadAudit reads the audit chain part (JSON Lines) of an extracted
// archive.
func ReadAudit(dir string) ([]audit.Entry, error) {
	f, err := os.Open(filepath.Join(dir, AuditName))
	if err != nil {
		return nil, corrupt(AuditName, "missing", err)
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	var out []audit.Entry
	for {
		var e audit.Entry
		err := dec.Decode(&e)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, corrupt(AuditName, fmt.Sprintf("entry %d", len(out)+1), err)
		}
		out = append(out, e)
	}
}

// CheckAudit verifies a chain against the head the manifest recorded,
// and the head's signature with pub when given.
func CheckAudit(entries []audit.Entry, m *Manifest, pub ed25519.PublicKey, part string) error {
	head := m.AuditHead
	if err := audit.Verify(entries, &head); err != nil {
		return corrupt(part, "the audit chain does not verify against the head the manifest recorded", err)
	}
	if n := int64(len(entries)); n != head.Seq {
		return corrupt(part, fmt.Sprintf("the audit chain ends at entry %d, the manifest's head is entry %d", n, head.Seq), nil)
	}
	if pub != nil && head.Signature != "" {
		if err := head.VerifySignature(pub); err != nil {
			return corrupt(ManifestName, "the audit head's signature does not verify with the archive's audit key", err)
		}
	}
	return nil
}

func marshalAudit(entries []audit.Entry) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, e := range entries {
		if err := enc.Encode(e); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}
