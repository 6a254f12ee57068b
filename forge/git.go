// Package forge delivers a fix to a service's repository: a clone at the
// base branch, a commit on a branch named for the fix, a push, and the
// merge request that proposes it through the forge's API (GitHub pull
// requests, GitLab merge requests), opened once and updated after.
//
// Git is the real git command; the forge clients speak HTTP to the API
// base URL they are given. Tokens are the caller's (the server's
// configuration or environment): nothing here stores them.
package forge

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
)

// Git runs the git command.
type Git struct {
	// Command is the git binary; "git" when empty.
	Command string
	// Env is added to git's environment (GIT_SSH_COMMAND, credentials).
	Env []string
	// Author is the commit author: "patchbay <patchbay@localhost>" when
	// empty.
	Author string
}

func (g Git) run(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := g.Command
	if cmd == "" {
		cmd = "git"
	}
	c := exec.CommandContext(ctx, cmd, args...)
	c.Dir = dir
	// No prompts, no user or system configuration: the same behaviour on
	// every server.
	c.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
	c.Env = append(c.Env, g.Env...)
	var out, stderr bytes.Buffer
	c.Stdout, c.Stderr = &out, &stderr
	if err := c.Run(); err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(redactArgs(args), " "), err, redact(strings.TrimSpace(stderr.String())))
	}
	return strings.TrimSpace(out.String()), nil
}

// userinfo matches the credentials of a URL, which git messages repeat.
var userinfo = regexp.MustCompile(`://[^/@\s]+@`)

func redact(s string) string { return userinfo.ReplaceAllString(s, "://***@") }

func redactArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = redact(a)
	}
	return out
}

// Clone clones the base branch of url into dir (which must not exist or
// be empty), one commit deep.
func (g Git) Clone(ctx context.Context, url, base, dir string) error {
	_, err := g.run(ctx, "", "clone", "--quiet", "--depth", "1", "--single-branch", "--branch", base, "--", url, dir)
	return err
}

// CommitAndPush commits every change in the clone at dir on branch
// (created from the checked-out base) and pushes it to origin, replacing
// the branch there: a fix branch is patchbay's own, and a newer fix
// supersedes the older one rather than adding to it. It returns the
// commit's id; "" and no push when the clone has no change.
func (g Git) CommitAndPush(ctx context.Context, dir, branch, message string) (string, error) {
	if err := checkBranch(branch); err != nil {
		return "", err
	}
	status, err := g.run(ctx, dir, "status", "--porcelain")
	if err != nil {
		return "", err
	}
	if status == "" {
		return "", nil
	}
	author := g.Author
	if author == "" {
		author = "patchbay <patchbay@localhost>"
	}
	name, email, _ := strings.Cut(strings.TrimSuffix(author, ">"), " <")
	if _, err := g.run(ctx, dir, "checkout", "--quiet", "-B", branch); err != nil {
		return "", err
	}
	if _, err := g.run(ctx, dir, "add", "--all"); err != nil {
		return "", err
	}
	if _, err := g.run(ctx, dir, "-c", "user.name="+name, "-c", "user.email="+email, "commit", "--quiet", "--no-verify", "-m", message); err != nil {
		return "", err
	}
	commit, err := g.run(ctx, dir, "rev-parse", "HEAD")
	if err != nil {
		return "", err
	}
	if _, err := g.run(ctx, dir, "push", "--quiet", "--force", "origin", "HEAD:refs/heads/"+branch); err != nil {
		return "", err
	}
	return commit, nil
}

// branchPart is what a branch name is made of here.
var branchPart = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

func checkBranch(b string) error {
	for _, p := range strings.Split(b, "/") {
		if !branchPart.MatchString(p) || strings.HasPrefix(p, ".") || strings.HasSuffix(p, ".lock") || strings.Contains(p, "..") {
			return fmt.Errorf("branch %q: want parts of letters, digits, '.', '_' and '-' separated by '/'", b)
		}
	}
	return nil
}

// nonBranch is what a branch part cannot hold.
var nonBranch = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// BranchName is the branch of a fix: patchbay/fix/SERVICE/SCHEDULE for the
// scheduled group (one per service per schedule, updated by later fixes),
// or patchbay/fix/SERVICE/PACKAGE-VERSION for an urgent fix of one patch.
func BranchName(service, group string) string {
	clean := func(s string) string {
		s = strings.Trim(nonBranch.ReplaceAllString(s, "-"), "-.")
		if s == "" {
			s = "x"
		}
		return strings.ReplaceAll(s, "..", ".")
	}
	return "patchbay/fix/" + clean(service) + "/" + clean(group)
}
