// Package audit is patchbay's tamper-evident log: every state change is an
// entry that carries a digest of the change and the hash of the entry
// before it, so editing, deleting or reordering entries breaks the chain.
// Truncating the tail is caught against a checkpoint — the chain head,
// signed with Ed25519 and kept outside the database.
package audit

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// Entry is one audited state change.
type Entry struct {
	Seq    int64     `json:"seq"` // 1, 2, 3 … without gaps
	Time   time.Time `json:"time"`
	Actor  string    `json:"actor"`  // who: "admin-token:3f2a…", "agent:host-42", "cli"
	Action string    `json:"action"` // what: "feeds.import", "host.enroll", "token.create"
	Object string    `json:"object"` // on what: "osv/Go", "host/42"
	// Digest is the SHA-256 of the change's canonical JSON (hex).
	Digest string `json:"digest"`
	// Prev is the Hash of the entry before (hex); empty for the first.
	Prev string `json:"prev"`
	// Hash is the SHA-256 over every field above (hex).
	Hash string `json:"hash"`
}

// DigestOf returns the digest of a change (its JSON encoding).
func DigestOf(change any) (string, error) {
	b, err := json.Marshal(change)
	if err != nil {
		return "", fmt.Errorf("audit digest: %w", err)
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:]), nil
}

// ComputeHash returns the hash of an entry's fields (not its Hash field).
// Each field is length-prefixed, so no two different entries hash alike.
func ComputeHash(e Entry) string {
	h := sha256.New()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(e.Seq))
	h.Write(n[:])
	for _, f := range []string{e.Time.UTC().Format(time.RFC3339Nano), e.Actor, e.Action, e.Object, e.Digest, e.Prev} {
		binary.BigEndian.PutUint64(n[:], uint64(len(f)))
		h.Write(n[:])
		h.Write([]byte(f))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Next makes the entry that follows prev (nil for the first entry).
func Next(prev *Entry, at time.Time, actor, action, object, digest string) Entry {
	e := Entry{Seq: 1, Time: at.UTC(), Actor: actor, Action: action, Object: object, Digest: digest}
	if prev != nil {
		e.Seq, e.Prev = prev.Seq+1, prev.Hash
	}
	e.Hash = ComputeHash(e)
	return e
}

// BrokenError names the first entry where the chain does not hold.
type BrokenError struct {
	Seq int64 // the entry's sequence number (or position, for gaps)
	Why string
}

func (e *BrokenError) Error() string {
	return fmt.Sprintf("audit chain broken at entry %d: %s", e.Seq, e.Why)
}

// Verify recomputes the chain of entries (in the order stored) and, when a
// checkpoint is given, checks that the chain still reaches it. It returns a
// *BrokenError naming the first bad entry.
func Verify(entries []Entry, cp *Checkpoint) error {
	if err := verifyChain(entries); err != nil {
		return err
	}
	if cp == nil {
		return nil
	}
	return cp.reachedBy(entries)
}

// VerifyHistory recomputes the chain once and checks that it reaches every
// checkpoint of a history (as ReadCheckpoints returns it), naming the
// first that it does not.
func VerifyHistory(entries []Entry, cps []Checkpoint) error {
	if err := verifyChain(entries); err != nil {
		return err
	}
	for i := range cps {
		if err := cps[i].reachedBy(entries); err != nil {
			return err
		}
	}
	return nil
}

func verifyChain(entries []Entry) error {
	var prev *Entry
	for i := range entries {
		e := &entries[i]
		want := int64(i + 1)
		switch {
		case e.Seq != want:
			return &BrokenError{Seq: want, Why: fmt.Sprintf("found entry %d in its place (deleted or reordered)", e.Seq)}
		case ComputeHash(*e) != e.Hash:
			return &BrokenError{Seq: e.Seq, Why: "its content does not match its hash (edited)"}
		case prev == nil && e.Prev != "":
			return &BrokenError{Seq: e.Seq, Why: "the first entry names a predecessor"}
		case prev != nil && e.Prev != prev.Hash:
			return &BrokenError{Seq: e.Seq, Why: fmt.Sprintf("it does not follow entry %d (its predecessor was replaced)", prev.Seq)}
		}
		prev = e
	}
	return nil
}

// reachedBy checks that a verified chain still holds the checkpointed
// entry.
func (c *Checkpoint) reachedBy(entries []Entry) error {
	if int64(len(entries)) < c.Seq {
		return &BrokenError{Seq: int64(len(entries)) + 1, Why: fmt.Sprintf("the chain ends at %d but the checkpoint of %s names entry %d (truncated)", len(entries), c.Time.Format(time.RFC3339), c.Seq)}
	}
	if c.Seq > 0 && entries[c.Seq-1].Hash != c.Hash {
		return &BrokenError{Seq: c.Seq, Why: fmt.Sprintf("it differs from the entry the checkpoint of %s names (rewritten)", c.Time.Format(time.RFC3339))}
	}
	return nil
}

// Checkpoint is a signed statement of the chain head, kept outside the
// database.
type Checkpoint struct {
	Seq       int64     `json:"seq"`
	Hash      string    `json:"hash"`
	Time      time.Time `json:"time"`
	Signature string    `json:"signature"` // Ed25519 over seq, hash and time (hex)
}

func (c Checkpoint) message() []byte {
	return []byte(fmt.Sprintf("patchbay-audit-checkpoint\n%d\n%s\n%s\n", c.Seq, c.Hash, c.Time.UTC().Format(time.RFC3339Nano)))
}

// NewCheckpoint signs the head of entries.
func NewCheckpoint(entries []Entry, at time.Time, key ed25519.PrivateKey) Checkpoint {
	c := Checkpoint{Time: at.UTC()}
	if n := len(entries); n > 0 {
		c.Seq, c.Hash = entries[n-1].Seq, entries[n-1].Hash
	}
	c.Signature = hex.EncodeToString(ed25519.Sign(key, c.message()))
	return c
}

// ErrBadSignature is returned for a checkpoint that does not verify.
var ErrBadSignature = errors.New("audit checkpoint signature does not verify")

// VerifySignature checks the checkpoint's signature.
func (c Checkpoint) VerifySignature(pub ed25519.PublicKey) error {
	sig, err := hex.DecodeString(c.Signature)
	if err != nil || !ed25519.Verify(pub, c.message(), sig) {
		return ErrBadSignature
	}
	return nil
}

// ReadCheckpoints reads a checkpoint file: either one checkpoint, as
// `patchbay audit checkpoint` writes it (indented JSON), or the history a
// server appends to audit-checkpoints.jsonl (JSON Lines, oldest first). It
// returns the checkpoints in file order; a file without one, or with a
// value that is not a checkpoint (a torn last line), is an error naming
// the checkpoint's position.
func ReadCheckpoints(r io.Reader) ([]Checkpoint, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var cps []Checkpoint
	for {
		var c Checkpoint
		err := dec.Decode(&c)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("checkpoint %d: %w", len(cps)+1, err)
		}
		if c.Signature == "" {
			return nil, fmt.Errorf("checkpoint %d: %w", len(cps)+1, ErrNoSignature)
		}
		cps = append(cps, c)
	}
	if len(cps) == 0 {
		return nil, ErrNoCheckpoint
	}
	return cps, nil
}

// Errors of ReadCheckpoints.
var (
	ErrNoCheckpoint = errors.New("no checkpoint in the file")
	ErrNoSignature  = errors.New("not a signed checkpoint")
)
