package forge

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// Change is what Deliver asks of its caller: rewrite the clone at dir and
// say what the merge request should read. A change that leaves the clone
// as it was (nothing to fix) is not pushed.
type Change func(ctx context.Context, dir string) (Proposed, error)

// Proposed is the merge request a Change asks for.
type Proposed struct {
	Title, Body string
	// Branch, when set, replaces the Delivery's (a fix named for what it
	// turned out to hold).
	Branch string
}

// Delivery is one fix to deliver.
type Delivery struct {
	URL    string // the git URL (credentials, when any, come through Git.Env)
	Base   string // the base branch
	Branch string // the fix branch (BranchName)
	// Message is the commit message; the title when empty.
	Message string
}

// Delivered is the outcome: the commit pushed and the merge request.
type Delivered struct {
	Commit       string       `json:"commit"`
	MergeRequest MergeRequest `json:"merge_request"`
	// Created is false when an open merge request of the branch was
	// updated instead.
	Created bool `json:"created"`
}

// Deliver clones d.Base, lets change rewrite the clone, commits the result
// on d.Branch, pushes it (replacing an older fix on that branch), and opens
// or updates the branch's merge request through f. With nothing changed it
// returns a zero Delivered and no error; a nil f pushes only.
func Deliver(ctx context.Context, git Git, f Forge, d Delivery, change Change) (Delivered, error) {
	var out Delivered
	tmp, err := os.MkdirTemp("", "patchbay-deliver-")
	if err != nil {
		return out, err
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "repo")
	if err := git.Clone(ctx, d.URL, d.Base, dir); err != nil {
		return out, err
	}
	prop, err := change(ctx, dir)
	if err != nil {
		return out, fmt.Errorf("prepare the fix in a clone of %s: %w", redact(d.URL), err)
	}
	title, body := prop.Title, prop.Body
	if prop.Branch != "" {
		d.Branch = prop.Branch
	}
	msg := d.Message
	if msg == "" {
		msg = title + "\n\n" + body
	}
	commit, err := git.CommitAndPush(ctx, dir, d.Branch, msg)
	if err != nil || commit == "" {
		return out, err
	}
	out.Commit = commit
	if f == nil {
		return out, nil
	}
	mr, created, err := f.Upsert(ctx, Request{Head: d.Branch, Base: d.Base, Title: title, Body: body})
	if err != nil {
		return out, fmt.Errorf("pushed %s to %s, but the merge request: %w", d.Branch, redact(d.URL), err)
	}
	out.MergeRequest, out.Created = mr, created
	return out, nil
}
