// Package pkgmgr drives the host's own package managers — apt, dnf and apk —
// for a root ("/" or a chroot directory): what is installed, which updates
// are available and where they come from, what an install would change,
// installing and downgrading exact versions, locks, interrupted runs and
// reboots. The scanner, the agent and rollouts share these drivers.
//
// No shell is ever involved: commands are argument lists, and package names
// and versions are validated before any command runs. Every command run is
// recorded, with its exit status and size-limited output, for the job log.
package pkgmgr

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// Command is one command run, as the job log shows it.
type Command struct {
	Args      []string      `json:"args"`
	Exit      int           `json:"exit"`
	Output    string        `json:"output"` // stdout and stderr, limited
	Truncated bool          `json:"truncated,omitempty"`
	Started   time.Time     `json:"started"`
	Duration  time.Duration `json:"duration"`
}

func (c Command) String() string { return strings.Join(c.Args, " ") }

// Runner runs commands for a root and records them.
type Runner struct {
	// Root is "/" (or "") for this host, or a directory to chroot into.
	Root string
	// MaxOutput bounds the output kept per command (head and tail).
	MaxOutput int
	// Exec, when set, runs a command instead of the operating system (for
	// drivers whose package manager is not on this machine, in tests): it
	// returns the combined output and the exit status.
	Exec func(ctx context.Context, args []string) (string, int, error)
	mu   sync.Mutex
	log  []Command
}

// DefaultMaxOutput is the output kept per command when Runner.MaxOutput is 0.
const DefaultMaxOutput = 16 << 10

// Log returns the commands run so far.
func (r *Runner) Log() []Command {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Command(nil), r.log...)
}

// ExitError is a command that ran and failed.
type ExitError struct {
	Cmd Command
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("%s: exit status %d: %s", e.Cmd, e.Cmd.Exit, lastLines(e.Cmd.Output, 3))
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " / ")
}

// chrooted reports whether commands run in a chroot.
func (r *Runner) chrooted() bool { return r.Root != "" && r.Root != "/" }

// Run runs args (inside Root), records it, and returns the output. A
// non-zero exit is an *ExitError; the command is recorded either way.
func (r *Runner) Run(ctx context.Context, args ...string) (Command, error) {
	full := args
	if r.chrooted() {
		full = append([]string{"chroot", r.Root}, args...)
	}
	c := Command{Args: args, Started: time.Now()}
	var out bytes.Buffer
	var err error
	if r.Exec != nil {
		var o string
		o, c.Exit, err = r.Exec(ctx, full)
		out.WriteString(o)
		if err == nil && c.Exit != 0 {
			err = fmt.Errorf("exit status %d", c.Exit)
		}
	} else {
		cmd := exec.CommandContext(ctx, full[0], full[1:]...)
		cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C.UTF-8", "DEBIAN_FRONTEND=noninteractive", "APT_LISTCHANGES_FRONTEND=none"}
		cmd.Stdout, cmd.Stderr = &out, &out
		err = cmd.Run()
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			c.Exit = ee.ExitCode()
		case err != nil:
			c.Exit = -1
			out.WriteString(err.Error())
		}
	}
	c.Duration = time.Since(c.Started)
	c.Output, c.Truncated = limit(out.String(), r.max())
	r.mu.Lock()
	r.log = append(r.log, c)
	r.mu.Unlock()
	full0 := out.String() // parsers see the whole output
	c.Output = full0
	if err != nil {
		if ctx.Err() != nil {
			return c, fmt.Errorf("%s: %w", c, ctx.Err())
		}
		return c, &ExitError{Cmd: c}
	}
	return c, nil
}

func (r *Runner) max() int {
	if r.MaxOutput > 0 {
		return r.MaxOutput
	}
	return DefaultMaxOutput
}

// limit keeps the head and tail of s within n bytes.
func limit(s string, n int) (string, bool) {
	if len(s) <= n {
		return s, false
	}
	half := n / 2
	return s[:half] + "\n… [output truncated] …\n" + s[len(s)-half:], true
}

// ParseError is output that could not be understood.
type ParseError struct {
	Cmd  string
	Line string
	Why  string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("parse output of %s: %s: %q", e.Cmd, e.Why, e.Line)
}
