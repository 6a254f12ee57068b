package pkgmgr

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/patchbay/patchbay/match"
)

// RebootStatus says whether a root needs a reboot, and why.
type RebootStatus struct {
	Required bool     `json:"required"`
	Reasons  []string `json:"reasons"`
	// RunningKernel is the kernel release running now (the host's, for a
	// chroot); NewestKernel the newest installed under the root's /boot.
	RunningKernel string `json:"running_kernel"`
	NewestKernel  string `json:"newest_kernel,omitempty"`
	// Stale are running processes that still map replaced (deleted)
	// libraries: they need a restart to use the patched code.
	Stale []StaleProcess `json:"stale"`
}

// StaleProcess is a process mapping deleted libraries.
type StaleProcess struct {
	PID       int      `json:"pid"`
	Command   string   `json:"command"`
	Unit      string   `json:"unit,omitempty"` // systemd unit, when the process belongs to one
	Libraries []string `json:"libraries"`
}

// Reboot inspects a root: Debian's reboot-required flag file, a running
// kernel older than the newest installed one, `needs-restarting -r` where
// it exists (dnf systems), and processes that map deleted libraries.
type Reboot struct {
	R *Runner
	// Proc is the proc filesystem; empty means /proc.
	Proc string
	// Uname returns the running kernel release; nil reads it from the
	// system.
	Uname func() (string, error)
}

func (rb *Reboot) proc() string {
	if rb.Proc != "" {
		return rb.Proc
	}
	return "/proc"
}

func (rb *Reboot) root() string {
	if rb.R.chrooted() {
		return rb.R.Root
	}
	return "/"
}

// Status checks everything and reports.
func (rb *Reboot) Status(ctx context.Context) (RebootStatus, error) {
	st := RebootStatus{Reasons: []string{}, Stale: []StaleProcess{}}
	root := rb.root()
	for _, dir := range []string{"run", "var/run"} {
		flag := filepath.Join(root, dir, "reboot-required")
		if _, err := os.Stat(flag); err == nil {
			reason := "/" + dir + "/reboot-required exists"
			if b, err := os.ReadFile(flag + ".pkgs"); err == nil {
				pkgs := strings.Fields(string(b))
				sort.Strings(pkgs)
				pkgs = compactStrings(pkgs)
				if len(pkgs) > 0 {
					reason += " (" + strings.Join(pkgs, ", ") + ")"
				}
			}
			st.Required = true
			st.Reasons = append(st.Reasons, reason)
			break
		}
	}
	uname := rb.Uname
	if uname == nil {
		uname = unameRelease
	}
	running, err := uname()
	if err != nil {
		return st, fmt.Errorf("running kernel: %w", err)
	}
	st.RunningKernel = running
	newest, err := newestKernel(root)
	if err != nil {
		return st, err
	}
	st.NewestKernel = newest
	if r := kernelReason(running, newest); r != "" && !rb.R.chrooted() {
		st.Required = true
		st.Reasons = append(st.Reasons, r)
	}
	for _, p := range []string{"usr/bin/needs-restarting", "usr/sbin/needs-restarting"} {
		if _, err := os.Stat(filepath.Join(root, p)); err == nil {
			c, err := rb.R.Run(ctx, "needs-restarting", "-r")
			var ee *ExitError
			switch {
			case errors.As(err, &ee) && ee.Cmd.Exit == 1:
				st.Required = true
				st.Reasons = append(st.Reasons, "needs-restarting -r: "+lastLines(c.Output, 2))
			case err != nil:
				return st, err
			}
			break
		}
	}
	stale, err := StaleProcesses(rb.proc(), root)
	if err != nil {
		return st, err
	}
	if stale != nil {
		st.Stale = stale
	}
	return st, nil
}

// kernelReason says why a running kernel needs a reboot: a newer one is
// installed. Releases compare like Debian versions ("6.1.0-30" > "6.1.0-9").
func kernelReason(running, newest string) string {
	if newest == "" {
		return ""
	}
	if c, err := match.Compare("Debian", running, newest); err == nil && c < 0 {
		return fmt.Sprintf("running kernel %s is older than the newest installed, %s", running, newest)
	}
	return ""
}

func compactStrings(xs []string) []string {
	out := xs[:0]
	for i, x := range xs {
		if i == 0 || x != xs[i-1] {
			out = append(out, x)
		}
	}
	return out
}

func unameRelease() (string, error) {
	var u syscall.Utsname
	if err := syscall.Uname(&u); err != nil {
		return "", err
	}
	var b strings.Builder
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		b.WriteByte(byte(c))
	}
	return b.String(), nil
}

// newestKernel is the newest kernel release with an image in root/boot.
func newestKernel(root string) (string, error) {
	es, err := os.ReadDir(filepath.Join(root, "boot"))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("list kernels: %w", err)
	}
	newest := ""
	for _, e := range es {
		rel, ok := strings.CutPrefix(e.Name(), "vmlinuz-")
		if !ok {
			continue
		}
		if newest == "" {
			newest = rel
			continue
		}
		if c, err := match.Compare("Debian", rel, newest); err == nil && c > 0 {
			newest = rel
		}
	}
	return newest, nil
}

// StaleProcesses lists the processes whose root is root and that map
// deleted shared libraries, with the systemd unit they belong to.
func StaleProcesses(proc, root string) ([]StaleProcess, error) {
	es, err := os.ReadDir(proc)
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	wantRoot, _ := filepath.EvalSymlinks(root)
	var out []StaleProcess
	for _, e := range es {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		dir := filepath.Join(proc, e.Name())
		if r, err := os.Readlink(filepath.Join(dir, "root")); err != nil || filepath.Clean(r) != filepath.Clean(wantRoot) {
			continue // another root, or gone, or not ours to read
		}
		libs := deletedLibraries(filepath.Join(dir, "maps"))
		if len(libs) == 0 {
			continue
		}
		comm, _ := os.ReadFile(filepath.Join(dir, "comm"))
		out = append(out, StaleProcess{PID: pid, Command: strings.TrimSpace(string(comm)), Unit: unitOf(filepath.Join(dir, "cgroup")), Libraries: libs})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PID < out[j].PID })
	return out, nil
}

func deletedLibraries(maps string) []string {
	f, err := os.Open(maps)
	if err != nil {
		return nil
	}
	defer f.Close()
	set := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasSuffix(line, " (deleted)") {
			continue
		}
		fields := strings.Fields(strings.TrimSuffix(line, " (deleted)"))
		if len(fields) < 6 {
			continue
		}
		p := strings.Join(fields[5:], " ")
		if strings.HasSuffix(p, ".so") || strings.Contains(p, ".so.") {
			set[p] = true
		}
	}
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// unitOf reads the systemd unit from a cgroup file ("0::/system.slice/nginx.service").
func unitOf(cgroup string) string {
	b, err := os.ReadFile(cgroup)
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, seg := range strings.Split(parts[2], "/") {
			if strings.HasSuffix(seg, ".service") || strings.HasSuffix(seg, ".scope") {
				return seg
			}
		}
	}
	return ""
}
